"""The agent configuration: everything an owner decides about one agent, from a bare music bot to Luna.

A configuration with `ai_config` set is AI-enabled; without it the agent never calls a model.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, StringConstraints, field_validator, model_validator

from models.common import (
    MAX_LIST,
    LongText,
    MessageText,
    NonEmptyName,
    Probability,
    PromptText,
    ShortText,
    Strict,
    Trait,
    field_error,
)
from models.knowledge import KnowledgeConfig
from models.tools import REPORT_COMMAND, TOOLS_OF_COMMAND, Tool

CommandName = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^[a-z0-9_-]{1,32}$")
]
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
MAX_FLOOR_COOLDOWN_S = 24 * 3600
MAX_TRACKED_USERS = 10_000
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class AgentMode(StrEnum):
    """The five configuration modes, from one tool with commands only to a full AI character."""

    bare = "bare"  # Mode 1: one tool, commands only
    utility = "utility"  # Mode 2: utility tools, commands only
    enhanced = "enhanced"  # Mode 3: tools plus rule-based automation
    semi_autonomous = "semi_autonomous"  # Mode 4: tools plus AI for questions addressed to it
    human_like = "human_like"  # Mode 5: a full AI character

    @property
    def uses_ai(self) -> bool:
        return self in (AgentMode.semi_autonomous, AgentMode.human_like)


class PersonalityTraits(Strict):
    """Big Five, 0-100."""

    openness: Trait = 50
    conscientiousness: Trait = 50
    extraversion: Trait = 50
    agreeableness: Trait = 50
    neuroticism: Trait = 50


class Level(StrEnum):
    none = "none"
    low = "low"
    medium = "medium"
    high = "high"


class SpeechStyle(Strict):
    formality: Literal["casual", "neutral", "formal"] = "neutral"
    emoji_usage: Level = Level.none
    emoticon_usage: Level = Level.none
    slang: list[Word] = Field(default_factory=list, max_length=MAX_LIST)
    sentence_enders: list[Annotated[str, StringConstraints(min_length=1, max_length=10)]] = Field(
        default_factory=list, max_length=20
    )


class ContentRating(StrEnum):
    """Who a character's answers are fit for."""

    general = "general"  # answers anywhere it is deployed
    # Answers only in Discord's age-restricted (`nsfw`) channels, never in DMs: Discord marks no DM as
    # age-restricted, so nothing shows that the person on the other side is an adult.
    nsfw = "nsfw"


class Character(Strict):
    name: NonEmptyName
    content_rating: ContentRating = ContentRating.general
    gender: ShortText = ""
    age: ShortText = ""
    avatar_url: Annotated[str, StringConstraints(max_length=2000)] = ""
    banner_url: Annotated[str, StringConstraints(max_length=2000)] = ""
    # The profile text the bot shows in each guild it is deployed to (Discord's limit is 190).
    bio: Annotated[str, StringConstraints(max_length=190)] = ""
    personality: PersonalityTraits = Field(default_factory=PersonalityTraits)
    backstory: LongText = ""
    interests: list[Word] = Field(default_factory=list, max_length=MAX_LIST)
    dislikes: list[Word] = Field(default_factory=list, max_length=MAX_LIST)
    catchphrases: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_LIST
    )
    speech_style: SpeechStyle = Field(default_factory=SpeechStyle)


class AIUsage(StrEnum):
    autonomous = "autonomous"  # the decision engine may answer any message
    questions_only = "questions_only"  # Mode 4: only questions addressed to the agent


# The voice an agent with the voice_tts tool speaks with: "elevenlabs:<voice id>" speaks through ElevenLabs
# (a premium voice: the custom_voice feature of the owner's tier); unset speaks with the offline engine.
ELEVENLABS_VOICE = "elevenlabs:"
VOICE_MODEL_PATTERN = r"^elevenlabs:[A-Za-z0-9_-]{1,100}$"


