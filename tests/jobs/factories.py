"""A small recorded run for the jobs tests: deployments, message events and the decisions the real engine
makes for them, with the Kafka timestamps the jobs select time windows by."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer, ConsumerRecord

from jobs.rerun import memory_tables
from jobs.timeline import to_ms
from models.agent import AgentConfig, AgentMode, PersonalityTraits
from models.decisions import Decision
from models.deployments import DeployedAgent, Deployment, RoutingRecord
from models.events import EventEnvelope, partition_key
from models.inference import InferenceResult, ReplyTarget
from models.templates import mode_template
from models.tiers import TIERS, Tier
from processors.engine import Engine, Tables
from processors.ids import stable_id
from streams.catalog import AGENT_DECISIONS, AGENT_DEPLOYMENTS, DISCORD_EVENTS
from streams.codec import encode_key
from streams.history import KafkaTools, records_between

GUILD_A, GUILD_B = "4100000000000000001", "4100000000000000002"
BOT_A, BOT_B = "4200000000000000001", "4200000000000000002"
CHANNEL_A, CHANNEL_B, DM_CHANNEL = "4300000000000000001", "4300000000000000002", "4300000000000000003"
PEOPLE = ("4400000000000000001", "4400000000000000002", "4400000000000000003")
DEPLOYMENT_A = UUID("00000000-0000-4000-8000-00000000a001")
DEPLOYMENT_B = UUID("00000000-0000-4000-8000-00000000b001")
OWNER = UUID("00000000-0000-4000-8000-00000000c001")


def companion(random_probability: float = 0.0) -> AgentConfig:
    """A human-like agent whose only chance triggers are mentions, replies and the random one, with neutral
    traits and no affinity system, so each fires with exactly its configured probability."""
    data = mode_template(AgentMode.human_like).model_dump(mode="json")
    data["character"]["personality"] = PersonalityTraits().model_dump()
    data["behavior"]["relationships"]["affinity_system"] = False
    data["behavior"]["response_triggers"] = {
        "mentioned": {"probability": 1.0},
        "replied_to": {"probability": 1.0},
        "keyword_match": {"probability": 0.0},
        "conversation_flow": {"probability": 0.0},
        "random": {"probability": random_probability},
        "bored": {"probability": 0.0},
    }
    return AgentConfig.model_validate(data)


def deployed(agent: AgentConfig, deployment_id: UUID, guild_id: str, bot_id: str) -> DeployedAgent:
    return DeployedAgent(
        deployment=Deployment(
            deployment_id=deployment_id,
            agent_id=UUID(int=deployment_id.int + 1),
            owner_id=OWNER,
            guild_id=guild_id,
            bot_id=bot_id,
            token_id=UUID(int=deployment_id.int + 2),
        ),
        agent=agent,
        owner_tier=Tier.pro,
    )


def message(
    n: int, at: datetime, *, guild_id: str | None, bot_id: str, channel_id: str, **kw: Any
) -> EventEnvelope:
    author = kw.get("author", PEOPLE[n % len(PEOPLE)])
    data: dict[str, Any] = {
        "id": str(4_500_000_000_000_000_000 + n),
        "channel_id": channel_id,
        "author": {"id": author, "username": f"person{author[-1]}", "bot": False},
        "content": kw.get("content", f"just saying something, number {n}"),
        "timestamp": at.isoformat(),
        "mentions": kw.get("mentions", []),
    }
    if guild_id is not None:
        data["guild_id"] = guild_id
        data["member"] = {"roles": []}
    return EventEnvelope(
        event_id=f"ev-{n}-{bot_id[-1]}",
        bot_id=bot_id,
        guild_id=guild_id,
        channel_id=channel_id,
        type="MESSAGE_CREATE",
        sequence=n,
        received_at=at,
        data=data,
    )


@dataclass
class RecordedRun:
    routing: list[RoutingRecord]
    events: list[EventEnvelope]
    # The state the engine was left with: what processing the events incrementally gives.
    tables: Tables
    decisions: list[Decision] = field(default_factory=list)
    # The decisions' partition key, by event id.
    keys: dict[str, str] = field(default_factory=dict)


def record_run(start: datetime, count: int, *, first: int = 0, routing_version: int = 1) -> RecordedRun:
    """`count` messages numbered from `first`, 50 ms apart from `start`, over two guilds and one bot's DMs,
    every seventh mentioning the bot; decided by the engine exactly as the processors decide them."""
    agent = companion()
    a, b = deployed(agent, DEPLOYMENT_A, GUILD_A, BOT_A), deployed(agent, DEPLOYMENT_B, GUILD_B, BOT_B)
    dm_a = a.model_copy(update={"deployment": a.deployment.model_copy(update={"dm_enabled": True})})
    routing = [
        RoutingRecord(key=GUILD_A, deployments=[a], version=routing_version),
        RoutingRecord(key=GUILD_B, deployments=[b], version=routing_version),
        RoutingRecord(key=partition_key(None, BOT_A), deployments=[dm_a], version=routing_version),
    ]
    events = []
    for n in range(first, first + count):
        at = start + timedelta(milliseconds=50 * (n - first))
        if n % 10 == 9:
            content = f"i love {('tea', 'rain', 'maps')[n % 3]}, and this is message {n}"
            events.append(message(n, at, guild_id=None, bot_id=BOT_A, channel_id=DM_CHANNEL, content=content))
            continue
        guild, bot, channel = (GUILD_A, BOT_A, CHANNEL_A) if n % 2 else (GUILD_B, BOT_B, CHANNEL_B)
        mentions = [{"id": bot, "username": "companion", "bot": True}] if n % 7 == 0 else []
        events.append(message(n, at, guild_id=guild, bot_id=bot, channel_id=channel, mentions=mentions))
    run = RecordedRun(routing, events, memory_tables())
    engine = Engine(run.tables)
    for record in routing:
        engine.apply_routing(record)
    for envelope in events:
        for decision in engine.handle_event(envelope).decisions:
            run.decisions.append(decision)
            run.keys[decision.event_id] = envelope.key
    return run


async def produce_run(
    producer: AIOKafkaProducer, namespace: str, run: RecordedRun, routing_at: datetime
) -> None:
    """Routing at `routing_at`, each event at its received time, each decision 5 ms after its event."""
    received = {envelope.event_id: envelope.received_at for envelope in run.events}
    for record in run.routing:
        await producer.send(
            AGENT_DEPLOYMENTS.name_in(namespace),
            AGENT_DEPLOYMENTS.codec.encode(record),
            key=encode_key(record.key),
            timestamp_ms=to_ms(routing_at),
        )
    for envelope in run.events:
        await producer.send(
            DISCORD_EVENTS.name_in(namespace),
            DISCORD_EVENTS.codec.encode(envelope),
            key=encode_key(envelope.key),
            timestamp_ms=to_ms(envelope.received_at),
        )
    for decision in run.decisions:
        await producer.send(
            AGENT_DECISIONS.name_in(namespace),
            AGENT_DECISIONS.codec.encode(decision),
            key=encode_key(run.keys[decision.event_id]),
            timestamp_ms=to_ms(received[decision.event_id] + timedelta(milliseconds=5)),
        )
    await producer.flush()


async def insert_deployment(
    conn: asyncpg.Connection,
    deployment_id: UUID,
    *,
    guild_id: str,
    owner_tier: str = "pro",
    token_status: str = "active",
    token_tier: str = "lite",
    deployment_status: str = "active",
    config_status: str = "active",
) -> None:
    """An owner, an agent configuration, a bot token (a fake ciphertext) and the deployment, in PostgreSQL."""
    owner_id = await conn.fetchval(
        "INSERT INTO owners (name, tier) VALUES ('owner', $1) RETURNING owner_id", owner_tier
    )
    config_id = await conn.fetchval(
        "INSERT INTO agent_configurations (owner_id, agent_name, config, status) "
        "VALUES ($1, 'agent', '{}', $2) RETURNING config_id",
        owner_id,
        config_status,
    )
    token_id = await conn.fetchval(
        "INSERT INTO bot_tokens (owner_id, bot_user_id, key_id, ciphertext, nonce, tier, status, "
        "guilds_count) VALUES ($1, $2, 'k1', $3, 'nonce-bytes', $4, $5, 2) RETURNING token_id",
        owner_id,
        str(deployment_id.int % 10**18),
        SECRET_CIPHERTEXT,
        token_tier,
        token_status,
    )
    await conn.execute(
        "INSERT INTO agent_deployments (deployment_id, config_id, guild_id, token_id, status) "
        "VALUES ($1, $2, $3, $4, $5)",
        deployment_id,
        config_id,
        guild_id,
        token_id,
        deployment_status,
    )


SECRET_CIPHERTEXT = b"ciphertext-that-must-never-be-shown"


async def read_records(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of a topic, partition by partition, in offset order."""
    async with KafkaTools(bootstrap) as kafka:
        tps = await kafka.partitions(topic)
        ends = await kafka.reader.end_offsets(tps)
        kafka.reader.assign(tps)
        return [record for tp in tps async for record in records_between(kafka.reader, tp, 0, ends[tp])]


def answer(decision: Decision, text: str, *, request_id: str | None = None) -> InferenceResult:
    """The inference result answering a DM decision; the request id derives from event and deployment."""
    return InferenceResult(
        request_id=request_id or stable_id(decision.event_id, decision.deployment_id, "inference"),
        event_id=decision.event_id,
        deployment_id=decision.deployment_id,
        agent_id=decision.agent_id,
        owner_id=OWNER,
        tier=Tier.pro,
        lane=TIERS[Tier.pro].lane,
        target=ReplyTarget(bot_id=BOT_A, channel_id=DM_CHANNEL, message_id=decision.message_id),
        text=text,
        model="gpt-4-turbo",
        prompt_tokens=10,
        completion_tokens=5,
        latency_ms=120.0,
        cost_usd=0.0001,
    )
