"""Session checkpoints and event ids against a gateway server that numbers and names sessions its own way:
a dispatch numbered 0, a session id reused by a new IDENTIFY, numbering that starts over after RESUME,
RESUMED without a sequence. In process: the shard is fed payloads, Kafka and Redis are recorded."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any, cast

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from gateways.fleet import Fleet, TokenDeadHandler
from gateways.identify import IdentifyLimiter
from gateways.protocol import Op
from gateways.rest import RestClients
from gateways.sessions import GatewaySession, SessionStore
from gateways.shard import BotCredentials, GatewayShard, ShardState
from models.events import EventEnvelope
from streams.catalog import DISCORD_EVENTS
from streams.sealing import open_envelope
from tests.data_keys import MemoryDataKeys
from tests.gateways.conftest import eventually

GUILD = "200"
CHANNEL = "300"


class RecordingProducer:
    """Acknowledges at once, or holds acknowledgements back until `acknowledge()`."""

    def __init__(self, keys: MemoryDataKeys, *, hold: bool = False) -> None:
        self.keys = keys
        self.sent: list[EventEnvelope] = []
        self._hold = hold
        self._held: list[asyncio.Future[None]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        opened = await open_envelope(DISCORD_EVENTS.codec.decode(value), self.keys)
        assert opened is not None
        self.sent.append(opened)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._hold:
            self._held.append(delivery)
        else:
            delivery.set_result(None)
        return delivery

    def acknowledge(self) -> None:
        held, self._held = self._held, []
        for delivery in held:
            delivery.set_result(None)

    async def flush(self) -> None:
        return None


class RecordingSessions(SessionStore):
    def __init__(self) -> None:
        super().__init__(cast(Any, None), "test:")
        self.saved: dict[tuple[str, int], GatewaySession | None] = {}

    async def save_many(self, sessions: Iterable[tuple[str, int, GatewaySession | None]]) -> None:
        for bot_id, shard_id, session in sessions:
            self.saved[(bot_id, shard_id)] = session


async def no_token_dies(*_: object) -> None:
    raise AssertionError("no token dies here")


def make_fleet(
    recorder: RecordingProducer, store: RecordingSessions, token_dead: TokenDeadHandler = no_token_dies
) -> Fleet:
    return Fleet(
        http=cast(aiohttp.ClientSession, None),
        rest=cast(RestClients, None),
        producer=cast(AIOKafkaProducer, recorder),
        events_topic="events",
        sessions=store,
        identify=cast(IdentifyLimiter, None),
        gateway_url="ws://gateway.invalid",
        intents=0,
        on_token_dead=token_dead,
        keys=recorder.keys,
    )


def bot(bot_id: str) -> BotCredentials:
    return BotCredentials(bot_id=bot_id, token_id=uuid.uuid4(), token=SecretStr("token"))


def ready(session_id: str, seq: int | None = 1) -> dict[str, Any]:
    data = {"session_id": session_id, "resume_gateway_url": "ws://resume.invalid"}
    return {"op": Op.DISPATCH, "t": "READY", "s": seq, "d": data}


def message(seq: int | None, text: str) -> dict[str, Any]:
    data = {"guild_id": GUILD, "channel_id": CHANNEL, "content": text}
    return {"op": Op.DISPATCH, "t": "MESSAGE_CREATE", "s": seq, "d": data}


def resumed(seq: int | None) -> dict[str, Any]:
    return {"op": Op.DISPATCH, "t": "RESUMED", "s": seq, "d": {}}


async def feed(shard: GatewayShard, *payloads: dict[str, Any]) -> None:
    for payload in payloads:
        assert await shard._handle(payload) is None


async def acknowledged(shard: GatewayShard) -> None:
    """Kafka's acknowledgements reach the checkpoint through done-callbacks: wait for them."""
    assert await eventually(lambda: shard.checkpoint.in_flight == 0, within_s=5)


def resume(shard: GatewayShard) -> None:
    """What a new connection does before it sends RESUME."""
    shard.checkpoint.restart(shard.resume_seq)


@pytest.fixture
def recorder() -> RecordingProducer:
    return RecordingProducer(MemoryDataKeys())


@pytest.fixture
def store() -> RecordingSessions:
    return RecordingSessions()


@pytest.fixture
def fleet(recorder: RecordingProducer, store: RecordingSessions) -> Fleet:
    return make_fleet(recorder, store)


async def test_a_dispatch_numbered_0_in_flight_checkpoints_0() -> None:
    held = RecordingProducer(MemoryDataKeys(), hold=True)
    store = RecordingSessions()
    fleet = make_fleet(held, store)
    shard = GatewayShard(fleet, bot("1"))
    await feed(shard, ready("s1", seq=0))
    assert shard.checkpoint.value == -1  # the watermark itself: nothing below 0 is done
    assert shard.resume_seq == 0  # what a RESUME sends
    await fleet.checkpoint()
    saved = store.saved[("1", 0)]
    assert saved is not None and saved.seq == 0
    held.acknowledge()
    await acknowledged(shard)
    await fleet.checkpoint()
    saved = store.saved[("1", 0)]
    assert saved is not None and saved.seq == 0 and shard.checkpoint.in_flight == 0


async def test_ids_stay_unique_when_a_new_identify_reuses_the_session_id(
    fleet: Fleet, recorder: RecordingProducer
) -> None:
    shard = GatewayShard(fleet, bot("1"))
    await feed(shard, ready("same"), message(2, "first life"))
    await feed(shard, ready("same"), message(2, "second life"))
    ids = [envelope.event_id for envelope in recorder.sent]
    assert len(set(ids)) == 4
    assert [e.sequence for e in recorder.sent] == [1, 2, 1, 2]