class AIConfig(Strict):
    text_model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    voice_model: Annotated[str, StringConstraints(pattern=VOICE_MODEL_PATTERN)] | None = None
    # Speech to text in the voice channel the agent speaks in (needs the voice_tts tool): what members say
    # there is recognized and, when it names the agent, answered like a mention. Off by default (privacy).
    listen: bool = False
    system_prompt: PromptText = ""
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    context_window: int = Field(default=50, ge=1, le=500)
    response_length: Literal["short", "medium", "long"] = "medium"
    usage: AIUsage = AIUsage.autonomous
    # A prompt marked cacheable may be answered from the response cache.
    cacheable: bool = False
    # Used for short or low-priority replies when set.
    cheap_model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    @property
    def elevenlabs_voice_id(self) -> str | None:
        """The ElevenLabs voice id of `voice_model`; None without one."""
        return self.voice_model.removeprefix(ELEVENLABS_VOICE) if self.voice_model else None


class Trigger(Strict):
    enabled: bool = True
    probability: Probability = 0.0


class ResponseTriggers(Strict):
    mentioned: Trigger = Field(default_factory=lambda: Trigger(probability=1.0))
    replied_to: Trigger = Field(default_factory=lambda: Trigger(probability=1.0))
    keyword_match: Trigger = Field(default_factory=lambda: Trigger(probability=0.0))
    conversation_flow: Trigger = Field(default_factory=lambda: Trigger(probability=0.0))
    random: Trigger = Field(default_factory=lambda: Trigger(probability=0.0))
    bored: Trigger = Field(default_factory=lambda: Trigger(probability=0.0))


# A check-in addresses regulars not seen for this many days unless the routine says otherwise.
CHECK_IN_AWAY_DAYS = 3
# "daily", or "every N hours" / "every N-M hours": the gap between two firings, drawn inside the window.
_FREQUENCY = re.compile(r"^(?:daily|every (\d{1,2})(?:-(\d{1,2}))? hours?)$")
Frequency = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, max_length=40)]
ChannelRef = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


def clock_time(value: str) -> time:
    """A validated "HH:MM" as a time of day."""
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


class RoutineAction(StrEnum):
    post = "post"  # a message in the routine's channel
    voice_check_in = "voice_check_in"  # join a voice channel, then the message in the text channel
    # address one regular not seen for `away_days` (processors/checkins.py picks whom)
    check_in = "check_in"


class ProactiveAction(Strict):
    """A routine: something the agent does on its own at a local time or every few hours."""

    enabled: bool = False
    # A fixed local time ("10:00"); without it the routine runs at random times drawn from `frequency`.
    time: ClockTime | None = None
    frequency: Frequency = ""
    # What to say: sent as written by an agent without AI, the gist of the generated post with AI.
    message_template: MessageText = ""
    # With AI: one is picked per firing for the post to be about.
    topics: list[Word] = Field(default_factory=list, max_length=MAX_LIST)
    action: RoutineAction = RoutineAction.post
    # Firings per local day at most.
    daily_budget: int = Field(default=1, ge=1, le=24)
    # Skip the firing when no person wrote in the channel in this many hours: an empty room gets no
    # monologue. 0 posts regardless.
    skip_when_silent_h: int = Field(default=24, ge=0, le=24 * 30)
    # A channel name ("#general") or id; empty: the deployment's first text channel, else the guild's home
    # channel (its system channel, else its first text channel).
    channel: ChannelRef = ""
    # A check-in's regulars are those the agent has not talked with for this many days (check_in only;
    # default CHECK_IN_AWAY_DAYS).
    away_days: int | None = Field(default=None, ge=1, le=365)

    @field_validator("frequency")
    @classmethod
    def _frequency_format(cls, value: str) -> str:
        match = _FREQUENCY.match(value) if value else None
        if value and match is None:
            raise ValueError('must be "daily", "every N hours" or "every N-M hours"')
        if match is not None and match.group(1) is not None:
            low, high = int(match.group(1)), int(match.group(2) or match.group(1))
            if not 1 <= low <= high <= 24:
                raise ValueError("the hours must be from 1 to 24, the smaller first")
        return value

    @model_validator(mode="after")
    def _timing(self) -> Self:
        if self.time is None and not self.frequency:
            raise field_error("time", "a routine needs a time or a frequency")
        if self.time is not None and self.gap_hours is not None:
            raise field_error("frequency", "a routine at a fixed time runs daily; remove the hours")
        if self.time is not None and self.daily_budget > 1:
            raise field_error("daily_budget", "a routine at a fixed time runs once a day")
        if self.away_days is not None and self.action is not RoutineAction.check_in:
            raise field_error("away_days", 'only a "check_in" routine looks for people away')
        return self

    @property
    def check_in_after(self) -> timedelta:
        """How long a regular has been away before a check-in addresses them."""
        return timedelta(days=self.away_days or CHECK_IN_AWAY_DAYS)

    @property
    def gap_hours(self) -> tuple[int, int] | None:
        """(fewest, most) hours between two firings of an "every N[-M] hours" routine; None otherwise."""
        match = _FREQUENCY.match(self.frequency)
        if match is None or match.group(1) is None:
            return None
        return int(match.group(1)), int(match.group(2) or match.group(1))


