"""Analytics models: the lag samples the sinks write, the narrow view of a message dispatch the events sink
reads, and the `/stats` requests the sinks process answers."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

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
