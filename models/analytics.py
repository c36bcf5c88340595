"""Analytics models: the lag samples the sinks write, the narrow view of a message dispatch the events sink
reads, and the requests the sinks process answers: `/stats` and the owner console's analytics."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field

from models.actions import ActionId, AnswerInChannel, AnswerInteraction
from models.common import Payload, Snowflake, Strict
from models.discord import DiscordUser, DiscordView


class ConsumerLag(Strict):
    """How far one consumer group is behind on one partition, sampled from the broker."""

    sampled_at: datetime
    group: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    partition: int = Field(ge=0)
    committed_offset: int = Field(ge=0)
    end_offset: int = Field(ge=0)

    @property
    def lag(self) -> int:
        return max(self.end_offset - self.committed_offset, 0)


class MessageShape(DiscordView):
    """What analytics keeps of a message dispatch: who wrote it and its size, never its words. Narrower than
    models.discord.DiscordMessage on purpose: the events sink reads every message, and validating only
    these fields costs a third of the full view."""

    id: str = ""
    author: DiscordUser
    content: str = ""
    mentions: list[Any] = Field(default_factory=list)
    message_reference: Any = None


class StatsWindow(StrEnum):
    """How far back `/stats` looks."""

    day = "24h"
    week = "7d"
    month = "30d"

    @property
    def span(self) -> timedelta:
        return _WINDOW_SPANS[self]


_WINDOW_SPANS = {
    StatsWindow.day: timedelta(hours=24),
    StatsWindow.week: timedelta(days=7),
    StatsWindow.month: timedelta(days=30),
}


class StatsRequest(Payload):
    """`/stats` as the processors hand it to the process that holds ClickHouse, which answers it: the
    answer's action id is fixed here, so a redelivered request never posts twice."""

    action_id: ActionId
    bot_id: Snowflake
    guild_id: Snowflake
    deployment_id: str
    cause_event_id: str
    window: StatsWindow = StatsWindow.week
    # The window ends here (when the command was given), so a redelivery asks about the same span.
    until: datetime
    answer: Annotated[AnswerInteraction | AnswerInChannel, Field(discriminator="kind")]
    # The agent's response style: its embed colour.
    embed_color: int = Field(default=0x5865F2, ge=0, le=0xFFFFFF)


class Bucket(StrEnum):
    """The width of one bar of a chart: an hour or a day (UTC)."""

    hour = "hour"
    day = "day"

    @property
    def size(self) -> timedelta:
        return timedelta(hours=1) if self is Bucket.hour else timedelta(days=1)


class OwnerAnalyticsQuery(Payload):
    """The console's analytics of one owner, asked of the process that holds ClickHouse (on
    `analytics.queries`; answered on `analytics.answers` under the same request id).

    The asker (the API) names the owner's agents and their deployments as PostgreSQL has them now, and
    every table is filtered by them, so no row of another owner's agents can be part of the answer."""

    request_id: str = Field(min_length=1, max_length=64)
    owner_id: UUID
    # Deployment id -> its agent id, of the agents asked about (all the owner's, or the one filtered on).
    deployments: dict[UUID, UUID]
    agent_ids: list[UUID]
    guild_id: Snowflake | None = None
    start: datetime
    end: datetime
    bucket: Bucket


class AnalyticsPoint(Strict):
    """One bucket of the owner's activity; latencies are of the AI calls that succeeded (None: none)."""

    t: datetime
    messages_seen: int
    replies: int
    ai_calls: int
    ai_cost_usd: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    active_users: int


class AnalyticsTotals(Strict):
    messages_seen: int
    replies: int
    ai_calls: int
    ai_cost_usd: float


class AgentAnalytics(AnalyticsTotals):
    agent_id: UUID


class GuildAnalytics(AnalyticsTotals):
    guild_id: str


class OwnerAnalytics(Strict):
    """Messages the owner's agents saw (once per message), their replies, AI calls and cost, per bucket of
    the range (every bucket present), why they answered or kept quiet, per agent and per guild."""

    series: list[AnalyticsPoint]
    decisions_by_reason: dict[str, int]
    by_agent: list[AgentAnalytics]
    by_guild: list[GuildAnalytics]


class OwnerAnalyticsAnswer(Payload):
    request_id: str = Field(min_length=1, max_length=64)
    analytics: OwnerAnalytics | None = None
    # Why there is no answer (ClickHouse failed); the asker reports it as unavailable.
    error: str = ""