class QuietHours(Strict):
    """Local hours in which the agent starts nothing on its own; `end` before `start` spans midnight."""

    start: ClockTime
    end: ClockTime

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise field_error("end", "must differ from start")
        return self

    def covers(self, at: time) -> bool:
        start, end = clock_time(self.start), clock_time(self.end)
        return start <= at < end if start < end else at >= start or at < end


class RoutineSchedule(Strict):
    """The clock an agent's routines and story arcs run on."""

    # An IANA time zone name ("Europe/Berlin").
    time_zone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] = "UTC"
    quiet_hours: QuietHours | None = None

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name like Europe/Berlin)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class BeatCondition(Strict):
    """What a beat waits for, besides the previous beat having run its days: exactly one of `messages`
    (that many messages by people in the arc's channel since the previous beat began) or `keyword` (a
    person's message there saying the word, since the previous beat began)."""

    messages: int | None = Field(default=None, ge=1, le=100_000)
    keyword: Word | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.messages is None) == (self.keyword is None):
            raise field_error("messages", "a condition is either messages or keyword")
        return self


class ArcBeat(Strict):
    """One stretch of a story arc: what is going on in the character's life for `days` days (at least
    `days` when the next beat waits for a condition)."""

    days: int = Field(ge=1, le=365)
    # Enters the prompt while the beat lasts.
    situation: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    # Posted when the beat begins (the gist of a generated post with AI); empty: the beat starts silently.
    announcement: MessageText = ""
    # None: the beat begins when the previous one has run its days. Set: it begins once that is so and
    # the condition holds; the previous beat goes on until then.
    starts_when: BeatCondition | None = None


class StoryArc(Strict):
    """Something the character lives through over days ("Luna is learning to bake")."""

    name: CommandName
    starts_on: date
    # The local time a beat's announcement is posted on the beat's first day (at once when a condition
    # started the beat later that day).
    post_time: ClockTime = "12:00"
    # A channel name or id; empty: as for a routine. Conditions count its messages.
    channel: ChannelRef = ""
    beats: list[ArcBeat] = Field(min_length=1, max_length=60)

    @model_validator(mode="after")
    def _first_beat_on_its_date(self) -> Self:
        if self.beats[0].starts_when is not None:
            raise field_error("beats.0.starts_when", "the first beat begins on starts_on")
        return self

    @property
    def conditional(self) -> bool:
        """Some beat waits for a condition: the arc's progress is table state, not a function of the date."""
        return any(beat.starts_when is not None for beat in self.beats)


class HostedEventKind(StrEnum):
    movie_night = "movie_night"
    trivia = "trivia"


class Weekday(StrEnum):
    monday = "monday"
    tuesday = "tuesday"
    wednesday = "wednesday"
    thursday = "thursday"
    friday = "friday"
    saturday = "saturday"
    sunday = "sunday"


class TriviaSource(StrEnum):
    bundled = "bundled"  # the set shipped with the platform (processors/trivia_questions.json)
    owner = "owner"  # the questions of this configuration


Answer = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class TriviaQuestion(Strict):
    question: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
    # Every answer counted right; the first is the one revealed.
    answers: list[Answer] = Field(min_length=1, max_length=10)


