"""One event in, its outputs out: routing, guild directory, automod, commands, games, leveling, conversation
state and decisions, over the state tables of the event's partition.

The tables are plain mutable mappings (Faust tables in the worker, dicts in tests), keyed by the encoded keys
of `models/table_keys.py`, which all start with the event's partition key. Values are replaced, never changed
in place, and only written when they change: each write is a changelog record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ValidationError

from models.actions import Action, DeleteMessage, React, Reply, SendMessage, VoiceJoin, VoiceSpeak
from models.agent import AgentConfig, MoodConfig, PersonalityTraits, RoutineAction, SpeechStyle
from models.analytics import StatsRequest
from models.common import error_paths
from models.decisions import Decision, DecisionReason, Priority
from models.deployments import DeployedAgent, DeploymentStatus, RoutingRecord
from models.discord import DiscordMessage, Interaction, PollMessage, ScheduledEventUser, ScheduledEventView
from models.events import (
    DM_PREFIX,
    VOICE_TRACK_END,
    VOICE_TRANSCRIPT,
    EventEnvelope,
    VoiceTrackEnd,
    VoiceTranscript,
)
from models.inference import InferenceRequest, InferenceResult, ReplyTarget
from models.memory import MemoryRequest, RecallQuery
from models.operations import ModerationAudit, OwnerNotification
from models.permissions import ADMINISTRATOR
from models.processor_state import (
    AnnouncementBook,
    ArcBook,
    ArcProgress,
    AutomodWindow,
    EventBook,
    FloorState,
    GameBook,
    GameRecord,
    GuildDirectory,
    IdlePlayers,
    Leaderboard,
    LevelEntry,
    MusicQueue,
    ReplyStreak,
    RoutineLog,
    TrackedUsers,
    UtilityBook,
    Wallet,
    Wallets,
    WarnRecord,
)
from models.state import ChannelContext, ContextMessage, MoodState, Relationship
from models.table_keys import (
    AnnouncementKey,
    ArcKey,
    AutomodKey,
    ContextKey,
    DirectoryKey,
    EconomyKey,
    FloorKey,
    GameBoardKey,
    GameRecordKey,
    GamesKey,
    HostedEventsKey,
    LeaderboardKey,
    LevelKey,
    MoodKey,
    MusicKey,
    RelationshipKey,
    RoutineKey,
    RoutingKey,
    StreakKey,
    TrackedKey,
    UtilityKey,
    VoiceIdleKey,
    WalletKey,
    WarnKey,
)
from models.tiers import TIERS
from models.tools import REPORT_COMMAND, Tool
from processors.analytics import handle_stats
from processors.announcements import Where, handle_announce, post, render, take_due
from processors.arcs import advanced, beat_announcement, counted, current_situation
from processors.automod import check_message
from processors.checkins import check_in_on, mention, regulars_away
from processors.commands import (
    Invocation,
    UsageError,
    command_enabled,
    command_tool,
    options_for,
    parse_prefix_args,
    parse_slash_options,
    split_prefix,
    usage,
)
from processors.context import PENDING_MESSAGE_ID, context_message, record_message
from processors.decide import CONVERSATION_WINDOW, Situation, addressed, decide
from processors.directory import DIRECTORY_EVENTS, age_restricted, apply_directory_event
from processors.economy import GuildWallets, handle_economy
from processors.emit import Emitter, InteractionOrigin, MessageOrigin, Notice, Say
from processors.event_routing import (
    Route,
    context_window,
    find_deployment,
    floor_agents,
    guild_agents,
    newer,
    routes_for,
)
from processors.events import (
    SCHEDULED_EVENT_EVENTS,
    SCHEDULED_EVENT_USER_EVENTS,
    host_events,
    learn_scheduled_event,
    next_event_wake,
    take_answer,
)
from processors.floor import Candidate, channel_limits, rule_floor
from processors.games import GameState, Result, end_idle_games, handle_games, tally
from processors.ids import seeded_rng, stable_id
from processors.knowledge import knowledge_query
from processors.leveling import award_xp, handle_leveling, update_leaderboard
from processors.moderation import enforce_automod, handle_moderation
from processors.mood import MoodEvent, after_event, after_interaction, drift, initial_mood
from processors.music import VoicePresence, check_idle, handle_music, leave_actions, track_ended
from processors.outcome import Outcome
from processors.permissions import granted, member_permissions, parse_permissions
from processors.presence import persona_updates, presence_update
from processors.prompt import (
    PromptFit,
    build_proactive_prompt,
    build_prompt,
    choose_model,
    clean_reply,
    max_tokens_for,
)
from processors.relationships import MetOrder, record_interaction, tipped
from processors.replies import DISCORD_MESSAGE_LIMIT, compose_reply, greeted, mood_emoji
from processors.reports import ReactionAdd, report_command, report_of
from processors.routines import (
    Firing,
    due_firings,
    firings_on,
    has_routines,
    local_days,
    next_wake,
    record_fired,
    situations_on,
    somebody_spoke,
    text_channel,
    voice_channel,
)
from processors.safety import classify, rating_gate, safe_reply
from processors.sentiment import sentiment
from processors.speech import (
    heard_message,
    joins_on_connect,
    speaks_in_voice,
    spoken_text,
    voice_id,
    voice_joins,
)
from processors.styling import EMOJI_BY_MOOD
from processors.traits import greeting_name, reaction_chance, reply_tokens, temperament, temperature, warmth
from processors.trivia import trivia_board
from processors.utility import (
    handle_utility,
    poll_results,
    reminder_notice,
    render_custom,
    take_due_reminders,
)
from streams.catalog import (
    AGENT_DECISIONS,
    ANALYTICS_REQUESTS,
    DISCORD_ACTIONS,
    INFERENCE_LANES,
    MODERATION_AUDIT,
    OWNER_NOTIFICATIONS,
    TopicSpec,
)
from streams.sealing import DataKeys, open_envelope

APPLICATION_COMMAND = 2
# Days of routine firings the engine remembers (two per deployment with routines are in use at a time).
FIRINGS_REMEMBERED = 100_000
V = TypeVar("V")
ViewT = TypeVar("ViewT", bound=BaseModel)


class MalformedEvent(ValueError):
    """Dispatch data that lacks what its event type needs; the message names the fields."""


def _view(model: type[ViewT], data: dict[str, Any]) -> ViewT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = ", ".join(f"data.{path}" for path in error_paths(exc))
        raise MalformedEvent(f"{model.__name__}: invalid {fields}: {exc.errors()[0]['msg']}") from None


@dataclass
class Tables:
    """The processors' state, by table, under the encoded key of each table's key class."""

    routing: MutableMapping[str, RoutingRecord]  # RoutingKey
    directory: MutableMapping[str, GuildDirectory]  # DirectoryKey
    context: MutableMapping[str, ChannelContext]  # ContextKey
    relationships: MutableMapping[str, Relationship]  # RelationshipKey
    moods: MutableMapping[str, MoodState]  # MoodKey
    music: MutableMapping[str, MusicQueue]  # MusicKey
    # Since when each music player in voice has been idle (written by the idle voice timer only).
    voice_idle: MutableMapping[str, IdlePlayers]  # VoiceIdleKey
    warns: MutableMapping[str, WarnRecord]  # WarnKey
    levels: MutableMapping[str, LevelEntry]  # LevelKey
    leaderboards: MutableMapping[str, Leaderboard]  # LeaderboardKey
    automod: MutableMapping[str, AutomodWindow]  # AutomodKey
    streaks: MutableMapping[str, ReplyStreak]  # StreakKey
    utility: MutableMapping[str, UtilityBook]  # UtilityKey
    # Whom each deployment keeps a relationship with, to forget the least recent past max_tracked_users.
    tracked: MutableMapping[str, TrackedUsers]  # TrackedKey
    games: MutableMapping[str, GameBook]  # GamesKey
    game_records: MutableMapping[str, GameRecord]  # GameRecordKey
    game_boards: MutableMapping[str, Leaderboard]  # GameBoardKey
    # The firings of routines and story-arc beats each deployment already made.
    routines: MutableMapping[str, RoutineLog]  # RoutineKey
    floor: MutableMapping[str, FloorState]  # FloorKey
    # Each member's coins; the guild's as one value in the layout before (read, and written only to erase).
    wallets: MutableMapping[str, Wallet]  # WalletKey
    economy: MutableMapping[str, Wallets]  # EconomyKey
    # Where the story arcs with conditional beats stand.
    arcs: MutableMapping[str, ArcBook]  # ArcKey
    # The announcements scheduled for later.
    announcements: MutableMapping[str, AnnouncementBook]  # AnnouncementKey
    # The occurrences of the deployments' hosted events under way or lately done, trivia rounds included.
    hosted_events: MutableMapping[str, EventBook]  # HostedEventsKey


@dataclass
class Outputs:
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    audits: list[ModerationAudit] = field(default_factory=list)
    requests: list[InferenceRequest] = field(default_factory=list)
    stats: list[StatsRequest] = field(default_factory=list)
    notifications: list[OwnerNotification] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(
            self.actions or self.decisions or self.audits or self.requests or self.stats or self.notifications
        )

    def destinations(self, key: str) -> list[tuple[TopicSpec, str, Any]]:
        """(topic, record key, payload) of each output; `key` is the cause's partition key. Actions are keyed
        by bot (the gateway that holds the bot consumes them), inference requests by deployment."""
        return [
            *((DISCORD_ACTIONS, action.bot_id, action) for action in self.actions),
            *((AGENT_DECISIONS, key, decision) for decision in self.decisions),
            *((MODERATION_AUDIT, audit.guild_id, audit) for audit in self.audits),
            *((INFERENCE_LANES[r.lane], str(r.deployment_id), r) for r in self.requests),
            *((ANALYTICS_REQUESTS, stats.guild_id, stats) for stats in self.stats),
            *((OWNER_NOTIFICATIONS, str(n.owner_id), n) for n in self.notifications),
        ]

    async def records(self, key: str, keys: DataKeys) -> list[tuple[TopicSpec, str, bytes]]:
        """The destinations' records as their topics carry them, personal fields sealed
        (streams/catalog.py)."""
        if not self:
            return []  # most chatter
        return [
            (spec, record_key, await spec.sealed_value(payload, keys))
            for spec, record_key, payload in self.destinations(key)
        ]


# The people present: the message's author and the authors of this many latest messages of the channel.
PRESENT_WINDOW = 10


def memory_request(
    agent: AgentConfig, deployment_id: UUID, message: DiscordMessage, context: ChannelContext, at: datetime
) -> MemoryRequest | None:
    """What the inference worker recalls for this reply: memories the message's channel may see."""
    text = message.content.strip()
    if not agent.memory.enabled or not text:
        return None
    recent = [m.author_id for m in context.messages[-PRESENT_WINDOW:] if not m.author_is_bot]
    query = RecallQuery(
        deployment_id=deployment_id,
        guild_id=message.guild_id,
        channel_id=message.channel_id,
        text=text[:4000],
        people=list(dict.fromkeys([message.author.id, *recent])),
        at=at,
    )
    return MemoryRequest(query=query, config=agent.memory)


