"""One bot's gateway connection, lean enough that a process holds ten thousand of them.

A shard is one task and a few hundred bytes of state around aiohttp's WebSocket on the runner's shared
session: no thread, no cache, no heartbeat task or timer of its own (gateways/heartbeats.py beats for all).
HELLO -> IDENTIFY (or RESUME) -> READY; every dispatch goes to the host, which forwards it to Kafka and
reports back which sequence is safe to resume from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Coroutine
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal, Protocol
from uuid import UUID

import aiohttp
import orjson
from pydantic import SecretStr

from gateways import dispatch, protocol
from gateways.protocol import Op, Reconnect
from gateways.sessions import GatewaySession
from gateways.watermark import Watermark
from vault.store import HealthReason

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 20.0
# Discord allows 120 sends per 60 s per connection; commands leave room for heartbeats, IDENTIFY and RESUME.
SEND_WINDOW_S = 60.0
COMMAND_SEND_LIMIT = 110
WS_TIMEOUT = aiohttp.ClientWSTimeout(ws_close=5.0)
# Fire-and-forget tasks stay referenced until done (the loop keeps only weak references).
_background: set[asyncio.Task[Any]] = set()


def _in_background(work: Coroutine[Any, Any, Any]) -> None:
    task = asyncio.create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


class TokenRejected(Exception):
    """Discord refused the token (401 before IDENTIFY, or close code 4004)."""


@dataclass(frozen=True)
class BotCredentials:
    bot_id: str
    token_id: UUID
    token: SecretStr = field(repr=False)
    owner_id: UUID | None = None


class ShardState(Enum):
    CONNECTING = "connecting"
    READY = "ready"
    WAITING = "waiting"  # between connections: backoff, or held during a rebalance
    STOPPED = "stopped"


class ShardHost(Protocol):
    """What every shard of a runner shares: one object, so a shard only costs its own state."""

    http: aiohttp.ClientSession
    gateway_url: str
    # Bounds the TCP/WebSocket handshakes in progress, so ten thousand shards starting at once queue politely.
    handshakes: asyncio.Semaphore

    async def publish(
        self, shard: GatewayShard, seq: int | None, event_type: str, data: dict[str, Any]
    ) -> None: ...

    async def before_identify(self, shard: GatewayShard) -> None:
        """Wait for the identify limits; raises TokenRejected when Discord refuses the token."""

    async def identify_sent(self, shard: GatewayShard) -> None:
        """The IDENTIFY went out: its identify bucket's interval starts now."""

    async def token_dead(self, shard: GatewayShard, reason: HealthReason) -> None: ...

    async def intents_disallowed(self, shard: GatewayShard) -> bool:
        """After a 4014: lower `shard.intents` to what the application was granted; False when nothing is
        left to drop."""

    def sharding_required(self, shard: GatewayShard) -> None:
        """After a 4011: connect the bot's shards afresh under Discord's current shard count."""

    def session_changed(self, shard: GatewayShard) -> None: ...

    def schedule_heartbeat(self, shard: GatewayShard, due: float) -> None: ...


