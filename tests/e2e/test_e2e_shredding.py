"""Crypto-shredding end to end (issue #18): a member's words cross emulator -> gateway -> Kafka sealed under
their data key, are answered as usual, and once the key is destroyed no copy on the topic opens, while another
member's still does and the platform keeps answering the erased member's new messages."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord

from models.events import EventEnvelope
from settings import Settings
from streams.catalog import (
    AGENT_DECISIONS,
    DISCORD_ACTIONS,
    DISCORD_EVENTS,
    INFERENCE_LANES,
    INFERENCE_RESULTS,
)
from streams.sealing import open_envelope, open_payload
from tests.e2e.conftest import ANSWER_S, COMPLETION, Demo, demo_data_keys
from tests.e2e.test_e2e_platform import said_by
from tests.stored_records import stored_values
from vault.user_keys import UserKeyStore

pytestmark = [pytest.mark.stack, pytest.mark.shared_demo]

Records = list[ConsumerRecord[bytes, bytes]]


@pytest.fixture
async def keys(demo: Demo, stack_up: Settings) -> AsyncIterator[UserKeyStore]:
    """The demo's data keys (its schema, its key ring), as an eraser would use them."""
    async with demo_data_keys(stack_up, demo.running.schema) as store:
        yield store


async def raw_events(demo: Demo, until: Callable[[Records], bool]) -> Records:
    """The demo's `discord.events` records as stored, from the beginning, until `until` holds."""
    consumer = AIOKafkaConsumer(
        DISCORD_EVENTS.name_in(demo.namespace),
        bootstrap_servers=demo.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: Records = []
    try:
        deadline = time.monotonic() + ANSWER_S
        while not until(records):
            assert time.monotonic() < deadline, "the messages never reached discord.events"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


# The topics after discord.events that carry a member's words or id: the prompt and the answer, the
# decisions on the message, the reply.
FOLLOWING = (*INFERENCE_LANES.values(), INFERENCE_RESULTS, AGENT_DECISIONS, DISCORD_ACTIONS)


def answering(bot_id: str, message_id: str) -> Callable[[dict[str, Any]], bool]:
    """Matches `bot_id`'s scripted reply to message `message_id`, not another reply in the channel."""
    said = said_by(bot_id, COMPLETION.split()[1])

    def match(action: dict[str, Any]) -> bool:
        reference = action["payload"].get("message_reference") or {}
        return said(action) and reference.get("message_id") == message_id

    return match


def carrying(records: Records, message_id: str) -> Records:
    quoted = f'"{message_id}"'.encode()
    return [record for record in records if record.value is not None and quoted in record.value]


async def test_words_are_sealed_on_kafka_answered_and_shredded_with_the_key(
    demo: Demo, keys: UserKeyStore
) -> None:
    luna, you = demo.bots["Luna"], demo.users["you"]
    other = next(name for name in demo.users if name not in ("you", "owner"))
    run = uuid.uuid4().hex[:10]
    secret, kept = f"my secret plan {run}", f"nothing to hide {run}"

    since = await demo.last_seq()
    mine = await demo.control.post_user_message(you, f"<@{luna}> {secret}", demo.channels["general"])
    reply = await demo.wait_action(since, answering(luna, mine["id"]))  # answered as usual
    them = demo.users[other]
    theirs = await demo.control.post_user_message(them, kept, demo.channels["general"])

    records = await raw_events(
        demo, lambda rs: all(carrying(rs, message["id"]) for message in (mine, reply["payload"], theirs))
    )
    # Every bot in the guild got both messages; not one stored copy holds the words or the author's id.
    assert not [r for r in records if r.value is not None and secret.encode() in r.value]
    assert not [r for r in records if r.value is not None and kept.encode() in r.value]
    my_copies, their_copies = carrying(records, mine["id"]), carrying(records, theirs["id"])
    assert not [r for r in my_copies if r.value is not None and you.encode() in r.value]

    def decoded(copies: Records) -> list[EventEnvelope]:
        """The messages among the copies (the agents' reactions to them carry their ids too)."""
        envelopes = [DISCORD_EVENTS.codec.decode(r.value) for r in copies]
        return [envelope for envelope in envelopes if envelope.type == "MESSAGE_CREATE"]

    # The member's message as each bot saw it, and Luna's answer, which quotes it.
    said, quoting = [], []
    for envelope in decoded(my_copies):
        opened = await open_envelope(envelope, keys)
        assert opened is not None
        if opened.data["author"]["id"] == you:
            assert secret in opened.data["content"]
            said.append(envelope)
        elif "referenced_message" in opened.data:
            assert secret in opened.data["referenced_message"]["content"]
            quoting.append(envelope)
    assert said and quoting

    # What followed from the message, on every topic, holds neither the words nor the member's id.
    bootstrap = demo.settings.kafka_bootstrap
    following = {spec: await stored_values(bootstrap, demo.namespace, spec) for spec in FOLLOWING}
    assert [
        spec.name for spec in (INFERENCE_RESULTS, AGENT_DECISIONS, DISCORD_ACTIONS) if not following[spec]
    ] == []
    for spec, values in following.items():
        assert not [v for v in values if secret.encode() in v or you.encode() in v], spec.name

    assert await keys.destroy_user_keys(you) == 1
    # Every record sealed under the member's key stops opening: prompt, answer, decisions, reply.
    erased = set()
    for spec, values in following.items():
        for value in values:
            if await open_payload(spec.codec.decode(value), spec.sealing, keys) is None:
                erased.add(spec.name.rsplit(".", 1)[0] if spec in INFERENCE_LANES.values() else spec.name)
    assert erased == {"inference.requests", "inference.results", "agent.decisions", "discord.actions"}
    assert [await open_envelope(envelope, keys) for envelope in said] == [None] * len(said)
    for envelope in quoting:
        answer = await open_envelope(envelope, keys)
        assert answer is not None and "referenced_message" not in answer.data
    theirs_opened = [await open_envelope(envelope, keys) for envelope in decoded(their_copies)]
    assert all(opened is not None for opened in theirs_opened)
    by_them = [o.data["content"] for o in theirs_opened if o is not None and o.data["author"]["id"] == them]
    assert by_them and set(by_them) == {kept}

    # The running gateway dropped the destroyed key: the member's next message is sealed under a new one,
    # which the processors open, and it is answered.
    since = await demo.last_seq()
    general = demo.channels["general"]
    again = await demo.control.post_user_message(you, f"<@{luna}> still there? {run}", general)
    await demo.wait_action(since, answering(luna, again["id"]))
