"""A recorded history of Mode 1/3/5 agents and the outputs the engine made for it, to replay through later
versions of the processors: a change of their state's layout or batching must not change what they decide.

The history is chatter, mentions, replies to the agents, commands, inference results answering the
agents' requests and the bots' own echoes of those replies, over three guilds (one agent of each mode) and
one guild where all three share a channel. It is fed through the replay machinery (`jobs.rerun.Rerun`)
and every output is recorded, less its wall-clock stamps.

    PYTHONPATH=$PWD .venv/bin/python -m tests.processors.replay_history   # rewrites the fixture
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import itertools
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from aiokafka import ConsumerRecord
from pydantic import BaseModel

from jobs.rerun import DEPLOYMENTS, EVENTS, RESULTS, SOURCES, Rerun
from models.agent import AgentMode
from models.deployments import DeployedAgent, RoutingRecord
from models.events import EventEnvelope
from models.inference import InferenceRequest, InferenceResult
from models.templates import mode_template
from processors.engine import Outputs
from streams.codec import encode_key
from tests.data_keys import MemoryDataKeys
from tests.processors.factories import FIXTURES, T0, deployed, envelope, message_data, result_of, user

HISTORY = FIXTURES / "processors_replay.jsonl.gz"
MESSAGES = 600
# Wall-clock stamps (when an output was made), no part of what was decided.
STAMPS = frozenset({"decided_at", "created_at"})
# Fields added since the history was recorded, which it cannot hold: the sealed parts of a record (sealed
# when the record leaves the processors, so a replay's outputs carry none) and whom an action is about.
ADDED_SINCE = frozenset({"sealed", "sealed_references", "about_user_id"})
# Recorded as a digest, to keep the fixture small: a prompt holds the channel's whole context. Its turns'
# authors were added since.
DIGESTED = frozenset({"messages"})
MODES = (AgentMode.bare, AgentMode.enhanced, AgentMode.human_like)
PEOPLE = [user(str(4_600_000_000_000_000_000 + n), f"person{n}") for n in range(6)]
CHATTER = (
    "anyone up for a game night this weekend?",
    "i love rainy days and hot tea",
    "that movie was terrible honestly",
    "what do you all think about the new map?",
    "haha yes, exactly",
    "!queue",
    "!play lofi beats",
)

# (source, partition key, the record's model)
Input = tuple[int, str, BaseModel]


class Place:
    """One guild channel and the agents deployed there."""

    def __init__(self, index: int, modes: tuple[AgentMode, ...]) -> None:
        base = 4_700_000_000_000_000_000 + index * 1000
        self.guild_id, self.channel_id = str(base), str(base + 1)
        self.bots = [user(str(base + 10 + n), f"agent{index}{n}", bot=True) for n in range(len(modes))]
        self.agents: list[DeployedAgent] = []
        for n, (mode, bot) in enumerate(zip(modes, self.bots, strict=True)):
            agent = deployed(mode_template(mode), guild_id=self.guild_id, bot_id=bot["id"])
            ids: dict[str, Any] = {
                name: UUID(int=base + 100 * n + k)
                for k, name in enumerate(("deployment_id", "agent_id", "token_id"))
            }
            ids["deployed_at"] = T0 - timedelta(days=1)
            self.agents.append(
                agent.model_copy(update={"deployment": agent.deployment.model_copy(update=ids)})
            )

    def routing(self) -> RoutingRecord:
        return RoutingRecord(
            key=self.guild_id, deployments=self.agents, version=1, updated_at=T0 - timedelta(days=1)
        )

    def message(
        self, message_id: int, at: datetime, author: dict[str, Any], content: str, **data: Any
    ) -> EventEnvelope:
        """A message as the guild's first bot's gateway forwards it."""
        payload = message_data(
            guild_id=self.guild_id,
            channel_id=self.channel_id,
            author=author,
            content=content,
            at=at,
            message_id=str(message_id),
            **data,
        )
        return envelope(
            "MESSAGE_CREATE",
            payload,
            bot_id=self.bots[0]["id"],
            guild_id=self.guild_id,
            channel_id=self.channel_id,
            sequence=message_id % 1_000_000,
            at=at,
        ).model_copy(update={"event_id": f"replay-{message_id}"})


def consumer_record(source: int, offset: int, key: str, value: BaseModel) -> ConsumerRecord[bytes, bytes]:
    encoded = SOURCES[source].codec.encode(value)
    return ConsumerRecord(
        topic=SOURCES[source].name,
        partition=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=encode_key(key),
        value=encoded,
        checksum=None,
        serialized_key_size=len(key),
        serialized_value_size=len(encoded),
        headers=(),
    )


def comparable(outputs: Outputs) -> dict[str, list[dict[str, Any]]]:
    """Every output as JSON, less its wall-clock stamps, its bulky fields as digests."""

    def fields(item: BaseModel) -> dict[str, Any]:
        dumped = item.model_dump(mode="json")
        if isinstance(item, InferenceRequest):
            dumped["messages"] = [m.model_dump(mode="json", exclude={"author_id"}) for m in item.messages]
        return {
            name: hashlib.sha256(orjson.dumps(value)).hexdigest() if name in DIGESTED else value
            for name, value in dumped.items()
            if name not in STAMPS and name not in ADDED_SINCE
        }

    return {kind: [fields(item) for item in items] for kind, items in vars(outputs).items() if items}


class Replay:
    """Records fed one by one through the replay machinery, with the outputs each made. The history's events
    carry no sealed parts (recorded before personal fields were sealed): no key is ever looked up."""

    def __init__(self, runner: asyncio.Runner) -> None:
        self.rerun = Rerun(MemoryDataKeys())
        self.runner = runner
        self.offsets = itertools.count()

    def feed(self, source: int, key: str, value: BaseModel) -> Outputs:
        record = consumer_record(source, next(self.offsets), key, value)
        applied = self.runner.run(self.rerun.apply(source, record))
        return applied[2] if applied is not None else Outputs()


def record_history() -> Iterator[tuple[Input, dict[str, list[dict[str, Any]]]]]:
    """The history's records in order, each with the outputs the engine of this version makes for it.
    Results and echoes answer the requests this run makes, so the history depends on the engine recording
    it: that is why it is recorded once and kept."""
    places = [Place(index, (mode,)) for index, mode in enumerate(MODES)] + [Place(len(MODES), MODES)]
    with asyncio.Runner() as runner:
        yield from _recorded(places, Replay(runner))


def _recorded(places: list[Place], replay: Replay) -> Iterator[tuple[Input, dict[str, list[dict[str, Any]]]]]:
    for place in places:
        yield (
            (DEPLOYMENTS, place.guild_id, place.routing()),
            comparable(replay.feed(DEPLOYMENTS, place.guild_id, place.routing())),
        )
    last_reply: dict[str, dict[str, Any]] = {}
    for n in range(MESSAGES):
        place = places[n % len(places)]
        author = PEOPLE[(n // len(places)) % len(PEOPLE)]
        content = f"{CHATTER[n % len(CHATTER)]} ({n})"
        extra: dict[str, Any] = {}
        if n % 9 == 4:
            bot = place.bots[n % len(place.bots)]
            extra["mentions"] = [bot]
            content = f"<@{bot['id']}> {content}"
        elif n % 11 == 6 and place.guild_id in last_reply:
            extra["referenced"] = last_reply[place.guild_id]
        at = T0 + timedelta(seconds=3 * n)
        event = place.message(4_800_000_000_000_000_000 + n, at, author, content, **extra)
        outputs = replay.feed(EVENTS, place.guild_id, event)
        yield (EVENTS, place.guild_id, event), comparable(outputs)
        for reply, request in enumerate(outputs.requests):
            result = result_of(request, f"that is a fair point, my answer {n}", at + timedelta(seconds=1))
            made = replay.feed(RESULTS, place.guild_id, result)
            yield (RESULTS, place.guild_id, result), comparable(made)
            bot = next(b for b in place.bots if b["id"] == request.target.bot_id)
            echo_id = 4_900_000_000_000_000_000 + 10 * n + reply
            echo = place.message(echo_id, at + timedelta(seconds=2), bot, result.text)
            last_reply[place.guild_id] = echo.data
            yield (EVENTS, place.guild_id, echo), comparable(replay.feed(EVENTS, place.guild_id, echo))


def read_history() -> list[tuple[Input, dict[str, list[dict[str, Any]]]]]:
    models: dict[int, type[BaseModel]] = {
        DEPLOYMENTS: RoutingRecord,
        EVENTS: EventEnvelope,
        RESULTS: InferenceResult,
    }
    history = []
    for line in gzip.decompress(HISTORY.read_bytes()).splitlines():
        entry = orjson.loads(line)
        source = entry["source"]
        record = models[source].model_validate(entry["record"])
        history.append(((source, entry["key"], record), entry["outputs"]))
    return history


def write_history() -> None:
    lines = [
        orjson.dumps(
            {"source": source, "key": key, "record": record.model_dump(mode="json"), "outputs": outputs}
        )
        for (source, key, record), outputs in record_history()
    ]
    # No timestamp in the gzip header: the same history gives the same file.
    HISTORY.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))


if __name__ == "__main__":
    write_history()
