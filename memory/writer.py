"""The memory writer: a consumer group of its own on `discord.events` and `agent.deployments` that turns
what each AI deployment could see (its own replies included: the gateway delivers the bot's messages
too) into memories, in batches, off the processors' hot path.

A partition's records of one fetch are one piece of work, done once their memories are in Weaviate. The
memories' ids come from the events' ids, so a batch written again after a crash or a rebalance overwrites
itself: a writer killed mid-batch loses nothing and duplicates nothing.

Deployments arrive on the compacted `agent.deployments`; the writer reads it from the start on every
assignment, creates the tenant of each deployment with memory, and deletes the tenants of deployments
that disappear from a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer, TopicPartition
from pydantic import ValidationError
from redis.exceptions import RedisError
from redis.typing import EncodableT
from weaviate.exceptions import WeaviateBaseError

from memory.embedding import Embedder
from memory.model import MemoryModel
from memory.preferences import StatedPreference, stated_preferences
from memory.scoring import extractive_reflection, heuristic_importance, should_reflect
from memory.store import MemoryStore
from models.deployments import DeployedAgent, DeploymentStatus, RoutingRecord
from models.discord import DiscordMessage
from models.events import EventEnvelope
from models.memory import MemoryKind, MemoryRecord, Reflection, StoredMemory
from settings import IMMEDIATE_FETCH, FetchBatching
from streams.catalog import AGENT_DEPLOYMENTS, DISCORD_EVENTS, TopicSpec
from streams.codec import CodecError
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService, Records
from streams.sealing import DataKeys, SealBroken, open_envelope

log = logging.getLogger(__name__)

# How many of a scope's latest memories an extractive reflection reads.
REFLECTION_WINDOW = 200
# A preference a user states about themselves is as worth recalling as a reflection.
FACT_IMPORTANCE = 8
# Memories embedded and inserted together: two of the embedder's batches, so inserting one chunk (Weaviate's
# indexing, in its own process) overlaps embedding the next, and each gRPC batch stays a few hundred KB.
WRITE_CHUNK = 128
# How often the memories older than the retention are deleted (settings.Retention.memories_days).
SWEEP_INTERVAL_S = 3600.0
# A sweep reads every memory of the collection, which the writers of every namespace share: a claim per
# interval in Redis lets one writer sweep and the others skip it, and so does a writer restarted within the
# interval (otherwise each start read every memory while the other services were starting too).
SWEEP_CLAIM_PREFIX = "deep:memory-sweep:"


def remembers(deployed: DeployedAgent) -> bool:
    agent = deployed.agent
    return agent.ai_enabled and agent.memory.enabled and deployed.deployment.status is DeploymentStatus.active


def sees(
    deployed: DeployedAgent,
    envelope: EventEnvelope,
    message: DiscordMessage,
    channel_names: Mapping[str, str],
) -> bool:
    """Whether the deployment could see the message: its bot received it, in a channel it keeps to (or a
    DM, where it takes DMs), by the rule the processors apply."""
    if deployed.deployment.bot_id != envelope.bot_id:
        return False
    if envelope.guild_id is None:
        return deployed.accepts_dms
    return deployed.channel_allowed(message.channel_id, channel_names.get(message.channel_id))


def channel_name_changes(envelope: EventEnvelope) -> dict[str, str | None]:
    """The channel names an event states (GUILD_CREATE, CHANNEL_CREATE/UPDATE), None for a deleted channel:
    an agent's channel list may name its channels."""
    data = envelope.data
    if envelope.type == "CHANNEL_DELETE":
        return {str(data["id"]): None} if data.get("id") else {}
    if envelope.type == "GUILD_CREATE":
        channels = data.get("channels") or []
    elif envelope.type in ("CHANNEL_CREATE", "CHANNEL_UPDATE"):
        channels = [data]
    else:
        return {}
    return {
        str(channel["id"]): channel["name"]
        for channel in channels
        if isinstance(channel, dict) and channel.get("id") and isinstance(channel.get("name"), str)
    }


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class ChannelNames:
    """The channel names the writer has learned, kept in Redis as well: a restarted writer knows them
    before its bots' next GUILD_CREATE (which a RESUMEd session never sends)."""

    def __init__(self, redis: aioredis.Redis | None, namespace: str) -> None:
        self.redis = redis
        self.key = f"{namespace}memory:channel-names"
        self.names: dict[str, str] = {}

    async def load(self) -> None:
        if self.redis is not None:
            stored = await self.redis.hgetall(self.key)
            self.names.update({_text(k): _text(v) for k, v in stored.items()})

    async def apply(self, changes: Mapping[str, str | None]) -> None:
        named = {channel: name for channel, name in changes.items() if name is not None}
        gone = [channel for channel, name in changes.items() if name is None]
        if not any(self.names.get(channel) != name for channel, name in changes.items()):
            return
        self.names.update(named)
        for channel in gone:
            self.names.pop(channel, None)
        if self.redis is not None:
            if named:
                mapping: dict[EncodableT, EncodableT] = {channel: name for channel, name in named.items()}
                await self.redis.hset(self.key, mapping=mapping)
            if gone:
                await self.redis.hdel(self.key, *gone)


