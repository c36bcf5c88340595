"""Values whose one list grows an item at a time (a channel's context messages, its floor's rulings), kept in
two tables: a ring of one slot per item, and a head holding the rest of the value and which positions of the
ring are in the list (models.state.RingHead, RingSlot). Storing a value writes only what changed: after an
item is appended, its slot and the head, two small changelog records where the whole value was one record
of up to all its items."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from models.processor_state import FloorRuling, FloorState
from models.state import ChannelContext, ContextMessage, RingHead, RingSlot
from models.table_keys import ring_slot_key

ValueT = TypeVar("ValueT", bound=BaseModel)
ItemT = TypeVar("ItemT", bound=BaseModel)

# The ring a value starts with; it doubles when the list outgrows it (rewriting the list's slots once).
SMALLEST_RING = 8


@dataclass(frozen=True)
class RingLayout(Generic[ValueT, ItemT]):
    """Which list of which model a ring holds."""

    value_model: type[ValueT]
    item_model: type[ItemT]
    field: str

    @property
    def head_model(self) -> type[RingHead[ValueT]]:
        return RingHead[self.value_model]  # type: ignore[name-defined]

    @property
    def slot_model(self) -> type[RingSlot[ItemT]]:
        return RingSlot[self.item_model]  # type: ignore[name-defined]

    def over(
        self, heads: MutableMapping[str, RingHead[ValueT]], slots: MutableMapping[str, RingSlot[ItemT]]
    ) -> ListRing[ValueT, ItemT]:
        return ListRing(heads, slots, self)


@dataclass(frozen=True)
class _Held(Generic[ValueT]):
    """A value as last read or written, with the head record it stands for and the position of its first
    item."""

    head: RingHead[ValueT]
    value: ValueT
    first: int


class ListRing(MutableMapping[str, ValueT], Generic[ValueT, ItemT]):
    """The values of one table under their keys, the layout's list of each in a ring of slots.

    Each value read is kept beside the head record it was read under: every change writes a new head record
    (here, or in a recovery from the changelog), so while the record is the same object the value is
    unchanged, and a read costs one lookup instead of one per item."""

    def __init__(
        self,
        heads: MutableMapping[str, RingHead[ValueT]],
        slots: MutableMapping[str, RingSlot[ItemT]],
        layout: RingLayout[ValueT, ItemT],
    ) -> None:
        self._heads = heads
        self._slots = slots
        self._field = layout.field
        self._head_model = layout.head_model
        self._slot_model = layout.slot_model
        self._held: dict[str, _Held[ValueT]] = {}

    def _items(self, value: ValueT) -> list[ItemT]:
        items: list[ItemT] = getattr(value, self._field)
        return items

    def _with_items(self, rest: ValueT, items: list[Any]) -> ValueT:
        # Copied from validated values: no need to validate them again.
        return rest.model_copy(update={self._field: items})

    def _current(self, key: str) -> _Held[ValueT] | None:
        head = self._heads.get(key)
        held = self._held.get(key)
        if head is None:
            self._held.pop(key, None)
            return None
        if held is not None and held.head is head:
            return held
        first = head.first
        items: list[ItemT] = []
        for position in range(head.first, head.last + 1):
            slot = self._slots.get(ring_slot_key(key, position % head.ring))
            if slot is None or slot.position != position:
                # Only a changelog cut short leaves a gap: the list is the run after it.
                first, items = position + 1, []
            else:
                items.append(slot.item)
        held = self._held[key] = _Held(head, self._with_items(head.rest, items), first)
        return held

    def __getitem__(self, key: str) -> ValueT:
        held = self._current(key)
        if held is None:
            raise KeyError(key)
        return held.value

    def get(self, key: str, default: Any = None) -> Any:
        # Not Mapping's get, which raises and catches a KeyError for a missing key.
        held = self._current(key)
        return held.value if held is not None else default

    def __setitem__(self, key: str, value: ValueT) -> None:
        current = self._current(key)
        items = self._items(value)
        held = self._items(current.value) if current is not None else []
        # The items read are the held ones' own objects: where the new list's first item is among them (at
        # the start, or further on when the oldest were dropped), those that follow keep their positions; a
        # list that shares no start with the held one gets positions after it.
        shift = next((j for j, item in enumerate(held) if items and item is items[0]), None)
        if current is None:
            first = 0
        elif shift is None:
            first = current.head.last + 1
        else:
            first = current.first + shift
        ring = current.head.ring if current is not None else SMALLEST_RING
        while ring < len(items):
            ring *= 2
        # A grown ring puts every position in another slot.
        kept = held[shift:] if shift is not None and current is not None and ring == current.head.ring else []
        written = False
        for index, item in enumerate(items):
            if index >= len(kept) or kept[index] is not item:
                position = first + index
                self._slots[ring_slot_key(key, position % ring)] = self._slot_model(
                    position=position, item=item
                )
                written = True
        rest = self._with_items(value, [])
        if (
            written
            or current is None
            or (first, first + len(items) - 1, ring)
            != (current.head.first, current.head.last, current.head.ring)
            or rest != current.head.rest
        ):
            head = self._head_model(rest=rest, first=first, last=first + len(items) - 1, ring=ring)
            self._heads[key] = head
        else:
            head = current.head
        self._held[key] = _Held(head, value, first)

    def drop_stale_slots(self, key: str) -> int:
        """Delete the value's slots outside its list: an item dropped from the list (by the window, or an
        erasure taking it out) stays in its slot until the ring wraps round to it. Returns how many went."""
        head = self._heads.get(key)
        if head is None:
            return 0
        live = {position % head.ring for position in range(head.first, head.last + 1)}
        dropped = 0
        for slot in range(head.ring):
            if slot not in live and self._slots.pop(ring_slot_key(key, slot), None) is not None:
                dropped += 1
        return dropped

    def __delitem__(self, key: str) -> None:
        head = self._heads.pop(key)
        self._held.pop(key, None)
        for slot in range(head.ring):
            self._slots.pop(ring_slot_key(key, slot), None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._heads)

    def __len__(self) -> int:
        return len(self._heads)


# The channel contexts' messages, and the floors' rulings (one a message): the lists that grow every message.
CONTEXT_RING = RingLayout(ChannelContext, ContextMessage, "messages")
FLOOR_RING = RingLayout(FloorState, FloorRuling, "rulings")