class TriviaConfig(Strict):
    """One round of trivia per event: `question_count` questions drawn from the source, asked one at a
    time; the first right answer wins the point, and nobody right within `answer_timeout_s` reveals it."""

    source: TriviaSource = TriviaSource.bundled
    questions: list[TriviaQuestion] = Field(default_factory=list, max_length=500)
    question_count: int = Field(default=5, ge=1, le=50)
    answer_timeout_s: int = Field(default=30, ge=5, le=600)

    @model_validator(mode="after")
    def _source(self) -> Self:
        if self.source is TriviaSource.bundled and self.questions:
            raise field_error("questions", "the owner's questions need source owner")
        if self.source is TriviaSource.owner and len(self.questions) < self.question_count:
            needed = f"source owner needs at least question_count ({self.question_count})"
            raise field_error("questions", needed)
        return self


class HostedEvent(Strict):
    """A server event the agent schedules on Discord and hosts: a movie night, or trivia it runs itself.

    An occurrence (every `weekday`, or once on `on_date`, at the local `time` of the agent's schedule) is
    created on Discord `announce_hours` before it starts, reminded to the interested `remind_minutes` before,
    started at its time and completed after `duration_minutes` (trivia: when its round is over)."""

    kind: HostedEventKind
    # The event's name on Discord.
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] = ""
    weekday: Weekday | None = None
    on_date: date | None = None
    time: ClockTime
    duration_minutes: int = Field(default=120, ge=15, le=24 * 60)
    announce_hours: int = Field(default=24, ge=1, le=7 * 24)
    # 0: no reminder.
    remind_minutes: int = Field(default=30, ge=0, le=24 * 60)
    # Where the event is announced, reminded and (trivia) played: a channel name or id; empty: the
    # deployment's first text channel.
    channel: ChannelRef = ""
    # Where it happens: a voice channel (name or id), else a place outside Discord.
    voice_channel: ChannelRef = ""
    location: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] = ""
    # A trivia event's round; None: the defaults.
    trivia: TriviaConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.weekday is None) == (self.on_date is None):
            raise field_error("weekday", "an event runs every weekday or once on_date: set exactly one")
        if bool(self.voice_channel) == bool(self.location):
            raise field_error("location", "an event happens in a voice_channel or at a location: set one")
        if self.kind is not HostedEventKind.trivia and self.trivia is not None:
            raise field_error("trivia", f"a {self.kind.value} event has no trivia")
        if self.remind_minutes >= self.announce_hours * 60:
            raise field_error("remind_minutes", "must be before the start and after the announcement")
        return self

    @property
    def round(self) -> TriviaConfig | None:
        """The trivia round the event runs; None for a movie night."""
        if self.kind is not HostedEventKind.trivia:
            return None
        return self.trivia or TriviaConfig()


class MoodName(StrEnum):
    excited = "excited"
    happy = "happy"
    neutral = "neutral"
    sad = "sad"
    bored = "bored"


class MoodFactors(Strict):
    """How much each factor moves the mood; by default interaction quality weighs most, the time of day
    least."""

    time_of_day: Probability = 0.2
    interaction_quality: Probability = 0.5
    recent_events: Probability = 0.3


PresenceStatus = Literal["online", "idle", "dnd"]


class MoodDefinition(Strict):
    emoji: Annotated[str, StringConstraints(max_length=20)] = ""
    affects_response: ShortText = ""
    # The bot's presence while in this mood: its status and the activity line ("Playing ...").
    status: PresenceStatus = "online"
    activity: Annotated[str, StringConstraints(max_length=128)] = ""


def _default_moods() -> dict[MoodName, MoodDefinition]:
    return {
        MoodName.excited: MoodDefinition(
            emoji="🤩", affects_response="more exclamation points", activity="buzzing with ideas"
        ),
        MoodName.happy: MoodDefinition(emoji="😊", affects_response="cheerful tone", activity="chatting"),
        MoodName.neutral: MoodDefinition(emoji="", affects_response="normal"),
        MoodName.sad: MoodDefinition(
            emoji="😢", affects_response="subdued, seeking comfort", status="idle", activity="feeling down"
        ),
        MoodName.bored: MoodDefinition(
            emoji="😴",
            affects_response="suggests activities",
            status="idle",
            activity="looking for something to do",
        ),
    }