def event_time(envelope: EventEnvelope, message: DiscordMessage) -> datetime:
    """Discord's timestamp of the message when it has a valid one, else when the gateway received it."""
    try:
        parsed = datetime.fromisoformat(message.timestamp)
    except ValueError:
        return envelope.received_at
    return parsed if parsed.tzinfo is not None else envelope.received_at


def memories_of_message(
    envelope: EventEnvelope, routing: RoutingRecord | None, channel_names: Mapping[str, str]
) -> list[MemoryRecord]:
    """One observation per deployment with memory that could see this MESSAGE_CREATE, and a fact about the
    author for each preference stated in it (where the deployment remembers preferences); none for other
    events, empty messages, or data that is not a message."""
    if envelope.type != "MESSAGE_CREATE" or routing is None:
        return []
    try:
        message = DiscordMessage.model_validate(envelope.data)
    except ValidationError:
        return []
    text = message.content.strip()[:4000]
    if not text:
        return []
    author = message.author
    replied_to = message.referenced_message.author.id if message.referenced_message else None
    people = [author.id, *(user.id for user in message.mentions), *([replied_to] if replied_to else [])]
    to_bot = (
        envelope.guild_id is None
        or replied_to == envelope.bot_id
        or any(user.id == envelope.bot_id for user in message.mentions)
    )
    name = (message.member.nick if message.member else None) or author.display_name
    # What a person says of themselves; a bot's lines (the agent's own included) are not facts about a user.
    preferences = [] if author.bot else stated_preferences(text)
    memories: list[MemoryRecord] = []
    for deployed in routing.deployments:
        if not (remembers(deployed) and sees(deployed, envelope, message, channel_names)):
            continue
        observation = MemoryRecord(
            deployment_id=deployed.deployment.deployment_id,
            guild_id=envelope.guild_id,
            channel_id=message.channel_id,
            author_id=author.id,
            author_name=name[:100],
            people=list(dict.fromkeys(people))[:100],
            text=text,
            at=event_time(envelope, message),
            kind=MemoryKind.observation,
            importance=heuristic_importance(text, addressed_to_agent=to_bot and author.id != envelope.bot_id),
            source_event_id=envelope.event_id,
        )
        memories.append(observation)
        relationships = deployed.agent.behavior.relationships
        if relationships.track_interactions and relationships.remember_preferences:
            memories += user_facts(observation, preferences)
    return memories


def user_facts(observation: MemoryRecord, preferences: Sequence[StatedPreference]) -> list[MemoryRecord]:
    """The preferences stated in an observation as facts about its author, seen where it was said. A fact's
    id comes from its scope, author and content, so stating a like again renews one memory."""
    scope = observation.guild_id or f"dm{observation.channel_id}"
    name = observation.author_name or f"user {observation.author_id}"
    facts = []
    for preference in preferences:
        content = f"{preference.key}\n{preference.value.lower()}".encode()
        source = f"fact:{scope}:{observation.author_id}:{hashlib.sha256(content).hexdigest()[:32]}"
        fact = {
            "text": preference.about(name),
            "kind": MemoryKind.user_fact,
            "people": [observation.author_id],
            "importance": FACT_IMPORTANCE,
            "source_event_id": source,
        }
        facts.append(MemoryRecord.model_validate({**observation.model_dump(), **fact}))
    return facts


