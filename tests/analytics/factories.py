"""Builders of the records the analytics tests put on topics and in tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaProducer

from models.actions import Action, Reply
from models.decisions import Decision, DecisionReason, Priority
from models.events import EventEnvelope
from models.inference import InferenceResult, ReplyTarget
from models.operations import ModerationAudit
from models.tiers import InferenceLane, Tier
from models.tokens import TokenHealthEvent, TokenStatus
from streams.catalog import AGENT_DECISIONS, DISCORD_ACTIONS, DISCORD_EVENTS, TopicSpec

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DEPLOYMENT = UUID("00000000-0000-4000-8000-0000000000d1")
AGENT = UUID("00000000-0000-4000-8000-0000000000a1")
OWNER = UUID("00000000-0000-4000-8000-0000000000c1")


def uuid_n(n: int) -> UUID:
    return UUID(int=n)


def event(
    n: int,
    at: datetime,
    *,
    bot_id: str = "900",
    guild_id: str | None = "300",
    kind: str = "MESSAGE_CREATE",
    content: str = "hello there",
    author_id: str = "500",
) -> EventEnvelope:
    data: dict[str, Any]
    if kind == "INTERACTION_CREATE":
        data = {
            "id": str(70_000 + n),
            "application_id": bot_id,
            "type": 2,
            "token": "interaction-token-not-for-analytics",
            "member": {"user": {"id": author_id, "username": "someone"}},
            "data": {"name": "play"},
        }
    else:
        data = {
            "id": str(50_000 + n),
            "channel_id": "200",
            "guild_id": guild_id,
            "author": {"id": author_id, "username": "someone"},
            "content": content,
            "mentions": [],
        }
    return EventEnvelope(
        event_id=f"ev-{n}",
        bot_id=bot_id,
        guild_id=guild_id,
        channel_id="200",
        type=kind,
        sequence=n,
        received_at=at,
        data=data,
    )


def decision(
    source: EventEnvelope,
    *,
    respond: bool,
    reason: DecisionReason,
    at: datetime | None = None,
    deployment_id: UUID = DEPLOYMENT,
    author_id: str = "500",
) -> Decision:
    return Decision(
        event_id=source.event_id,
        deployment_id=deployment_id,
        agent_id=AGENT,
        guild_id=source.guild_id,
        channel_id=source.channel_id,
        message_id=str(source.data.get("id")),
        author_id=author_id,
        respond=respond,
        reason=reason,
        priority=Priority.high if respond else None,
        decided_at=at or source.received_at,
    )


def reply(source: EventEnvelope, *, after_ms: int, content: str = "hi!") -> Reply:
    return Reply(
        action_id=f"act-{source.event_id}",
        bot_id=source.bot_id,
        guild_id=source.guild_id,
        deployment_id=str(DEPLOYMENT),
        cause_event_id=source.event_id,
        channel_id="200",
        message_id=str(source.data["id"]),
        content=content,
        created_at=source.received_at + timedelta(milliseconds=after_ms),
    )


def inference_result(
    n: int,
    at: datetime,
    *,
    tier: Tier,
    model: str,
    cost_usd: float,
    prompt_tokens: int,
    completion_tokens: int,
    latency_ms: float,
    deployment_id: UUID = DEPLOYMENT,
    cached: bool = False,
    fallback: bool = False,
    error: str | None = None,
) -> InferenceResult:
    lane = {Tier.free: InferenceLane.free, Tier.pro: InferenceLane.standard}.get(tier, InferenceLane.premium)
    return InferenceResult(
        request_id=f"req-{n}",
        event_id=f"ev-{n}",
        deployment_id=deployment_id,
        agent_id=AGENT,
        owner_id=OWNER,
        tier=tier,
        lane=lane,
        target=ReplyTarget(bot_id="900", guild_id="300", channel_id="200"),
        text="a private answer",
        model=model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=latency_ms,
        cost_usd=cost_usd,
        cached=cached,
        fallback=fallback,
        error=error,
        completed_at=at,
    )


def audit(
    n: int, at: datetime, *, rule: str, source: str, actions: list[str], guild_id: str, user_id: str
) -> ModerationAudit:
    return ModerationAudit(
        audit_id=f"audit-{n}",
        deployment_id=DEPLOYMENT,
        guild_id=guild_id,
        channel_id="200",
        user_id=user_id,
        moderator_id="501" if source == "command" else None,
        source=source,
        rule=rule,
        actions=actions,
        reason=f"{rule} rule",
        at=at,
    )


def token_health(token: int, at: datetime, status: TokenStatus, reason: str) -> TokenHealthEvent:
    return TokenHealthEvent(
        token_id=uuid_n(token),
        bot_user_id=str(800 + token),
        owner_id=OWNER,
        status=status,
        reason=reason,
        at=at,
    )


def conversation(
    first: int, count: int, start: datetime
) -> tuple[list[EventEnvelope], list[Decision], list[Action]]:
    """A run's timeline: events over two days (guilds and DMs), a decision for every other event and a
    reply to every fourth."""
    events = [
        event(
            n,
            start + timedelta(days=n % 2, milliseconds=n),
            guild_id=None if n % 10 == 9 else str(300 + n % 7),
            bot_id=str(900 + n % 3),
        )
        for n in range(first, first + count)
    ]
    decisions = [
        decision(
            e,
            respond=n % 4 == 0,
            reason=DecisionReason.mentioned if n % 4 == 0 else DecisionReason.no_trigger,
        )
        for n, e in enumerate(events, start=first)
        if n % 2 == 0
    ]
    actions: list[Action] = [reply(e, after_ms=250) for n, e in enumerate(events, start=first) if n % 4 == 0]
    return events, decisions, actions


async def produce(producer: AIOKafkaProducer, namespace: str, spec: TopicSpec, records: list[Any]) -> None:
    for record in records:
        await producer.send(
            spec.name_in(namespace), spec.codec.encode(record), record_key(spec, record).encode()
        )
    await producer.flush()


def record_key(spec: TopicSpec, record: Any) -> str:
    if spec is DISCORD_EVENTS:
        return str(record.key)
    if spec is AGENT_DECISIONS:
        return str(record.guild_id or "dm")
    if spec is DISCORD_ACTIONS:
        return str(record.bot_id)
    return "key"
