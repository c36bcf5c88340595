"""Table values of the stream processors beyond the conversation state of models/state.py: what a guild
looks like (channel names, roles), music queues, warnings, levels, automod windows, reply streaks,
reminders and polls.

Values are replaced, never changed in place: a table only writes its changelog on assignment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from models.common import MessageText, ShortText, Snowflake, Strict

# How many recent event ids a value remembers to ignore a redelivered event.
APPLIED_MEMORY = 16
MAX_QUEUE = 100
LEADERBOARD_SIZE = 10
MAX_POLL_OPTIONS = 10

EventId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class GuildDirectory(Strict):
    """What the processors learn of a guild from GUILD_CREATE and its updates: enough to resolve channel
    names of an agent's configuration, compute a member's permissions and find a member's voice channel."""

    guild_id: Snowflake
    name: str = ""
    owner_id: Snowflake | None = None
    channel_names: dict[Snowflake, str] = Field(default_factory=dict)
    role_permissions: dict[Snowflake, int] = Field(default_factory=dict)
    # user id -> the voice channel the user is connected to
    voice_channel_of: dict[Snowflake, Snowflake] = Field(default_factory=dict)


class MusicQueue(Strict):
    """One deployment's player in its guild."""

    now_playing: ShortText | None = None
    queue: list[ShortText] = Field(default_factory=list, max_length=MAX_QUEUE)
    paused: bool = False
    volume: int = Field(default=100, ge=0, le=200)
    applied: list[EventId] = Field(default_factory=list, max_length=APPLIED_MEMORY)


class WarnRecord(Strict):
    """One user's warnings from one deployment."""

    count: int = Field(default=0, ge=0)
    last_reason: ShortText = ""
    applied: list[EventId] = Field(default_factory=list, max_length=APPLIED_MEMORY)


class LevelEntry(Strict):
    """One user's experience with one deployment."""

    xp: int = Field(default=0, ge=0)
    level: int = Field(default=0, ge=0)
    last_xp_at: datetime | None = None


class LeaderboardEntry(Strict):
    user_id: Snowflake
    xp: int = Field(ge=0)


class Leaderboard(Strict):
    """The top users of one deployment by XP, highest first, kept as XP is awarded so that /leaderboard never
    scans the table."""

    entries: list[LeaderboardEntry] = Field(default_factory=list, max_length=LEADERBOARD_SIZE)


class WindowEntry(Strict):
    message_id: Snowflake
    at: datetime
    # A short hash of the normalised content, for repeated-message detection.
    fingerprint: Annotated[str, StringConstraints(max_length=32)]


class AutomodWindow(Strict):
    """A user's recent messages in one channel, oldest first, for the windowed automod rules."""

    entries: list[WindowEntry] = Field(default_factory=list)


class TrackedUsers(Strict):
    """The users a deployment keeps a relationship with, by user id: when it last talked with each."""

    last_seen: dict[Snowflake, datetime] = Field(default_factory=dict)


class ReplyStreak(Strict):
    """How many times in a row a deployment answered in a channel since a person last spoke there."""

    count: int = Field(default=0, ge=0)
    last_event_id: EventId | None = None


class Reminder(Strict):
    reminder_id: EventId
    deployment_id: UUID
    bot_id: Snowflake
    guild_id: Snowflake | None = None
    channel_id: Snowflake
    user_id: Snowflake
    due_at: datetime
    text: MessageText


class Poll(Strict):
    """A poll whose message is on its way: once the bot's own message arrives, the bot adds the reactions."""

    poll_id: EventId
    deployment_id: UUID
    bot_id: Snowflake
    guild_id: Snowflake | None = None
    channel_id: Snowflake
    # The poll message's first line, by which the bot recognises its own message.
    marker: MessageText
    options: list[ShortText] = Field(min_length=2, max_length=MAX_POLL_OPTIONS)
    created_at: datetime


class UtilityBook(Strict):
    """Reminders and pending polls of one guild (or one bot's DMs)."""

    reminders: list[Reminder] = Field(default_factory=list)
    polls: list[Poll] = Field(default_factory=list)


class RoutineLog(Strict):
    """What the deployments of one guild (or one bot's DMs) did on their own lately: by deployment id, the
    markers (`<local date>/<routine>/<slot>`) of firings already made, so that a timer tick after a restart
    never fires one twice. Markers of days the timer no longer looks at are dropped."""

    fired: dict[str, list[Annotated[str, StringConstraints(max_length=200)]]] = Field(default_factory=dict)