class MoodConfig(Strict):
    enabled: bool = True
    current: MoodName = MoodName.neutral
    factors: MoodFactors = Field(default_factory=MoodFactors)
    moods: dict[MoodName, MoodDefinition] = Field(default_factory=_default_moods)
    # Half-life of the drift back toward neutral.
    drift_half_life_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)


class AffinityBands(Strict):
    """Affinity (0-100) below `cold_below` is a cold relationship, from `friend_from` on a friendship."""

    cold_below: int = Field(default=30, ge=0, le=100)
    friend_from: int = Field(default=70, ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.friend_from <= self.cold_below:
            raise field_error("friend_from", "must be above cold_below")
        return self


class RelationshipSettings(Strict):
    track_interactions: bool = True
    affinity_system: bool = True
    remember_names: bool = True
    remember_preferences: bool = True
    # Past this many users the least recently met is forgotten; 0 remembers no one. Whom a deployment tracks
    # is one table value, about 23 bytes a user, written whenever someone is met first or forgotten: 10,000
    # keep it small and cheap to write.
    max_tracked_users: int = Field(default=1000, ge=0, le=MAX_TRACKED_USERS)
    affinity_bands: AffinityBands = Field(default_factory=AffinityBands)


class FloorConfig(Strict):
    """How the agent shares a channel with other agents (processors/floor.py). A channel's limits are the
    strictest among its agents, so any owner can tighten the floor but none can loosen another's."""

    # At most this many agents answer one message.
    max_responders: int = Field(default=2, ge=1, le=10)
    # Agent messages in a row without a person speaking, replies to the person included.
    max_agent_run: int = Field(default=6, ge=1, le=50)
    # Agent answers to agent messages (banter) per channel and hour.
    banter_per_hour: int = Field(default=20, ge=0, le=500)
    # This agent's own pause between unprompted answers in a channel; being addressed skips it.
    cooldown_s: int = Field(default=0, ge=0, le=MAX_FLOOR_COOLDOWN_S)


class Behavior(Strict):
    response_triggers: ResponseTriggers = Field(default_factory=ResponseTriggers)
    proactive_actions: dict[CommandName, ProactiveAction] = Field(default_factory=dict, max_length=20)
    schedule: RoutineSchedule = Field(default_factory=RoutineSchedule)
    story_arcs: list[StoryArc] = Field(default_factory=list, max_length=10)
    mood: MoodConfig = Field(default_factory=MoodConfig)
    relationships: RelationshipSettings = Field(default_factory=RelationshipSettings)
    # Loop guards for multi-agent channels.
    reply_to_bots: bool = False
    max_consecutive_replies: int = Field(default=3, ge=1, le=50)
    floor: FloorConfig = Field(default_factory=FloorConfig)
    # By the owner's name for the event (a table key part: no "/").
    hosted_events: dict[CommandName, HostedEvent] = Field(default_factory=dict, max_length=10)

    @field_validator("story_arcs")
    @classmethod
    def _unique_arcs(cls, arcs: list[StoryArc]) -> list[StoryArc]:
        names = [arc.name for arc in arcs]
        if len(set(names)) != len(names):
            raise ValueError("arc names must be unique")
        return arcs


class Channels(Strict):
    """Channels by name ("#general") or id; empty text_channels means every channel the bot can see."""

    text_channels: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=500
    )
    voice_channels: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=500
    )
    dm_enabled: bool = False


class ResponseStyle(Strict):
    format: Literal["plain", "embed"] = "plain"
    embed_color: int = Field(default=0x5865F2, ge=0, le=0xFFFFFF)


class CustomCommand(Strict):
    name: CommandName
    description: ShortText = ""
    # str.format-style template; {user}, {args}, {agent} and {guild} are filled in.
    template: MessageText


class EscalationRule(Strict):
    warns: int = Field(ge=1, le=100)
    action: Literal["timeout", "kick", "ban"]
    duration_s: int = Field(default=600, ge=1, le=28 * 24 * 3600)


