"""Effects on the emulated world: each changes state, dispatches the gateway events Discord would send,
and records what bots did. REST handlers, the control API and the Python API all go through here.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any

from settings.clock import Clock, wall_clock

from . import errors, rules, validation
from .endpoint import PING, PONG, EndpointPoster
from .errors import ApiError
from .gateway import GatewayHub
from .ids import SnowflakeGenerator, make_token, snowflake_unix_ms
from .intents import PRIVILEGED, content_visible, strip_content
from .mentions import resolve_mentions
from .payloads import channel_payload, member_payload, user_payload, voice_state_payload
from .polls import poll_payload, results
from .scheduled_events import ScheduledEvents
from .spec import (
    CHANNEL_ANNOUNCEMENT,
    CHANNEL_DM,
    CHANNEL_TEXT,
    CHANNEL_VOICE,
    GUILD_CHANNEL_TYPES,
    EmulatorConfig,
    WorldSpec,
)
from .validation import (
    CALLBACK_DEFERRED_MESSAGE,
    CALLBACK_MESSAGE,
    INTERACTION_AUTOCOMPLETE,
    INTERACTION_COMMAND,
)
from .voice import VoiceServer
from .world import (
    ADMINISTRATOR,
    EVERYONE_PERMISSIONS,
    Action,
    Bot,
    Channel,
    Guild,
    Interaction,
    Json,
    Member,
    StoredMessage,
    User,
    World,
)

MESSAGE_DEFAULT = 0
MESSAGE_REPLY = 19
MESSAGE_CHAT_INPUT_COMMAND = 20
FLAG_CROSSPOSTED = 1 << 0
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
MAX_TIMEOUT = timedelta(days=28)
MAX_INTERACTIONS = 10_000
MAX_NONCES = 1000
# Bytes per uploaded file in a guild without boosts; uploaded files the emulator keeps to serve back.
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
ATTACHMENTS_KEPT = 200
MISSING_PERMISSIONS = 50013
# Application command option type 6: a user.
OPTION_USER = 6


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_emoji(raw: str) -> Json:
    """A reaction emoji from the URL form: unicode, "name:id" or "a:name:id"."""
    parts = raw.split(":")
    if len(parts) >= 2 and parts[-1].isdigit():
        return {"id": parts[-1], "name": parts[-2], "animated": parts[0] == "a" and len(parts) == 3}
    return {"id": None, "name": raw}


def emoji_key(emoji: Json) -> str:
    return f"{emoji['name']}:{emoji['id']}" if emoji.get("id") else str(emoji["name"])


class Engine:
    def __init__(self, config: EmulatorConfig | None = None, clock: Clock = wall_clock) -> None:
        """`clock`: what the emulated Discord takes for now in what it stamps (timestamps, snowflakes, poll
        ends, timeouts, interaction tokens); the test clock where one is set. Rate limits and the gateway's
        heartbeats measure real time."""
        self.config = config or EmulatorConfig()
        self.clock = clock
        self.world = World(self.config.actions_limit, clock)
        self.ids = SnowflakeGenerator(clock=clock)
        self.hub = GatewayHub(self.world, self.config, self)
        self.voice = VoiceServer(self.config)
        self.system_user = self.add_user("Discord Emulator")
        self.scheduled_events = ScheduledEvents(
            self.world, self.hub, self.ids, self.record, self._bot_guild, self.clock
        )
        self._action_added = asyncio.Event()
        self.endpoints = EndpointPoster()
        self._posting: set[asyncio.Task[None]] = set()
        # Uploaded files by attachment id (content type, bytes), the latest ATTACHMENTS_KEPT.
        self._attachments: OrderedDict[str, tuple[str, bytes]] = OrderedDict()

    def set_config(self, config: EmulatorConfig) -> None:
        self.config = config
        self.hub.config = config
        self.voice.config = config
        self.world.actions.resize(config.actions_limit)

    def store_attachment(self, attachment_id: str, content_type: str, data: bytes) -> None:
        self._attachments[attachment_id] = (content_type, data)
        while len(self._attachments) > ATTACHMENTS_KEPT:
            self._attachments.popitem(last=False)

    def attachment(self, attachment_id: str) -> tuple[str, bytes] | None:
        return self._attachments.get(attachment_id)

    # --- recording -----------------------------------------------------------------------------------

    def record(
        self, kind: str, bot: Bot, guild_id: str | None, channel_id: str | None, payload: Json
    ) -> Action:
        action = self.world.actions.append(kind, bot.id, guild_id, channel_id, payload)
        # Wake waiters; a fresh Event per generation avoids clearing one that others still wait on.
        self._action_added.set()
        self._action_added = asyncio.Event()
        return action

    def actions(
        self, since: int = 0, bot_id: str | None = None, kind: str | None = None, limit: int = 0
    ) -> list[Action]:
        return self.world.actions.since(since, bot_id, kind, limit)

    async def wait_actions(
        self,
        since: int = 0,
        bot_id: str | None = None,
        kind: str | None = None,
        count: int = 1,
        wait_s: float = 5.0,
    ) -> list[Action]:
        """Wait until at least `count` matching actions exist after `since`, or `wait_s` passes."""
        deadline = asyncio.get_running_loop().time() + wait_s
        while True:
            found = self.actions(since, bot_id, kind)
            left = deadline - asyncio.get_running_loop().time()
            if len(found) >= count or left <= 0:
                return found
            try:
                await asyncio.wait_for(self._action_added.wait(), left)
            except TimeoutError:
                return self.actions(since, bot_id, kind)

    # --- building the world --------------------------------------------------------------------------

    def add_user(
        self,
        username: str,
        id: str | None = None,
        global_name: str | None = None,
        avatar: str | None = None,
        *,
        bot: bool = False,
    ) -> User:
        user_id = id or self.ids.next()
        if user_id in self.world.users:
            raise ApiError(400, 0, f"user {user_id} exists")
        user = User(user_id, username, global_name, avatar, bot)
        self.world.users[user_id] = user
        return user

    def add_guild(
        self, name: str, id: str | None = None, owner_id: str | None = None, roles: list[Json] | None = None
    ) -> Guild:
        guild_id = id or self.ids.next()
        if guild_id in self.world.guilds:
            raise ApiError(400, 0, f"guild {guild_id} exists")
        guild = Guild(guild_id, name, owner_id or self.system_user.id, self.ids.next())
        guild.roles[guild_id] = _role(guild_id, "@everyone", EVERYONE_PERMISSIONS, position=0)
        guild.roles[guild.bot_role_id] = _role(
            guild.bot_role_id, "Bots", ADMINISTRATOR, position=1, managed=True
        )
        for role in roles or []:
            role_id = str(role.get("id") or self.ids.next())
            guild.roles[role_id] = {
                **_role(role_id, str(role["name"]), 0, position=len(guild.roles)),
                **role,
                "id": role_id,
            }
        self.world.guilds[guild_id] = guild
        return guild

    def add_channel(
        self,
        guild_id: str,
        name: str,
        type: int = CHANNEL_TEXT,
        id: str | None = None,
        topic: str | None = None,
        nsfw: bool = False,
        parent_id: str | None = None,
    ) -> Channel:
        guild = self.world.guild(guild_id)
        if type not in GUILD_CHANNEL_TYPES:
            raise errors.invalid_form("type", "guild channels are text (0), voice (2) or announcement (5)")
        channel_id = id or self.ids.next()
        if channel_id in self.world.channels:
            raise ApiError(400, 0, f"channel {channel_id} exists")
        channel = Channel(channel_id, type, name, guild.id, len(guild.channels), topic, nsfw, parent_id)
        guild.channels[channel_id] = channel
        self.world.channels[channel_id] = channel
        self.hub.dispatch_guild(guild, "CHANNEL_CREATE", channel_payload(channel, self.world))
        return channel

    def add_member(
        self, guild_id: str, user_id: str, nick: str | None = None, roles: list[str] | None = None
    ) -> Member:
        """A user (or bot) joins a guild: GUILD_MEMBER_ADD to the others, GUILD_CREATE to a joining bot."""
        guild = self.world.guild(guild_id)
        user = self.world.user(user_id)
        if user_id in guild.members:
            return guild.members[user_id]
        if user_id in guild.bans:
            raise ApiError(403, 40007, "The user is banned from this guild.")
        member = Member(user_id, self.clock().isoformat(), nick, list(roles or []))
        bot = self.world.bots.get(user_id)
        if bot is not None:
            member.roles.append(guild.bot_role_id)
        guild.members[user_id] = member
        self.hub.dispatch_guild(
            guild, "GUILD_MEMBER_ADD", {**member_payload(member, user), "guild_id": guild.id}
        )
        if bot is not None:
            guild.bot_ids.add(bot.id)
            bot.guild_ids.add(guild.id)
            self.hub.send_guild_create(bot, guild)
        return member

    def _remove_member(self, guild: Guild, user_id: str) -> None:
        member = guild.members.pop(user_id, None)
        if member is None:
            return
        if guild.voice_states.pop(user_id, None) is not None:
            self.hub.dispatch_guild(
                guild,
                "VOICE_STATE_UPDATE",
                voice_state_payload(guild, self.world, user_id, None, "", False, False),
            )
        user = self.world.users[user_id]
        self.hub.dispatch_guild(
            guild, "GUILD_MEMBER_REMOVE", {"guild_id": guild.id, "user": user_payload(user)}
        )
        bot = self.world.bots.get(user_id)
        if bot is not None:
            self.hub.dispatch_bot(bot.id, "GUILD_DELETE", {"id": guild.id}, guild_id=guild.id)
            guild.bot_ids.discard(bot.id)
            bot.guild_ids.discard(guild.id)

    def add_bot(
        self,
        username: str = "bot",
        token: str | None = None,
        id: str | None = None,
        application_id: str | None = None,
        guild_ids: list[str] | None = None,
        privileged_intents: int | None = None,
        max_concurrency: int = 1,
        session_start_limit: int = 1000,
        rest_global_limit: int | None = None,
    ) -> Bot:
        if token is not None and token in self.world.tokens:
            raise ApiError(400, 0, "token already registered")
        user = self.add_user(username, id, bot=True)
        bot = Bot(
            user=user,
            token=token or make_token(user.id),
            application_id=application_id or user.id,
            privileged_intents=PRIVILEGED if privileged_intents is None else privileged_intents,
            max_concurrency=max_concurrency,
            session_start_total=session_start_limit,
            rest_global_limit=rest_global_limit,
        )
        self.world.bots[user.id] = bot
        self.world.tokens[bot.token] = bot
        for guild_id in guild_ids or []:
            self.add_member(guild_id, user.id)
        return bot

    def update_bot(self, bot_id: str, **changes: Any) -> Bot:
        bot = self.world.bot(bot_id)
        for name, value in changes.items():
            if name == "username":
                bot.user.username = value
            elif name == "session_start_limit":
                bot.session_start_total = value
            elif name in ("privileged_intents", "max_concurrency", "rest_global_limit"):
                setattr(bot, name, value)
            elif name == "guild_ids":
                for guild_id in value:
                    self.add_member(guild_id, bot.id)
            else:
                raise errors.invalid_form(name, "not an updatable bot field")
        return bot

    async def revoke_token(self, bot_id: str) -> int:
        """Reset a bot's token: REST answers 401, open gateway connections close with 4004."""
        bot = self.world.bot(bot_id)
        bot.revoked = True
        return await self.hub.close_bot(bot, rules.CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")

    def load(self, spec: WorldSpec) -> Json:
        """Create what a world spec describes; returns the ids given to everything, by kind."""
        if spec.config is not None:
            self.set_config(spec.config)
        created: Json = {"users": [], "guilds": [], "bots": []}
        for u in spec.users:
            created["users"].append(self.add_user(u.username, u.id, u.global_name, u.avatar).id)
        for g in spec.guilds:
            guild = self.add_guild(
                g.name, g.id, g.owner_id, [r.model_dump(exclude_none=True) for r in g.roles]
            )
            channels = [
                self.add_channel(guild.id, c.name, c.type, c.id, c.topic, c.nsfw, c.parent_id).id
                for c in g.channels
            ]
            for m in g.members:
                self.add_member(guild.id, m.user_id, m.nick, m.roles)
            created["guilds"].append({"id": guild.id, "channels": channels})
        for b in spec.bots:
            bot = self.add_bot(
                b.username,
                b.token,
                b.id,
                b.application_id,
                b.guild_ids,
                b.privileged_intents,
                b.max_concurrency,
                b.session_start_limit,
                b.rest_global_limit,
            )
            created["bots"].append({"id": bot.id, "token": bot.token, "application_id": bot.application_id})
        return created

    def dump(self) -> Json:
        """The world in spec form (ids and tokens filled in), for out-of-process clients."""
        w = self.world
        return {
            "users": [
                {"id": u.id, "username": u.username, "global_name": u.global_name, "avatar": u.avatar}
                for u in w.users.values()
                if not u.bot and u is not self.system_user
            ],
            "guilds": [
                {
                    "id": g.id,
                    "name": g.name,
                    "owner_id": g.owner_id,
                    "channels": [
                        {
                            "id": c.id,
                            "name": c.name,
                            "type": c.type,
                            "topic": c.topic,
                            "nsfw": c.nsfw,
                            "parent_id": c.parent_id,
                        }
                        for c in g.channels.values()
                    ],
                    "members": [
                        {
                            "user_id": m.user_id,
                            "nick": m.nick,
                            "roles": [r for r in m.roles if r != g.bot_role_id],
                        }
                        for m in g.members.values()
                        if m.user_id not in w.bots
                    ],
                    "roles": [
                        {k: r[k] for k in ("id", "name", "permissions", "color", "hoist", "mentionable")}
                        for rid, r in g.roles.items()
                        if rid not in (g.id, g.bot_role_id)
                    ],
                }
                for g in w.guilds.values()
            ],
            "bots": [
                {
                    "id": b.id,
                    "token": b.token,
                    "username": b.user.username,
                    "application_id": b.application_id,
                    "guild_ids": sorted(b.guild_ids, key=int),
                    "privileged_intents": b.privileged_intents,
                    "max_concurrency": b.max_concurrency,
                    "session_start_limit": b.session_start_total,
                    "rest_global_limit": b.rest_global_limit,
                    "revoked": b.revoked,
                }
                for b in w.bots.values()
            ],
        }

    # --- messages ------------------------------------------------------------------------------------

    def _message_payload(
        self,
        channel: Channel,
        author: User,
        body: Json,
        *,
        msg_type: int,
        reference: StoredMessage | None,
        extra: Json | None = None,
    ) -> tuple[Json, frozenset[str]]:
        guild = self.world.guild_of(channel)
        content = str(body.get("content") or "")
        known: Any = guild.members if guild is not None else set(channel.recipient_ids)
        mentions = resolve_mentions(
            content,
            body.get("allowed_mentions"),
            reference.author_id if reference is not None else None,
            known,
        )
        mention_payloads = []
        for user_id in mentions.user_ids:
            mentioned = user_payload(self.world.users[user_id])
            if guild is not None and user_id in guild.members:
                mentioned["member"] = member_payload(guild.members[user_id])
            mention_payloads.append(mentioned)
        payload: Json = {
            "id": self.ids.next(),
            "type": msg_type,
            "channel_id": channel.id,
            "author": user_payload(author),
            "content": content,
            "timestamp": self.clock().isoformat(),
            "edited_timestamp": None,
            "tts": bool(body.get("tts", False)),
            "mention_everyone": mentions.everyone,
            "mentions": mention_payloads,
            "mention_roles": list(mentions.role_ids),
            "attachments": list(body.get("attachments") or []),
            "embeds": list(body.get("embeds") or []),
            "components": list(body.get("components") or []),
            "pinned": False,
            "flags": int(body.get("flags") or 0),
        }
        if body.get("nonce") is not None:
            payload["nonce"] = body["nonce"]
        if body.get("poll") is not None:
            payload["poll"] = poll_payload(body["poll"], self.clock())
        if guild is not None:
            payload["guild_id"] = guild.id
            member = guild.members.get(author.id)
            if member is not None:
                payload["member"] = member_payload(member)
        if reference is not None:
            payload["message_reference"] = {
                "type": 0,
                "message_id": reference.payload["id"],
                "channel_id": channel.id,
                **({"guild_id": guild.id} if guild is not None else {}),
            }
            payload["referenced_message"] = reference.payload
        if extra:
            payload.update(extra)
        return payload, frozenset(mentions.user_ids)

    def _store(self, channel: Channel, stored: StoredMessage) -> None:
        channel.messages[stored.payload["id"]] = stored
        while len(channel.messages) > self.config.history_limit:
            channel.messages.popitem(last=False)

    def _dispatch_message(self, channel: Channel, event: str, stored: StoredMessage, data: Json) -> None:
        guild = self.world.guild_of(channel)
        if guild is not None:
            self.hub.dispatch_guild(guild, event, data, content=(stored.author_id, stored.mention_ids))
            return
        for recipient in channel.recipient_ids:
            if recipient in self.world.bots:
                self.hub.dispatch_bot(recipient, event, data)

    def _create_message(
        self,
        channel: Channel,
        author: User,
        body: Json,
        *,
        msg_type: int | None = None,
        extra: Json | None = None,
        dispatch: bool = True,
    ) -> StoredMessage:
        validation.checked(validation.message, body)
        has_body = any(
            body.get(k) for k in ("content", "embeds", "attachments", "components", "sticker_ids", "poll")
        )
        if not has_body and not (int(body.get("flags") or 0) & FLAG_LOADING):
            raise ApiError(400, 50006, "Cannot send an empty message")
        reference = None
        ref = body.get("message_reference")
        if isinstance(ref, dict) and ref.get("message_id") is not None:
            ref_channel = self.world.channel(str(ref.get("channel_id") or channel.id))
            reference = ref_channel.messages.get(str(ref["message_id"]))
            if reference is None and ref.get("fail_if_not_exists", True):
                raise errors.invalid_form("message_reference", "Unknown message")
        if msg_type is None:
            msg_type = MESSAGE_REPLY if reference is not None else MESSAGE_DEFAULT
        payload, mention_ids = self._message_payload(
            channel, author, body, msg_type=msg_type, reference=reference, extra=extra
        )
        stored = StoredMessage(payload, author.id, mention_ids)
        if dispatch:
            self._store(channel, stored)
            self._dispatch_message(channel, "MESSAGE_CREATE", stored, payload)
        return stored

    def _edit_message(self, channel: Channel, stored: StoredMessage, body: Json) -> Json:
        validation.checked(validation.message, body)
        payload = stored.payload
        if "content" in body:
            payload["content"] = body["content"] or ""
        for key in ("embeds", "components", "attachments"):
            if key in body:
                payload[key] = list(body[key] or [])
        if "flags" in body and body["flags"] is not None:
            payload["flags"] = int(body["flags"]) & ~FLAG_LOADING
        payload["edited_timestamp"] = self.clock().isoformat()
        self._dispatch_message(channel, "MESSAGE_UPDATE", stored, payload)
        return payload

    def _delete_message(self, channel: Channel, message_id: str) -> None:
        channel.messages.pop(message_id, None)
        data: Json = {"id": message_id, "channel_id": channel.id}
        guild = self.world.guild_of(channel)
        if guild is not None:
            data["guild_id"] = guild.id
            self.hub.dispatch_guild(guild, "MESSAGE_DELETE", data)
        else:
            for recipient in channel.recipient_ids:
                if recipient in self.world.bots:
                    self.hub.dispatch_bot(recipient, "MESSAGE_DELETE", data)

    def _react(
        self, channel: Channel, stored: StoredMessage, user: User, raw_emoji: str, *, add: bool
    ) -> Json:
        emoji = parse_emoji(raw_emoji)
        key = emoji_key(emoji)
        users = stored.reactions.setdefault(key, {})
        if add == (user.id in users):
            return emoji  # Discord answers 204 and dispatches nothing for a no-op
        if add:
            users[user.id] = None
        else:
            del users[user.id]
            if not users:
                del stored.reactions[key]
        guild = self.world.guild_of(channel)
        event = "MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE"
        data: Json = {
            "user_id": user.id,
            "channel_id": channel.id,
            "message_id": stored.payload["id"],
            "emoji": emoji,
            "burst": False,
            "type": 0,
        }
        if add:
            data["message_author_id"] = stored.author_id
            data["burst_colors"] = []
        if guild is not None:
            data["guild_id"] = guild.id
            if add and user.id in guild.members:
                data["member"] = member_payload(guild.members[user.id], user)
            self.hub.dispatch_guild(guild, event, data)
        else:
            for recipient in channel.recipient_ids:
                if recipient in self.world.bots:
                    self.hub.dispatch_bot(recipient, event, data)
        return emoji

    @staticmethod
    def message_view(stored: StoredMessage, viewer_id: str, visible: bool = True) -> Json:
        """A stored message as GET returns it: reaction counts from the viewer's side, content if visible."""
        payload = dict(stored.payload)
        if stored.reactions:
            payload["reactions"] = [
                {
                    "emoji": parse_emoji(key),
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me": viewer_id in users,
                    "me_burst": False,
                    "burst_colors": [],
                }
                for key, users in stored.reactions.items()
            ]
        return payload if visible else strip_content(payload)

    def view_for(self, bot: Bot | None, channel: Channel, stored: StoredMessage) -> Json:
        """A message as a bot reads it over REST: REST hides content by the same rule as the gateway,
        governed by the app's MESSAGE_CONTENT switch. Without a bot (control API) everything shows."""
        if bot is None:
            return self.message_view(stored, "")
        visible = content_visible(
            bot.privileged_intents, bot.id, stored.author_id, stored.mention_ids, dm=channel.is_dm
        )
        return self.message_view(stored, bot.id, visible)

    def history(
        self,
        channel_id: str,
        limit: int = 50,
        before: str | None = None,
        after: str | None = None,
        viewer: Bot | None = None,
    ) -> list[Json]:
        """Messages newest first, like GET /channels/{id}/messages."""
        channel = self.world.channel(channel_id)
        limit = max(1, min(limit, 100 if viewer is not None else self.config.history_limit))
        ids = list(channel.messages)
        if after is not None:
            picked = [m for m in ids if int(m) > int(after)][:limit][::-1]
        else:
            picked = [m for m in reversed(ids) if before is None or int(m) < int(before)][:limit]
        return [self.view_for(viewer, channel, channel.messages[m]) for m in picked]

    # --- user-side effects (control API) -------------------------------------------------------------

    def dm_channel(self, user_id: str, bot_id: str) -> Channel:
        bot = self.world.bot(bot_id)
        self.world.user(user_id)
        existing = bot.dm_channels.get(user_id)
        if existing is not None:
            return self.world.channels[existing]
        channel = Channel(self.ids.next(), CHANNEL_DM, None, None, recipient_ids=(user_id, bot.id))
        self.world.channels[channel.id] = channel
        bot.dm_channels[user_id] = channel.id
        return channel

    def post_user_message(
        self,
        author_id: str,
        content: str = "",
        channel_id: str | None = None,
        *,
        reply_to: str | None = None,
        to_bot_id: str | None = None,
        embeds: list[Json] | None = None,
    ) -> Json:
        """A user writes in a channel, or to a bot in DM when `to_bot_id` is given instead."""
        author = self.world.user(author_id)
        if to_bot_id is not None:
            channel = self.dm_channel(author_id, to_bot_id)
        elif channel_id is not None:
            channel = self.world.channel(channel_id)
            guild = self.world.guild_of(channel)
            if guild is not None and author_id not in guild.members:
                raise errors.missing_access()
        else:
            raise errors.invalid_form("channel_id", "channel_id or to_bot_id is required")
        body: Json = {"content": content, "embeds": embeds or []}
        if reply_to is not None:
            body["message_reference"] = {"message_id": reply_to, "channel_id": channel.id}
        return self._create_message(channel, author, body).payload

    def edit_user_message(self, channel_id: str, message_id: str, content: str) -> Json:
        channel = self.world.channel(channel_id)
        stored = self.world.message(channel, message_id)
        return self._edit_message(channel, stored, {"content": content})

    def delete_user_message(self, channel_id: str, message_id: str) -> None:
        channel = self.world.channel(channel_id)
        self.world.message(channel, message_id)
        self._delete_message(channel, message_id)

    def add_user_reaction(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> Json:
        channel = self.world.channel(channel_id)
        return self._react(
            channel, self.world.message(channel, message_id), self.world.user(user_id), emoji, add=True
        )

    def vote_poll(self, channel_id: str, message_id: str, user_id: str, answer_id: int) -> Json:
        """A user votes (a single-choice poll keeps only the latest vote); the poll's results so far."""
        channel = self.world.channel(channel_id)
        stored = self.world.message(channel, message_id)
        poll = self._open_poll(stored)
        self.world.user(user_id)
        if answer_id not in {a["answer_id"] for a in poll["answers"]}:
            raise errors.invalid_form("answer_id", "Unknown answer.")
        if not poll["allow_multiselect"]:
            for voters in stored.poll_votes.values():
                voters.pop(user_id, None)
        stored.poll_votes.setdefault(answer_id, {})[user_id] = None
        return results(poll, stored.poll_votes, finalized=False)

    def end_poll(self, channel_id: str, message_id: str) -> Json:
        """The poll's time is up (or its author expired it): final results, and MESSAGE_UPDATE with them."""
        channel = self.world.channel(channel_id)
        stored = self.world.message(channel, message_id)
        poll = self._open_poll(stored)
        poll["results"] = results(poll, stored.poll_votes, finalized=True)
        poll["expiry"] = self.clock().isoformat()
        self._dispatch_message(channel, "MESSAGE_UPDATE", stored, stored.payload)
        return stored.payload

    @staticmethod
    def _open_poll(stored: StoredMessage) -> Json:
        poll: Json | None = stored.payload.get("poll")
        if poll is None:
            raise ApiError(400, 520001, "This message has no poll.")
        if poll["results"]["is_finalized"]:
            raise ApiError(400, 520000, "This poll has already ended.")
        return poll

    def user_voice(
        self,
        guild_id: str,
        user_id: str,
        channel_id: str | None,
        *,
        self_mute: bool = False,
        self_deaf: bool = False,
    ) -> Json:
        """A user joins (channel_id) or leaves (None) voice: VOICE_STATE_UPDATE to the guild's bots."""
        guild = self.world.guild(guild_id)
        self.world.member(guild, user_id)
        return self._set_voice(guild, user_id, channel_id, secrets.token_hex(16), self_mute, self_deaf)

    def _set_voice(
        self,
        guild: Guild,
        user_id: str,
        channel_id: str | None,
        session_id: str,
        self_mute: bool,
        self_deaf: bool,
    ) -> Json:
        if channel_id is not None:
            channel = guild.channels.get(channel_id)
            if channel is None or channel.type != CHANNEL_VOICE:
                raise errors.not_found("Channel", errors.UNKNOWN_CHANNEL)
        state = voice_state_payload(guild, self.world, user_id, channel_id, session_id, self_mute, self_deaf)
        if channel_id is None:
            guild.voice_states.pop(user_id, None)
        else:
            guild.voice_states[user_id] = {k: v for k, v in state.items() if k != "member"}
        self.hub.dispatch_guild(guild, "VOICE_STATE_UPDATE", state)
        return state

    @staticmethod
    def _permissions_of(guild: Guild, member: Member) -> int:
        everyone = int(guild.roles[guild.id]["permissions"])
        roles = [int(guild.roles[r]["permissions"]) for r in member.roles if r in guild.roles]
        return rules.member_permissions(guild.owner_id, member.user_id, roles, everyone)

    def invoke_command(
        self,
        bot_id: str,
        user_id: str,
        channel_id: str,
        name: str,
        options: list[Json] | None = None,
        interaction_type: int = INTERACTION_COMMAND,
    ) -> Json:
        """A user runs a slash command (INTERACTION_CREATE type 2) or, typing in an option the command
        declares with `autocomplete` and marks `focused`, asks for choices (type 4). Returns the
        interaction."""
        bot = self.world.bot(bot_id)
        user = self.world.user(user_id)
        channel = self.world.channel(channel_id)
        guild = self.world.guild_of(channel)
        if guild is not None and (bot.id not in guild.bot_ids or user.id not in guild.members):
            raise errors.missing_access()
        command = None
        if guild is not None:
            command = bot.guild_commands.get(guild.id, {}).get(name)
        command = command or bot.commands.get(name)
        # Discord's client only offers the commands the application registered (in this guild or globally).
        if command is None:
            raise errors.not_found("application command", errors.UNKNOWN_COMMAND)
        if interaction_type == INTERACTION_AUTOCOMPLETE:
            _check_autocomplete(command, options or [])
        elif interaction_type != INTERACTION_COMMAND:
            raise errors.invalid_form("type", "Only slash commands (2) and autocomplete (4) are emulated.")
        data: Json = {"id": command["id"], "name": name, "type": 1, "options": options or []}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        resolved = self._resolved_users(guild, options or [])
        if resolved:
            data["resolved"] = resolved
        interaction = Interaction(
            self.ids.next(),
            secrets.token_urlsafe(48),
            bot.id,
            bot.application_id,
            guild.id if guild else None,
            channel.id,
            user.id,
            self.clock().timestamp(),
            interaction_type,
        )
        self._remember(interaction)
        payload: Json = {
            "id": interaction.id,
            "application_id": bot.application_id,
            "type": interaction_type,
            "data": data,
            "channel_id": channel.id,
            "channel": channel_payload(channel, self.world),
            "token": interaction.token,
            "version": 1,
            "locale": "en-US",
            "app_permissions": str((1 << 53) - 1),
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if guild is not None:
            member = guild.members[user.id]
            payload.update(
                guild_id=guild.id,
                guild={"id": guild.id, "locale": "en-US", "features": []},
                guild_locale="en-US",
                member={
                    **member_payload(member, user),
                    "permissions": str(self._permissions_of(guild, member)),
                },
                context=0,
                authorizing_integration_owners={"0": guild.id},
            )
        else:
            payload.update(user=user_payload(user), context=1, authorizing_integration_owners={"1": user.id})
        if bot.interactions_endpoint_url:
            task = asyncio.get_running_loop().create_task(
                self._post_interaction(bot, bot.interactions_endpoint_url, interaction, payload)
            )
            self._posting.add(task)
            task.add_done_callback(self._posting.discard)
        else:
            self.hub.dispatch_bot(bot.id, "INTERACTION_CREATE", payload, guild_id=guild.id if guild else None)
        return payload

    async def _post_interaction(self, bot: Bot, url: str, interaction: Interaction, payload: Json) -> None:
        """The endpoint's HTTP answer is the interaction response; no answer in time is the user's "The
        application did not respond"."""
        timeout_s = self.config.interaction_response_timeout_s
        status, answer = await self.endpoints.post(bot.signing_key, url, payload, timeout_s)
        reason = f"endpoint answered {status}" if status else "endpoint unreachable or too slow"
        if status == 200 and answer is not None:
            try:
                self.interaction_callback(interaction.id, interaction.token, answer)
                return
            except ApiError as exc:
                reason = f"inline response refused: {exc.code} {exc.message}"
        if not interaction.acknowledged:
            self.record(
                "interaction_failed",
                bot,
                interaction.guild_id,
                interaction.channel_id,
                {"interaction_id": interaction.id, "reason": reason},
            )

    async def set_interactions_endpoint(self, bot: Bot, url: str | None) -> None:
        """Discord saves an endpoint only after it answered a signed PING with a PONG and refused a
        badly signed one with 401; an empty value goes back to gateway delivery."""
        if not url:
            bot.interactions_endpoint_url = None
            return
        if not url.startswith(("http://", "https://")):
            raise errors.invalid_form("interactions_endpoint_url", "Must be an http(s) URL.")
        ping: Json = {
            "id": self.ids.next(),
            "application_id": bot.application_id,
            "type": PING,
            "token": secrets.token_urlsafe(48),
            "version": 1,
        }
        timeout_s = self.config.interaction_response_timeout_s
        status, answer = await self.endpoints.post(bot.signing_key, url, ping, timeout_s)
        forged_status, _ = await self.endpoints.post(bot.signing_key, url, ping, timeout_s, forged=True)
        if status != 200 or answer is None or answer.get("type") != PONG or forged_status != 401:
            raise errors.invalid_form(
                "interactions_endpoint_url", "The specified interactions endpoint url could not be verified."
            )
        bot.interactions_endpoint_url = url

    def _resolved_users(self, guild: Guild | None, options: list[Json]) -> Json:
        """Discord's `resolved` for the user options: the users, and in a guild their partial members."""
        users: Json = {}
        members: Json = {}
        for option in options:
            user_id = str(option.get("value"))
            if option.get("type") != OPTION_USER or user_id not in self.world.users:
                continue
            users[user_id] = user_payload(self.world.users[user_id])
            if guild is not None and user_id in guild.members:
                members[user_id] = member_payload(guild.members[user_id])
        resolved: Json = {"users": users} if users else {}
        if members:
            resolved["members"] = members
        return resolved

    def _remember(self, interaction: Interaction) -> None:
        world = self.world
        world.interactions[interaction.id] = interaction
        world.interaction_tokens[interaction.token] = interaction
        while len(world.interactions) > MAX_INTERACTIONS:
            _, old = world.interactions.popitem(last=False)
            world.interaction_tokens.pop(old.token, None)

    # --- bot-side effects (REST and gateway) ---------------------------------------------------------

    def _bot_channel(self, bot: Bot, channel_id: str) -> Channel:
        channel = self.world.channel(channel_id)
        if not self.world.can_see(bot, channel):
            raise errors.missing_access()
        return channel

    def _check_not_timed_out(self, guild: Guild | None, user_id: str) -> None:
        member = guild.members.get(user_id) if guild is not None else None
        if (
            member is not None
            and member.communication_disabled_until is not None
            and (_parse_time(member.communication_disabled_until) > self.clock())
        ):
            raise ApiError(403, MISSING_PERMISSIONS, "Missing Permissions")

    def bot_send_message(self, bot: Bot, channel_id: str, body: Json) -> Json:
        channel = self._bot_channel(bot, channel_id)
        guild = self.world.guild_of(channel)
        self._check_not_timed_out(guild, bot.id)
        nonce = body.get("nonce")
        if body.get("enforce_nonce") and nonce is not None:
            # enforce_nonce: a repeated nonce returns the first message instead of posting again.
            known = bot.nonces.get(str(nonce))
            if known is not None and known in channel.messages:
                return channel.messages[known].payload
        stored = self._create_message(channel, bot.user, body)
        if nonce is not None:
            bot.nonces[str(nonce)] = stored.payload["id"]
            while len(bot.nonces) > MAX_NONCES:
                bot.nonces.popitem(last=False)
        kind = "reply" if "message_reference" in stored.payload else "message"
        self.record(kind, bot, channel.guild_id, channel.id, stored.payload)
        return stored.payload

    def bot_edit_message(self, bot: Bot, channel_id: str, message_id: str, body: Json) -> Json:
        channel = self._bot_channel(bot, channel_id)
        stored = self.world.message(channel, message_id)
        if stored.author_id != bot.id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        payload = self._edit_message(channel, stored, body)
        self.record("edit", bot, channel.guild_id, channel.id, payload)
        return payload

    def bot_crosspost(self, bot: Bot, channel_id: str, message_id: str) -> Json:
        """Publish a message of an announcement channel to its followers, as Discord does: only there, only
        the bot's own message, once."""
        channel = self._bot_channel(bot, channel_id)
        if channel.type != CHANNEL_ANNOUNCEMENT:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        stored = self.world.message(channel, message_id)
        if stored.author_id != bot.id:
            raise ApiError(403, 50013, "Missing Permissions")
        flags = int(stored.payload.get("flags") or 0)
        if flags & FLAG_CROSSPOSTED:
            raise ApiError(400, 40033, "This message has already been crossposted.")
        stored.payload["flags"] = flags | FLAG_CROSSPOSTED
        self._dispatch_message(channel, "MESSAGE_UPDATE", stored, stored.payload)
        self.record("crosspost", bot, channel.guild_id, channel.id, stored.payload)
        return stored.payload

    def bot_delete_message(self, bot: Bot, channel_id: str, message_id: str, reason: str | None) -> None:
        channel = self._bot_channel(bot, channel_id)
        stored = self.world.message(channel, message_id)
        if channel.is_dm and stored.author_id != bot.id:
            raise ApiError(403, 50003, "Cannot execute action on a DM channel")
        self._delete_message(channel, message_id)
        self.record(
            "delete",
            bot,
            channel.guild_id,
            channel.id,
            {"message_id": message_id, "author_id": stored.author_id, "reason": reason},
        )

    def bot_reaction(self, bot: Bot, channel_id: str, message_id: str, emoji: str, *, add: bool) -> None:
        channel = self._bot_channel(bot, channel_id)
        stored = self.world.message(channel, message_id)
        parsed = self._react(channel, stored, bot.user, emoji, add=add)
        self.record(
            "reaction" if add else "reaction_remove",
            bot,
            channel.guild_id,
            channel.id,
            {"message_id": message_id, "emoji": parsed},
        )

    def bot_typing(self, bot: Bot, channel_id: str) -> None:
        channel = self._bot_channel(bot, channel_id)
        data: Json = {"channel_id": channel.id, "user_id": bot.id, "timestamp": int(self.clock().timestamp())}
        guild = self.world.guild_of(channel)
        if guild is not None:
            data["guild_id"] = guild.id
            data["member"] = member_payload(guild.members[bot.id], bot.user)
            self.hub.dispatch_guild(guild, "TYPING_START", data, exclude_bot=bot.id)
        self.record("typing", bot, channel.guild_id, channel.id, {})

    def _bot_guild(self, bot: Bot, guild_id: str) -> Guild:
        guild = self.world.guild(guild_id)
        if guild.id not in bot.guild_ids:
            raise errors.missing_access()
        return guild

    @staticmethod
    def _top_role_position(guild: Guild, user_id: str) -> int:
        member = guild.members.get(user_id)
        roles = member.roles if member is not None else []
        return max((int(guild.roles[r].get("position", 0)) for r in roles if r in guild.roles), default=0)

    def _moderate(self, guild: Guild, bot: Bot, user_id: str) -> None:
        """Discord acts on nobody above the bot: not the owner, not a member whose highest role is at or
        above the bot's highest role."""
        if user_id == guild.owner_id or self._top_role_position(guild, user_id) >= self._top_role_position(
            guild, bot.user.id
        ):
            raise ApiError(403, MISSING_PERMISSIONS, "Missing Permissions")

    def bot_ban(self, bot: Bot, guild_id: str, user_id: str, body: Json, reason: str | None) -> None:
        validation.checked(validation.ban, body)
        guild = self._bot_guild(bot, guild_id)
        user = self.world.user(user_id)
        self._moderate(guild, bot, user_id)
        seconds = int(
            body.get("delete_message_seconds") or int(body.get("delete_message_days") or 0) * 86_400
        )
        guild.bans[user_id] = reason
        self.hub.dispatch_guild(guild, "GUILD_BAN_ADD", {"guild_id": guild.id, "user": user_payload(user)})
        self._remove_member(guild, user_id)
        deleted = self._delete_recent(guild, user_id, seconds) if seconds else []
        self.record(
            "ban",
            bot,
            guild.id,
            None,
            {
                "user_id": user_id,
                "delete_message_seconds": seconds,
                "deleted_message_ids": deleted,
                "reason": reason,
            },
        )

    def _delete_recent(self, guild: Guild, user_id: str, seconds: int) -> list[str]:
        cutoff_ms = (self.clock().timestamp() - seconds) * 1000
        deleted = []
        for channel in guild.channels.values():
            for message_id in [
                m
                for m, s in channel.messages.items()
                if s.author_id == user_id and snowflake_unix_ms(m) >= cutoff_ms
            ]:
                self._delete_message(channel, message_id)
                deleted.append(message_id)
        return deleted

    def bot_unban(self, bot: Bot, guild_id: str, user_id: str, reason: str | None) -> None:
        guild = self._bot_guild(bot, guild_id)
        if user_id not in guild.bans:
            raise errors.not_found("Ban", errors.UNKNOWN_BAN)
        del guild.bans[user_id]
        self.hub.dispatch_guild(
            guild, "GUILD_BAN_REMOVE", {"guild_id": guild.id, "user": user_payload(self.world.user(user_id))}
        )
        self.record("unban", bot, guild.id, None, {"user_id": user_id, "reason": reason})

    def bot_kick(self, bot: Bot, guild_id: str, user_id: str, reason: str | None) -> None:
        guild = self._bot_guild(bot, guild_id)
        self.world.member(guild, user_id)
        self._moderate(guild, bot, user_id)
        self._remove_member(guild, user_id)
        self.record("kick", bot, guild.id, None, {"user_id": user_id, "reason": reason})

    def _member_updated(self, guild: Guild, member: Member) -> Json:
        payload = {**member_payload(member, self.world.users[member.user_id]), "guild_id": guild.id}
        self.hub.dispatch_guild(guild, "GUILD_MEMBER_UPDATE", payload)
        return payload

    def bot_edit_member(self, bot: Bot, guild_id: str, user_id: str, body: Json, reason: str | None) -> Json:
        """PATCH /guilds/{id}/members/{user}: nick, roles, timeout (communication_disabled_until)."""
        validation.checked(validation.member_modify, body)
        guild = self._bot_guild(bot, guild_id)
        member = self.world.member(guild, user_id)
        if "communication_disabled_until" in body:
            self._moderate(guild, bot, user_id)
            until = body["communication_disabled_until"]
            if until is not None:
                try:
                    when = _parse_time(str(until))
                except ValueError:
                    raise errors.invalid_form(
                        "communication_disabled_until", "Not an ISO8601 timestamp."
                    ) from None
                if when - self.clock() > MAX_TIMEOUT:
                    raise errors.invalid_form(
                        "communication_disabled_until", "Must be at most 28 days ahead."
                    )
                until = when.isoformat()
            member.communication_disabled_until = until
            self.record(
                "timeout", bot, guild.id, None, {"user_id": user_id, "until": until, "reason": reason}
            )
        if "nick" in body:
            member.nick = body["nick"] or None
            self.record(
                "nick", bot, guild.id, None, {"user_id": user_id, "nick": member.nick, "reason": reason}
            )
        if "roles" in body:
            member.roles = [str(r) for r in body["roles"] or []]
            self.record(
                "roles", bot, guild.id, None, {"user_id": user_id, "roles": member.roles, "reason": reason}
            )
        return self._member_updated(guild, member)

    def bot_edit_me(self, bot: Bot, guild_id: str, body: Json) -> Json:
        """PATCH /guilds/{id}/members/@me: the per-guild persona (nick, avatar, banner, bio)."""
        guild = self._bot_guild(bot, guild_id)
        member = guild.members[bot.id]
        fields = {k: body[k] for k in ("nick", "avatar", "banner", "bio") if k in body}
        for name, value in fields.items():
            setattr(member, name, value or None)
        kind = "nick" if set(fields) == {"nick"} else "persona"
        self.record(kind, bot, guild.id, None, {"user_id": bot.id, **fields})
        return self._member_updated(guild, member)

    def bot_open_dm(self, bot: Bot, recipient_id: str) -> Json:
        if recipient_id in self.world.bots:
            raise ApiError(400, 50007, "Cannot send messages to this user")
        return channel_payload(self.dm_channel(recipient_id, bot.id), self.world)

    def bot_presence(self, bot: Bot, data: Json) -> None:
        status = str(data.get("status") or "online")
        presence: Json = {
            "status": status,
            "activities": list(data.get("activities") or []),
            "since": data.get("since"),
            "afk": bool(data.get("afk", False)),
        }
        bot.presence = presence
        self.record("presence", bot, None, None, presence)
        for guild_id in bot.guild_ids:
            guild = self.world.guilds[guild_id]
            self.hub.dispatch_guild(
                guild,
                "PRESENCE_UPDATE",
                {
                    "user": {"id": bot.id},
                    "guild_id": guild.id,
                    "status": status,
                    "activities": presence["activities"],
                    "client_status": {"web": status},
                },
                exclude_bot=bot.id,
            )

    def bot_voice_state(self, bot: Bot, session_id: str, data: Json) -> Json | None:
        guild_id = str(data.get("guild_id"))
        channel_id = data.get("channel_id")
        guild = self.world.guilds.get(guild_id)
        if guild is None or guild.id not in bot.guild_ids:
            return None
        try:
            self._set_voice(
                guild,
                bot.id,
                None if channel_id is None else str(channel_id),
                session_id,
                bool(data.get("self_mute")),
                bool(data.get("self_deaf")),
            )
        except ApiError:
            return None
        self.record(
            "voice_state",
            bot,
            guild.id,
            None if channel_id is None else str(channel_id),
            {
                "channel_id": channel_id,
                "self_mute": bool(data.get("self_mute")),
                "self_deaf": bool(data.get("self_deaf")),
            },
        )
        if channel_id is None:
            self.voice.revoke(guild.id, bot.id)
            return None
        grant = self.voice.grant(guild.id, str(channel_id), bot.id, session_id)
        endpoint = self.config.voice_endpoint or self.voice.endpoint
        return {"token": grant.token, "guild_id": guild.id, "endpoint": endpoint}

    # --- interactions and their webhooks -------------------------------------------------------------

    def interaction_callback(self, interaction_id: str, token: str, body: Json) -> Json:
        interaction = self.world.interactions.get(interaction_id)
        if interaction is None or interaction.token != token:
            raise errors.not_found("interaction", errors.UNKNOWN_INTERACTION)
        if interaction.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if self.clock().timestamp() - interaction.created_at > self.config.interaction_response_timeout_s:
            raise errors.not_found("interaction", errors.UNKNOWN_INTERACTION)
        validation.checked(validation.interaction_callback(interaction.type), body)
        kind = body.get("type")
        data = body.get("data") or {}
        bot = self.world.bots[interaction.bot_id]
        channel = self.world.channels[interaction.channel_id]
        message: Json | None = None
        if kind in (CALLBACK_MESSAGE, CALLBACK_DEFERRED_MESSAGE):
            flags = int(data.get("flags") or 0) & FLAG_EPHEMERAL
            if kind == CALLBACK_DEFERRED_MESSAGE:
                data, flags = {"flags": flags | FLAG_LOADING}, flags | FLAG_LOADING
            stored = self._interaction_message(interaction, bot, channel, {**data, "flags": flags})
            interaction.original = stored
            message = stored.payload
        interaction.acknowledged = True
        self.record(
            "interaction_response",
            bot,
            interaction.guild_id,
            channel.id,
            {
                "interaction_id": interaction.id,
                "stage": "callback",
                "type": kind,
                "data": body.get("data"),
                "message_id": message["id"] if message else None,
            },
        )
        response: Json = {
            "interaction": {
                "id": interaction.id,
                "type": interaction.type,
                "response_message_id": message["id"] if message else None,
                "response_message_loading": kind == CALLBACK_DEFERRED_MESSAGE,
                "response_message_ephemeral": bool(message and message["flags"] & FLAG_EPHEMERAL),
            }
        }
        if message is not None:
            response["resource"] = {"type": kind, "message": message}
        return response

    def _interaction_message(
        self, interaction: Interaction, bot: Bot, channel: Channel, body: Json
    ) -> StoredMessage:
        user = self.world.users[interaction.user_id]
        extra = {
            "application_id": interaction.application_id,
            "webhook_id": interaction.application_id,
            "interaction_metadata": {
                "id": interaction.id,
                "type": 2,
                "user": user_payload(user),
                "authorizing_integration_owners": {},
            },
        }
        ephemeral = bool(int(body.get("flags") or 0) & FLAG_EPHEMERAL)
        # Ephemeral responses are seen only by the invoking user: not stored in history nor dispatched.
        stored = self._create_message(
            channel, bot.user, body, msg_type=MESSAGE_CHAT_INPUT_COMMAND, extra=extra, dispatch=not ephemeral
        )
        return stored

    def _webhook_interaction(self, application_id: str, token: str) -> Interaction:
        interaction = self.world.interaction_tokens.get(token)
        if interaction is None or interaction.application_id != application_id:
            raise errors.not_found("Webhook", errors.UNKNOWN_WEBHOOK)
        if self.clock().timestamp() - interaction.created_at > self.config.interaction_token_ttl_s:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return interaction

    def _original(self, interaction: Interaction) -> tuple[Channel, StoredMessage]:
        if interaction.original is None:
            raise errors.not_found("Message", errors.UNKNOWN_MESSAGE)
        return self.world.channels[interaction.channel_id], interaction.original

    def get_original(self, application_id: str, token: str) -> Json:
        _, stored = self._original(self._webhook_interaction(application_id, token))
        return stored.payload

    def edit_original(self, application_id: str, token: str, body: Json) -> Json:
        interaction = self._webhook_interaction(application_id, token)
        channel, stored = self._original(interaction)
        payload = self._edit_message(channel, stored, {**body, "flags": stored.payload["flags"]})
        bot = self.world.bots[interaction.bot_id]
        self.record(
            "interaction_response",
            bot,
            interaction.guild_id,
            channel.id,
            {
                "interaction_id": interaction.id,
                "stage": "edit_original",
                "data": body,
                "message_id": payload["id"],
            },
        )
        return payload

    def delete_original(self, application_id: str, token: str) -> None:
        interaction = self._webhook_interaction(application_id, token)
        channel, stored = self._original(interaction)
        self._delete_message(channel, stored.payload["id"])
        interaction.original = None
        self.record(
            "interaction_response",
            self.world.bots[interaction.bot_id],
            interaction.guild_id,
            channel.id,
            {
                "interaction_id": interaction.id,
                "stage": "delete_original",
                "message_id": stored.payload["id"],
            },
        )

    def followup(self, application_id: str, token: str, body: Json) -> Json:
        interaction = self._webhook_interaction(application_id, token)
        if not interaction.acknowledged:
            raise errors.not_found("Webhook", errors.UNKNOWN_WEBHOOK)
        bot = self.world.bots[interaction.bot_id]
        channel = self.world.channels[interaction.channel_id]
        stored = self._interaction_message(interaction, bot, channel, body)
        self.record(
            "interaction_response",
            bot,
            interaction.guild_id,
            channel.id,
            {
                "interaction_id": interaction.id,
                "stage": "followup",
                "data": body,
                "message_id": stored.payload["id"],
            },
        )
        return stored.payload

    # --- application commands ------------------------------------------------------------------------

    def _command_table(self, bot: Bot, application_id: str, guild_id: str | None) -> dict[str, Json]:
        if application_id != bot.application_id:
            raise errors.missing_access()
        if guild_id is None:
            return bot.commands
        self._bot_guild(bot, guild_id)
        return bot.guild_commands.setdefault(guild_id, {})

    def _command(self, bot: Bot, guild_id: str | None, body: Json, existing: Json | None) -> Json:
        command: Json = {
            "type": 1,
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            **body,
            "id": existing["id"] if existing else self.ids.next(),
            "application_id": bot.application_id,
            "version": self.ids.next(),
        }
        if guild_id is not None:
            command["guild_id"] = guild_id
        return command

    def registered_commands(self, bot_id: str, guild_id: str | None = None) -> list[Json]:
        """What a bot registered, in a guild or globally (for the control API)."""
        bot = self.world.bot(bot_id)
        table = bot.commands if guild_id is None else bot.guild_commands.get(guild_id, {})
        return list(table.values())

    def list_commands(self, bot: Bot, application_id: str, guild_id: str | None = None) -> list[Json]:
        return list(self._command_table(bot, application_id, guild_id).values())

    def put_commands(
        self, bot: Bot, application_id: str, guild_id: str | None, bodies: list[Json]
    ) -> list[Json]:
        """Bulk overwrite: same-named commands keep their ids, the rest are replaced."""
        table = self._command_table(bot, application_id, guild_id)
        validation.checked(validation.commands, bodies)
        fresh = {}
        for body in bodies:
            command = self._command(bot, guild_id, body, table.get(str(body.get("name"))))
            fresh[command["name"]] = command
        table.clear()
        table.update(fresh)
        self.record(
            "command_upsert", bot, guild_id, None, {"mode": "overwrite", "commands": list(fresh.values())}
        )
        return list(fresh.values())

    def post_command(
        self, bot: Bot, application_id: str, guild_id: str | None, body: Json
    ) -> tuple[Json, bool]:
        table = self._command_table(bot, application_id, guild_id)
        validation.checked(validation.command, body)
        existing = table.get(str(body.get("name")))
        command = self._command(bot, guild_id, body, existing)
        table[command["name"]] = command
        self.record("command_upsert", bot, guild_id, None, {"mode": "upsert", "commands": [command]})
        return command, existing is None


def _check_autocomplete(command: Json, options: list[Json]) -> None:
    """Discord's client asks for choices only while the user types in an option declared with
    `autocomplete`, and marks that one option `focused`."""
    focused = [o for o in options if o.get("focused")]
    if len(focused) != 1:
        raise errors.invalid_form("options", "Exactly one option is focused in an autocomplete request.")
    declared = {o.get("name"): o for o in command.get("options") or []}
    if not declared.get(focused[0].get("name"), {}).get("autocomplete"):
        raise errors.invalid_form("options", "The focused option does not declare autocomplete.")


def _role(role_id: str, name: str, permissions: int, *, position: int, managed: bool = False) -> Json:
    return {
        "id": role_id,
        "name": name,
        "color": 0,
        "colors": {"primary_color": 0},
        "hoist": False,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": managed,
        "mentionable": False,
        "flags": 0,
    }
