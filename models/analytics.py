"""Analytics models beyond the topic payloads: the lag samples the sinks write, and the narrow view of a
message dispatch the events sink reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from models.common import Strict
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

    author: DiscordUser
    content: str = ""
    mentions: list[Any] = Field(default_factory=list)
    message_reference: Any = None