def reflection_records(
    scope_memories: Sequence[StoredMemory], reflections: Sequence[Reflection], *, bot_id: str
) -> list[MemoryRecord]:
    """Reflections over one scope's memories, as memories of their own (same deployment, guild and
    channel as the latest memory, so they are recalled exactly where their sources are)."""
    if not scope_memories:
        return []
    latest = scope_memories[-1].record
    cited = {m.id: m.record for m in scope_memories}
    # The same memories always give the same reflection ids, so a replayed batch reflects once; other
    # memories give other ids, even with the same latest one (a memory that arrived late, say), so a
    # reflection never overwrites another.
    considered = hashlib.sha256(b"".join(sorted(m.id.bytes for m in scope_memories))).hexdigest()[:32]
    return [
        MemoryRecord(
            deployment_id=latest.deployment_id,
            guild_id=latest.guild_id,
            channel_id=latest.channel_id,
            author_id=bot_id,
            people=list(dict.fromkeys(cited[c].author_id for c in reflection.cites))[:100],
            text=reflection.text,
            at=latest.at,
            kind=MemoryKind.reflection,
            importance=8,
            source_event_id=f"reflection:{considered}:{index}",
            cites=reflection.cites,
        )
        for index, reflection in enumerate(reflections)
    ]


def tenant_changes(before: RoutingRecord | None, after: RoutingRecord) -> tuple[set[UUID], set[UUID]]:
    """(deployments whose tenant to create, deployments whose tenant to delete) for one key's update."""
    old = {d.deployment.deployment_id for d in before.deployments if remembers(d)} if before else set()
    new = {d.deployment.deployment_id for d in after.deployments if remembers(d)}
    # Memory switched off or a paused deployment keeps its memories; an undeployed one loses them.
    still_deployed = {d.deployment.deployment_id for d in after.deployments}
    return new, old - still_deployed


Scope = tuple[UUID, str | None, str]


def retention_cutoff(now: datetime, retention_days: int) -> datetime | None:
    """Memories said before this are deleted; None when memories are kept (retention 0)."""
    return now - timedelta(days=retention_days) if retention_days else None


def scope_of(record: MemoryRecord) -> Scope:
    """Where a memory may be recalled: a guild, or one DM channel."""
    return (record.deployment_id, record.guild_id, record.channel_id if record.guild_id is None else "")


@dataclass
class ReflectionLedger:
    """Summed importance of new memories per scope since its last reflection (per process: a restart
    starts counting again, which only delays the next reflection)."""

    threshold_of: dict[UUID, int] = field(default_factory=dict)
    importance: dict[Scope, int] = field(default_factory=dict)

    def add(self, records: Sequence[MemoryRecord]) -> list[Scope]:
        """Count the records; the scopes due to reflect now."""
        due = []
        for record in records:
            if record.kind is MemoryKind.reflection or record.deployment_id not in self.threshold_of:
                continue
            scope = scope_of(record)
            self.importance[scope] = self.importance.get(scope, 0) + record.importance
            if should_reflect(self.importance[scope], self.threshold_of[record.deployment_id]):
                self.importance[scope] = 0
                due.append(scope)
        return due


