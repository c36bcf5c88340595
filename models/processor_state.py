"""Table values of the stream processors beyond the conversation state of models/state.py: what a guild
looks like (channel names, roles), music queues, warnings, levels, automod windows, reply streaks,
reminders, games, the multi-agent floor, the guild economy and hosted events.

Values are replaced, never changed in place: a table only writes its changelog on assignment.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AliasChoices, Field, StringConstraints, model_validator

from models.common import MessageText, ShortText, Snowflake, Strict
from models.decisions import Decision

# How many recent event ids a value remembers to ignore a redelivered event.
APPLIED_MEMORY = 16
# The most a table value may take as JSON, its changelog record: the processors' producer refuses a record
# over 1,000,000 bytes, and a write refused would stop the worker's events with the batch's changes unsaved.
# The values that grow with what members do (a guild's reminders and scheduled announcements) refuse what
# would take them past it (`fits_in_table`).
TABLE_VALUE_MAX_BYTES = 768 * 1024
MAX_QUEUE = 100
LEADERBOARD_SIZE = 10
MAX_CHALLENGES = 100

EventId = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class GuildDirectory(Strict):
    """What the processors learn of a guild from GUILD_CREATE and its updates: enough to resolve channel
    names of an agent's configuration, compute a member's permissions and find a member's voice channel."""

    guild_id: Snowflake
    name: str = ""
    owner_id: Snowflake | None = None
    # Discord's locale of a community guild ("en-US", "de"): the language its knowledge lookups use.
    preferred_locale: str = ""
    channel_names: dict[Snowflake, str] = Field(default_factory=dict)
    # Channel id -> Discord's channel type (0 text, 2 voice, 5 announcement, ...).
    channel_types: dict[Snowflake, int] = Field(default_factory=dict)
    # The channels Discord marks age-restricted (`nsfw`): the only ones where an NSFW character answers.
    age_restricted: list[Snowflake] = Field(default_factory=list)
    # Where an agent speaks on its own when neither its deployment nor its configuration names a text
    # channel: the guild's system channel, else its first text channel.
    home_channel: Snowflake | None = None
    role_permissions: dict[Snowflake, int] = Field(default_factory=dict)
    # Role id -> its place in the hierarchy: nobody acts on a member whose highest role is not below theirs.
    role_positions: dict[Snowflake, int] = Field(default_factory=dict)
    # Bot user id -> its roles, for the bots' own place in the hierarchy (members' roles come with events).
    bot_roles: dict[Snowflake, list[Snowflake]] = Field(default_factory=dict)
    # user id -> the voice channel the user is connected to
    voice_channel_of: dict[Snowflake, Snowflake] = Field(default_factory=dict)


class MusicQueue(Strict):
    """One deployment's player in its guild."""

    now_playing: ShortText | None = None
    queue: list[ShortText] = Field(default_factory=list, max_length=MAX_QUEUE)
    paused: bool = False
    volume: int = Field(default=100, ge=0, le=200)
    applied: list[EventId] = Field(default_factory=list, max_length=APPLIED_MEMORY)


class IdlePlayers(Strict):
    """By deployment id, since when the guild's music player in voice has had nothing to do (an empty queue,
    or nobody else in its channel), as the idle timer saw it: it leaves once that is idle_leave_s ago."""

    since: dict[str, datetime] = Field(default_factory=dict)


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
    # XP on the leveling board, wins on the games board. Boards written before games read "xp".
    score: int = Field(ge=0, validation_alias=AliasChoices("score", "xp"))


class Leaderboard(Strict):
    """The top users of one deployment by a score, highest first, kept as the score changes so that showing
    the board never scans a table."""

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
    """The users a deployment keeps a relationship with, in the order first met. When each was last met is
    in their relationship (`Relationship.last_met`): this value changes only when someone is met for the
    first time or forgotten, not with every message."""

    users: list[Snowflake] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _from_last_seen(cls, data: Any) -> Any:
        """Values written before kept when each user was last seen, rewritten with every message."""
        if isinstance(data, dict) and "last_seen" in data:
            return {"users": list(data["last_seen"])}
        return data


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


class UtilityBook(Strict):
    """Reminders of one guild (or one bot's DMs)."""

    reminders: list[Reminder] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _without_pending_polls(cls, data: Any) -> Any:
        """Books written while polls were messages with reactions listed the polls awaiting their message;
        native polls need no such state."""
        if isinstance(data, dict) and "polls" in data:
            return {k: v for k, v in data.items() if k != "polls"}
        return data


RpsMove = Literal["rock", "paper", "scissors"]
Letter = Annotated[str, StringConstraints(pattern=r"^[a-z]$")]


