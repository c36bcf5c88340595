"""The gateway: WebSocket sessions, sequencing, replay for RESUME, fan-out of dispatches.

Memory per connection is kept small for 10,000 concurrent bots in one process: a session holds ids, a
counter and a bounded deque of references to dispatch bodies that are encoded once and shared by every
session receiving them; no per-connection task runs while there is nothing to send (a flush task is
started when a dispatch is queued and ends when the socket has caught up).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import zlib
from collections import deque
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web

from . import rules
from .intents import (
    CLOSE_DISALLOWED_INTENTS,
    Intent,
    check_intents,
    content_visible,
    event_intent,
    strip_content,
)
from .payloads import guild_create_payload, member_payload, user_payload
from .ratelimit import Window, take
from .spec import EmulatorConfig
from .world import Bot, Guild, Json, World

log = logging.getLogger(__name__)

_TRACE = ["emulator-gateway"]


def encode_dispatch(event: str, data: Any) -> bytes:
    """The body of a dispatch after its sequence number: shared by all sessions that receive it."""
    return b'"op":0,"t":"%b","d":%b}' % (event.encode(), orjson.dumps(data))


def encode_op(op: int, data: Any) -> bytes:
    return orjson.dumps({"op": op, "d": data, "s": None, "t": None})


def frame(seq: int, body: bytes) -> bytes:
    return b'{"s":%d,%b' % (seq, body)


_HEARTBEAT_ACK = encode_op(rules.OP_HEARTBEAT_ACK, None)
_RECONNECT = encode_op(rules.OP_RECONNECT, None)
_INVALID_SESSION = encode_op(rules.OP_INVALID_SESSION, False)
_RESUMED = encode_dispatch("RESUMED", {"_trace": _TRACE})


class GatewayEffects(Protocol):
    """World changes a bot can cause over the gateway (implemented by the engine)."""

    def bot_presence(self, bot: Bot, data: Json) -> None: ...

    def bot_voice_state(self, bot: Bot, session_id: str, data: Json) -> Json | None:
        """Apply an op 4; return the VOICE_SERVER_UPDATE payload for the requesting session, if any."""
        ...


class ZlibStream:
    """zlib-stream transport compression: one context per connection, each payload Z_SYNC_FLUSHed."""

    __slots__ = ("_context",)

    def __init__(self, window_bits: int, mem_level: int) -> None:
        self._context = zlib.compressobj(6, zlib.DEFLATED, window_bits, mem_level)

    def compress(self, data: bytes) -> bytes:
        return self._context.compress(data) + self._context.flush(zlib.Z_SYNC_FLUSH)


class Session:
    """A gateway session: survives its connection until it is resumed or expires."""

    __slots__ = (
        "bot",
        "conn",
        "expiry",
        "id",
        "intents",
        "large_threshold",
        "replay",
        "seq",
        "shard_count",
        "shard_id",
    )

    def __init__(
        self, bot: Bot, intents: int, shard: tuple[int, int], large_threshold: int, replay_limit: int
    ) -> None:
        self.id = secrets.token_hex(16)
        self.bot = bot
        self.intents = intents
        self.shard_id, self.shard_count = shard
        self.large_threshold = large_threshold
        self.seq = 0
        # Bodies of the last dispatches; the newest has sequence `seq`.
        self.replay: deque[bytes] = deque(maxlen=replay_limit)
        self.conn: Connection | None = None
        self.expiry: asyncio.TimerHandle | None = None

    @property
    def first_buffered_seq(self) -> int:
        return self.seq - len(self.replay) + 1

    def covers(self, guild_id: str) -> bool:
        return rules.guild_on_shard(guild_id, self.shard_id, self.shard_count)

    def push(self, body: bytes) -> None:
        self.seq += 1
        self.replay.append(body)
        conn = self.conn
        if conn is not None and conn.live and not conn.flushing:
            conn.start_flush()


class Connection:
    __slots__ = (
        "close_code",
        "compressor",
        "flush_task",
        "flushing",
        "live",
        "remote",
        "sent_seq",
        "session",
        "transport",
        "window",
        "ws",
    )

    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        compressor: ZlibStream | None,
        remote: str,
    ) -> None:
        self.ws = ws
        self.transport = transport
        self.compressor = compressor
        self.remote = remote
        self.session: Session | None = None
        self.sent_seq = 0
        # Dispatches flow only once READY (or the RESUME replay point) is established.
        self.live = False
        self.flushing = False
        self.flush_task: asyncio.Task[None] | None = None
        self.window: Window | None = None
        self.close_code: int | None = None

    async def send(self, data: bytes) -> None:
        # Compression and the write happen without an await in between, so frames from the flush task
        # and from the receive loop never interleave inside the shared zlib stream.
        if self.compressor is None:
            await self.ws.send_frame(data, WSMsgType.TEXT)
        else:
            await self.ws.send_frame(self.compressor.compress(data), WSMsgType.BINARY)

    def start_flush(self) -> None:
        self.flushing = True
        self.flush_task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while (session := self.session) is not None and self.sent_seq < session.seq:
                wanted = self.sent_seq + 1
                first = session.first_buffered_seq
                if wanted < first:
                    # The client fell further behind than the replay buffer: drop it; its RESUME fails.
                    self.abort()
                    return
                await self.send(frame(wanted, session.replay[wanted - first]))
                self.sent_seq = wanted
        except (ConnectionError, RuntimeError):
            self.abort()
        finally:
            self.flushing = False
            self.flush_task = None

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (what a network failure looks like)."""
        self.live = False
        if self.transport is not None:
            self.transport.abort()