async def test_a_replay_after_resume_keeps_its_ids_even_on_another_runner(
    fleet: Fleet, recorder: RecordingProducer, store: RecordingSessions
) -> None:
    shard = GatewayShard(fleet, bot("1"))
    await feed(shard, ready("s1"), message(2, "a"), message(3, "b"))
    first = {e.data["content"]: e.event_id for e in recorder.sent[1:]}
    await acknowledged(shard)
    await fleet.checkpoint()
    saved = store.saved[("1", 0)]
    assert saved is not None and saved.seq == 3
    # Another runner loads the session, RESUMEs after 1 and gets 2 and 3 again.
    moved = GatewayShard(fleet, bot("1"), saved.model_copy(update={"seq": 1}))
    resume(moved)
    await feed(moved, message(2, "a"), message(3, "b"), resumed(4))
    replayed = {e.data["content"]: e.event_id for e in recorder.sent[3:5]}
    assert replayed == {"a": first["a"], "b": first["b"]}


async def test_numbering_that_starts_over_after_resume_gets_new_ids(
    fleet: Fleet, recorder: RecordingProducer, store: RecordingSessions
) -> None:
    shard = GatewayShard(fleet, bot("1"))
    await feed(shard, ready("s1"), message(2, "a"), message(3, "b"))
    await acknowledged(shard)
    resume(shard)
    # A server that numbers the resumed session from 1 again instead of continuing after 3.
    await feed(shard, resumed(1), message(2, "c"))
    ids = [e.event_id for e in recorder.sent]
    assert len(set(ids)) == len(ids) == 5
    await acknowledged(shard)
    await fleet.checkpoint()
    saved = store.saved[("1", 0)]
    assert saved is not None and saved.seq == 2 and saved.generation == shard.generation


async def test_dispatches_without_a_sequence_are_forwarded_and_leave_the_checkpoint(
    fleet: Fleet, recorder: RecordingProducer
) -> None:
    shard = GatewayShard(fleet, bot("1"))
    await feed(shard, ready("s1"), message(2, "a"))
    await acknowledged(shard)
    resume(shard)
    await feed(shard, resumed(None), message(None, "unnumbered"), message(None, "unnumbered"))
    ids = [e.event_id for e in recorder.sent]
    assert len(set(ids)) == len(ids) == 5
    assert recorder.sent[-1].sequence == 0
    assert shard.checkpoint.value == 2 and shard.checkpoint.last_received == 2


async def test_a_shard_with_an_unusable_session_leaves_the_others_checkpoints(
    fleet: Fleet, store: RecordingSessions
) -> None:
    good = GatewayShard(fleet, bot("1"))
    bad = GatewayShard(fleet, bot("2"))
    fleet.shards.update({"1": (good,), "2": (bad,)})
    await feed(good, ready("s1"), message(2, "a"))
    await feed(bad, ready(""), message(2, "b"))  # an empty session id cannot be stored
    await acknowledged(good)
    await fleet.checkpoint()
    assert set(store.saved) == {("1", 0)}
    await feed(good, message(3, "c"))
    await acknowledged(good)
    await fleet.disconnect(["1", "2"])
    saved = store.saved[("1", 0)]
    assert set(store.saved) == {("1", 0)} and saved is not None and saved.seq == 3


async def test_two_shards_of_a_bot_numbering_alike_give_their_events_different_ids(
    fleet: Fleet, recorder: RecordingProducer, store: RecordingSessions
) -> None:
    shards = [GatewayShard(fleet, bot("1"), shard_id=n, shard_count=2) for n in range(2)]
    fleet.shards["1"] = tuple(shards)
    for shard in shards:
        await feed(shard, ready("same"), message(2, "a"))
        await acknowledged(shard)
    ids = [e.event_id for e in recorder.sent]
    assert len(set(ids)) == len(ids) == 4
    assert [e.shard_id for e in recorder.sent] == [0, 0, 1, 1]
    await fleet.checkpoint()
    saved = {key: session.shard_count for key, session in store.saved.items() if session is not None}
    assert saved == {("1", 0): 2, ("1", 1): 2}


async def test_a_dead_token_stops_every_shard_of_the_bot_and_forgets_their_sessions(
    recorder: RecordingProducer, store: RecordingSessions
) -> None:
    deaths: list[str] = []

    async def token_dead(credentials: BotCredentials, reason: str) -> None:
        deaths.append(credentials.bot_id)

    fleet = make_fleet(recorder, store, token_dead)
    shards = [GatewayShard(fleet, bot("1"), shard_id=n, shard_count=3) for n in range(3)]
    fleet.shards["1"] = tuple(shards)
    await fleet.token_dead(shards[1], "close_4004")
    assert deaths == ["1"] and "1" not in fleet
    assert store.saved == {("1", 0): None, ("1", 1): None, ("1", 2): None}
    await fleet.close()  # waits for the siblings' stops
    assert [shard.state for shard in (shards[0], shards[2])] == [ShardState.STOPPED] * 2


def test_a_gateway_command_goes_to_its_guilds_shard_or_to_every_shard(fleet: Fleet) -> None:
    shards = tuple(GatewayShard(fleet, bot("1"), shard_id=n, shard_count=3) for n in range(3))
    fleet.shards["1"] = shards
    assert fleet.shards_for("1", str(41 << 22)) == (shards[41 % 3],)  # a voice state
    assert fleet.shards_for("1", None) == shards  # a presence
    assert fleet.shards_for("2", None) == ()  # not connected here