class ChannelGame(Strict):
    """A running game: where it is played, for which deployment, and until when it waits for a move."""

    # The event that started the game.
    game_id: EventId
    deployment_id: UUID
    bot_id: Snowflake
    guild_id: Snowflake | None = None
    channel_id: Snowflake
    # The game ends when nobody moved by then.
    expires_at: datetime


class HangmanGame(ChannelGame):
    """A word game in one channel against one deployment; anyone there may guess."""

    word: Annotated[str, StringConstraints(pattern=r"^[a-z]{3,20}$")]
    guessed: list[Letter] = Field(default_factory=list, max_length=26)
    misses: int = Field(default=0, ge=0)


class RpsChallenge(ChannelGame):
    """One member's rock-paper-scissors move, waiting for the challenged member's."""

    challenger_id: Snowflake
    opponent_id: Snowflake
    challenger_move: RpsMove


class GameBook(Strict):
    """The running games of one guild (or one bot's DMs), for every deployment: a timer ends the idle ones."""

    hangman: list[HangmanGame] = Field(default_factory=list)
    challenges: list[RpsChallenge] = Field(default_factory=list, max_length=MAX_CHALLENGES)
    applied: list[EventId] = Field(default_factory=list, max_length=APPLIED_MEMORY)


class GameRecord(Strict):
    """One user's results in one deployment's games."""

    wins: int = Field(default=0, ge=0)
    losses: int = Field(default=0, ge=0)
    draws: int = Field(default=0, ge=0)
    applied: list[EventId] = Field(default_factory=list, max_length=APPLIED_MEMORY)


class RoutineLog(Strict):
    """What the deployments of one guild (or one bot's DMs) did on their own lately: by deployment id, the
    markers (`<local date>/<routine>/<slot>`) of firings already made, so that a timer tick after a restart
    never fires one twice. Markers of days the timer no longer looks at are dropped."""

    fired: dict[str, list[Annotated[str, StringConstraints(max_length=200)]]] = Field(default_factory=dict)


class ScheduledAnnouncement(Strict):
    """An /announce for a later local time: posted once when due, by the deployment that took it."""

    # The /announce event: the posted message's ids derive from it.
    announcement_id: EventId
    deployment_id: UUID
    bot_id: Snowflake
    guild_id: Snowflake
    channel_id: Snowflake
    # Who announced ({user} of a template).
    user_id: Snowflake
    due_at: datetime
    # The template as it read when the announcement was scheduled (its placeholders are filled in when it is
    # posted), or None for a text posted as written; `text` is the template's {text}.
    template: MessageText | None = None
    text: MessageText = ""


class AnnouncementBook(Strict):
    """The scheduled announcements of one guild, and the /announce events already taken, so that a
    redelivered one schedules nothing after its announcement was posted."""

    scheduled: list[ScheduledAnnouncement] = Field(default_factory=list)
    taken: list[EventId] = Field(default_factory=list, max_length=APPLIED_MEMORY)


class ArcProgress(Strict):
    """Where a story arc with conditional beats stands for one deployment: the current beat, when it began,
    and what its successor's condition waits for, counted since then."""

    beat: int = Field(ge=0)
    began_on: date  # the local date
    began_at: datetime
    # People's messages in the arc's channel since the beat began, and whether one said the next beat's word.
    messages: int = Field(default=0, ge=0)
    heard: bool = False
    # The newest message counted: a redelivered or older one is not counted again.
    counted_until: datetime | None = None


class ArcBook(Strict):
    """The conditional story arcs of one guild's deployments: deployment id -> arc name -> progress."""

    progress: dict[str, dict[str, ArcProgress]] = Field(default_factory=dict)


# A wallet remembers the economy events applied to it, a give's on both sides: the giver's and the
# receiver's wallets are two changelog records, so a give half written when a worker died is completed when
# the event comes again. A busy wallet (an agent tipped by a crowd) meets more events than a member's other
# values between two commits.
ECONOMY_APPLIED_MEMORY = 256
# Messages whose floor ruling a channel remembers: every bot in the guild delivers its own copy of a message.
FLOOR_RULINGS = 16


class Wallet(Strict):
    """One member's coins in one guild; an agent's are under its bot's user id (tips go there)."""

    balance: Annotated[int, Field(ge=0)] = 0
    # The UTC day of the member's last /daily.
    last_daily: date | None = None
    applied: list[EventId] = Field(default_factory=list, max_length=ECONOMY_APPLIED_MEMORY)