# What an announcement template may say: {server} the server's name, {date} the agent's local date
# (2026-01-15), {weekday} (Thursday), {time} the local time (18:00), {agent} the agent's name, {user} a
# mention of who announced, {text} what followed the template's name in the command. Filled in when the
# announcement is posted.
ANNOUNCEMENT_PLACEHOLDERS = frozenset({"server", "date", "weekday", "time", "agent", "user", "text"})
BRACED_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class AnnouncementsConfig(Strict):
    """Where /announce posts, and the texts it can post by name ("/announce weekly" posts "weekly")."""

    # A channel name or id; empty: the channel /announce is used in. In an announcement channel the post is
    # crossposted to the channels following it.
    channel: ChannelRef = ""
    templates: dict[CommandName, MessageText] = Field(default_factory=dict, max_length=MAX_LIST)

    @field_validator("templates")
    @classmethod
    def _known_placeholders(cls, templates: dict[str, str]) -> dict[str, str]:
        for name, template in templates.items():
            unknown = sorted(set(BRACED_PLACEHOLDER.findall(template)) - ANNOUNCEMENT_PLACEHOLDERS)
            if unknown:
                known = ", ".join(f"{{{p}}}" for p in sorted(ANNOUNCEMENT_PLACEHOLDERS))
                raise ValueError(f"{name}: unknown placeholder {{{unknown[0]}}} (known: {known})")
        return templates


class ModerationConfig(Strict):
    escalation: list[EscalationRule] = Field(
        default_factory=lambda: [EscalationRule(warns=3, action="timeout", duration_s=600)], max_length=10
    )
    log_channel: Annotated[str, StringConstraints(max_length=100)] = ""


class AutomodAction(StrEnum):
    delete = "delete"
    warn = "warn"
    timeout = "timeout"


class AutomodRule(Strict):
    enabled: bool = True
    actions: list[AutomodAction] = Field(
        default_factory=lambda: [AutomodAction.delete, AutomodAction.warn], min_length=1
    )


class SpamRule(AutomodRule):
    max_messages: int = Field(default=5, ge=1, le=1000)
    window_s: int = Field(default=5, ge=1, le=3600)
    actions: list[AutomodAction] = Field(default_factory=lambda: [AutomodAction.timeout], min_length=1)
    timeout_s: int = Field(default=300, ge=1, le=28 * 24 * 3600)


class RepeatRule(AutomodRule):
    max_repeats: int = Field(default=3, ge=2, le=100)
    window_s: int = Field(default=60, ge=1, le=3600)


class LinkRule(AutomodRule):
    allow_domains: list[Word] = Field(default_factory=list, max_length=500)


class MentionRule(AutomodRule):
    max_mentions: int = Field(default=5, ge=1, le=100)


class BlockedWordsRule(AutomodRule):
    words: list[Word] = Field(default_factory=list, max_length=1000)


class AutomodConfig(Strict):
    spam: SpamRule = Field(default_factory=SpamRule)
    repeats: RepeatRule = Field(default_factory=RepeatRule)
    links: LinkRule = Field(default_factory=lambda: LinkRule(enabled=False))
    mentions: MentionRule = Field(default_factory=MentionRule)
    blocked_words: BlockedWordsRule = Field(default_factory=lambda: BlockedWordsRule(enabled=False))


class LevelingConfig(Strict):
    xp_min: int = Field(default=15, ge=0, le=1000)
    xp_max: int = Field(default=25, ge=0, le=1000)
    cooldown_s: int = Field(default=60, ge=0, le=86400)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.xp_max < self.xp_min:
            raise field_error("xp_max", "must be at least xp_min")
        return self


class GamesConfig(Strict):
    # A hangman game nobody guesses in, or a rock-paper-scissors challenge nobody answers, ends after this.
    idle_timeout_s: int = Field(default=600, ge=5, le=86400)


class MusicConfig(Strict):
    # The player leaves its voice channel once its queue has been empty, or nobody else has been in the
    # channel, this long.
    idle_leave_s: int = Field(default=300, ge=10, le=86400)


class EconomyConfig(Strict):
    """The guild's currency as this agent runs it (/daily, /balance, /give, /tip, /leaderboard coins)."""

    currency: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)] = "coins"
    daily_amount: int = Field(default=100, ge=1, le=1_000_000)


