"""The ring layout of the lists that grow every message (processors.ring), on the channel contexts: what a
stored context reads back as, from the same ring and from its records alone (a recovery), and how few
records each change writes."""

from __future__ import annotations

from datetime import timedelta
from typing import TypeVar

from models.state import ChannelContext, ContextMessage, RingHead, RingSlot
from models.table_keys import ContextKey
from processors.context import PENDING_MESSAGE_ID, record_message
from processors.ring import CONTEXT_RING, ListRing
from tests.processors.factories import T0, snowflake

CHANNEL = snowflake()
KEY = ContextKey(snowflake(), CHANNEL).encode()
T = TypeVar("T")


class CountingDict(dict[str, T]):
    """A table that counts the records written to it, as its changelog would receive them."""

    writes = 0

    def __setitem__(self, key: str, value: T) -> None:
        self.writes += 1
        super().__setitem__(key, value)


def entry(n: int, message_id: str | None = None, author_id: str = "1100") -> ContextMessage:
    return ContextMessage(
        message_id=message_id or str(1_300_000_000_000_000_000 + n),
        author_id=author_id,
        author_name="Kai",
        content=f"message {n}",
        at=T0 + timedelta(seconds=n),
    )


Heads = dict[str, RingHead[ChannelContext]]
Slots = dict[str, RingSlot[ContextMessage]]
Ring = ListRing[ChannelContext, ContextMessage]


def new_ring() -> tuple[Ring, CountingDict[RingHead[ChannelContext]], CountingDict[RingSlot[ContextMessage]]]:
    heads, slots = CountingDict[RingHead[ChannelContext]](), CountingDict[RingSlot[ContextMessage]]()
    return CONTEXT_RING.over(heads, slots), heads, slots


def recovered(heads: Heads, slots: Slots) -> Ring:
    """A ring over copies of the records, as a worker recovering them from the changelog holds them."""
    head, slot = CONTEXT_RING.head_model, CONTEXT_RING.slot_model
    return CONTEXT_RING.over(
        {k: head.model_validate_json(v.model_dump_json()) for k, v in heads.items()},
        {k: slot.model_validate_json(v.model_dump_json()) for k, v in slots.items()},
    )


def append(ring: Ring, message: ContextMessage, limit: int) -> ChannelContext:
    updated = record_message(ring.get(KEY), CHANNEL, message, limit)
    assert updated is not None
    ring[KEY] = updated
    return updated


def test_a_message_writes_its_slot_and_the_head_only() -> None:
    ring, heads, slots = new_ring()
    for n in range(120):
        context = append(ring, entry(n), limit=50)
        assert ring[KEY] == context
        assert recovered(heads, slots)[KEY] == context
    assert [m.content for m in ring[KEY].messages] == [f"message {n}" for n in range(70, 120)]
    # The ring grew to 64 slots on the way (rewriting the list each time it doubled), then one slot and the
    # head per message.
    before = slots.writes, heads.writes
    append(ring, entry(120), limit=50)
    assert (slots.writes - before[0], heads.writes - before[1]) == (1, 1)
    assert len(slots) == 64


def test_a_pending_entry_replaced_by_its_message_rewrites_one_slot() -> None:
    ring, heads, slots = new_ring()
    for n in range(10):
        append(ring, entry(n), limit=10)
    append(ring, entry(10, message_id=PENDING_MESSAGE_ID, author_id="1200"), limit=10)
    append(ring, entry(11), limit=10)
    before = slots.writes
    real = entry(10, author_id="1200")
    context = append(ring, real, limit=10)
    assert slots.writes - before == 1
    assert [m.message_id for m in context.messages][-2:] == [real.message_id, entry(11).message_id]
    assert recovered(heads, slots)[KEY] == context


def test_a_shorter_window_and_a_rewritten_context_read_back_as_stored() -> None:
    ring, heads, slots = new_ring()
    for n in range(30):
        append(ring, entry(n), limit=30)
    shorter = append(ring, entry(30), limit=5)
    assert len(shorter.messages) == 5
    assert recovered(heads, slots)[KEY] == shorter
    # A context rewritten whole (no message object in common with the stored one).
    rewritten = ChannelContext(
        channel_id=CHANNEL, messages=[m.model_copy(update={"content": "removed"}) for m in shorter.messages]
    )
    ring[KEY] = rewritten
    assert ring[KEY] == rewritten
    assert recovered(heads, slots)[KEY] == rewritten


def test_a_deleted_context_is_gone_with_its_slots() -> None:
    ring, heads, slots = new_ring()
    for n in range(3):
        append(ring, entry(n), limit=50)
    del ring[KEY]
    assert ring.get(KEY) is None
    assert not heads and not slots
    assert list(ring) == []
