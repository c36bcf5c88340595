"""What each sink writes: the topic it reads, the ClickHouse table, the Arrow schema and the row of a record.

Rows are pure functions of the record, so a batch read again yields the same Arrow table (which is what
lets ClickHouse recognise a re-sent insert). They keep ids, kinds, sizes and times; never message content,
interaction tokens or anything else a user typed into a message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import pyarrow as pa
from pydantic import ValidationError

from models.actions import Action
from models.analytics import ConsumerLag, MessageShape
from models.decisions import Decision
from models.discord import Interaction
from models.events import EventEnvelope
from models.inference import InferenceResult
from models.operations import ModerationAudit
from models.tokens import TokenHealthEvent
from streams.catalog import (
    AGENT_DECISIONS,
    DISCORD_ACTIONS,
    DISCORD_EVENTS,
    INFERENCE_RESULTS,
    MODERATION_AUDIT,
    TOKENS_HEALTH,
    TopicSpec,
)

T = TypeVar("T")
Row = tuple[Any, ...]

TIME = pa.timestamp("ms", tz="UTC")
TEXT = pa.string()


@dataclass(frozen=True)
class SinkTable(Generic[T]):
    table: str
    schema: pa.Schema
    row: Callable[[T], Row]

    def arrow(self, rows: Sequence[Row]) -> pa.Table:
        columns: Sequence[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [()] * len(self.schema)
        fields = zip(columns, self.schema, strict=True)
        arrays = [pa.array(column, type=field.type) for column, field in fields]
        return pa.Table.from_arrays(arrays, schema=self.schema)


def _schema(**columns: pa.DataType) -> pa.Schema:
    return pa.schema(list(columns.items()))


MESSAGE_TYPES = frozenset({"MESSAGE_CREATE", "MESSAGE_UPDATE"})


@dataclass(frozen=True)
class _MessageFacts:
    message_id: str = ""
    author_id: str = ""
    author_is_bot: bool = False
    content_length: int = 0
    mention_count: int = 0
    is_reply: bool = False


def _message_facts(event: EventEnvelope) -> _MessageFacts:
    """Who wrote the event and how much, from the typed views; never the words themselves."""
    try:
        if event.type in MESSAGE_TYPES:
            message = MessageShape.model_validate(event.data)
            return _MessageFacts(
                message_id=message.id,
                author_id=message.author.id,
                author_is_bot=message.author.bot,
                content_length=len(message.content),
                mention_count=len(message.mentions),
                is_reply=message.message_reference is not None,
            )
        if event.type == "INTERACTION_CREATE":
            invoker = Interaction.model_validate(event.data).invoker
            if invoker is not None:
                return _MessageFacts(author_id=invoker.id, author_is_bot=invoker.bot)
    except ValidationError:
        # A valid envelope around dispatch data of an unexpected shape (a partial MESSAGE_UPDATE): the
        # event still counts, without author facts.
        pass
    return _MessageFacts()


def event_row(event: EventEnvelope) -> Row:
    facts = _message_facts(event)
    return (
        event.event_id,
        event.bot_id,
        event.shard_id,
        event.guild_id or "",
        event.channel_id or "",
        event.type,
        event.sequence,
        event.received_at,
        facts.author_id,
        facts.author_is_bot,
        facts.content_length,
        facts.mention_count,
        facts.is_reply,
        facts.message_id,
    )


def decision_row(decision: Decision) -> Row:
    return (
        decision.event_id,
        str(decision.deployment_id),
        str(decision.agent_id),
        decision.guild_id or "",
        decision.channel_id or "",
        decision.message_id or "",
        decision.author_id or "",
        decision.respond,
        decision.reason_label,
        decision.priority.value if decision.priority is not None else "",
        decision.decided_at,
    )


def inference_row(result: InferenceResult) -> Row:
    return (
        result.request_id,
        result.event_id,
        str(result.deployment_id),
        str(result.agent_id),
        str(result.owner_id),
        result.target.bot_id,
        result.target.guild_id or "",
        result.tier.value,
        result.lane.value,
        result.model,
        result.prompt_tokens,
        result.completion_tokens,
        result.latency_ms,
        result.cost_usd,
        result.cached,
        result.fallback,
        result.error is not None,
        result.completed_at,
    )


def action_row(action: Action) -> Row:
    channel_id: str | None = getattr(action, "channel_id", None)
    content: str = getattr(action, "content", "")
    return (
        action.action_id,
        action.kind,
        action.bot_id,
        action.guild_id or "",
        channel_id or "",
        action.deployment_id or "",
        action.cause_event_id or "",
        len(content),
        action.created_at,
    )


def audit_row(audit: ModerationAudit) -> Row:
    return (
        audit.audit_id,
        str(audit.deployment_id),
        audit.guild_id,
        audit.channel_id or "",
        audit.user_id or "",  # empty: an erased member's audit, counted by its clear part
        audit.moderator_id or "",
        audit.source,
        audit.rule,
        audit.actions,
        audit.reason,
        audit.message_id or "",
        audit.at,
    )


def token_health_row(event: TokenHealthEvent) -> Row:
    return (
        str(event.token_id),
        event.bot_user_id,
        str(event.owner_id) if event.owner_id is not None else None,
        event.status.value,
        event.reason,
        event.detail,
        event.at,
    )


def lag_row(sample: ConsumerLag) -> Row:
    return (
        sample.sampled_at,
        sample.group,
        sample.topic,
        sample.partition,
        sample.committed_offset,
        sample.end_offset,
        sample.lag,
    )


EVENTS: SinkTable[EventEnvelope] = SinkTable(
    "events",
    _schema(
        event_id=TEXT,
        bot_id=TEXT,
        shard_id=pa.uint32(),
        guild_id=TEXT,
        channel_id=TEXT,
        type=TEXT,
        sequence=pa.uint64(),
        received_at=TIME,
        author_id=TEXT,
        author_is_bot=pa.bool_(),
        content_length=pa.uint32(),
        mention_count=pa.uint32(),
        is_reply=pa.bool_(),
        message_id=TEXT,
    ),
    event_row,
)

DECISIONS: SinkTable[Decision] = SinkTable(
    "decisions",
    _schema(
        event_id=TEXT,
        deployment_id=TEXT,
        agent_id=TEXT,
        guild_id=TEXT,
        channel_id=TEXT,
        message_id=TEXT,
        author_id=TEXT,
        respond=pa.bool_(),
        reason=TEXT,
        priority=TEXT,
        decided_at=TIME,
    ),
    decision_row,
)

INFERENCE_USAGE: SinkTable[InferenceResult] = SinkTable(
    "inference_usage",
    _schema(
        request_id=TEXT,
        event_id=TEXT,
        deployment_id=TEXT,
        agent_id=TEXT,
        owner_id=TEXT,
        bot_id=TEXT,
        guild_id=TEXT,
        tier=TEXT,
        lane=TEXT,
        model=TEXT,
        prompt_tokens=pa.uint64(),
        completion_tokens=pa.uint64(),
        latency_ms=pa.float64(),
        cost_usd=pa.float64(),
        cached=pa.bool_(),
        fallback=pa.bool_(),
        failed=pa.bool_(),
        completed_at=TIME,
    ),
    inference_row,
)

ACTIONS: SinkTable[Action] = SinkTable(
    "actions",
    _schema(
        action_id=TEXT,
        kind=TEXT,
        bot_id=TEXT,
        guild_id=TEXT,
        channel_id=TEXT,
        deployment_id=TEXT,
        cause_event_id=TEXT,
        content_length=pa.uint32(),
        created_at=TIME,
    ),
    action_row,
)

MODERATION: SinkTable[ModerationAudit] = SinkTable(
    "moderation_audit",
    _schema(
        audit_id=TEXT,
        deployment_id=TEXT,
        guild_id=TEXT,
        channel_id=TEXT,
        user_id=TEXT,
        moderator_id=TEXT,
        source=TEXT,
        rule=TEXT,
        actions=pa.list_(TEXT),
        reason=TEXT,
        message_id=TEXT,
        at=TIME,
    ),
    audit_row,
)

TOKEN_HEALTH: SinkTable[TokenHealthEvent] = SinkTable(
    "token_health",
    _schema(
        token_id=TEXT,
        bot_user_id=TEXT,
        owner_id=TEXT,
        status=TEXT,
        reason=TEXT,
        detail=TEXT,
        at=TIME,
    ),
    token_health_row,
)

CONSUMER_LAG: SinkTable[ConsumerLag] = SinkTable(
    "consumer_lag",
    _schema(
        sampled_at=TIME,
        group=TEXT,
        topic=TEXT,
        partition=pa.uint32(),
        committed_offset=pa.int64(),
        end_offset=pa.int64(),
        lag=pa.int64(),
    ),
    lag_row,
)

# Each topic the sinks copy and its table; one sink (and consumer group) per pair.
TOPIC_TABLES: tuple[tuple[TopicSpec, SinkTable[Any]], ...] = (
    (DISCORD_EVENTS, EVENTS),
    (AGENT_DECISIONS, DECISIONS),
    (INFERENCE_RESULTS, INFERENCE_USAGE),
    (DISCORD_ACTIONS, ACTIONS),
    (MODERATION_AUDIT, MODERATION),
    (TOKENS_HEALTH, TOKEN_HEALTH),
)