def event_time(envelope: EventEnvelope, timestamp: str) -> datetime:
    """Discord's timestamp of the message when it has one, else when the gateway received the event."""
    if timestamp:
        try:
            parsed = datetime.fromisoformat(timestamp)
        except ValueError:
            return envelope.received_at
        if parsed.tzinfo is not None:
            return parsed
    return envelope.received_at


def _store(table: MutableMapping[str, V], key: str, value: V | None) -> None:
    if value is not None:
        table[key] = value


def _traits(agent: AgentConfig) -> PersonalityTraits:
    return agent.character.personality if agent.character is not None else PersonalityTraits()


def _speech_style(agent: AgentConfig) -> SpeechStyle:
    return agent.character.speech_style if agent.character is not None else SpeechStyle()


def _message_text(context: ChannelContext | None, message_id: str | None) -> str:
    """The text of a message the channel context still holds; empty when it is not there."""
    if context is None or message_id is None:
        return ""
    return next((m.content for m in context.messages if m.message_id == message_id), "")


def _story(agent: AgentConfig, at: datetime, progress: dict[str, ArcProgress]) -> list[str]:
    """The current beats of the agent's story arcs, on its local date at `at`: those of the arcs with
    conditions from their `progress` (by arc name) as it stands at `at`."""
    behavior = agent.behavior
    schedule = behavior.schedule
    today = at.astimezone(schedule.zone).date()
    waiting = [
        told
        for arc in behavior.story_arcs
        if arc.conditional
        and (told := current_situation(arc, advanced(arc, progress.get(arc.name), at, schedule), today))
    ]
    return [*situations_on(behavior.story_arcs, today), *waiting]


def _shown_prefix(agent: AgentConfig, invocation: Invocation) -> str:
    """How the invoker called the command: "/" for a slash command, else the agent's prefix."""
    return "/" if isinstance(invocation.origin, InteractionOrigin) else agent.command_prefix


def _asleep(wakes: dict[str, tuple[int, datetime]], key: str, record: RoutingRecord, now: datetime) -> bool:
    """A timer has nothing due for the key before the wake-up time it computed under the same routing."""
    wake = wakes.get(key)
    return wake is not None and wake[0] == record.version and now < wake[1]


