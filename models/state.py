"""Conversation state the processors keep in tables and the AI path reads: channel context,
relationships, mood and retrieved memories."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from models.agent import MoodName
from models.common import LongText, Snowflake, Strict


class ContextMessage(Strict):
    message_id: Snowflake
    author_id: Snowflake
    author_name: Annotated[str, StringConstraints(max_length=100)]
    author_is_bot: bool = False
    content: LongText
    at: datetime
    # Set when the message replies to another; the decision engine checks replies to the agent.
    reply_to_author_id: Snowflake | None = None


class ChannelContext(Strict):
    """The last N messages of one channel, oldest first."""

    channel_id: Snowflake
    messages: list[ContextMessage] = Field(default_factory=list)


class ContextWindow(Strict):
    """Where a channel's context lies in its ring of slots (the changelog layout of ChannelContext): the
    messages at positions `first`..`last` of the channel's history, message `p` in slot `p % ring`. Recording
    a message writes its slot and this small record, never the whole window."""

    channel_id: Snowflake
    first: int = Field(ge=0)
    last: int = Field(ge=-1)  # first - 1: no message
    ring: int = Field(ge=1)


class ContextSlot(Strict):
    """One message of a channel's context at its position in the channel's history."""

    position: int = Field(ge=0)
    message: ContextMessage


class Relationship(Strict):
    """What one deployment knows of one user."""

    user_id: Snowflake
    display_name: Annotated[str, StringConstraints(max_length=100)] = ""
    affinity: int = Field(default=50, ge=0, le=100)
    interaction_count: int = Field(default=0, ge=0)
    positive_interactions: int = Field(default=0, ge=0)
    negative_interactions: int = Field(default=0, ge=0)
    first_met: datetime | None = None
    last_interaction: datetime | None = None
    preferences: dict[Annotated[str, StringConstraints(max_length=100)], LongText] = Field(
        default_factory=dict, max_length=100
    )


class MoodState(Strict):
    """A deployment's mood: valence from -1 (sad) to 1 (excited), energy from 0 (bored) to 1."""

    mood: MoodName = MoodName.neutral
    valence: float = Field(default=0.0, ge=-1.0, le=1.0)
    energy: float = Field(default=0.5, ge=0.0, le=1.0)
    updated_at: datetime | None = None


class Memory(Strict):
    """One retrieved long-term memory; the memory system fills these, the prompt builder reads them."""

    text: LongText
    at: datetime
    importance: int = Field(default=5, ge=1, le=10)
    relevance: float = Field(default=0.0, ge=0.0, le=1.0)
