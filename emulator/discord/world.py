"""Mutable in-memory state of the emulated Discord: users, guilds, channels, messages, bots, actions.

Only data and lookups live here; effects that dispatch gateway events are in engine.py.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from settings.clock import Clock, wall_clock

from . import errors
from .spec import CHANNEL_DM

Json = dict[str, Any]

# Permission bits handed to the emulator's roles: @everyone gets what a typical member has, bots get
# ADMINISTRATOR so client-side permission checks (discord.py's permissions_for) pass.
ADMINISTRATOR = 1 << 3
EVERYONE_PERMISSIONS = (
    (1 << 6)
    | (1 << 10)
    | (1 << 11)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 18)
    | (1 << 20)
    | (1 << 21)
    | (1 << 25)
    | (1 << 31)
)


@dataclass(slots=True)
class User:
    id: str
    username: str
    global_name: str | None = None
    avatar: str | None = None
    bot: bool = False


@dataclass(slots=True)
class Member:
    user_id: str
    joined_at: str
    nick: str | None = None
    roles: list[str] = field(default_factory=list)
    communication_disabled_until: str | None = None
    # Per-guild persona (PATCH /guilds/{id}/members/@me).
    avatar: str | None = None
    banner: str | None = None
    bio: str | None = None


@dataclass(slots=True)
class StoredMessage:
    payload: Json
    author_id: str
    mention_ids: frozenset[str]
    # emoji key ("👍" or "name:id") -> ids of users who reacted, in order.
    reactions: dict[str, dict[str, None]] = field(default_factory=dict)
    # A poll's answer id -> ids of users who voted for it, in order.
    poll_votes: dict[int, dict[str, None]] = field(default_factory=dict)


@dataclass(slots=True)
class Channel:
    id: str
    type: int
    name: str | None
    guild_id: str | None
    position: int = 0
    topic: str | None = None
    nsfw: bool = False
    parent_id: str | None = None
    recipient_ids: tuple[str, ...] = ()
    messages: OrderedDict[str, StoredMessage] = field(default_factory=OrderedDict)

    @property
    def is_dm(self) -> bool:
        return self.type == CHANNEL_DM

    @property
    def last_message_id(self) -> str | None:
        return next(reversed(self.messages), None) if self.messages else None


# A guild scheduled event's first status (emulator/discord/scheduled_events.py has the rest).
SCHEDULED = 1


@dataclass(slots=True)
class ScheduledEvent:
    """A guild scheduled event (emulator/discord/scheduled_events.py has its rules)."""

    id: str
    guild_id: str
    creator_id: str
    name: str
    description: str | None
    scheduled_start_time: datetime
    scheduled_end_time: datetime | None
    entity_type: int
    channel_id: str | None
    location: str | None
    status: int = SCHEDULED
    privacy_level: int = 2  # GUILD_ONLY
    # Ids of the users interested, in the order they marked it.
    interested: dict[str, None] = field(default_factory=dict)


@dataclass(slots=True)
class Guild:
    id: str
    name: str
    owner_id: str
    bot_role_id: str
    channels: dict[str, Channel] = field(default_factory=dict)
    members: dict[str, Member] = field(default_factory=dict)
    roles: dict[str, Json] = field(default_factory=dict)
    bans: dict[str, str | None] = field(default_factory=dict)
    voice_states: dict[str, Json] = field(default_factory=dict)
    # Bots that are members: the fan-out list for dispatches in this guild.
    bot_ids: set[str] = field(default_factory=set)
    scheduled_events: dict[str, ScheduledEvent] = field(default_factory=dict)


@dataclass(slots=True)
class BotStats:
    identifies: int = 0
    identifies_rejected: int = 0
    resumes: int = 0
    resumes_rejected: int = 0
    gateway_connections: int = 0
    gateway_sends: int = 0
    close_codes: dict[int, int] = field(default_factory=dict)
    rest_requests: int = 0
    rest_429: int = 0
    rest_401: int = 0

    def as_json(self) -> Json:
        return {
            "identifies": self.identifies,
            "identifies_rejected": self.identifies_rejected,
            "resumes": self.resumes,
            "resumes_rejected": self.resumes_rejected,
            "gateway_connections": self.gateway_connections,
            "gateway_sends": self.gateway_sends,
            "close_codes": {str(k): v for k, v in self.close_codes.items()},
            "rest_requests": self.rest_requests,
            "rest_429": self.rest_429,
            "rest_401": self.rest_401,
        }


@dataclass(slots=True)
class Bot:
    user: User
    token: str
    application_id: str
    privileged_intents: int
    max_concurrency: int
    session_start_total: int
    rest_global_limit: int | None
    revoked: bool = False
    guild_ids: set[str] = field(default_factory=set)
    # Session start limit: identifies counted in a 24 h window opened by the first one.
    identify_window_start: float = 0.0
    identifies_in_window: int = 0
    # max_concurrency bucket -> loop time of its last accepted IDENTIFY.
    last_identify: dict[int, float] = field(default_factory=dict)
    commands: dict[str, Json] = field(default_factory=dict)
    guild_commands: dict[str, dict[str, Json]] = field(default_factory=dict)
    dm_channels: dict[str, str] = field(default_factory=dict)
    # nonce -> message id, for enforce_nonce (bounded).
    nonces: OrderedDict[str, str] = field(default_factory=OrderedDict)
    presence: Json | None = None
    stats: BotStats = field(default_factory=BotStats)
    # The application's key pair: interactions POSTed to its endpoint are signed with it.
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    # Set: interactions are POSTed there, signed, instead of dispatched over the gateway.
    interactions_endpoint_url: str | None = None

    @property
    def id(self) -> str:
        return self.user.id

    def session_start_remaining(self, now: float) -> tuple[int, float]:
        """(remaining identifies, seconds until the 24 h window resets)."""
        if not self.identifies_in_window or now >= self.identify_window_start + 86_400:
            return self.session_start_total, 0.0
        return (
            max(self.session_start_total - self.identifies_in_window, 0),
            self.identify_window_start + 86_400 - now,
        )


@dataclass(slots=True)
class Interaction:
    id: str
    token: str
    bot_id: str
    application_id: str
    guild_id: str | None
    channel_id: str
    user_id: str
    # Unix time on the engine's clock (the test clock where one is set).
    created_at: float
    # 2: a slash command; 4: an autocomplete request, answered only with choices (callback type 8).
    type: int = 2
    acknowledged: bool = False
    # The response message (kept here because an ephemeral one is in no channel's history).
    original: StoredMessage | None = None


@dataclass(slots=True)
class Action:
    seq: int
    kind: str
    bot_id: str
    guild_id: str | None
    channel_id: str | None
    payload: Json
    at: float

    def as_json(self) -> Json:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "bot_id": self.bot_id,
            "guild_id": self.guild_id,
            "channel_id": self.channel_id,
            "payload": self.payload,
            "at": self.at,
        }


class ActionLog:
    """Everything bots did, in order, bounded; `since` reads are O(1) because seqs are contiguous."""

    __slots__ = ("_clock", "_items", "_next_seq")

    def __init__(self, limit: int, clock: Clock = wall_clock) -> None:
        self._items: deque[Action] = deque(maxlen=limit)
        self._next_seq = 1
        self._clock = clock

    def append(
        self, kind: str, bot_id: str, guild_id: str | None, channel_id: str | None, payload: Json
    ) -> Action:
        action = Action(
            self._next_seq, kind, bot_id, guild_id, channel_id, payload, self._clock().timestamp()
        )
        self._next_seq += 1
        self._items.append(action)
        return action

    @property
    def last_seq(self) -> int:
        return self._next_seq - 1

    def since(
        self, since: int = 0, bot_id: str | None = None, kind: str | None = None, limit: int = 0
    ) -> list[Action]:
        if not self._items:
            return []
        start = max(since + 1 - self._items[0].seq, 0)
        found: list[Action] = []
        for index in range(start, len(self._items)):
            action = self._items[index]
            if (bot_id is None or action.bot_id == bot_id) and (kind is None or action.kind == kind):
                found.append(action)
                if limit and len(found) >= limit:
                    break
        return found

    def resize(self, limit: int) -> None:
        if limit != self._items.maxlen:
            self._items = deque(self._items, maxlen=limit)


class World:
    """Indexes over the state; lookups raise the ApiError Discord would answer with."""

    def __init__(self, actions_limit: int, clock: Clock = wall_clock) -> None:
        self.users: dict[str, User] = {}
        self.guilds: dict[str, Guild] = {}
        self.channels: dict[str, Channel] = {}
        self.bots: dict[str, Bot] = {}
        self.tokens: dict[str, Bot] = {}
        # Interactions by id and by token (webhook routes address them by token); bounded by the engine.
        self.interactions: OrderedDict[str, Interaction] = OrderedDict()
        self.interaction_tokens: dict[str, Interaction] = {}
        self.actions = ActionLog(actions_limit, clock)

    def user(self, user_id: str) -> User:
        try:
            return self.users[user_id]
        except KeyError:
            raise errors.not_found("User", errors.UNKNOWN_USER) from None

    def guild(self, guild_id: str) -> Guild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise errors.not_found("Guild", errors.UNKNOWN_GUILD) from None

    def channel(self, channel_id: str) -> Channel:
        try:
            return self.channels[channel_id]
        except KeyError:
            raise errors.not_found("Channel", errors.UNKNOWN_CHANNEL) from None

    def bot(self, bot_id: str) -> Bot:
        try:
            return self.bots[bot_id]
        except KeyError:
            raise errors.not_found("User", errors.UNKNOWN_USER) from None

    def member(self, guild: Guild, user_id: str) -> Member:
        try:
            return guild.members[user_id]
        except KeyError:
            raise errors.not_found("Member", errors.UNKNOWN_MEMBER) from None

    def message(self, channel: Channel, message_id: str) -> StoredMessage:
        try:
            return channel.messages[message_id]
        except KeyError:
            raise errors.not_found("Message", errors.UNKNOWN_MESSAGE) from None

    def bot_for_token(self, token: str) -> Bot | None:
        bot = self.tokens.get(token)
        return None if bot is None or bot.revoked else bot

    def guild_of(self, channel: Channel) -> Guild | None:
        return None if channel.guild_id is None else self.guilds.get(channel.guild_id)

    def can_see(self, bot: Bot, channel: Channel) -> bool:
        if channel.is_dm:
            return bot.id in channel.recipient_ids
        return channel.guild_id in bot.guild_ids