class GatewayHub:
    _CLOSE_GRACE_S = 5.0

    def __init__(self, world: World, config: EmulatorConfig, effects: GatewayEffects) -> None:
        self.world = world
        self.config = config
        self.effects = effects
        self.gateway_url = "ws://127.0.0.1/"
        self.sessions: dict[str, Session] = {}
        self.by_bot: dict[str, list[Session]] = {}
        self.connections: set[Connection] = set()

    # --- fan-out -------------------------------------------------------------------------------------

    def dispatch_guild(
        self,
        guild: Guild,
        event: str,
        data: Json,
        *,
        content: tuple[str, frozenset[str]] | None = None,
        exclude_bot: str | None = None,
    ) -> int:
        """Send a guild event to every session of every bot in the guild that its shard and intents
        admit. `content` = (author id, mentioned ids) marks a message whose content may be hidden.
        Returns the number of sessions reached."""
        if not guild.bot_ids:
            return 0
        needed = event_intent(event, dm=False)
        full: bytes | None = None
        stripped: bytes | None = None
        reached = 0
        for bot_id in guild.bot_ids:
            if bot_id == exclude_bot:
                continue
            for session in self.by_bot.get(bot_id, ()):
                if (needed and not session.intents & needed) or not session.covers(guild.id):
                    continue
                if content is not None and not content_visible(
                    session.intents, bot_id, content[0], content[1], dm=False
                ):
                    if stripped is None:
                        stripped = encode_dispatch(event, strip_content(data))
                    session.push(stripped)
                else:
                    if full is None:
                        full = encode_dispatch(event, data)
                    session.push(full)
                reached += 1
        return reached

    def dispatch_bot(self, bot_id: str, event: str, data: Json, *, guild_id: str | None = None) -> int:
        """Send an event to one bot: the shard holding `guild_id`, or shard 0 for DMs."""
        needed = event_intent(event, dm=guild_id is None)
        body: bytes | None = None
        reached = 0
        for session in self.by_bot.get(bot_id, ()):
            if needed and not session.intents & needed:
                continue
            if (session.shard_id != 0) if guild_id is None else not session.covers(guild_id):
                continue
            if body is None:
                body = encode_dispatch(event, data)
            session.push(body)
            reached += 1
        return reached

    def send_guild_create(self, bot: Bot, guild: Guild) -> None:
        for session in self.by_bot.get(bot.id, ()):
            if session.intents & Intent.GUILDS and session.covers(guild.id):
                session.push(encode_dispatch("GUILD_CREATE", self._guild_create(session, guild)))

    def _guild_create(self, session: Session, guild: Guild) -> Json:
        large = len(guild.members) > session.large_threshold
        all_members = bool(session.intents & Intent.GUILD_PRESENCES) and not large
        return guild_create_payload(guild, self.world, session.bot, all_members=all_members, large=large)

    # --- control -------------------------------------------------------------------------------------

    def _connections_of(self, bot_id: str | None) -> list[Connection]:
        if bot_id is None:
            return list(self.connections)
        return [s.conn for s in self.by_bot.get(bot_id, ()) if s.conn is not None]

    def drop(self, bot_id: str | None = None) -> int:
        """Abort connections without a close frame; their sessions stay resumable."""
        conns = self._connections_of(bot_id)
        for conn in conns:
            conn.abort()
        return len(conns)

    async def request_reconnect(self, bot_id: str | None = None) -> int:
        """Send op 7 RECONNECT; the client closes and resumes."""
        conns = [c for c in self._connections_of(bot_id) if c.session is not None]
        for conn in conns:
            try:
                await conn.send(_RECONNECT)
            except (ConnectionError, RuntimeError):
                conn.abort()
        return len(conns)

    async def close_bot(self, bot: Bot, code: int, reason: str) -> int:
        """Close every connection of a bot with `code` and end its sessions (used on token revoke)."""
        conns = self._connections_of(bot.id)
        for session in list(self.by_bot.get(bot.id, ())):
            self.end_session(session)
        await asyncio.gather(*(self._close_from_outside(c, bot, code, reason) for c in conns))
        return len(conns)

    def bot_stats(self, bot: Bot) -> Json:
        remaining, reset_after = bot.session_start_remaining(time.time())
        sessions = self.by_bot.get(bot.id, [])
        return {
            "bot_id": bot.id,
            **bot.stats.as_json(),
            "sessions": len(sessions),
            "connected_sessions": sum(1 for s in sessions if s.conn is not None and s.conn.live),
            # Set: interactions are POSTed there instead of dispatched over these sessions.
            "interactions_endpoint_url": bot.interactions_endpoint_url,
            "session_start_limit": {
                "total": bot.session_start_total,
                "remaining": remaining,
                "reset_after": int(reset_after * 1000),
                "max_concurrency": bot.max_concurrency,
            },
        }

    def end_session(self, session: Session) -> None:
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        self.sessions.pop(session.id, None)
        siblings = self.by_bot.get(session.bot.id)
        if siblings is not None and session in siblings:
            siblings.remove(session)
            if not siblings:
                del self.by_bot[session.bot.id]
        session.replay.clear()
        if session.conn is not None:
            session.conn.session = None
            session.conn = None

    # --- connection handling -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        if query.get("encoding", "json") != "json":
            raise web.HTTPBadRequest(text="only encoding=json is emulated")
        compress = query.get("compress")
        if compress not in (None, "", "zlib-stream"):
            raise web.HTTPBadRequest(text="only compress=zlib-stream is emulated")
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=1 << 16, timeout=5.0)
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="this is the gateway: connect with a WebSocket")
        await ws.prepare(request)
        compressor = (
            ZlibStream(self.config.zlib_window_bits, self.config.zlib_mem_level) if compress else None
        )
        conn = Connection(ws, request.transport, compressor, request.remote or "")
        self.connections.add(conn)
        client_code: int | None = None
        try:
            version = query.get("v")
            if version is not None and version != str(rules.GATEWAY_VERSION):
                await self._close(conn, None, rules.CLOSE_INVALID_API_VERSION, "Invalid API version")
                return ws
            await conn.send(
                encode_op(
                    rules.OP_HELLO,
                    {
                        "heartbeat_interval": self.config.heartbeat_interval_ms,
                        "_trace": _TRACE,
                    },
                )
            )
            timeout = rules.heartbeat_timeout_s(
                self.config.heartbeat_interval_ms, self.config.heartbeat_grace_s
            )
            while True:
                try:
                    msg = await ws.receive(timeout=timeout)
                except TimeoutError:
                    bot = conn.session.bot if conn.session is not None else None
                    await self._close(conn, bot, rules.CLOSE_SESSION_TIMED_OUT, "Session timed out")
                    break
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    if not await self._on_payload(conn, msg.data):
                        break
                    continue
                if msg.type is WSMsgType.CLOSE:
                    client_code = msg.data
                break
        except (ConnectionError, RuntimeError):
            conn.abort()
        finally:
            self.connections.discard(conn)
            self._detach(conn, client_code)
        return ws

    def _detach(self, conn: Connection, client_code: int | None) -> None:
        conn.live = False
        session = conn.session
        conn.session = None
        if session is None or session.conn is not conn:
            return
        session.conn = None
        if (
            client_code in rules.CLIENT_SESSION_ENDING_CLOSES
            or conn.close_code in rules.SESSION_ENDING_CLOSES
        ):
            self.end_session(session)
        else:
            session.expiry = asyncio.get_running_loop().call_later(
                self.config.resume_timeout_s, self.end_session, session
            )

    @staticmethod
    def _count_close(bot: Bot | None, code: int) -> None:
        if bot is not None:
            bot.stats.close_codes[code] = bot.stats.close_codes.get(code, 0) + 1

    async def _close(self, conn: Connection, bot: Bot | None, code: int, reason: str) -> bool:
        """Close from the connection's own handler task; returns False (stop reading)."""
        conn.close_code = code
        conn.live = False
        self._count_close(bot, code)
        if not conn.ws.closed:
            await conn.ws.close(code=code, message=reason.encode())
        return False

    async def _close_from_outside(self, conn: Connection, bot: Bot, code: int, reason: str) -> None:
        """Close a connection whose handler is blocked in receive(). aiohttp's close() from another task
        drops the transport right after the close frame, so the client's reply fails and it reports 1006;
        instead send the close frame and let the handler finish when the client answers."""
        conn.close_code = code
        conn.live = False
        self._count_close(bot, code)
        try:
            await conn.ws.send_frame(code.to_bytes(2, "big") + reason.encode(), WSMsgType.CLOSE)
        except (ConnectionError, RuntimeError):
            conn.abort()
            return
        # A client that never answers the close frame is cut off.
        asyncio.get_running_loop().call_later(self._CLOSE_GRACE_S, conn.abort)

    async def _on_payload(self, conn: Connection, raw: str | bytes) -> bool:
        """Handle one client payload; False when the connection was closed."""
        session = conn.session
        bot = session.bot if session is not None else None
        if len(raw) > self.config.gateway_max_payload_bytes:
            return await self._close(conn, bot, rules.CLOSE_DECODE_ERROR, "Decode error")
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return await self._close(conn, bot, rules.CLOSE_DECODE_ERROR, "Decode error")
        if not isinstance(payload, dict) or not isinstance(payload.get("op"), int):
            return await self._close(conn, bot, rules.CLOSE_DECODE_ERROR, "Decode error")
        conn.window, verdict = take(
            conn.window, time.monotonic(), self.config.gateway_send_limit, self.config.gateway_send_window_s
        )
        if bot is not None:
            bot.stats.gateway_sends += 1
        if not verdict.allowed:
            return await self._close(conn, bot, rules.CLOSE_RATE_LIMITED, "Rate limited.")
        op: int = payload["op"]
        data = payload.get("d")
        if op == rules.OP_HEARTBEAT:
            await conn.send(_HEARTBEAT_ACK)
            return True
        if op == rules.OP_IDENTIFY:
            return await self._identify(conn, data)
        if op == rules.OP_RESUME:
            return await self._resume(conn, data)
        if op not in (rules.OP_PRESENCE_UPDATE, rules.OP_VOICE_STATE_UPDATE, rules.OP_REQUEST_GUILD_MEMBERS):
            return await self._close(conn, bot, rules.CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")
        if session is None or bot is None:
            return await self._close(conn, None, rules.CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
        if not isinstance(data, dict):
            return await self._close(conn, bot, rules.CLOSE_DECODE_ERROR, "Decode error")
        if op == rules.OP_PRESENCE_UPDATE:
            self.effects.bot_presence(bot, data)
        elif op == rules.OP_VOICE_STATE_UPDATE:
            server = self.effects.bot_voice_state(bot, session.id, data)
            if server is not None:
                session.push(encode_dispatch("VOICE_SERVER_UPDATE", server))
        else:
            self._request_members(session, data)
        return True

    async def _authenticate(self, conn: Connection, data: Any) -> Bot | None:
        """The bot an IDENTIFY or RESUME authenticates as; None when the connection was closed instead."""
        if conn.session is not None:
            await self._close(conn, None, rules.CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            return None
        if not isinstance(data, dict):
            await self._close(conn, None, rules.CLOSE_DECODE_ERROR, "Decode error")
            return None
        token = data.get("token")
        bot = self.world.bot_for_token(token) if isinstance(token, str) else None
        if bot is None:
            await self._close(conn, None, rules.CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
        return bot

    async def _identify(self, conn: Connection, data: Any) -> bool:
        bot = await self._authenticate(conn, data)
        if bot is None:
            return False
        intents = data.get("intents")
        if not isinstance(intents, int):
            intents = -1  # v10 requires intents: a missing value is invalid (4013)
        code = check_intents(intents, bot.privileged_intents)
        if code is not None:
            reason = "Disallowed intent(s)." if code == CLOSE_DISALLOWED_INTENTS else "Invalid intent(s)."
            return await self._close(conn, bot, code, reason)
        shard = rules.parse_shard(data.get("shard"))
        if shard is None:
            return await self._close(conn, bot, rules.CLOSE_INVALID_SHARD, "Invalid shard.")
        guilds = [
            self.world.guilds[g]
            for g in sorted(bot.guild_ids, key=int)
            if rules.guild_on_shard(g, *shard) and g in self.world.guilds
        ]
        if len(guilds) > self.config.max_guilds_per_shard:
            return await self._close(conn, bot, rules.CLOSE_SHARDING_REQUIRED, "Sharding required.")

        wall = time.time()
        remaining, _ = bot.session_start_remaining(wall)
        if remaining <= 0:
            # Discord resets the token of a bot that exceeds its daily session starts.
            bot.revoked = True
            await self.close_bot(bot, rules.CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
            return await self._close(conn, bot, rules.CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
        now = time.monotonic()
        bucket = rules.identify_bucket(shard[0], bot.max_concurrency)
        if not rules.identify_allowed(bot.last_identify.get(bucket), now, self.config.identify_interval_s):
            # Real Discord queues or invalidates an early IDENTIFY; we answer INVALID_SESSION(false),
            # count it, and keep the connection open so the client can identify again later.
            bot.stats.identifies_rejected += 1
            await conn.send(_INVALID_SESSION)
            return True
        bot.last_identify[bucket] = now
        if not bot.identifies_in_window or wall >= bot.identify_window_start + 86_400:
            bot.identify_window_start, bot.identifies_in_window = wall, 0
        bot.identifies_in_window += 1
        bot.stats.identifies += 1
        bot.stats.gateway_sends += 1  # the IDENTIFY itself, sent before the bot was known
        bot.stats.gateway_connections += 1

        threshold = data.get("large_threshold", 50)
        threshold = min(max(threshold if isinstance(threshold, int) else 50, 50), 250)
        session = Session(bot, intents, shard, threshold, self.config.replay_limit)
        self.sessions[session.id] = session
        self.by_bot.setdefault(bot.id, []).append(session)
        bodies = [encode_dispatch("READY", self._ready(session, guilds, data.get("shard") is not None))]
        if session.intents & Intent.GUILDS:
            bodies += [encode_dispatch("GUILD_CREATE", self._guild_create(session, g)) for g in guilds]
        # Sequence numbers of the initial burst are reserved now; dispatches that arrive while it is
        # written get the following ones and wait in the replay buffer. The burst itself is not
        # replayable (a RESUME from inside it gets INVALID_SESSION).
        session.seq = len(bodies)
        session.conn = conn
        conn.session = session
        for seq, body in enumerate(bodies, 1):
            await conn.send(frame(seq, body))
        conn.sent_seq = len(bodies)
        self._go_live(conn, session)
        presence = data.get("presence")
        if isinstance(presence, dict) and (presence.get("status") or presence.get("activities")):
            self.effects.bot_presence(bot, presence)
        return True

    def _go_live(self, conn: Connection, session: Session) -> None:
        conn.live = True
        if session.seq > conn.sent_seq and not conn.flushing:
            conn.start_flush()

    def _ready(self, session: Session, guilds: list[Guild], with_shard: bool) -> Json:
        bot = session.bot
        ready: Json = {
            "v": rules.GATEWAY_VERSION,
            "user": {
                **user_payload(bot.user),
                "verified": True,
                "mfa_enabled": False,
                "flags": 0,
                "email": None,
            },
            "guilds": [{"id": g.id, "unavailable": True} for g in guilds],
            "session_id": session.id,
            "session_type": "normal",
            "resume_gateway_url": self.gateway_url,
            "application": {"id": bot.application_id, "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": _TRACE,
        }
        if with_shard:
            ready["shard"] = [session.shard_id, session.shard_count]
        return ready

    async def _resume(self, conn: Connection, data: Any) -> bool:
        bot = await self._authenticate(conn, data)
        if bot is None:
            return False
        session = self.sessions.get(str(data.get("session_id")))
        seq = data.get("seq")
        if (
            session is None
            or session.bot is not bot
            or not (seq is None or isinstance(seq, int))
            or not rules.resume_replayable(seq, session.first_buffered_seq, session.seq)
        ):
            bot.stats.resumes_rejected += 1
            await conn.send(_INVALID_SESSION)
            return True
        old = session.conn
        if old is not None:
            old.session = None
            old.abort()
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        bot.stats.resumes += 1
        bot.stats.gateway_sends += 1
        bot.stats.gateway_connections += 1
        session.conn = conn
        conn.session = session
        conn.sent_seq = seq or 0
        session.push(_RESUMED)
        self._go_live(conn, session)
        return True

    def _request_members(self, session: Session, data: Json) -> None:
        """Op 8: answer with GUILD_MEMBERS_CHUNK dispatches (1,000 members each)."""
        guild_ids = data.get("guild_id")
        ids = guild_ids if isinstance(guild_ids, list) else [guild_ids]
        query = data.get("query")
        limit = data.get("limit") or 0
        user_ids = data.get("user_ids")
        wanted = (
            {str(u) for u in (user_ids if isinstance(user_ids, list) else [user_ids])} if user_ids else None
        )
        allowed = bool(session.intents & Intent.GUILD_MEMBERS)
        for raw_id in ids:
            guild = self.world.guilds.get(str(raw_id))
            if guild is None or guild.id not in session.bot.guild_ids or not session.covers(guild.id):
                continue
            found: list[Json] = []
            if allowed or (query and wanted is None):
                for user_id, member in guild.members.items():
                    user = self.world.users.get(user_id)
                    if user is None:
                        continue
                    if wanted is not None:
                        if user_id not in wanted:
                            continue
                    elif query:
                        names = (user.username.lower(), (member.nick or "").lower())
                        if not any(n.startswith(str(query).lower()) for n in names):
                            continue
                    found.append(member_payload(member, user))
                    if limit and len(found) >= limit:
                        break
            not_found = sorted(wanted - {m["user"]["id"] for m in found}) if wanted else []
            chunks = [found[i : i + 1000] for i in range(0, len(found), 1000)] or [[]]
            for index, members in enumerate(chunks):
                chunk: Json = {
                    "guild_id": guild.id,
                    "members": members,
                    "chunk_index": index,
                    "chunk_count": len(chunks),
                }
                if index == 0 and not_found:
                    chunk["not_found"] = not_found
                if data.get("presences"):
                    chunk["presences"] = []
                if data.get("nonce") is not None:
                    chunk["nonce"] = data["nonce"]
                session.push(encode_dispatch("GUILD_MEMBERS_CHUNK", chunk))