class SafetyConfig(Strict):
    """Output safety filter applied to generated text before it is sent."""

    enabled: bool = True
    blocked_words: list[Word] = Field(default_factory=list, max_length=1000)
    mode: Literal["block", "rewrite"] = "block"


class MemoryConfig(Strict):
    """Long-term memory of an AI agent: how recall scores memories and how much of them goes into a prompt.

    A memory's score is the weighted sum of its recency (decay_per_hour ** hours since), importance (1-10)
    and relevance (similarity to the message answered), each min-max normalised over the candidates.
    """

    enabled: bool = True
    recency_weight: float = Field(default=1.0, ge=0.0, le=10.0)
    importance_weight: float = Field(default=1.0, ge=0.0, le=10.0)
    relevance_weight: float = Field(default=1.0, ge=0.0, le=10.0)
    decay_per_hour: float = Field(default=0.995, gt=0.0, lt=1.0)
    top_k: int = Field(default=5, ge=1, le=50)
    # Tokens the recalled memories may take in the prompt, at about 4 characters a token.
    token_budget: int = Field(default=300, ge=20, le=4000)
    # How many nearest memories are re-scored; more finds old important ones at some cost in latency.
    candidates: int = Field(default=50, ge=1, le=500)
    # The agent reflects once the summed importance of memories since its last reflection passes this.
    reflection_threshold: int = Field(default=150, ge=10, le=100_000)
    # The model that rates the importance of new memories and writes reflections (served by the model
    # endpoint of the platform); without one, the importance heuristic and extractive reflection.
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.recency_weight + self.importance_weight + self.relevance_weight == 0:
            raise field_error("relevance_weight", "at least one of the three weights must be above 0")
        if self.candidates < self.top_k:
            raise field_error("candidates", f"must be at least top_k ({self.top_k})")
        return self


