"""One event in, its outputs out: routing, guild directory, automod, commands, leveling, conversation state
and decisions, over the state tables of the event's partition.

The tables are plain mutable mappings (Faust tables in the worker, dicts in tests), keyed by the encoded keys
of `models/table_keys.py`, which all start with the event's partition key. Values are replaced, never changed
in place, and only written when they change: each write is a changelog record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from models.actions import Action, DeleteMessage, Reply, SendMessage
from models.agent import AgentConfig, MoodConfig
from models.common import error_paths
from models.decisions import Decision, Priority
from models.deployments import DeployedAgent, RoutingRecord
from models.discord import DiscordMessage, Interaction
from models.events import EventEnvelope
from models.inference import InferenceRequest, InferenceResult, ReplyTarget
from models.memory import MemoryRequest, RecallQuery
from models.operations import ModerationAudit
from models.processor_state import (
    AutomodWindow,
    GuildDirectory,
    Leaderboard,
    LevelEntry,
    MusicQueue,
    ReplyStreak,
    UtilityBook,
    WarnRecord,
)
from models.state import ChannelContext, ContextMessage, MoodState, Relationship
from models.table_keys import (
    AutomodKey,
    ContextKey,
    DirectoryKey,
    LeaderboardKey,
    LevelKey,
    MoodKey,
    MusicKey,
    RelationshipKey,
    RoutingKey,
    StreakKey,
    UtilityKey,
    WarnKey,
)
from models.tiers import TIERS
from models.tools import TOOL_OF_COMMAND, Tool
from processors.automod import check_message
from processors.commands import (
    Invocation,
    UsageError,
    command_enabled,
    options_for,
    parse_prefix_args,
    parse_slash_options,
    split_prefix,
    usage,
)
from processors.context import PENDING_MESSAGE_ID, context_message, record_message
from processors.decide import Situation, addressed, decide
from processors.directory import DIRECTORY_EVENTS, apply_directory_event
from processors.emit import Emitter, InteractionOrigin, MessageOrigin, Say
from processors.event_routing import Route, context_window, find_deployment, newer, routes_for
from processors.ids import seeded_rng, stable_id
from processors.leveling import award_xp, handle_leveling, update_leaderboard
from processors.moderation import enforce_automod, handle_moderation
from processors.mood import MoodEvent, after_event, after_interaction, drift, initial_mood
from processors.music import handle_music
from processors.outcome import Outcome
from processors.permissions import ADMINISTRATOR, granted, member_permissions, parse_permissions
from processors.prompt import build_prompt, choose_model, max_tokens_for
from processors.relationships import record_interaction
from processors.replies import compose_reply
from processors.sentiment import sentiment
from processors.utility import (
    handle_game,
    handle_utility,
    poll_reactions,
    reminder_say,
    render_custom,
    take_due_reminders,
)
from streams.catalog import AGENT_DECISIONS, DISCORD_ACTIONS, INFERENCE_LANES, MODERATION_AUDIT, TopicSpec

APPLICATION_COMMAND = 2
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
    warns: MutableMapping[str, WarnRecord]  # WarnKey
    levels: MutableMapping[str, LevelEntry]  # LevelKey
    leaderboards: MutableMapping[str, Leaderboard]  # LeaderboardKey
    automod: MutableMapping[str, AutomodWindow]  # AutomodKey
    streaks: MutableMapping[str, ReplyStreak]  # StreakKey
    utility: MutableMapping[str, UtilityBook]  # UtilityKey


@dataclass
class Outputs:
    actions: list[Action] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    audits: list[ModerationAudit] = field(default_factory=list)
    requests: list[InferenceRequest] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.actions or self.decisions or self.audits or self.requests)

    def records(self, key: str) -> Iterator[tuple[TopicSpec, str, bytes]]:
        """(topic, record key, value) of each output; `key` is the cause's partition key. Actions are keyed
        by bot (the gateway that holds the bot consumes them), inference requests by deployment."""
        for action in self.actions:
            yield DISCORD_ACTIONS, action.bot_id, DISCORD_ACTIONS.codec.encode(action)
        for decision in self.decisions:
            yield AGENT_DECISIONS, key, AGENT_DECISIONS.codec.encode(decision)
        for audit in self.audits:
            yield MODERATION_AUDIT, audit.guild_id, MODERATION_AUDIT.codec.encode(audit)
        for request in self.requests:
            lane = INFERENCE_LANES[request.lane]
            yield lane, str(request.deployment_id), lane.codec.encode(request)


class _Embed(BaseModel):
    model_config = ConfigDict(extra="ignore")
    title: str | None = None


class _Embeds(BaseModel):
    model_config = ConfigDict(extra="ignore")
    embeds: list[_Embed] = Field(default_factory=list)


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


def _mood_config(agent: AgentConfig) -> MoodConfig:
    return agent.behavior.mood


class Engine:
    def __init__(self, tables: Tables, seed: Callable[[str], RoutingRecord | None] | None = None) -> None:
        """`seed(key)` hands over, once per key, configuration known before the worker started."""
        self.tables = tables
        self._seed = seed

    # Configuration ------------------------------------------------------------------------------------

    def apply_routing(self, record: RoutingRecord) -> bool:
        """Store a newer routing record; False when it is not newer than the one held."""
        routing_key = RoutingKey(record.key).encode()
        if not newer(self.tables.routing.get(routing_key), record):
            return False
        self.tables.routing[routing_key] = record
        return True

    def routing(self, key: str) -> RoutingRecord | None:
        if self._seed is not None:
            seeded = self._seed(key)
            if seeded is not None:
                self.apply_routing(seeded)
        return self.tables.routing.get(RoutingKey(key).encode())

    def remove_routing(self, key: str) -> None:
        """A tombstone on the compacted deployments topic: nothing is deployed under the key any more."""
        self.tables.routing.pop(RoutingKey(key).encode(), None)

    # Events --------------------------------------------------------------------------------------------

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
            return Outputs()
        if kind == "MESSAGE_CREATE":
            return self._message(envelope)
        if kind == "INTERACTION_CREATE":
            return self._interaction(envelope)
        if kind == "GUILD_MEMBER_ADD":
            self._member_joined(envelope)
        return Outputs()

    def _routes(self, envelope: EventEnvelope) -> tuple[list[Route], GuildDirectory | None]:
        key = envelope.key
        directory = (
            self.tables.directory.get(DirectoryKey(key).encode()) if envelope.guild_id is not None else None
        )
        return routes_for(self.routing(key), envelope, directory), directory

    def _member_joined(self, envelope: EventEnvelope) -> None:
        routes, _ = self._routes(envelope)
        at = envelope.received_at
        for route in routes:
            agent = route.deployed.agent
            if agent.ai_enabled:
                mood_key = self._mood_key(envelope.key, route.deployed)
                mood = self._mood(mood_key, agent, at)
                self.tables.moods[mood_key] = after_event(
                    mood, _mood_config(agent), MoodEvent.member_joined, at
                )

    def _message(self, envelope: EventEnvelope) -> Outputs:
        message = _view(DiscordMessage, envelope.data)
        routes, directory = self._routes(envelope)
        if not routes:
            return Outputs()
        if message.guild_id is None and envelope.guild_id is not None:
            message = message.model_copy(update={"guild_id": envelope.guild_id})
        at = event_time(envelope, message.timestamp)
        key = envelope.key
        context_key = ContextKey(key, message.channel_id).encode()
        context = self.tables.context.get(context_key)
        if any(route.in_channel and route.deployed.agent.ai_enabled for route in routes):
            limit = context_window(self.routing(key))
            updated = record_message(context, message.channel_id, context_message(message, at), limit)
            if updated is not None:
                self.tables.context[context_key] = updated
                context = updated
        out = Outputs()
        for route in routes:
            _MessageTurn(self, envelope, route, message, at, context, directory, out).run()
        return out

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
        emit = Emitter(envelope.event_id, route.deployed, envelope.guild_id)
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
        tool = TOOL_OF_COMMAND.get(name)
        custom = next((c for c in agent.custom_commands if c.name == name), None)
        outcome: Outcome[Any]
        if custom is not None:
            guild_name = directory.name if directory is not None else ""
            outcome = Outcome(render_custom(custom, invocation, agent.name, guild_name))
        elif tool is Tool.music:
            voice = directory.voice_channel_of.get(invocation.user.id) if directory is not None else None
            voice = voice or next(iter(deployed.deployment.voice_channels), None)
            music_key = MusicKey(key, deployment_id).encode()
            music = handle_music(invocation, self.tables.music.get(music_key), emit, voice)
            _store(self.tables.music, music_key, music.state)
            outcome = music
        elif tool is Tool.moderation:
            target = invocation.text("user")
            warn_key = WarnKey(key, deployment_id, target).encode()
            shown = "/" if isinstance(invocation.origin, InteractionOrigin) else agent.command_prefix
            record = self.tables.warns.get(warn_key)
            moderation = handle_moderation(
                invocation, record, emit, directory, agent.moderation.escalation, shown
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
            rng = seeded_rng(emit.cause_id, deployed.deployment.deployment_id, "game")
            outcome = Outcome(handle_game(invocation, rng))
        else:
            raise ValueError(f"no handler for command {name!r}")
        if outcome.say is not None:
            out.actions.append(emit.answer(outcome.say, invocation.origin))
        out.actions.extend(outcome.actions)
        out.audits.extend(outcome.audits)

    # Conversation state --------------------------------------------------------------------------------

    @staticmethod
    def _mood_key(key: str, deployed: DeployedAgent) -> str:
        return MoodKey(key, deployed.deployment.deployment_id).encode()

    def _mood(self, mood_key: str, agent: AgentConfig, at: datetime) -> MoodState:
        config = _mood_config(agent)
        return drift(self.tables.moods.get(mood_key) or initial_mood(config), config, at)

    def mood_for(self, key: str, deployed: DeployedAgent, at: datetime) -> MoodState:
        return self._mood(self._mood_key(key, deployed), deployed.agent, at)

    # Inference results ---------------------------------------------------------------------------------

    def handle_result(self, result: InferenceResult, key: str) -> Outputs:
        """The reply's actions, and the reply recorded in the channel context so conversation flow sees it."""
        deployed = find_deployment(self.routing(key), str(result.deployment_id))
        if deployed is None:
            return Outputs()  # undeployed while the model was thinking
        agent = deployed.agent
        at = result.completed_at
        actions = compose_reply(result, agent, self.mood_for(key, deployed, at))
        channel_id = result.target.channel_id
        context_key = ContextKey(key, channel_id).encode()
        context = self.tables.context.get(context_key)
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
        record = self.routing(key)
        out = Outputs()
        for reminder in due:
            deployed = find_deployment(record, str(reminder.deployment_id))
            if deployed is not None:
                emit = Emitter(f"reminder:{reminder.reminder_id}", deployed, reminder.guild_id)
                out.actions.append(emit.send(reminder_say(reminder), reminder.channel_id))
        if remaining.reminders or remaining.polls:
            self.tables.utility[utility_key] = remaining
        else:
            del self.tables.utility[utility_key]
        return out


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
    out: Outputs

    def __post_init__(self) -> None:
        self.deployed = self.route.deployed
        self.agent = self.deployed.agent
        self.bot_id = self.deployed.deployment.bot_id
        self.key = self.envelope.key
        self.deployment_id = self.deployed.deployment.deployment_id
        self.emit = Emitter(self.envelope.event_id, self.deployed, self.envelope.guild_id)
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
        if Tool.utility in self.agent.enabled_tools:
            first_line = self.message.content.split("\n", 1)[0]
            titles = [e.title for e in _view(_Embeds, self.envelope.data).embeds if e.title]
            utility_key = UtilityKey(self.key).encode()
            reactions, book = poll_reactions(
                self.tables.utility.get(utility_key),
                self.emit,
                self.message.channel_id,
                self.message.id,
                [first_line, *titles],
            )
            self.out.actions.extend(reactions)
            _store(self.tables.utility, utility_key, book)
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
        )
        _store(self.tables.warns, warn_key, outcome.state)
        self.out.actions.extend(outcome.actions)
        self.out.audits.extend(outcome.audits)
        if self.agent.ai_enabled:
            mood_key = MoodKey(self.key, self.deployment_id).encode()
            mood = self.engine.mood_for(self.key, self.deployed, self.at)
            self.tables.moods[mood_key] = after_event(
                mood, _mood_config(self.agent), MoodEvent.moderation, self.at
            )
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
            at=self.at,
            origin=origin,
        )
        self.engine.run_command(self.key, self.deployed, invocation, self.emit, self.directory, self.out)
        return True

    def _award_xp(self) -> None:
        user_id = self.message.author.id
        level_key = LevelKey(self.key, self.deployment_id, user_id).encode()
        before = self.tables.levels.get(level_key)
        rng = seeded_rng(self.envelope.event_id, self.deployed.deployment.deployment_id, "xp")
        entry = award_xp(before, self.agent.leveling, rng, self.at)
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

    def _situation(self, mood: MoodState, streak: int) -> Situation:
        return Situation(
            event_id=self.envelope.event_id,
            deployed=self.deployed,
            message=self.message,
            context=self.context,
            mood=mood,
            streak=streak,
            at=self.at,
            is_dm=self.is_dm,
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
        decision = decide(self._situation(mood, prior))
        self.out.decisions.append(decision)

        relationship_key = RelationshipKey(self.key, self.deployment_id, message.author.id).encode()
        relationship = self.tables.relationships.get(relationship_key) or Relationship(
            user_id=message.author.id
        )
        if decision.respond and decision.priority is not None:
            self.out.requests.append(self._inference_request(decision.priority, relationship, mood))
            if streak.last_event_id != event_id:
                self.tables.streaks[streak_key] = ReplyStreak(count=streak.count + 1, last_event_id=event_id)
        config = _mood_config(agent)
        if (talked_to or decision.respond) and not message.author.bot:
            _store(
                self.tables.relationships,
                relationship_key,
                record_interaction(
                    relationship,
                    agent.behavior.relationships,
                    display_name=message.author.display_name,
                    content=message.content,
                    at=self.at,
                ),
            )
            mood = after_interaction(mood, config, sentiment(message.content), self.at)
        else:
            mood = after_event(mood, config, MoodEvent.activity, self.at)
        self.tables.moods[MoodKey(self.key, self.deployment_id).encode()] = mood

    def _inference_request(
        self, priority: Priority, relationship: Relationship, mood: MoodState
    ) -> InferenceRequest:
        deployed, agent, message = self.deployed, self.agent, self.message
        ai = agent.ai_config
        assert ai is not None
        deployment = deployed.deployment
        context = self.context or ChannelContext(channel_id=message.channel_id)
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
            messages=build_prompt(agent, message, context, relationship, mood, bot_id=self.bot_id),
            temperature=ai.temperature,
            max_tokens=max_tokens_for(agent),
            cacheable=ai.cacheable,
            target=ReplyTarget(
                bot_id=self.bot_id,
                guild_id=self.envelope.guild_id,
                channel_id=message.channel_id,
                message_id=message.id,
                author_id=message.author.id,
            ),
            memory=memory_request(agent, deployment.deployment_id, message, context, self.at),
        )
