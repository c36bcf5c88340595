"""The playground's live view of the platform, read from Kafka: counters, decisions with their reasons,
moderation, and the agents' mood and relationships.

Mood and relationships live in the processors' Faust tables; the playground reads them the way a standby
worker would, from the tables' changelog topics (compacted, keyed as `models/table_keys.py` encodes).
`LiveState` is the pure part (records in, views out); `LiveFeed` reads the topics into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pydantic import BaseModel, ValidationError

from demo.playground.views import (
    AgentLive,
    AnswerView,
    CountersView,
    DecisionView,
    ModerationView,
    RelationshipView,
)
from models.actions import Action
from models.decisions import Decision
from models.events import EventEnvelope
from models.inference import InferenceResult
from models.memory import RecalledNote
from models.operations import ModerationAudit
from models.processor_state import GuildDirectory
from models.state import MoodState, Relationship
from models.table_keys import DirectoryKey, MalformedTableKey, MoodKey, RelationshipKey
from processors.table_catalog import PROCESSORS_APP_ID, changelog_topic
from streams.catalog import (
    AGENT_DECISIONS,
    DISCORD_ACTIONS,
    DISCORD_EVENTS,
    GUILD_PARTITIONS,
    INFERENCE_RESULTS,
    MODERATION_AUDIT,
    TopicSpec,
)
from streams.codec import CodecError, decode_key
from streams.sealing import DataKeys, open_payload, opened_or_clear

EVENT_WINDOW_S = 10.0
DECISIONS_KEPT = 200
MODERATION_KEPT = 50
RELATIONSHIPS_SHOWN = 5
# AI replies whose path (model or persona responder) the message list can still label.
ANSWERS_KEPT = 500
# Action kinds that put a message in front of people.
REPLY_KINDS = frozenset({"send_message", "reply", "interaction_response", "warn"})
# The processors' tables the playground reads, and the model of their values.
TABLES: dict[str, type[BaseModel]] = {
    MoodKey.TABLE: MoodState,
    RelationshipKey.TABLE: Relationship,
    DirectoryKey.TABLE: GuildDirectory,
}
TABLE_POLL_S = 2.0


@dataclass
class Names:
    """Display names of users and channels, from the seed, message authors and the guild directory."""

    users: dict[str, str] = field(default_factory=dict)
    channels: dict[str, str] = field(default_factory=dict)

    def user(self, user_id: str | None) -> str:
        """The name, or "" when it is not known (yet)."""
        return self.users.get(user_id or "", "")

    def channel(self, channel_id: str | None) -> str:
        return self.channels.get(channel_id or "", "")


@dataclass
class AgentTally:
    decisions: deque[Decision] = field(default_factory=lambda: deque(maxlen=DECISIONS_KEPT))
    decisions_total: int = 0
    replies: int = 0
    ai_calls: int = 0
    ai_fallbacks: int = 0
    mood: MoodState | None = None
    relationships: dict[str, Relationship] = field(default_factory=dict)
    # The long-term memories the latest AI reply was written with.
    recalled: list[RecalledNote] = field(default_factory=list)


class LiveState:
    """Aggregates the records of the followed deployments (their guilds, their bots)."""

    def __init__(self, bots: dict[UUID, str], guild_ids: set[str], names: Names | None = None) -> None:
        self.tallies = {deployment_id: AgentTally() for deployment_id in bots}
        self.deployment_of_bot = {bot_id: deployment_id for deployment_id, bot_id in bots.items()}
        self.guild_ids = guild_ids
        self.names = names or Names()
        self.event_times: deque[float] = deque()
        self.events = 0
        self.moderation: deque[ModerationAudit] = deque(maxlen=MODERATION_KEPT)
        # (bot id, id of the message answered) -> how the answer was written, oldest first.
        self.answers: dict[tuple[str, str], AnswerView] = {}
        self.unreadable = 0

    # --- records in -----------------------------------------------------------------------------------

    def _follows_event(self, envelope: EventEnvelope) -> bool:
        if envelope.guild_id is not None:
            return envelope.guild_id in self.guild_ids
        return envelope.bot_id in self.deployment_of_bot

    def on_event(self, envelope: EventEnvelope, now: float) -> None:
        if not self._follows_event(envelope):
            return
        self.events += 1
        self.event_times.append(now)
        self._prune(now)
        author = envelope.data.get("author") if envelope.type == "MESSAGE_CREATE" else None
        if isinstance(author, dict) and isinstance(author.get("id"), str):
            member = envelope.data.get("member") or {}
            name = member.get("nick") or author.get("global_name") or author.get("username")
            if isinstance(name, str) and name:
                self.names.users.setdefault(author["id"], name)

    def on_decision(self, decision: Decision) -> None:
        tally = self.tallies.get(decision.deployment_id)
        if tally is not None:
            tally.decisions.append(decision)
            tally.decisions_total += 1

    def _tally_of_action(self, deployment_id: str | None, bot_id: str) -> AgentTally | None:
        if deployment_id is not None:
            with contextlib.suppress(ValueError):
                return self.tallies.get(UUID(deployment_id))
        known = self.deployment_of_bot.get(bot_id)
        return self.tallies.get(known) if known is not None else None

    def on_action(self, action: Action) -> None:
        tally = self._tally_of_action(action.deployment_id, action.bot_id)
        if tally is not None and action.kind in REPLY_KINDS:
            tally.replies += 1

    def on_result(self, result: InferenceResult) -> None:
        tally = self.tallies.get(result.deployment_id)
        if tally is not None:
            tally.ai_calls += 1
            tally.ai_fallbacks += int(result.fallback)
            tally.recalled = list(result.recalled)
        target = result.target
        if tally is not None and target.message_id is not None:
            self.answers[(target.bot_id, target.message_id)] = AnswerView(
                fallback=result.fallback, model=result.model, endpoint=result.endpoint, reason=result.error
            )
            if len(self.answers) > ANSWERS_KEPT:
                del self.answers[next(iter(self.answers))]

    def on_audit(self, audit: ModerationAudit) -> None:
        # An erased member's audit (still sealed) is not shown.
        if audit.deployment_id in self.tallies and audit.user_id is not None:
            self.moderation.append(audit)

    def on_table(self, table: str, key: str, value: BaseModel | None) -> None:
        """A changelog record: `key` is the table key, `value` None for a deleted key. Raises
        MalformedTableKey for a key that is not its table's shape."""
        if table == DirectoryKey.TABLE:
            if isinstance(value, GuildDirectory) and value.guild_id in self.guild_ids:
                self.names.channels.update(value.channel_names)
        elif table == MoodKey.TABLE:
            tally = self.tallies.get(MoodKey.parse(key).deployment_id)
            if tally is not None:
                tally.mood = value if isinstance(value, MoodState) else None
        elif table == RelationshipKey.TABLE:
            relationship_key = RelationshipKey.parse(key)
            tally = self.tallies.get(relationship_key.deployment_id)
            if tally is None:
                return
            if isinstance(value, Relationship):
                tally.relationships[relationship_key.user_id] = value
                if value.display_name:
                    self.names.users.setdefault(value.user_id, value.display_name)
            else:
                tally.relationships.pop(relationship_key.user_id, None)

    def _prune(self, now: float) -> None:
        while self.event_times and self.event_times[0] < now - EVENT_WINDOW_S:
            self.event_times.popleft()

    # --- views out ------------------------------------------------------------------------------------

    def counters(self, now: float) -> CountersView:
        self._prune(now)
        tallies = self.tallies.values()
        return CountersView(
            events_per_s=round(len(self.event_times) / EVENT_WINDOW_S, 2),
            events=self.events,
            decisions=sum(t.decisions_total for t in tallies),
            replies=sum(t.replies for t in tallies),
            ai_calls=sum(t.ai_calls for t in tallies),
            ai_fallbacks=sum(t.ai_fallbacks for t in tallies),
        )

    def _relationship(self, relationship: Relationship) -> RelationshipView:
        return RelationshipView(
            user_id=relationship.user_id,
            name=relationship.display_name or self.names.user(relationship.user_id) or relationship.user_id,
            affinity=relationship.affinity,
            interactions=relationship.interaction_count,
        )

    def agent(
        self, deployment_id: UUID, you_id: str | None = None, presence: str = "unknown", status_text: str = ""
    ) -> AgentLive:
        tally = self.tallies[deployment_id]
        yours = tally.relationships.get(you_id) if you_id is not None else None
        closest = sorted(tally.relationships.values(), key=lambda r: (-r.interaction_count, -r.affinity))
        return AgentLive(
            deployment_id=deployment_id,
            presence=presence,
            status_text=status_text,
            mood=tally.mood,
            affinity=self._relationship(yours) if yours is not None else None,
            relationships=[self._relationship(r) for r in closest[:RELATIONSHIPS_SHOWN]],
            decisions=tally.decisions_total,
            replies=tally.replies,
            ai_calls=tally.ai_calls,
            ai_fallbacks=tally.ai_fallbacks,
            recalled=tally.recalled,
        )

    def decisions(self, limit: int, deployment_id: UUID | None = None) -> list[DecisionView]:
        """The latest decisions, newest first: of one deployment, or of all."""
        chosen = [deployment_id] if deployment_id is not None else list(self.tallies)
        merged = [d for key in chosen for d in self.tallies[key].decisions]
        merged.sort(key=lambda d: d.decided_at, reverse=True)
        return [
            DecisionView(
                at=d.decided_at,
                deployment_id=d.deployment_id,
                respond=d.respond,
                reason=d.reason,
                priority=d.priority,
                channel_id=d.channel_id,
                channel_name=self.names.channel(d.channel_id),
                author_id=d.author_id,
                author_name=self.names.user(d.author_id),
                message_id=d.message_id,
            )
            for d in merged[:limit]
        ]

    def moderation_view(self) -> list[ModerationView]:
        return [
            ModerationView(
                at=a.at,
                deployment_id=a.deployment_id,
                user_id=a.user_id,
                user_name=self.names.user(a.user_id),
                source=a.source,
                rule=a.rule,
                actions=a.actions,
                reason=a.reason,
                channel_id=a.channel_id,
            )
            for a in reversed(self.moderation)
        ]