class Engine:
    def __init__(
        self,
        tables: Tables,
        seed: Callable[[str], RoutingRecord | None] | None = None,
        fit: PromptFit = PromptFit.full,
    ) -> None:
        """`seed(key)` hands over, once per key, configuration known before the worker started. `fit`: the
        prompts suit the models the inference pool serves (small: the embedded model)."""
        self.tables = tables
        self._seed = seed
        self.fit = fit
        # The routine firings of a (key, routing version, deployment, local day), computed once: the timer
        # ticks every second. Derived from the configuration, so never table state.
        self._firings: dict[tuple[str, int, UUID, date], list[Firing]] = {}
        # Per key, the routing version and the moment before which its routines have nothing due: most
        # ticks then cost one table read per key. Dropped when the key's arc progress changes; the worker
        # forgets them all when its partitions change (another worker may have moved the state meanwhile).
        self._wakes: dict[str, tuple[int, datetime]] = {}
        # The same for the hosted events: dropped when the key's events book changes outside the timer.
        self._event_wakes: dict[str, tuple[int, datetime]] = {}
        # The mood configuration each agent configuration held lives (`mood_config`), by the configuration's
        # id: an entry holds its configuration, so that id is not another's while cached. Emptied when a
        # routing record is replaced, which replaces its configurations (they are never changed in place).
        self._mood_configs: dict[int, tuple[AgentConfig, MoodConfig]] = {}
        # By tracked-users key: whom the deployment met least recently, once it has had to forget someone.
        # Forgotten with the wake-up times.
        self._met_orders: dict[str, MetOrder] = {}
        # By partition key: the members holding a wallet, for the economy's leaderboard, built from the
        # wallets table when first needed, kept as the engine writes wallets and forgotten with the wake-up
        # times. A member erased since is dropped when found missing.
        self._wallet_holders: dict[str, set[str]] | None = None

    # Configuration ------------------------------------------------------------------------------------

    def apply_routing(self, record: RoutingRecord) -> bool:
        """Store a newer routing record; False when it is not newer than the one held."""
        routing_key = RoutingKey(record.key).encode()
        if not newer(self.tables.routing.get(routing_key), record):
            return False
        self.tables.routing[routing_key] = record
        self._mood_configs.clear()
        return True

    def routing(self, key: str) -> RoutingRecord | None:
        if self._seed is not None:
            seeded = self._seed(key)
            if seeded is not None:
                self.apply_routing(seeded)
        return self.tables.routing.get(RoutingKey(key).encode())

    def deploy(self, record: RoutingRecord) -> Outputs:
        """Apply a routing record from the deployments topic; the persona updates it calls for."""
        previous = self.tables.routing.get(RoutingKey(record.key).encode())
        if not self.apply_routing(record):
            return Outputs()
        directory = self.tables.directory.get(DirectoryKey(record.key).encode())
        return Outputs(
            actions=[*persona_updates(record, previous), *voice_joins(record, previous, directory)]
        )

    def remove_routing(self, key: str) -> None:
        """A tombstone on the compacted deployments topic: nothing is deployed under the key any more."""
        self.tables.routing.pop(RoutingKey(key).encode(), None)

    # Events --------------------------------------------------------------------------------------------

    def concerns(self, envelope: EventEnvelope) -> bool:
        """Whether the event changes the guild's directory or reaches a deployment, decided on its clear
        fields alone: an event that concerns no agent is never opened (see `opened_for`)."""
        if envelope.type in DIRECTORY_EVENTS:
            return True
        return bool(routes_for(self.routing(envelope.key), envelope, None))

    async def opened_for(self, envelope: EventEnvelope, keys: DataKeys) -> EventEnvelope | None:
        """The event as `handle_event` takes it: its sealed part opened when it concerns an agent; None when
        it concerns none, or when its subject was erased (then there is nothing left to act on)."""
        if envelope.sealed is None:
            return envelope
        return await open_envelope(envelope, keys) if self.concerns(envelope) else None

    def handle_event(self, envelope: EventEnvelope) -> Outputs:
        """Raises MalformedEvent when the dispatch data lacks what the event type needs."""
        kind = envelope.type
        if kind in DIRECTORY_EVENTS:
            if envelope.guild_id is not None:
                directory_key = DirectoryKey(envelope.key).encode()
                try:
                    updated = apply_directory_event(
                        self.tables.directory.get(directory_key), envelope.guild_id, kind, envelope.data
                    )
                except ValidationError as exc:
                    raise MalformedEvent(f"{kind}: invalid {', '.join(error_paths(exc))}") from None
                _store(self.tables.directory, directory_key, updated)
                if kind == "GUILD_CREATE" and updated is not None:
                    joins = joins_on_connect(
                        self.routing(envelope.key), envelope.bot_id, updated, envelope.event_id
                    )
                    return Outputs(actions=list(joins))
            return Outputs()
        if kind == "MESSAGE_CREATE":
            return self._message(envelope)
        if kind == VOICE_TRACK_END:
            return self._track_end(envelope)
        if kind == VOICE_TRANSCRIPT:
            return self._transcript(envelope)
        if kind == "INTERACTION_CREATE":
            return self._interaction(envelope)
        if kind == "MESSAGE_UPDATE":
            return self._poll_closed(envelope)
        if kind == "GUILD_MEMBER_ADD":
            return self._member_joined(envelope)
        if kind == "MESSAGE_REACTION_ADD":
            reaction = _view(ReactionAdd, envelope.data)
            report = report_of(reaction, envelope.bot_id, self.routing(envelope.key))
            return Outputs(notifications=[report] if report is not None else [])
        if kind in SCHEDULED_EVENT_EVENTS or kind in SCHEDULED_EVENT_USER_EVENTS:
            self._scheduled_event(envelope)
        return Outputs()

    def _routes(
        self, envelope: EventEnvelope, record: RoutingRecord | None = None
    ) -> tuple[list[Route], GuildDirectory | None]:
        """The deployments the event reaches and the guild's directory; `record`: the key's routing, when the
        caller has read it already."""
        key = envelope.key
        directory = (
            self.tables.directory.get(DirectoryKey(key).encode()) if envelope.guild_id is not None else None
        )
        return routes_for(record if record is not None else self.routing(key), envelope, directory), directory

    def _member_joined(self, envelope: EventEnvelope) -> Outputs:
        routes, _ = self._routes(envelope)
        at = envelope.received_at
        out = Outputs()
        for route in routes:
            agent = route.deployed.agent
            if agent.ai_enabled:
                mood = self.mood_for(envelope.key, route.deployed, at)
                changed = after_event(mood, self.mood_config(agent), MoodEvent.member_joined, at)
                self.set_mood(envelope, route.deployed, mood, changed, out)
        return out

    def _track_end(self, envelope: EventEnvelope) -> Outputs:
        """The edge finished (or cut) a track of a bot's player: the queue of its deployment moves on."""
        end = _view(VoiceTrackEnd, envelope.data)
        record = self.routing(envelope.key)
        deployed = next(
            (
                d
                for d in (record.deployments if record is not None else [])
                if d.deployment.bot_id == envelope.bot_id and d.deployment.guild_id == end.guild_id
            ),
            None,
        )
        if deployed is None:
            return Outputs()  # undeployed while the track played
        music_key = MusicKey(envelope.key, deployed.deployment.deployment_id).encode()
        emit = Emitter(envelope.event_id, deployed, end.guild_id, None)
        ended = track_ended(self.tables.music.get(music_key), end, emit)
        _store(self.tables.music, music_key, ended.state)
        return Outputs(actions=ended.actions)

    def _message(self, envelope: EventEnvelope, heard_by: DeployedAgent | None = None) -> Outputs:
        """A message as each deployment routed to it sees it; one `heard_by` a listening agent in its voice
        channel (a transcript) is seen by that agent alone, there, whatever its text channels are."""
        message = _view(DiscordMessage, envelope.data)
        key = envelope.key
        record = self.routing(key)
        routes, directory = self._routes(envelope, record)
        if heard_by is not None:
            routes = [Route(heard_by, in_channel=True)]
        if not routes:
            return Outputs()
        if message.guild_id is None and envelope.guild_id is not None:
            message = message.model_copy(update={"guild_id": envelope.guild_id})
        at = event_time(envelope, message.timestamp)
        context_key = ContextKey(key, message.channel_id).encode()
        context = self.tables.context.get(context_key)
        if any(route.in_channel and route.deployed.agent.ai_enabled for route in routes):
            limit = context_window(record)
            updated = record_message(context, message.channel_id, context_message(message, at), limit)
            if updated is not None:
                self.tables.context[context_key] = updated
                context = updated
        floor = self._floor(envelope, record, message, at, context, directory)
        out = Outputs()
        for route in routes:
            if not message.author.bot:
                self._count_arc_message(key, route.deployed, message, at, directory)
            _MessageTurn(self, envelope, route, message, at, context, directory, floor, out).run()
        out.actions.extend(self._trivia_answer(key, record, message, directory))
        return out

    def _transcript(self, envelope: EventEnvelope) -> Outputs:
        """What a member said in voice, naming a listening agent: handled as a message mentioning it."""
        transcript = _view(VoiceTranscript, envelope.data)
        routes, _ = self._routes(envelope)
        for route in routes:
            heard = heard_message(transcript, envelope.event_id, route.deployed)
            if heard is not None:
                data = heard.model_dump(mode="json")
                as_message = envelope.model_copy(update={"type": "MESSAGE_CREATE", "data": data})
                # One bot holds one agent in a guild: the first that heard its name answers.
                return self._message(as_message, heard_by=route.deployed)
        return Outputs()

    def _trivia_answer(
        self,
        key: str,
        record: RoutingRecord | None,
        message: DiscordMessage,
        directory: GuildDirectory | None,
    ) -> list[Action]:
        """The message judged by the trivia rounds running in its channel."""
        book = self.tables.hosted_events.get(HostedEventsKey(key).encode())
        if book is None or record is None:
            return []
        updated, actions = take_answer(book, record.deployments, directory, message)
        self._store_event_book(key, updated)
        return actions

    def _scheduled_event(self, envelope: EventEnvelope) -> None:
        """What Discord says of a scheduled event: the id of one an agent made, who is interested, cancels."""
        book_key = HostedEventsKey(envelope.key).encode()
        book = self.tables.hosted_events.get(book_key)
        record = self.routing(envelope.key)
        if book is None or record is None:
            return
        kind = envelope.type
        view: ScheduledEventView | ScheduledEventUser
        if kind in SCHEDULED_EVENT_USER_EVENTS:
            view = _view(ScheduledEventUser, envelope.data)
        else:
            view = _view(ScheduledEventView, envelope.data)
        self._store_event_book(envelope.key, learn_scheduled_event(book, record.deployments, kind, view))

    def _store_event_book(self, key: str, book: EventBook | None) -> None:
        """A change to the key's events book outside the timer (None: unchanged): a step may be due sooner."""
        if book is not None:
            self._event_wakes.pop(key, None)
            self.tables.hosted_events[HostedEventsKey(key).encode()] = book

    def _poll_closed(self, envelope: EventEnvelope) -> Outputs:
        """Discord sends a poll's message again with the final results when the poll closes: the bot that
        asked announces them, in reply to the poll."""
        message = _view(PollMessage, envelope.data)
        say = poll_results(message)
        if say is None or message.author is None or message.author.id != envelope.bot_id:
            return Outputs()
        routes, _ = self._routes(envelope)
        route = next((r for r in routes if Tool.utility in r.deployed.agent.enabled_tools), None)
        if route is None:
            return Outputs()
        # Named after the poll, not the update: a second update with the final results repeats these ids.
        emit = Emitter(f"poll:{message.id}", route.deployed, envelope.guild_id, None)
        return Outputs(actions=[emit.answer(say, MessageOrigin(message.channel_id, message.id))])

    def _floor(
        self,
        envelope: EventEnvelope,
        record: RoutingRecord | None,
        message: DiscordMessage,
        at: datetime,
        context: ChannelContext | None,
        directory: GuildDirectory | None,
    ) -> dict[UUID, Decision]:
        """The floor's ruling on a guild message over every AI agent of the channel, by deployment: made on
        the first copy of the message that arrives (whichever bot delivered it), remembered for the others."""
        if envelope.guild_id is None:
            return {}  # a DM has one agent
        key = envelope.key
        agents = floor_agents(record, envelope.guild_id, message.channel_id, directory)
        candidates = [
            self._candidate(envelope, deployed, message, at, context, directory)
            for deployed in agents
            if deployed.deployment.bot_id != message.author.id
        ]
        if not candidates:
            return {}
        floor_key = FloorKey(key, message.channel_id).encode()
        # The author's limits count too: an agent's own settings bound the banter it starts.
        limits = channel_limits([deployed.agent.behavior.floor for deployed in agents])
        ruling, state = rule_floor(
            self.tables.floor.get(floor_key), message.id, not message.author.bot, candidates, limits, at
        )
        self.tables.floor[floor_key] = state
        return {decision.deployment_id: decision for decision in ruling.decisions}

    def _candidate(
        self,
        envelope: EventEnvelope,
        deployed: DeployedAgent,
        message: DiscordMessage,
        at: datetime,
        context: ChannelContext | None,
        directory: GuildDirectory | None,
    ) -> Candidate:
        """What one agent of the channel decides alone about the message, and what ranks it on the floor."""
        deployment_id = deployed.deployment.deployment_id
        streak = self.tables.streaks.get(StreakKey(envelope.key, deployment_id, message.channel_id).encode())
        # A person speaking ends every streak.
        prior = streak.count if streak is not None and message.author.bot else 0
        known = self.relationship(envelope.key, deployed, message.author.id)
        situation = Situation(
            event_id=envelope.event_id,
            deployed=deployed,
            message=message,
            context=context,
            mood=self.mood_for(envelope.key, deployed, at),
            streak=prior,
            at=at,
            relationship=known,
            age_restricted=age_restricted(directory, message.channel_id),
        )
        return Candidate(
            decision=decide(situation),
            affinity=known.affinity
            if known is not None
            else Relationship(user_id=message.author.id).affinity,
            extraversion=_traits(deployed.agent).extraversion,
            config=deployed.agent.behavior.floor,
        )

    def _interaction(self, envelope: EventEnvelope) -> Outputs:
        interaction = _view(Interaction, envelope.data)
        if interaction.type != APPLICATION_COMMAND or interaction.data is None:
            return Outputs()
        user = interaction.invoker
        if user is None:
            raise MalformedEvent("Interaction: data.member.user or data.user is required")
        routes, directory = self._routes(envelope)
        if not routes:
            return Outputs()
        name = interaction.data.name.lower()
        route = next((r for r in routes if command_enabled(r.deployed.agent, name)), routes[0])
        agent = route.deployed.agent
        emit = Emitter(envelope.event_id, route.deployed, envelope.guild_id, user.id)
        origin = InteractionOrigin(interaction.id, interaction.token)
        out = Outputs()
        specs = options_for(name, agent.custom_commands)
        if not command_enabled(agent, name) or specs is None:
            out.actions.append(emit.answer(Say(f"/{name} is not enabled here.", ephemeral=True), origin))
            return out
        if not route.in_channel:
            out.actions.append(
                emit.answer(Say(f"/{name} is not available in this channel.", ephemeral=True), origin)
            )
            return out
        member = interaction.member
        channel_id = interaction.channel_id or envelope.channel_id
        if channel_id is None:
            raise MalformedEvent("Interaction: data.channel_id is required")
        try:
            options = parse_slash_options(specs, interaction.data.options)
        except UsageError as error:
            say = Say(f"{error}. Usage: {usage(name, specs, '/')}", ephemeral=True)
            out.actions.append(emit.answer(say, origin))
            return out
        invocation = Invocation(
            name=name,
            options=options,
            user=user,
            channel_id=channel_id,
            guild_id=envelope.guild_id,
            permissions=parse_permissions(member.permissions if member is not None else None),
            role_ids=tuple(member.roles) if member is not None else (),
            named_member_roles={
                user_id: tuple(named.roles)
                for user_id, named in (
                    interaction.data.resolved.members if interaction.data.resolved else {}
                ).items()
            },
            at=envelope.received_at,
            origin=origin,
        )
        self.run_command(envelope.key, route.deployed, invocation, emit, directory, out)
        return out

    # Commands ------------------------------------------------------------------------------------------

    def run_command(
        self,
        key: str,
        deployed: DeployedAgent,
        invocation: Invocation,
        emit: Emitter,
        directory: GuildDirectory | None,
        out: Outputs,
    ) -> None:
        agent = deployed.agent
        deployment_id = deployed.deployment.deployment_id
        name = invocation.name
        tool = command_tool(agent, invocation)
        custom = next((c for c in agent.custom_commands if c.name == name), None)
        outcome: Outcome[Any]
        if name == REPORT_COMMAND:
            context = self.tables.context.get(ContextKey(key, invocation.channel_id).encode())
            say, report = report_command(invocation, deployed, context)
            out.actions.append(emit.answer(say, invocation.origin))
            out.notifications.extend([report] if report is not None else [])
            return
        if custom is not None:
            guild_name = directory.name if directory is not None else ""
            outcome = Outcome(render_custom(custom, invocation, agent.name, guild_name))
        elif tool is Tool.music:
            in_voice = directory.voice_channel_of if directory is not None else {}
            presence = VoicePresence(
                bot_channel=in_voice.get(deployed.deployment.bot_id),
                member_channel=in_voice.get(invocation.user.id),
            )
            music_key = MusicKey(key, deployment_id).encode()
            music = handle_music(invocation, self.tables.music.get(music_key), emit, presence)
            _store(self.tables.music, music_key, music.state)
            outcome = music
        elif tool is Tool.moderation:
            target = invocation.text("user")
            warn_key = WarnKey(key, deployment_id, target).encode()
            record = self.tables.warns.get(warn_key)
            moderation = handle_moderation(
                invocation,
                record,
                emit,
                directory,
                agent.moderation.escalation,
                _shown_prefix(agent, invocation),
            )
            _store(self.tables.warns, warn_key, moderation.state)
            outcome = moderation
        elif tool is Tool.utility:
            utility_key = UtilityKey(key).encode()
            utility = handle_utility(invocation, self.tables.utility.get(utility_key), emit)
            _store(self.tables.utility, utility_key, utility.state)
            outcome = utility
        elif tool is Tool.leveling:
            target = invocation.text("user") or invocation.user.id
            entry = self.tables.levels.get(LevelKey(key, deployment_id, target).encode())
            leaderboard = self.tables.leaderboards.get(LeaderboardKey(key, deployment_id).encode())
            outcome = Outcome(handle_leveling(invocation, entry, leaderboard))
        elif tool is Tool.games:
            outcome = self._play(key, deployed, invocation, emit)
        elif tool is Tool.economy:
            outcome = self._economy(key, deployed, invocation, emit)
        elif tool is Tool.analytics:
            stats = handle_stats(invocation, emit, _shown_prefix(agent, invocation))
            if isinstance(stats, StatsRequest):
                out.stats.append(stats)
                return
            outcome = Outcome(stats)
        elif tool is Tool.announcements:
            outcome = self._announce(key, deployed, invocation, emit, directory)
        else:
            raise ValueError(f"no handler for command {name!r}")
        if outcome.say is not None:
            out.actions.append(emit.answer(outcome.say, invocation.origin))
        out.actions.extend(outcome.actions)
        out.audits.extend(outcome.audits)

    def _announce(
        self,
        key: str,
        deployed: DeployedAgent,
        invocation: Invocation,
        emit: Emitter,
        directory: GuildDirectory | None,
    ) -> Outcome[AnnouncementBook]:
        agent = deployed.agent
        config = agent.announcements
        channel_id = (
            text_channel(deployed, config.channel, directory) if config.channel else invocation.channel_id
        )
        shown = "/" if isinstance(invocation.origin, InteractionOrigin) else agent.command_prefix
        where = Where(channel_id, config, agent.behavior.schedule.zone, shown)
        announcements_key = AnnouncementKey(key).encode()
        outcome = handle_announce(
            invocation,
            self.tables.announcements.get(announcements_key),
            emit,
            where,
            server=directory.name if directory is not None else "",
            channel_type=directory.channel_types.get(channel_id) if directory and channel_id else None,
        )
        _store(self.tables.announcements, announcements_key, outcome.state)
        return outcome

    def _play(self, key: str, deployed: DeployedAgent, invocation: Invocation, emit: Emitter) -> Outcome[Any]:
        """A game command over the guild's running games; the results it decides go to the players' records
        and the wins board. `/trivia` shows the guild's trivia points, won at its hosted trivia nights."""
        if invocation.name == "trivia":
            book = self.tables.hosted_events.get(HostedEventsKey(key).encode())
            return Outcome(trivia_board(book.points if book is not None else {}))
        deployment_id = deployed.deployment.deployment_id
        games_key = GamesKey(key).encode()
        board_key = GameBoardKey(key, deployment_id).encode()
        mood = self.mood_for(key, deployed, invocation.at)
        state = GameState(
            book=self.tables.games.get(games_key),
            record=self.tables.game_records.get(
                GameRecordKey(key, deployment_id, invocation.user.id).encode()
            ),
            board=self.tables.game_boards.get(board_key),
            mood=mood,
            mood_emoji=mood_emoji(deployed.agent, mood),
        )
        rng = seeded_rng(emit.cause_id, deployment_id, "game")
        played = handle_games(invocation, state, emit, rng, deployed.agent.games.idle_timeout_s)
        _store(self.tables.games, games_key, played.state)
        for user_id, result in played.results:
            record_key = GameRecordKey(key, deployment_id, user_id).encode()
            record = tally(self.tables.game_records.get(record_key), result, emit.cause_id)
            if record is None:
                continue  # a redelivered event was counted the first time
            self.tables.game_records[record_key] = record
            if result is Result.win:
                board = update_leaderboard(self.tables.game_boards.get(board_key), user_id, record.wins)
                _store(self.tables.game_boards, board_key, board)
        return played

    def _economy(
        self, key: str, deployed: DeployedAgent, invocation: Invocation, emit: Emitter
    ) -> Outcome[dict[str, Wallet]]:
        """An economy command over the guild's wallets; a tip also warms the tipped agent to the tipper and
        has it say thanks."""
        agents = {d.deployment.bot_id: d for d in guild_agents(self.routing(key), invocation.guild_id)}
        wallets = self.tables.wallets

        def own(user_id: str) -> Wallet | None:
            return wallets.get(WalletKey(key, user_id).encode())

        guild = GuildWallets(
            own, lambda: self._wallets_held(key), self.tables.economy.get(EconomyKey(key).encode())
        )
        outcome, tip = handle_economy(invocation, guild, deployed.agent.economy, emit.cause_id, agents)
        for user_id, wallet in (outcome.state or {}).items():
            wallets[WalletKey(key, user_id).encode()] = wallet
            if self._wallet_holders is not None:
                self._wallet_holders.setdefault(key, set()).add(user_id)
        if tip is None or outcome.state is None:
            return outcome
        tipper = invocation.user
        before = self.relationship(key, tip.agent, tipper.id) or Relationship(user_id=tipper.id)
        warmer = tipped(
            before,
            tip.agent.agent.behavior.relationships,
            _traits(tip.agent.agent),
            tip.amount,
            invocation.at,
        )
        if warmer is not None:
            self.store_relationship(key, tip.agent, warmer, invocation.at)
        same = tip.agent.deployment.deployment_id == deployed.deployment.deployment_id
        thanks_from = emit if same else Emitter(emit.cause_id, tip.agent, invocation.guild_id, tipper.id)
        thanks = thanks_from.send(tip.thanks, invocation.channel_id)
        return Outcome(outcome.say, [*outcome.actions, thanks], outcome.audits, outcome.state)

    def _wallets_held(self, key: str) -> Iterator[tuple[str, Wallet]]:
        """The key's members with a wallet of their own, and their wallets."""
        if self._wallet_holders is None:
            # Once after each change of partitions: one pass over the worker's wallets, every key's at once.
            self._wallet_holders = {}
            for encoded in self.tables.wallets:
                held = WalletKey.parse(encoded)
                self._wallet_holders.setdefault(held.partition_key, set()).add(held.user_id)
        holders = self._wallet_holders.get(key, set())
        for user_id in list(holders):
            wallet = self.tables.wallets.get(WalletKey(key, user_id).encode())
            if wallet is None:
                holders.discard(user_id)  # erased
            else:
                yield user_id, wallet

    # Conversation state --------------------------------------------------------------------------------

    def store_relationship(
        self, key: str, deployed: DeployedAgent, updated: Relationship, at: datetime
    ) -> None:
        """Store a relationship met at `at`, forgetting the least recently met users past
        `max_tracked_users`."""
        deployment_id = deployed.deployment.deployment_id
        relationships = self.tables.relationships

        def last_met(user_id: str) -> datetime | None:
            if user_id == updated.user_id:
                return at
            known = relationships.get(RelationshipKey(key, deployment_id, user_id).encode())
            # Relationships stored before `last_met` was kept: their last interaction.
            return None if known is None else known.last_met or known.last_interaction

        updated_key = RelationshipKey(key, deployment_id, updated.user_id).encode()
        tracked_key = TrackedKey(key, deployment_id).encode()
        held = self.tables.tracked.get(tracked_key)
        order = self._met_orders.get(tracked_key)
        if order is None or order.follows is not held:
            order = self._met_orders[tracked_key] = MetOrder(held)
        tracked, forgotten = order.track(
            None if updated_key in relationships else updated.user_id,
            deployed.agent.behavior.relationships.max_tracked_users,
            last_met,
        )
        if tracked is not None:
            self.tables.tracked[tracked_key] = tracked
        for user_id in forgotten:
            relationships.pop(RelationshipKey(key, deployment_id, user_id).encode(), None)
        if updated.user_id not in forgotten:
            relationships[updated_key] = updated

    @staticmethod
    def _mood_key(key: str, deployed: DeployedAgent) -> str:
        return MoodKey(key, deployed.deployment.deployment_id).encode()

    def mood_config(self, agent: AgentConfig) -> MoodConfig:
        """The mood configuration as the agent's temperament lives it, computed once per configuration."""
        held = self._mood_configs.get(id(agent))
        if held is None:
            held = self._mood_configs[id(agent)] = (agent, temperament(agent.behavior.mood, _traits(agent)))
        return held[1]

    def _mood(self, mood_key: str, agent: AgentConfig, at: datetime) -> MoodState:
        config = self.mood_config(agent)
        return drift(self.tables.moods.get(mood_key) or initial_mood(config), config, at)

    def mood_for(self, key: str, deployed: DeployedAgent, at: datetime) -> MoodState:
        return self._mood(self._mood_key(key, deployed), deployed.agent, at)

    def set_mood(
        self,
        envelope: EventEnvelope,
        deployed: DeployedAgent,
        before: MoodState,
        after: MoodState,
        out: Outputs,
    ) -> None:
        """Store the mood; a new mood shows in the bot's presence."""
        self.tables.moods[self._mood_key(envelope.key, deployed)] = after
        config = deployed.agent.behavior.mood
        if config.enabled and after.mood is not before.mood:
            out.actions.append(
                presence_update(deployed, after.mood, config, envelope.event_id, envelope.guild_id)
            )

    def relationship(self, key: str, deployed: DeployedAgent, user_id: str) -> Relationship | None:
        relationship_key = RelationshipKey(key, deployed.deployment.deployment_id, user_id)
        return self.tables.relationships.get(relationship_key.encode())

    # Inference results ---------------------------------------------------------------------------------

    def handle_result(self, result: InferenceResult, key: str) -> Outputs:
        """The reply's actions, and the reply recorded in the channel context so conversation flow sees it."""
        deployed = find_deployment(self.routing(key), str(result.deployment_id))
        if deployed is None:
            return Outputs()  # undeployed while the model was thinking
        agent = deployed.agent
        at = result.completed_at
        author_id = result.target.author_id
        relationship = self.relationship(key, deployed, author_id) if author_id is not None else None
        affinity = relationship.affinity if relationship is not None else None
        channel_id = result.target.channel_id
        context_key = ContextKey(key, channel_id).encode()
        context = self.tables.context.get(context_key)
        if result.text:
            asked = _message_text(context, result.target.message_id)
            result = result.model_copy(update={"text": clean_reply(result.text, agent.name, asked)})
        actions = compose_reply(result, agent, self.mood_for(key, deployed, at), affinity)
        actions.extend(self._spoken(key, deployed, result, actions))
        limit = context_window(self.routing(key))
        for action in actions:
            if isinstance(action, SendMessage | Reply) and action.content:
                entry = ContextMessage(
                    message_id=PENDING_MESSAGE_ID,
                    author_id=deployed.deployment.bot_id,
                    author_name=agent.name,
                    author_is_bot=True,
                    content=action.content,
                    at=at,
                )
                context = record_message(context, channel_id, entry, limit) or context
        _store(self.tables.context, context_key, context)
        return Outputs(actions=actions)

    def _spoken(
        self, key: str, deployed: DeployedAgent, result: InferenceResult, actions: list[Action]
    ) -> list[Action]:
        """A speaking agent in a voice channel also says its written reply there, in one utterance."""
        if key.startswith(DM_PREFIX) or not speaks_in_voice(deployed):
            return []
        directory = self.tables.directory.get(DirectoryKey(key).encode())
        channel = (
            directory.voice_channel_of.get(deployed.deployment.bot_id) if directory is not None else None
        )
        written = " ".join(a.content for a in actions if isinstance(a, SendMessage | Reply))
        text = spoken_text(written)[:DISCORD_MESSAGE_LIMIT]
        if channel is None or not text:
            return []
        target = result.target
        emit = Emitter(f"{result.request_id}:voice", deployed, target.guild_id, target.author_id)
        return [emit.action(VoiceSpeak, channel_id=channel, text=text, voice_id=voice_id(deployed))]

    # Timer ---------------------------------------------------------------------------------------------

    def fire_reminders(self, key: str, now: datetime) -> Outputs:
        """Send the reminders due at `now`; an empty book is removed so the timer stops looking at it."""
        utility_key = UtilityKey(key).encode()
        book = self.tables.utility.get(utility_key)
        if book is None:
            return Outputs()
        due, remaining = take_due_reminders(book, now)
        if remaining == book:
            return Outputs()
        out = self._send_notices(key, [reminder_notice(reminder) for reminder in due])
        if remaining.reminders:
            self.tables.utility[utility_key] = remaining
        else:
            del self.tables.utility[utility_key]
        return out

    def _send_notices(self, key: str, notices: list[Notice]) -> Outputs:
        """The timer's messages, each by its deployment (one undeployed since says nothing)."""
        record = self.routing(key)
        out = Outputs()
        for notice in notices:
            deployed = find_deployment(record, notice.deployment_id)
            if deployed is not None:
                emit = Emitter(notice.cause_id, deployed, notice.guild_id, notice.about_user_id)
                out.actions.append(emit.send(notice.say, notice.channel_id))
        return out

    def fire_announcements(self, key: str, now: datetime) -> Outputs:
        """Post the announcements due at `now`, each by the deployment that took it (one undeployed since
        posts nothing); the book stays, for the /announce events it remembers."""
        announcements_key = AnnouncementKey(key).encode()
        book = self.tables.announcements.get(announcements_key)
        if book is None:
            return Outputs()
        due, remaining = take_due(book, now)
        if not due:
            return Outputs()
        record = self.routing(key)
        directory = self.tables.directory.get(DirectoryKey(key).encode())
        out = Outputs()
        for announcement in due:
            deployed = find_deployment(record, str(announcement.deployment_id))
            if deployed is None:
                continue
            agent = deployed.agent
            text = render(
                announcement.template,
                announcement.text,
                server=directory.name if directory is not None else "",
                agent=agent.name,
                user_id=announcement.user_id,
                at=announcement.due_at.astimezone(agent.behavior.schedule.zone),
            )
            # The announcer's words, which may name them ({user}): sealed under their key, as /announce's
            # answer is.
            emit = Emitter(
                f"announcement:{announcement.announcement_id}",
                deployed,
                announcement.guild_id,
                announcement.user_id,
            )
            channel_type = directory.channel_types.get(announcement.channel_id) if directory else None
            out.actions.append(post(emit, text, announcement.channel_id, channel_type))
        self.tables.announcements[announcements_key] = remaining
        return out

    def end_idle_games(self, key: str, now: datetime) -> Outputs:
        """End the games nobody moved in until `now`, saying so where they were played."""
        games_key = GamesKey(key).encode()
        book = self.tables.games.get(games_key)
        if book is None:
            return Outputs()
        ended, remaining = end_idle_games(book, now)
        if not ended:
            return Outputs()
        out = self._send_notices(key, ended)
        # The book stays, games or not: the events it remembers make their redelivery change nothing.
        self.tables.games[games_key] = remaining
        return out

    def leave_idle_voice(self, key: str, now: datetime) -> Outputs:
        """Each music player of the key that has been idle long enough leaves its voice channel. The timer
        writes only `voice_idle`; the queue of a player that left playing is cleared by the stopped track's
        end, an event."""
        record = self.routing(key)
        deployments = record.deployments if record is not None else []
        directory = self.tables.directory.get(DirectoryKey(key).encode())
        in_voice = directory.voice_channel_of if directory is not None else {}
        bots = {d.deployment.bot_id for d in deployments}
        idle_key = VoiceIdleKey(key).encode()
        before = self.tables.voice_idle.get(idle_key) or IdlePlayers()
        since: dict[str, datetime] = {}
        out = Outputs()
        for deployed in deployments:
            deployment_id = str(deployed.deployment.deployment_id)
            queue = self.tables.music.get(MusicKey(key, deployed.deployment.deployment_id).encode())
            if queue is None:
                continue
            channel = in_voice.get(deployed.deployment.bot_id)
            company = any(where == channel and user not in bots for user, where in in_voice.items())
            idle_since = before.since.get(deployment_id)
            check = check_idle(idle_since, queue, channel, company, now, deployed.agent.music.idle_leave_s)
            if check.leave:
                assert idle_since is not None
                cause = f"music-idle:{deployment_id}:{idle_since.isoformat()}"
                emit = Emitter(cause, deployed, deployed.deployment.guild_id, None)
                out.actions.extend(leave_actions(emit, queue, channel))
            elif check.since is not None:
                since[deployment_id] = check.since
        if since != before.since:
            if since:
                self.tables.voice_idle[idle_key] = IdlePlayers(since=since)
            else:
                self.tables.voice_idle.pop(idle_key, None)
        return out

    def fire_routines(self, key: str, now: datetime) -> Outputs:
        """Make the routine and story-arc firings due at `now` of the key's deployments. Each firing's marker
        is stored with its outputs, so a later tick, a restarted worker or a replay never makes it twice; its
        ids derive from the firing, so outputs a crash left unmarked are the same outputs when made again."""
        record = self.routing(key)
        if record is None or key.startswith(DM_PREFIX):
            return Outputs()
        if _asleep(self._wakes, key, record, now):
            return Outputs()
        directory = self.tables.directory.get(DirectoryKey(key).encode())
        routine_key = RoutineKey(key).encode()
        log = self.tables.routines.get(routine_key) or RoutineLog()
        fired: dict[str, list[str]] = {}
        wakes: list[datetime] = []
        out = Outputs()
        for deployed in record.deployments:
            if deployed.deployment.status is not DeploymentStatus.active or not has_routines(deployed):
                continue
            deployment_id = str(deployed.deployment.deployment_id)
            made = log.fired.get(deployment_id, [])
            announced = self._advance_arcs(key, deployed, now)
            firings_of = partial(self._firings_on, record, deployed, announced)
            due = due_firings(deployed, now, made, firings_of)
            for firing in due:
                self._fire(key, deployed, firing, directory, out)
            fired[deployment_id] = record_fired(made, due, local_days(deployed, now)) if due else made
            wakes.append(next_wake(deployed, now, firings_of))
        # Deployments gone from the key take their markers with them.
        if fired != log.fired:
            self.tables.routines[routine_key] = RoutineLog(fired=fired)
        self._wakes[key] = (record.version, min(wakes, default=datetime.max.replace(tzinfo=UTC)))
        return out

    def fire_events(self, key: str, now: datetime) -> Outputs:
        """The hosted events' steps due at `now` (created, reminded, started, trivia asked, ended). The book
        is written with the outputs, so a later tick or a restarted worker never repeats a step."""
        record = self.routing(key)
        if record is None or key.startswith(DM_PREFIX):
            return Outputs()
        if _asleep(self._event_wakes, key, record, now):
            return Outputs()
        book_key = HostedEventsKey(key).encode()
        book = self.tables.hosted_events.get(book_key)
        directory = self.tables.directory.get(DirectoryKey(key).encode())
        updated, actions = host_events(book, record.deployments, directory, now)
        if updated != (book or EventBook()):
            self.tables.hosted_events[book_key] = updated
        self._event_wakes[key] = (record.version, next_event_wake(updated, record.deployments, now))
        return Outputs(actions=actions)

    def forget_derived(self) -> None:
        """Drop what was derived from the tables of keys that may have moved to another worker (the worker's
        partitions changed): every key's wake-up times are looked at again at the next tick, and the orders
        of whom a deployment met and the index of wallet holders are rebuilt when next needed (those of keys
        gone would be held forever, and the wallets of keys that came were recovered without the engine)."""
        self._wakes.clear()
        self._event_wakes.clear()
        self._met_orders.clear()
        self._wallet_holders = None

    def _firings_on(
        self, record: RoutingRecord, deployed: DeployedAgent, announced: list[Firing], day: date
    ) -> list[Firing]:
        """The firings of the dates on `day` (remembered), and of the conditional arcs' `announced` beats."""
        cache_key = (record.key, record.version, deployed.deployment.deployment_id, day)
        found = self._firings.get(cache_key)
        if found is None:
            if len(self._firings) >= FIRINGS_REMEMBERED:
                self._firings.clear()
            found = self._firings[cache_key] = firings_on(deployed, day)
        return [*found, *(firing for firing in announced if firing.local_day == day)]

    def arc_progress(self, key: str, deployed: DeployedAgent) -> dict[str, ArcProgress]:
        """The progress of the deployment's arcs with conditions, by arc name, as last stored."""
        book = self.tables.arcs.get(ArcKey(key).encode())
        return book.progress.get(str(deployed.deployment.deployment_id), {}) if book is not None else {}

    def _store_arc_progress(
        self, key: str, deployed: DeployedAgent, progress: dict[str, ArcProgress]
    ) -> None:
        arcs_key = ArcKey(key).encode()
        # A beat waiting for this progress may now be due.
        self._wakes.pop(key, None)
        book = self.tables.arcs.get(arcs_key) or ArcBook()
        self.tables.arcs[arcs_key] = ArcBook(
            progress={**book.progress, str(deployed.deployment.deployment_id): progress}
        )

    def _advance_arcs(self, key: str, deployed: DeployedAgent, now: datetime) -> list[Firing]:
        """Begin the beats of the deployment's conditional arcs due at `now`; their current beats'
        announcements."""
        schedule = deployed.agent.behavior.schedule
        stored = self.arc_progress(key, deployed)
        progress = {
            arc.name: current
            for arc in deployed.agent.behavior.story_arcs
            if arc.conditional and (current := advanced(arc, stored.get(arc.name), now, schedule)) is not None
        }
        if progress != stored:
            self._store_arc_progress(key, deployed, progress)
        arcs = {arc.name: arc for arc in deployed.agent.behavior.story_arcs}
        return [
            firing
            for name, current in progress.items()
            if (firing := beat_announcement(arcs[name], current, schedule)) is not None
        ]

    def _count_arc_message(
        self,
        key: str,
        deployed: DeployedAgent,
        message: DiscordMessage,
        at: datetime,
        directory: GuildDirectory | None,
    ) -> None:
        """A person's message counts towards the conditions of the arcs told in its channel."""
        if not deployed.agent.behavior.story_arcs:
            return
        schedule = deployed.agent.behavior.schedule
        progress = dict(self.arc_progress(key, deployed))
        changed = False
        for arc in deployed.agent.behavior.story_arcs:
            if not arc.conditional or text_channel(deployed, arc.channel, directory) != message.channel_id:
                continue
            after = counted(arc, progress.get(arc.name), message.content, at, schedule)
            if after is not None:
                progress[arc.name] = after
                changed = True
        if changed:
            self._store_arc_progress(key, deployed, progress)

    def _checked_in_on(self, key: str, deployed: DeployedAgent, firing: Firing) -> Relationship | None:
        """The regular a check-in firing addresses, among the users the deployment keeps track of."""
        assert firing.away is not None
        deployment_id = deployed.deployment.deployment_id
        tracked = self.tables.tracked.get(TrackedKey(key, deployment_id).encode())
        known = [
            relationship
            for user_id in (tracked.users if tracked is not None else [])
            if (relationship := self.relationship(key, deployed, user_id)) is not None
        ]
        settings = deployed.agent.behavior.relationships
        away = regulars_away(known, firing.at, firing.away, settings)
        return check_in_on(deployment_id, firing.local_day, firing.routine, firing.slot, away, settings)

    def _fire(
        self,
        key: str,
        deployed: DeployedAgent,
        firing: Firing,
        directory: GuildDirectory | None,
        out: Outputs,
    ) -> None:
        deployment, agent = deployed.deployment, deployed.agent
        cause = f"routine:{deployment.deployment_id}:{firing.marker}"
        channel_id = text_channel(deployed, firing.channel, directory)
        context = self.tables.context.get(ContextKey(key, channel_id).encode()) if channel_id else None
        speaks = channel_id is not None and somebody_spoke(context, firing)
        person = self._checked_in_on(key, deployed, firing) if firing.away is not None else None
        # A check-in is about the member checked on; another routine's post is about no one.
        about = person.user_id if person is not None else None
        speaks = speaks and (firing.away is None or person is not None)
        silenced = rating_gate(agent, False, age_restricted(directory, channel_id)) if speaks else None
        speaks = speaks and silenced is None
        out.decisions.append(
            Decision(
                event_id=cause,
                deployment_id=deployment.deployment_id,
                agent_id=deployment.agent_id,
                guild_id=deployment.guild_id,
                channel_id=channel_id,
                respond=speaks,
                reason=DecisionReason.proactive if speaks else silenced or DecisionReason.proactive_skipped,
                priority=Priority.low if speaks else None,
                routine=firing.routine,
                author_id=about,
            )
        )
        if channel_id is None or not speaks:
            return
        emit = Emitter(cause, deployed, deployment.guild_id, about)
        if firing.action is RoutineAction.voice_check_in:
            voice = voice_channel(deployed, directory)
            if voice is not None:
                out.actions.append(emit.action(VoiceJoin, channel_id=voice))
        addressee = mention(person.user_id) if person is not None else None
        if not agent.ai_enabled:
            text = greeted(firing.text, addressee, _speech_style(agent)) if addressee else firing.text
            out.actions.append(emit.send(Say(text), channel_id))
            return
        ai = agent.ai_config
        assert ai is not None
        traits = _traits(agent)
        mood = self.mood_for(key, deployed, firing.at)
        out.requests.append(
            InferenceRequest(
                request_id=stable_id(cause, deployment.deployment_id, "inference"),
                event_id=cause,
                deployment_id=deployment.deployment_id,
                agent_id=deployment.agent_id,
                owner_id=deployment.owner_id,
                tier=deployed.owner_tier,
                lane=TIERS[deployed.owner_tier].lane,
                priority=Priority.low,
                model=choose_model(agent, Priority.low),
                messages=build_proactive_prompt(
                    agent,
                    context or ChannelContext(channel_id=channel_id),
                    mood,
                    gist=firing.text,
                    topic=firing.topic,
                    story=_story(agent, firing.at, self.arc_progress(key, deployed)),
                    bot_id=deployment.bot_id,
                    fit=self.fit,
                    checking_in_on=person,
                ),
                temperature=temperature(ai.temperature, traits),
                max_tokens=reply_tokens(max_tokens_for(agent, self.fit), traits),
                cacheable=False,
                # A check-in opens with the person's mention, and their affinity warms it.
                target=ReplyTarget(
                    bot_id=deployment.bot_id,
                    guild_id=deployment.guild_id,
                    channel_id=channel_id,
                    author_id=person.user_id if person is not None else None,
                    greet_as=addressee,
                ),
            )
        )