class Wallets(Strict):
    """One guild's wallets as one value, the layout before `Wallet`: each change rewrote every member's
    balance. Still read for the members it holds who have no `Wallet` yet; never written but to erase one."""

    balances: dict[Snowflake, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    # The UTC day of each member's last /daily.
    last_daily: dict[Snowflake, date] = Field(default_factory=dict)
    applied: list[EventId] = Field(default_factory=list, max_length=ECONOMY_APPLIED_MEMORY)


class FloorRuling(Strict):
    """Who answers one message: every candidate agent's decision, suppressed ones with their floor reason."""

    message_id: Snowflake
    decisions: list[Decision]


class FloorState(Strict):
    """One channel's floor: agent messages since a person last spoke, banter in the last hour, when each
    agent last answered, and the latest rulings (so every copy of a message gets the same one)."""

    agent_run: int = Field(default=0, ge=0)
    banter_at: list[datetime] = Field(default_factory=list)
    last_answered: dict[UUID, datetime] = Field(default_factory=dict)
    rulings: list[FloorRuling] = Field(default_factory=list, max_length=FLOOR_RULINGS)


# Messages a trivia round remembers judging: every bot of the guild delivers its own copy of an answer.
TRIVIA_JUDGED = 500
# The users interested in an event an occurrence remembers (the latest).
MAX_INTERESTED = 1000
# A guild's trivia points are kept for its best players this many, so the book stays one bounded record.
TRIVIA_PLAYERS_KEPT = 1000


class EventStep(StrEnum):
    """What a hosted event's occurrence has done so far, in this order."""

    created = "created"  # scheduled on Discord
    reminded = "reminded"  # the interested were reminded
    started = "started"  # active on Discord (trivia: the round runs)
    ended = "ended"  # completed on Discord


class TriviaAsk(Strict):
    """One question of a round and what became of it."""

    question: Annotated[str, StringConstraints(max_length=300)]
    answers: list[Annotated[str, StringConstraints(max_length=100)]] = Field(min_length=1)
    asked_at: datetime | None = None
    winner: Snowflake | None = None
    # The winner was congratulated, or the answer revealed after the timeout: the round moves on.
    closed: bool = False


class TriviaRound(Strict):
    """The round of one trivia event: its questions in order, points per user, the answers judged."""

    questions: list[TriviaAsk] = Field(min_length=1)
    current: int = Field(default=0, ge=0)
    scores: dict[Snowflake, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    # The ids of the messages judged, so a redelivered answer scores nothing more.
    judged: list[Snowflake] = Field(default_factory=list, max_length=TRIVIA_JUDGED)

    @property
    def over(self) -> bool:
        return self.current >= len(self.questions)


class EventRun(Strict):
    """One occurrence of a deployment's hosted event."""

    deployment_id: UUID
    # The event's name in the configuration.
    event: Annotated[str, StringConstraints(max_length=32)]
    local_day: date
    steps: list[EventStep] = Field(default_factory=list)
    # Learnt from Discord's GUILD_SCHEDULED_EVENT_CREATE; the event's start and end need it.
    discord_event_id: Snowflake | None = None
    # Who marked themselves interested on Discord: the reminder mentions them.
    interested: list[Snowflake] = Field(default_factory=list, max_length=MAX_INTERESTED)
    # Canceled or deleted on Discord by a person: the agent hosts nothing more of it.
    canceled: bool = False
    trivia: TriviaRound | None = None

    @property
    def marker(self) -> str:
        return f"{self.deployment_id}/{self.event}/{self.local_day.isoformat()}"


class EventBook(Strict):
    """The hosted events of one guild's deployments: occurrences under way or recently done."""

    runs: list[EventRun] = Field(default_factory=list)
    # Every trivia point the guild's people won, credited when a round ends: `/trivia` shows them.
    points: dict[Snowflake, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, max_length=TRIVIA_PLAYERS_KEPT
    )


# How many compaction markers an erasure's changelog partition gets (processors/compaction.py): the first
# rolls the segment holding the superseded values and deletion markers, so the cleaner removes the values;
# the second rolls the segment holding the first marker, so a cleaning runs after the deletion markers'
# `delete.retention.ms` and removes them.
COMPACTION_MARKERS = 2


class ChangelogRoll(Strict):
    """A changelog partition an erasure changed, waiting for its compaction markers: the next one is due at
    `due_at`, `markers_left` remain."""

    due_at: datetime
    markers_left: int = Field(default=COMPACTION_MARKERS, ge=1, le=COMPACTION_MARKERS)


def fits_in_table(value: Strict) -> bool:
    """Whether the value's changelog record stays within TABLE_VALUE_MAX_BYTES."""
    return len(value.model_dump_json().encode()) <= TABLE_VALUE_MAX_BYTES