class AgentConfig(Strict):
    name: NonEmptyName
    mode: AgentMode
    # The owner's own slug for the agent (e.g. "agent-luna-001"); the platform's id is separate.
    agent_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    description: Annotated[str, StringConstraints(max_length=1000)] = ""
    character: Character | None = None
    ai_config: AIConfig | None = None
    behavior: Behavior = Field(default_factory=Behavior)
    enabled_tools: list[Tool] = Field(default_factory=list, max_length=len(Tool))
    enabled_commands: list[CommandName] = Field(default_factory=list, max_length=MAX_LIST)
    custom_commands: list[CustomCommand] = Field(default_factory=list, max_length=MAX_LIST)
    command_prefix: Annotated[str, StringConstraints(min_length=1, max_length=5)] = "!"
    channels: Channels = Field(default_factory=Channels)
    response_style: ResponseStyle = Field(default_factory=ResponseStyle)
    moderation: ModerationConfig = Field(default_factory=ModerationConfig)
    announcements: AnnouncementsConfig = Field(default_factory=AnnouncementsConfig)
    automod: AutomodConfig | None = None
    leveling: LevelingConfig = Field(default_factory=LevelingConfig)
    games: GamesConfig = Field(default_factory=GamesConfig)
    music: MusicConfig = Field(default_factory=MusicConfig)
    economy: EconomyConfig = Field(default_factory=EconomyConfig)
    safety: SafetyConfig = Field(default_factory=SafetyConfig)
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    knowledge: KnowledgeConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _name_from_character(cls, data: Any) -> Any:
        # A character profile may name the agent only inside its character: the agent takes that name.
        if isinstance(data, dict) and "name" not in data and isinstance(data.get("character"), dict):
            return {**data, "name": data["character"].get("name")}
        return data

    @field_validator("enabled_tools")
    @classmethod
    def _unique_tools(cls, tools: list[Tool]) -> list[Tool]:
        return list(dict.fromkeys(tools))

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        mode = self.mode.value
        if not self.mode.uses_ai and self.ai_config is not None:
            raise field_error("ai_config", f"a {mode} agent has AI disabled; remove ai_config")
        if self.mode.uses_ai and self.ai_config is None:
            raise field_error("ai_config", f"a {mode} agent needs ai_config")
        semi = self.mode is AgentMode.semi_autonomous
        if semi and self.ai_config is not None and self.ai_config.usage is not AIUsage.questions_only:
            raise field_error("ai_config.usage", "a semi_autonomous agent uses AI only for questions")
        if self.automod is not None and Tool.automod not in self.enabled_tools:
            raise field_error("automod", "configured but the automod tool is not in enabled_tools")
        if self.custom_commands and Tool.custom_commands not in self.enabled_tools:
            raise field_error("custom_commands", "defined but the custom_commands tool is not enabled")
        for index, custom_command in enumerate(self.custom_commands):
            if custom_command.name == REPORT_COMMAND:
                raise field_error(
                    f"custom_commands.{index}.name", f"{REPORT_COMMAND!r} is the built-in report"
                )
        if (
            self.ai_config is not None
            and self.ai_config.voice_model
            and Tool.voice_tts not in self.enabled_tools
        ):
            raise field_error("ai_config.voice_model", "set but the voice_tts tool is not in enabled_tools")
        if self.ai_config is not None and self.ai_config.listen and Tool.voice_tts not in self.enabled_tools:
            raise field_error("ai_config.listen", "on but the voice_tts tool is not in enabled_tools")
        if self.knowledge is not None and Tool.knowledge not in self.enabled_tools:
            raise field_error("knowledge", "configured but the knowledge tool is not in enabled_tools")
        if Tool.knowledge in self.enabled_tools and not self.mode.uses_ai:
            # The facts are answered through the model: without AI the tool could do nothing.
            message = f"the knowledge tool answers through the AI, off for a {mode} agent"
            raise field_error("enabled_tools", message)
        self._routines_speakable()
        custom = {command.name for command in self.custom_commands}
        for index, command in enumerate(self.enabled_commands):
            if command in custom:
                continue
            tools = TOOLS_OF_COMMAND.get(command)
            if tools is None:
                raise field_error(f"enabled_commands.{index}", f"unknown command {command!r}")
            if not any(tool in self.enabled_tools for tool in tools):
                message = f"command {command!r} needs the {' or '.join(t.value for t in tools)} tool"
                raise field_error(f"enabled_commands.{index}", message)
        return self

    def _routines_speakable(self) -> None:
        """Without AI a routine or beat says its text as written: it needs one, and topics mean nothing."""
        if self.ai_config is not None:
            return
        for name, routine in self.behavior.proactive_actions.items():
            path = f"behavior.proactive_actions.{name}"
            if routine.topics:
                raise field_error(f"{path}.topics", "topics shape a generated post: they need ai_config")
            if not routine.message_template:
                raise field_error(f"{path}.message_template", "an agent without AI needs the text to post")

    @property
    def ai_enabled(self) -> bool:
        return self.ai_config is not None

    def allows_command(self, command: str) -> bool:
        return command in self.enabled_commands


def channel_label(name_or_id: str) -> str:
    """'#general' and 'general' name the same channel."""
    return name_or_id.removeprefix("#").lower()


def message_content_features(agent: AgentConfig) -> list[str]:
    """The agent's configured features that read what Discord blanks for a bot without the privileged
    MESSAGE_CONTENT intent: the text of guild messages that do not mention it. Slash commands, mentions,
    replies that ping it, DMs, the spam and mention automod rules and leveling (XP counts messages, not
    their words) work without it."""
    features: list[str] = []
    if agent.enabled_commands or agent.custom_commands:
        features.append(f"prefix commands ({agent.command_prefix})")
    if agent.automod is not None:
        rules = {
            "repeats": agent.automod.repeats,
            "links": agent.automod.links,
            "blocked words": agent.automod.blocked_words,
        }
        features += [f"automod {name}" for name, rule in rules.items() if rule.enabled]
    triggers = agent.behavior.response_triggers
    unprompted = {
        "keyword": triggers.keyword_match,
        "conversation": triggers.conversation_flow,
        "random": triggers.random,
        "bored": triggers.bored,
    }
    firing = [name for name, trigger in unprompted.items() if trigger.enabled and trigger.probability > 0]
    if agent.ai_enabled and firing:
        features.append(f"unprompted AI replies ({', '.join(firing)})")
    return features