async def embed_and_write(store: MemoryStore, embedder: Embedder, records: Sequence[MemoryRecord]) -> None:
    """Embed and upsert the records, chunk by chunk: one chunk's insert runs while the next is embedded.

    Chunks are cut from the records sorted by length, so each embedding batch carries little padding.
    Returns once every chunk is in Weaviate; the first failure is raised (and nothing is left running).
    """
    by_length = sorted(records, key=lambda record: len(record.text))
    inserting: asyncio.Task[None] | None = None
    try:
        for start in range(0, len(by_length), WRITE_CHUNK):
            chunk = by_length[start : start + WRITE_CHUNK]
            # Embedding is CPU work: off the event loop, so the insert in flight keeps moving.
            vectors = await asyncio.to_thread(embedder.embed, [record.text for record in chunk])
            if inserting is not None:
                await inserting
            inserting = asyncio.create_task(store.write(chunk, vectors.tolist()))
        if inserting is not None:
            await inserting
    finally:
        if inserting is not None:
            inserting.cancel()  # a no-op once it is done
            await asyncio.gather(inserting, return_exceptions=True)


async def claim_sweep(redis: aioredis.Redis | None, collection: str) -> bool:
    """Whether this writer sweeps `collection` now: no writer did within SWEEP_INTERVAL_S. Without Redis
    (or when it fails) it sweeps: the retention is kept, at the cost of a sweep more."""
    if redis is None:
        return True
    try:
        claimed = await redis.set(f"{SWEEP_CLAIM_PREFIX}{collection}", 1, nx=True, ex=int(SWEEP_INTERVAL_S))
    except RedisError as exc:
        log.warning("retention: the sweep's claim failed, sweeping: %s", exc)
        return True
    return bool(claimed)