class LiveFeed:
    """Reads the platform's topics into a LiveState: the newest `recent` decisions and moderation records of
    each partition, then everything new; the tables' changelogs from their beginning, once they exist."""

    def __init__(
        self, state: LiveState, bootstrap: str, namespace: str, keys: DataKeys, *, recent: int = 50
    ) -> None:
        self.state = state
        self.keys = keys
        self.bootstrap = bootstrap
        self.namespace = namespace
        self.recent = recent
        self._consumers: list[AIOKafkaConsumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        followed: list[tuple[TopicSpec, Callable[[Any], None]]] = [
            (DISCORD_EVENTS, lambda envelope: state.on_event(envelope, time.monotonic())),
            (AGENT_DECISIONS, state.on_decision),
            (DISCORD_ACTIONS, state.on_action),
            (INFERENCE_RESULTS, state.on_result),
            (MODERATION_AUDIT, state.on_audit),
        ]
        self._topics = {spec.name_in(namespace): (spec, handle) for spec, handle in followed}
        self._from_recent = {AGENT_DECISIONS.name_in(namespace), MODERATION_AUDIT.name_in(namespace)}
        self._tables = {changelog_topic(f"{namespace}{PROCESSORS_APP_ID}", table): table for table in TABLES}

    async def start(self) -> None:
        consumer = await self._consumer()
        tps = await self._partitions(
            consumer, {name: spec.partitions for name, (spec, _) in self._topics.items()}
        )
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        for tp in tps:
            back = self.recent if tp.topic in self._from_recent else 0
            consumer.seek(tp, max(begins[tp], ends[tp] - back))
        self._tasks.append(asyncio.create_task(self._read(consumer, self._handle), name="live-feed"))
        self._tasks.append(asyncio.create_task(self._read_tables(), name="live-tables"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for consumer in self._consumers:
            await consumer.stop()

    async def _consumer(self) -> AIOKafkaConsumer:
        # No group: the playground reads, it never takes partitions from the platform's consumers.
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, group_id=None)
        await consumer.start()
        self._consumers.append(consumer)
        return consumer

    @staticmethod
    async def _partitions(consumer: AIOKafkaConsumer, topics: dict[str, int]) -> list[TopicPartition]:
        """Every partition of `topics` (name -> partition count); LookupError names a topic not there yet."""
        existing = await consumer.topics()
        for topic in topics:
            if topic not in existing:
                raise LookupError(f"topic {topic} does not exist: run `deep topics apply` for this namespace")
        return [TopicPartition(topic, p) for topic, count in topics.items() for p in range(count)]

    async def _read_tables(self) -> None:
        """The changelogs appear once the processors have started: wait for them, then read them whole."""
        consumer = await self._consumer()
        # Faust creates them co-partitioned with the guild topics (processors/tables.py).
        changelogs = dict.fromkeys(self._tables, GUILD_PARTITIONS)
        while True:
            try:
                tps = await self._partitions(consumer, changelogs)
            except LookupError:
                await asyncio.sleep(TABLE_POLL_S)
                continue
            break
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        await self._read(consumer, self._handle_table)

    async def _read(
        self,
        consumer: AIOKafkaConsumer,
        handle: Callable[[ConsumerRecord[bytes, bytes]], Awaitable[None]],
    ) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            for records in batches.values():
                for record in records:
                    try:
                        await handle(record)
                    except (CodecError, ValidationError, UnicodeDecodeError, MalformedTableKey):
                        # Malformed records are their producer's to dead-letter; the view skips them.
                        self.state.unreadable += 1

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.value is not None:
            spec, handle = self._topics[record.topic]
            value = spec.codec.decode(record.value)
            # Users' names are in the events' sealed parts, what was recalled for them in the results'; an
            # erased user's records are counted by their clear part.
            if isinstance(value, EventEnvelope):
                handle(await opened_or_clear(value, self.keys))
            else:
                handle(await open_payload(value, spec.sealing, self.keys) or value)

    async def _handle_table(self, record: ConsumerRecord[bytes, bytes]) -> None:
        table = self._tables[record.topic]
        key = decode_key(record.key) or ""
        value = None if record.value is None else TABLES[table].model_validate_json(record.value)
        self.state.on_table(table, key, value)