class GatewayShard:
    __slots__ = (
        "_ack_pending",
        "_failures",
        "_heartbeat_due",
        "_heartbeat_interval",
        "_held",
        "_sends",
        "_sends_window_end",
        "_stopping",
        "_task",
        "_waiters",
        "_ws",
        "bot",
        "checkpoint",
        "generation",
        "host",
        "intents",
        "resume_url",
        "session_id",
        "shard_count",
        "shard_id",
        "state",
    )

    def __init__(
        self,
        host: ShardHost,
        bot: BotCredentials,
        session: GatewaySession | None = None,
        shard_id: int = 0,
        shard_count: int = 1,
        intents: int = 0,
    ) -> None:
        self.host = host
        self.bot = bot
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.intents = intents
        self.session_id: str | None = session.session_id if session else None
        self.resume_url: str | None = session.resume_gateway_url if session else None
        self.generation: str | None = session.generation if session else None
        self.checkpoint = Watermark(session.seq if session else 0)
        self.state = ShardState.WAITING
        self._ws: aiohttp.ClientWebSocketResponse[Literal[False]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._heartbeat_interval = 0.0
        self._heartbeat_due = 0.0
        self._ack_pending = False
        self._failures = 0
        self._stopping = False
        self._held = False
        self._sends = 0
        self._sends_window_end = 0.0
        # Futures of callers waiting for READY or for a hold to end; created only when someone waits.
        self._waiters: list[asyncio.Future[None]] | None = None

    def __repr__(self) -> str:
        return f"<GatewayShard bot={self.bot.bot_id} shard={self.shard_id} {self.state.value}>"

    @property
    def bot_id(self) -> str:
        return self.bot.bot_id

    @property
    def resume_seq(self) -> int:
        """The sequence a RESUME asks to replay after. Discord numbers dispatches from 1 and RESUME spells
        "nothing acknowledged yet" 0: a dispatch numbered 0 still in flight puts the watermark at -1, which
        means the same."""
        return max(self.checkpoint.value, 0)

    def session(self) -> GatewaySession | None:
        """What a RESUME needs; raises ValidationError when the server gave values it cannot carry."""
        if self.session_id is None or self.resume_url is None or self.generation is None:
            return None
        return GatewaySession(
            session_id=self.session_id,
            seq=self.resume_seq,
            resume_gateway_url=self.resume_url,
            generation=self.generation,
            shard_count=self.shard_count,
        )

    # lifecycle

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"shard-{self.bot_id}-{self.shard_id}")

    async def stop(self) -> None:
        """Disconnect and keep the session resumable (close code 4000, never 1000/1001)."""
        self._stopping = True
        self._wake()
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self.state = ShardState.STOPPED

    def hold(self) -> None:
        """Don't reconnect after the connection ends (a rebalance may be moving this bot elsewhere)."""
        self._held = True

    def release(self) -> None:
        self._held = False
        self._wake()

    def replay(self) -> None:
        """Reconnect and RESUME from the checkpoint, so Discord sends again what was not forwarded."""
        if self._ws is not None and not self._ws.closed:
            # aiohttp wakes the reader's receive() with CLOSING; the connection loop then resumes.
            _in_background(self._ws.close(code=protocol.CLOSE_KEEP_SESSION))

    async def wait_ready(self, within_s: float) -> bool:
        """Whether the shard is (or within `within_s` becomes) READY; False at once when it stopped."""
        try:
            async with asyncio.timeout(within_s):
                while self.state is not ShardState.READY:
                    if self.state is ShardState.STOPPED:
                        return False
                    await self._next_change()
        except TimeoutError:
            return False
        return True

    async def _next_change(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def _wait_released(self) -> None:
        while self._held and not self._stopping:
            await self._next_change()

    async def _run(self) -> None:
        try:
            while not self._stopping:
                self.state = ShardState.CONNECTING
                outcome = await self._connection()
                self.state = ShardState.WAITING
                if self._stopping:
                    return
                if outcome is Reconnect.TOKEN_DEAD:
                    await self.host.token_dead(self, "close_4004")
                    return
                if outcome is Reconnect.SHARDING_REQUIRED:
                    self.host.sharding_required(self)
                    return
                if outcome is Reconnect.DISALLOWED_INTENTS and not await self.host.intents_disallowed(self):
                    outcome = Reconnect.FATAL
                if outcome is Reconnect.FATAL:
                    log.error(
                        "bot %s shard %s: the gateway refused it for good (intents, shard or version)",
                        self.bot_id,
                        self.shard_id,
                    )
                    return
                if outcome is Reconnect.IDENTIFY:
                    self.session_id = None
                    self.resume_url = None
                    self.generation = None
                    self.host.session_changed(self)
                self._failures += 1
                await asyncio.sleep(protocol.backoff_delay(self._failures, random.random()))
                await self._wait_released()
        finally:
            self.state = ShardState.STOPPED
            self._wake()

    async def _connection(self) -> Reconnect:
        url = protocol.gateway_url(self.resume_url or self.host.gateway_url)
        ws: aiohttp.ClientWebSocketResponse[Literal[False]] | None = None
        try:
            if self.session_id is None:
                # Limits before the socket: a bot waiting for its identify budget holds no connection.
                await self.host.before_identify(self)
            async with self.host.handshakes:
                ws = await self.host.http.ws_connect(
                    url, max_msg_size=0, timeout=WS_TIMEOUT, decode_text=False
                )
            self._ws = ws
            return await self._converse(ws)
        except TokenRejected:
            self._stopping = True
            await self.host.token_dead(self, "revoked_401")
            return Reconnect.TOKEN_DEAD
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("bot %s: gateway connection failed: %s", self.bot_id, type(exc).__name__)
            return Reconnect.RESUME
        except Exception:
            # A shard must not die of a surprise (a malformed payload, a 5xx before IDENTIFY): retry later.
            log.exception("bot %s: gateway connection failed", self.bot_id)
            return Reconnect.RESUME
        finally:
            self._ws = None
            if ws is not None and not ws.closed:
                await ws.close(code=protocol.CLOSE_KEEP_SESSION)

    async def _converse(self, ws: aiohttp.ClientWebSocketResponse[Literal[False]]) -> Reconnect:
        loop = asyncio.get_running_loop()
        hello = await ws.receive(timeout=HELLO_TIMEOUT_S)
        if hello.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            return protocol.after_close(ws.close_code)
        payload = orjson.loads(hello.data)
        if payload.get("op") != Op.HELLO:
            return Reconnect.RESUME
        self._heartbeat_interval = payload["d"]["heartbeat_interval"] / 1000
        self._ack_pending = False
        # Discord asks for a random first beat so reconnecting fleets do not beat in step.
        self._schedule_beat(loop.time() + self._heartbeat_interval * random.random())
        token = self.bot.token.get_secret_value()
        if self.session_id is not None:
            seq = self.resume_seq
            self.checkpoint.restart(seq)
            await self._send(protocol.resume_payload(token, self.session_id, seq))
        else:
            await self._send(protocol.identify_payload(token, self.intents, self.shard_id, self.shard_count))
            await self.host.identify_sent(self)

        while True:
            # No timeout: the runner's heartbeat scheduler closes a connection that stopped answering.
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                outcome = await self._handle(orjson.loads(message.data))
                if outcome is not None:
                    return outcome
            elif message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return protocol.after_close(ws.close_code)

    async def _handle(self, payload: dict[str, Any]) -> Reconnect | None:
        op = payload.get("op")
        if op == Op.DISPATCH:
            event_type: str = payload["t"]
            data: dict[str, Any] = payload["d"]
            seq = payload.get("s")
            if not isinstance(seq, int) or isinstance(seq, bool):
                seq = None  # not resumable: forwarded without touching the checkpoint
            if event_type == "READY":
                self.session_id = data["session_id"]
                self.resume_url = data["resume_gateway_url"]
                self.generation = dispatch.new_generation()
                self.checkpoint.restart(0)
                self._connected()
            else:
                if seq is not None and seq <= self.checkpoint.last_received:
                    self._renumbered(seq)
                if event_type == "RESUMED":
                    self._connected()
            await self.host.publish(self, seq, event_type, data)
        elif op == Op.HEARTBEAT_ACK:
            self._ack_pending = False
        elif op == Op.HEARTBEAT:
            self._ack_pending = True
            await self._send(protocol.heartbeat_payload(self.checkpoint.last_received or None))
        elif op == Op.RECONNECT:
            return Reconnect.RESUME
        elif op == Op.INVALID_SESSION:
            if payload.get("d"):
                return Reconnect.RESUME
            # Discord asks for a wait of 1 to 5 seconds before identifying again.
            await asyncio.sleep(1 + 4 * random.random())
            return Reconnect.IDENTIFY
        return None

    def _renumbered(self, seq: int) -> None:
        """A number this generation already gave out, arriving where Discord would only send newer ones (a
        RESUME replays after the checkpoint): the server numbers afresh, so its dispatches get a new
        generation rather than the ids of earlier, different events."""
        log.warning("bot %s: the gateway reused sequence %s; new event id generation", self.bot_id, seq)
        self.generation = dispatch.new_generation()
        self.checkpoint.restart(max(seq - 1, 0))
        self.host.session_changed(self)

    def _connected(self) -> None:
        self.state = ShardState.READY
        self._failures = 0
        self.host.session_changed(self)
        self._wake()

    def _schedule_beat(self, due: float) -> None:
        self._heartbeat_due = due
        self.host.schedule_heartbeat(self, due)

    def beat(self, due: float) -> None:
        """The heartbeat scheduler's call: beat, or drop a connection whose last beat went unanswered."""
        if due != self._heartbeat_due or self._ws is None or self._ws.closed:
            return  # a beat of an earlier connection
        if self._ack_pending:
            log.info("bot %s: no heartbeat ACK, reconnecting", self.bot_id)
            self.replay()
            return
        self._ack_pending = True
        self._schedule_beat(due + self._heartbeat_interval)
        _in_background(self._send_heartbeat())

    async def _send_heartbeat(self) -> None:
        # A failed send means the connection is going: its reader notices.
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, OSError):
            await self._send(protocol.heartbeat_payload(self.checkpoint.last_received or None))

    async def _send(self, payload: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("gateway connection is closed")
        self._count_send(asyncio.get_running_loop().time())
        await ws.send_str(orjson.dumps(payload).decode())

    def _count_send(self, now: float) -> None:
        if now >= self._sends_window_end:
            self._sends = 0
            self._sends_window_end = now + SEND_WINDOW_S
        self._sends += 1

    async def command(self, payload: dict[str, Any]) -> None:
        """Send a presence or voice-state command, within Discord's per-connection send limit."""
        loop = asyncio.get_running_loop()
        if self._sends >= COMMAND_SEND_LIMIT and loop.time() < self._sends_window_end:
            await asyncio.sleep(self._sends_window_end - loop.time())  # the window then starts afresh
        await self._send(payload)