@dataclass
class _MessageTurn:
    """One MESSAGE_CREATE as seen by one deployment."""

    engine: Engine
    envelope: EventEnvelope
    route: Route
    message: DiscordMessage
    at: datetime
    context: ChannelContext | None
    directory: GuildDirectory | None
    # The floor's ruling on the message, by deployment (empty in DMs).
    floor: dict[UUID, Decision]
    out: Outputs

    def __post_init__(self) -> None:
        self.deployed = self.route.deployed
        self.agent = self.deployed.agent
        self.bot_id = self.deployed.deployment.bot_id
        self.key = self.envelope.key
        self.deployment_id = self.deployed.deployment.deployment_id
        self.emit = Emitter(
            self.envelope.event_id, self.deployed, self.envelope.guild_id, self.message.author.id
        )
        self.is_dm = self.envelope.guild_id is None
        self.tables = self.engine.tables

    def run(self) -> None:
        author = self.message.author
        if author.id == self.bot_id:
            self._own_message()
            return
        if self._automod_removed():
            return
        if not self.route.in_channel:
            return
        if not author.bot and self._prefix_command():
            return
        if not author.bot and not self.is_dm and Tool.leveling in self.agent.enabled_tools:
            self._award_xp()
        self._converse()

    def _own_message(self) -> None:
        if self.agent.ai_enabled and self.route.in_channel:
            self.out.decisions.append(decide(self._situation(MoodState(), 0)))

    def _automod_removed(self) -> bool:
        """Apply the automod rules; True when the message was deleted and nothing else should see it."""
        config = self.agent.automod
        author = self.message.author
        if config is None or Tool.automod not in self.agent.enabled_tools or self.is_dm or author.bot:
            return False
        roles = self.message.member.roles if self.message.member is not None else []
        if granted(member_permissions(self.directory, author.id, roles), ADMINISTRATOR):
            return False
        window_key = AutomodKey(self.key, self.deployment_id, self.message.channel_id, author.id).encode()
        violations, window = check_message(config, self.message, self.tables.automod.get(window_key), self.at)
        _store(self.tables.automod, window_key, window)
        if not violations:
            return False
        warn_key = WarnKey(self.key, self.deployment_id, author.id).encode()
        outcome = enforce_automod(
            violations,
            self.message,
            self.emit,
            self.tables.warns.get(warn_key),
            self.agent.moderation.escalation,
            config.spam.timeout_s,
            self.directory,
        )
        _store(self.tables.warns, warn_key, outcome.state)
        self.out.actions.extend(outcome.actions)
        self.out.audits.extend(outcome.audits)
        if self.agent.ai_enabled:
            mood = self.engine.mood_for(self.key, self.deployed, self.at)
            changed = after_event(mood, self.engine.mood_config(self.agent), MoodEvent.moderation, self.at)
            self.engine.set_mood(self.envelope, self.deployed, mood, changed, self.out)
        return any(isinstance(action, DeleteMessage) for action in outcome.actions)

    def _prefix_command(self) -> bool:
        """Run a prefix command; False when the message is not one of this agent's commands."""
        parsed = split_prefix(self.message.content, self.agent.command_prefix)
        if parsed is None:
            return False
        name, rest = parsed
        specs = options_for(name, self.agent.custom_commands)
        if specs is None or not command_enabled(self.agent, name):
            return False
        origin = MessageOrigin(self.message.channel_id, self.message.id)
        try:
            options = parse_prefix_args(specs, rest)
        except UsageError as error:
            say = Say(f"{error}. Usage: {usage(name, specs, self.agent.command_prefix)}")
            self.out.actions.append(self.emit.answer(say, origin))
            return True
        roles = tuple(self.message.member.roles) if self.message.member is not None else ()
        invocation = Invocation(
            name=name,
            options=options,
            user=self.message.author,
            channel_id=self.message.channel_id,
            guild_id=self.envelope.guild_id,
            permissions=member_permissions(self.directory, self.message.author.id, roles),
            role_ids=roles,
            named_member_roles={
                m.id: tuple(m.member.roles) for m in self.message.mentions if m.member is not None
            },
            at=self.at,
            origin=origin,
        )
        self.engine.run_command(self.key, self.deployed, invocation, self.emit, self.directory, self.out)
        return True

    def _award_xp(self) -> None:
        user_id = self.message.author.id
        level_key = LevelKey(self.key, self.deployment_id, user_id).encode()
        before = self.tables.levels.get(level_key)
        event_id = self.envelope.event_id
        entry = award_xp(
            before, self.agent.leveling, lambda: seeded_rng(event_id, self.deployment_id, "xp"), self.at
        )
        if entry is None:
            return
        self.tables.levels[level_key] = entry
        leaderboard_key = LeaderboardKey(self.key, self.deployment_id).encode()
        _store(
            self.tables.leaderboards,
            leaderboard_key,
            update_leaderboard(self.tables.leaderboards.get(leaderboard_key), user_id, entry.xp),
        )
        if entry.level > (before.level if before is not None else 0):
            say = Say(f"<@{user_id}> reached level {entry.level}!", title="Level up")
            self.out.actions.append(self.emit.send(say, self.message.channel_id))

    def _situation(self, mood: MoodState, streak: int, relationship: Relationship | None = None) -> Situation:
        return Situation(
            event_id=self.envelope.event_id,
            deployed=self.deployed,
            message=self.message,
            context=self.context,
            mood=mood,
            streak=streak,
            at=self.at,
            is_dm=self.is_dm,
            relationship=relationship,
            age_restricted=age_restricted(self.directory, self.message.channel_id),
        )

    def _converse(self) -> None:
        message, agent = self.message, self.agent
        talked_to = addressed(message, self.bot_id, self.context, self.is_dm)
        if not agent.ai_enabled:
            # Only a message addressed to the agent gets a decision on record: why the bot stayed silent.
            if talked_to:
                self.out.decisions.append(decide(self._situation(MoodState(), 0)))
            return
        event_id = self.envelope.event_id
        streak_key = StreakKey(self.key, self.deployment_id, message.channel_id).encode()
        streak = self.tables.streaks.get(streak_key) or ReplyStreak()
        if not message.author.bot and streak.count:
            streak = ReplyStreak()
            self.tables.streaks[streak_key] = streak
        # A redelivered event was already counted.
        prior = streak.count - 1 if streak.last_event_id == event_id else streak.count
        mood = self.engine.mood_for(self.key, self.deployed, self.at)
        known = self.engine.relationship(self.key, self.deployed, message.author.id)
        ruled = self.floor.get(self.deployment_id)
        if ruled is not None:
            # Recorded on this event: another bot's copy of the message may have been ruled on first.
            decision = (
                ruled if ruled.event_id == event_id else ruled.model_copy(update={"event_id": event_id})
            )
        else:
            decision = decide(self._situation(mood, prior, known))
        self.out.decisions.append(decision)

        if decision.respond and decision.priority is not None:
            # A message in a harm category gets its safe reply; no model sees it.
            refusal = safe_reply(classify(message.content))
            if refusal is not None:
                origin = MessageOrigin(message.channel_id, message.id)
                self.out.actions.append(self.emit.answer(Say(refusal), origin))
            else:
                self.out.requests.append(self._inference_request(decision.priority, known, mood))
            if streak.last_event_id != event_id:
                self.tables.streaks[streak_key] = ReplyStreak(count=streak.count + 1, last_event_id=event_id)
        elif not message.author.bot:
            self._maybe_react(mood, known)
        config = self.engine.mood_config(agent)
        if (talked_to or decision.respond) and not message.author.bot:
            self._remember(known or Relationship(user_id=message.author.id))
            changed = after_interaction(mood, config, sentiment(message.content), self.at)
        else:
            changed = after_event(mood, config, MoodEvent.activity, self.at)
        self.engine.set_mood(self.envelope, self.deployed, mood, changed, self.out)

    def _remember(self, relationship: Relationship) -> None:
        """Record the interaction, forgetting the least recently met users past `max_tracked_users`."""
        settings = self.agent.behavior.relationships
        author = self.message.author
        updated = record_interaction(
            relationship,
            settings,
            _traits(self.agent),
            display_name=author.display_name,
            content=self.message.content,
            at=self.at,
        )
        if updated is not None:
            self.engine.store_relationship(self.key, self.deployed, updated, self.at)

    def _maybe_react(self, mood: MoodState, known: Relationship | None) -> None:
        """An emoji on a message the agent does not answer, as often as its character and mood make it."""
        style = _speech_style(self.agent)
        traits = _traits(self.agent)
        affinity = known.affinity if known is not None else None
        chance = reaction_chance(traits, mood, style, warmth(traits, affinity))
        rng = seeded_rng(self.envelope.event_id, self.deployment_id, "react")
        if rng.random() < chance:
            emoji = rng.choice(EMOJI_BY_MOOD[mood.mood])
            self.out.actions.append(
                self.emit.action(
                    React, channel_id=self.message.channel_id, message_id=self.message.id, emoji=emoji
                )
            )

    def _inference_request(
        self, priority: Priority, known: Relationship | None, mood: MoodState
    ) -> InferenceRequest:
        deployed, agent, message = self.deployed, self.agent, self.message
        ai = agent.ai_config
        assert ai is not None
        deployment = deployed.deployment
        context = self.context or ChannelContext(channel_id=message.channel_id)
        relationship = known or Relationship(user_id=message.author.id)
        traits = _traits(agent)
        relationships = agent.behavior.relationships
        affinity = known.affinity if known is not None and relationships.affinity_system else None
        return InferenceRequest(
            request_id=stable_id(self.envelope.event_id, deployment.deployment_id, "inference"),
            event_id=self.envelope.event_id,
            deployment_id=deployment.deployment_id,
            agent_id=deployment.agent_id,
            owner_id=deployment.owner_id,
            tier=deployed.owner_tier,
            lane=TIERS[deployed.owner_tier].lane,
            priority=priority,
            model=choose_model(agent, priority),
            messages=build_prompt(
                agent,
                message,
                context,
                relationship,
                mood,
                bot_id=self.bot_id,
                fit=self.engine.fit,
                story=_story(agent, self.at, self.engine.arc_progress(self.key, self.deployed)),
            ),
            temperature=temperature(ai.temperature, traits),
            max_tokens=reply_tokens(max_tokens_for(agent, self.engine.fit), traits, affinity),
            cacheable=ai.cacheable,
            target=ReplyTarget(
                bot_id=self.bot_id,
                guild_id=self.envelope.guild_id,
                channel_id=message.channel_id,
                message_id=message.id,
                author_id=message.author.id,
                greet_as=greeting_name(
                    known,
                    relationships.affinity_bands,
                    relationships.remember_names,
                    self.at - CONVERSATION_WINDOW,
                ),
            ),
            memory=memory_request(agent, deployment.deployment_id, message, context, self.at),
            knowledge=knowledge_query(agent, message.content, self.directory),
        )
