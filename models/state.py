"""Conversation state the processors keep in tables and the AI path reads: channel context,
relationships, mood and retrieved memories."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, Field, StringConstraints

from models.agent import MoodName
from models.common import LongText, Snowflake, Strict

ValueT = TypeVar("ValueT", bound=BaseModel)
ItemT = TypeVar("ItemT", bound=BaseModel)


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


class RingHead(Strict, Generic[ValueT]):
    """The changelog layout of a value whose one list grows an item at a time (processors.ring.ListRing):
    the value with that list left empty, and where its items lie in the ring of slots, item `p` of the
    value's history in slot `p % ring`, the list being the items at positions `first`..`last`. A new item
    writes its slot and this record, never the whole list."""

    rest: ValueT
    first: int = Field(ge=0)
    last: int = Field(ge=-1)  # first - 1: an empty list
    ring: int = Field(ge=1)


class RingSlot(Strict, Generic[ItemT]):
    """One item of a ring's list at its position in the value's history."""

    position: int = Field(ge=0)
    item: ItemT


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
    # The last interaction or tip: past `max_tracked_users`, the least recently met is forgotten first.
    last_met: datetime | None = None
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