class MemoryWriter(ConsumerService):
    def __init__(
        self,
        store: MemoryStore,
        embedder: Embedder,
        *,
        bootstrap: str,
        namespace: str,
        producer: AIOKafkaProducer,
        keys: DataKeys,
        group_id: str | None = None,
        model: MemoryModel | None = None,
        instance_id: str | None = None,
        redis: aioredis.Redis | None = None,
        retention_days: int = 0,
        fetch: FetchBatching = IMMEDIATE_FETCH,
    ) -> None:
        self.store = store
        self.keys = keys
        self.retention_days = retention_days
        self.embedder = embedder
        # Rates importance and reflects for the deployments whose memory names a model.
        self.model = model
        self.model_of: dict[UUID, str] = {}
        self.routing: dict[str, RoutingRecord] = {}
        self.bots: dict[UUID, str] = {}
        self.redis = redis
        self.channel_names = ChannelNames(redis, namespace)
        self.ledger = ReflectionLedger()
        self.deployments_topic = AGENT_DEPLOYMENTS.name_in(namespace)
        self.written = 0
        group = group_id or f"{namespace}deep.memory.writer"
        self.consumer = AtLeastOnceConsumer(
            self,
            [DISCORD_EVENTS, AGENT_DEPLOYMENTS],
            namespace=namespace,
            bootstrap=bootstrap,
            producer=producer,
            options=ConsumerOptions(
                group_id=group,
                client_id=group,
                consumer_name="memory.writer",
                unit="fetch",
                instance_id=instance_id,
                broker_fetch=fetch,
            ),
        )

    async def run(self) -> None:
        await self.store.ensure_collection()
        await self.channel_names.load()
        await self.consumer.start()
        sweeping = asyncio.create_task(self._sweep_periodically())
        try:
            await self.consumer.run()
        finally:
            sweeping.cancel()
            await asyncio.gather(sweeping, return_exceptions=True)
            await self.consumer.close()

    async def sweep(self, now: datetime) -> int:
        """Delete every deployment's memories older than the retention; returns how many went. Deleting
        what is already gone is a no-op, so a sweep that a failure cut short is simply made again."""
        before = retention_cutoff(now, self.retention_days)
        if before is None:
            return 0
        deleted = 0
        for deployment_id in await self.store.tenants():
            deleted += await self.store.delete_older_than(deployment_id, before)
        if deleted:
            log.info("retention: deleted %d memories said before %s", deleted, before.isoformat())
        return deleted

    async def _sweep_periodically(self) -> None:
        while True:
            try:
                if await claim_sweep(self.redis, self.store.name):
                    await self.sweep(datetime.now(UTC))
            except WeaviateBaseError as exc:
                # Memory keeps being written while Weaviate refuses a sweep; the next one catches up.
                log.warning("retention: the memory sweep failed: %s", exc)
            await asyncio.sleep(SWEEP_INTERVAL_S)

    def stop(self) -> None:
        self.consumer.stop()

    async def on_assigned(self, partitions: set[TopicPartition]) -> None:
        # The compacted deployments topic is small: re-read from the start, so routing is complete.
        for tp in partitions:
            if tp.topic == self.deployments_topic:
                self.consumer.seek(tp, 0)

    async def apply(self, fetched: Mapping[TopicPartition, Records]) -> None:
        deployments = {tp: records for tp, records in fetched.items() if tp.topic == self.deployments_topic}
        events = {tp: records for tp, records in fetched.items() if tp.topic != self.deployments_topic}
        for records in deployments.values():
            await self._route(records)
        records = [record for batch in events.values() for record in await self._memories(batch)]
        if records and self.model is not None and self.model_of:
            records = await self.model.rated(records, self.model_of)
        if records:
            await self._write(records)
            for scope in self.ledger.add(records):
                await self._reflect(scope)
        for tp, batch in fetched.items():
            self.consumer.done_below(tp, batch[-1].offset + 1)

    async def _decoded(self, spec: TopicSpec, records: Records) -> list[tuple[Any, Any]]:
        """The records with their payloads; one the codec rejects goes to the dead-letter topic."""
        decoded = []
        for record in records:
            try:
                decoded.append((record, spec.codec.decode(record.value)))
            except CodecError as exc:
                await self.consumer.dead_letter(record, str(exc))
        return decoded

    async def _route(self, records: Records) -> None:
        routing: RoutingRecord
        for _, routing in await self._decoded(AGENT_DEPLOYMENTS, records):
            before = self.routing.get(routing.key)
            if before is not None and routing.version < before.version:
                continue
            added, removed = tenant_changes(before, routing)
            for deployment_id in added:
                await self.store.add_tenant(deployment_id)
            for deployment_id in removed:
                await self.store.delete_tenant(deployment_id)
                self.ledger.threshold_of.pop(deployment_id, None)
                self.model_of.pop(deployment_id, None)
            for deployed in routing.deployments:
                deployment = deployed.deployment
                self.bots[deployment.deployment_id] = deployment.bot_id
                if remembers(deployed):
                    threshold = deployed.agent.memory.reflection_threshold
                    self.ledger.threshold_of[deployment.deployment_id] = threshold
                model = deployed.agent.memory.model
                if model is not None and remembers(deployed):
                    self.model_of[deployment.deployment_id] = model
                else:
                    self.model_of.pop(deployment.deployment_id, None)
            self.routing[routing.key] = routing

    async def _memories(self, records: Records) -> list[MemoryRecord]:
        memories = []
        envelope: EventEnvelope
        for record, envelope in await self._decoded(DISCORD_EVENTS, records):
            await self.channel_names.apply(channel_name_changes(envelope))
            routing = self.routing.get(envelope.key)
            if routing is None:
                continue  # no deployment under the key: nothing to remember, nothing to open
            try:
                opened = await open_envelope(envelope, self.keys)
            except SealBroken as exc:
                await self.consumer.dead_letter(record, str(exc))
                continue
            if opened is not None:  # None: its author was erased
                memories += memories_of_message(opened, routing, self.channel_names.names)
        return memories

    async def _write(self, records: Sequence[MemoryRecord]) -> None:
        await embed_and_write(self.store, self.embedder, records)
        self.written += len(records)

    async def _reflect(self, scope: Scope) -> None:
        deployment_id, guild_id, channel_id = scope
        recent = await self.store.recent(deployment_id, guild_id, channel_id, REFLECTION_WINDOW)
        model = self.model_of.get(deployment_id)
        reflected = []
        if self.model is not None and model is not None:
            reflected = await self.model.reflections(recent, model)
        # Without a model, or when its answer held no usable reflection: the extractive one.
        reflections = reflection_records(
            recent, reflected or extractive_reflection(recent), bot_id=self.bots[deployment_id]
        )
        if reflections:
            log.info("deployment %s reflected: %d reflections", deployment_id, len(reflections))
            await self._write(reflections)
