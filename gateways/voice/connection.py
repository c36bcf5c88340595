"""One bot's voice connection in one guild: the voice WebSocket (v8) and its UDP socket.

IDENTIFY -> READY (SSRC, address) -> IP discovery over UDP -> SELECT PROTOCOL -> SESSION DESCRIPTION (the
key, the DAVE version) -> frames. A dropped socket RESUMEs the same session (op 7, acknowledging the last
sequence received); a close that ends the session (4006, 4014, ...) hands the decision to the manager,
which asks the main gateway for a new one or lets the bot go. With a DAVE version above 0 the frames are
end-to-end encrypted by `davey` before the transport encryption (the MLS handshake runs over the socket's
binary messages); until its group is ready they pass through as Discord's transition rules allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import davey
import orjson

from gateways.voice import protocol
from gateways.voice.protocol import AfterClose, VoiceOp
from gateways.voice.rtp import Packetizer, discovery_answer, discovery_request, open_packet

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT_S = 5.0
# Resumes in a row before the session is given up and the manager asked to join afresh.
MAX_RESUMES = 5
BINARY_SEQ = struct.Struct(">H")
TRANSITION_ID = struct.Struct(">H")
# A close this side makes when a heartbeat went unanswered: not one of Discord's codes, so it resumes.
NO_HEARTBEAT_ACK = 4000
# DAVE frames end with this marker; frames without it (Opus silence, a member not yet in the group) are clear.
DAVE_FRAME_MARKER = b"\xfa\xfa"


@dataclass(frozen=True)
class VoiceServer:
    """What the main gateway's VOICE_STATE_UPDATE (the session) and VOICE_SERVER_UPDATE (token, endpoint)
    say about a bot's voice connection in a guild."""

    bot_id: str
    guild_id: str
    channel_id: str
    session_id: str
    token: str
    endpoint: str


class VoiceProtocolError(Exception):
    """The voice server answered something this client cannot use (no rtpsize mode, a bad discovery)."""


GoneHandler = Callable[["VoiceConnection", AfterClose], None]
# (speaker's user id, Opus frame): what the connection hears, when someone listens.
VoiceHandler = Callable[[str, bytes], None]


class VoiceConnection:
    def __init__(self, http: aiohttp.ClientSession, gateway_url: str, on_gone: GoneHandler) -> None:
        self.server: VoiceServer | None = None
        self._http = http
        self._gateway_url = gateway_url
        self._on_gone = on_gone
        self._ready = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._discovery: asyncio.Future[bytes] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ack_pending = False
        self.ssrc = 0
        self.seq_ack = -1
        self.packetizer: Packetizer | None = None
        self.dave: davey.DaveSession | None = None
        self.dave_version = 0
        self._dave_pending: dict[int, int] = {}
        # Who sends from which SSRC, as the server's op 5 announces it.
        self.speakers: dict[int, str] = {}
        self.on_voice: VoiceHandler | None = None

    # the player's side (AudioSink)

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def speaking(self, on: bool) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await self._send(protocol.speaking_payload(self.ssrc, on))

    def send_frame(self, opus: bytes) -> None:
        """Seal and send one Opus frame; dropped while the connection is being resumed."""
        if not self.ready or self._udp is None or self.packetizer is None:
            return
        if self.dave is not None and self.dave_version > 0 and self.dave.ready:
            opus = self.dave.encrypt_opus(opus)
        self._udp.sendto(self.packetizer.packet(opus))

    # lifecycle

    async def open(self, server: VoiceServer, within_s: float) -> bool:
        """Connect afresh to `server` (a first join, a rejoin, a moved voice server); whether it became ready
        within `within_s` (it keeps trying either way until closed or given up)."""
        await self.close()
        self.server = server
        self._task = asyncio.create_task(self._run(server), name=f"voice-{server.bot_id}-{server.guild_id}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), within_s)
        return self.ready

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._ready.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    async def _run(self, server: VoiceServer) -> None:
        url = protocol.voice_url(server.endpoint, self._gateway_url)
        resume, resumes = False, 0
        while True:
            try:
                code = await self._session(server, url, resume)
                after = protocol.after_close(code)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("voice %s/%s: connection failed: %s", server.bot_id, server.guild_id, exc)
                code, after = None, protocol.after_close(None)
            except VoiceProtocolError as exc:
                log.warning("voice %s/%s: %s", server.bot_id, server.guild_id, exc)
                code, after = None, AfterClose.END
            self._ready.clear()
            if after is AfterClose.RESUME and self.packetizer is not None and resumes < MAX_RESUMES:
                resume, resumes = True, resumes + 1
                await asyncio.sleep(min(2.0**resumes / 4, 5.0))
                continue
            log.info("voice %s/%s: closed with %s: %s", server.bot_id, server.guild_id, code, after.value)
            self._task = None
            self._on_gone(self, AfterClose.REJOIN if after is AfterClose.RESUME else after)
            return

    async def _session(self, server: VoiceServer, url: str, resume: bool) -> int | None:
        """One socket, from the handshake to its close; the close code (None for a network drop)."""
        async with self._http.ws_connect(url, autoping=True, timeout=aiohttp.ClientWSTimeout(10.0)) as ws:
            self._ws = ws
            if resume:
                await self._send(
                    protocol.resume_payload(server.guild_id, server.session_id, server.token, self.seq_ack)
                )
            else:
                self.packetizer, self.seq_ack = None, -1
                await self._send(
                    protocol.identify_payload(
                        server.guild_id,
                        server.bot_id,
                        server.session_id,
                        server.token,
                        davey.DAVE_PROTOCOL_VERSION,
                    )
                )
            heartbeat: asyncio.Task[None] | None = None
            try:
                async for message in ws:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        payload = orjson.loads(message.data)
                        if isinstance(payload.get("seq"), int):
                            self.seq_ack = payload["seq"]
                        if payload.get("op") == VoiceOp.HELLO:
                            interval = protocol.heartbeat_interval_s(payload["d"])
                            heartbeat = asyncio.create_task(self._beat(ws, interval))
                        else:
                            await self._handle(payload.get("op"), payload.get("d") or {})
                    elif message.type is aiohttp.WSMsgType.BINARY:
                        await self._handle_binary(message.data)
            finally:
                if heartbeat is not None:
                    heartbeat.cancel()
                self._ws = None
            return ws.close_code

    async def _beat(self, ws: aiohttp.ClientWebSocketResponse, interval_s: float) -> None:
        self._ack_pending = False
        while True:
            await asyncio.sleep(interval_s)
            if self._ack_pending:
                log.info("voice: no heartbeat ACK, resuming")
                await ws.close(code=NO_HEARTBEAT_ACK)
                return
            self._ack_pending = True
            with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                await self._send(protocol.heartbeat_payload(self.seq_ack))

    async def _send(self, payload: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("voice connection is closed")
        await ws.send_str(orjson.dumps(payload).decode())

    async def _send_binary(self, op: VoiceOp, body: bytes) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise ConnectionError("voice connection is closed")
        await ws.send_bytes(bytes([op]) + body)

    # the handshake

    async def _handle(self, op: Any, data: dict[str, Any]) -> None:
        match op:
            case VoiceOp.READY:
                await self._ready_received(data)
            case VoiceOp.SESSION_DESCRIPTION:
                await self._session_described(data)
            case VoiceOp.RESUMED:
                if self.packetizer is not None:
                    self._ready.set()
            case VoiceOp.HEARTBEAT_ACK:
                self._ack_pending = False
            case VoiceOp.SPEAKING:
                if (announced := protocol.speaker(data)) is not None:
                    ssrc, user_id = announced
                    self.speakers[ssrc] = user_id
            case VoiceOp.DAVE_PREPARE_TRANSITION:
                await self._prepare_transition(int(data["transition_id"]), int(data["protocol_version"]))
            case VoiceOp.DAVE_EXECUTE_TRANSITION:
                self._execute_transition(int(data["transition_id"]))
            case VoiceOp.DAVE_PREPARE_EPOCH:
                # Epoch 1 announces a new MLS group (for the protocol version given).
                if int(data["epoch"]) == 1:
                    self.dave_version = int(data["protocol_version"])
                    await self._start_dave()

    async def _ready_received(self, data: dict[str, Any]) -> None:
        if protocol.TRANSPORT_MODE not in data.get("modes", ()):
            raise VoiceProtocolError(f"the voice server offers no {protocol.TRANSPORT_MODE}")
        self.ssrc = int(data["ssrc"])
        loop = asyncio.get_running_loop()
        if self._udp is not None:
            self._udp.close()
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self), remote_addr=(str(data["ip"]), int(data["port"]))
        )
        self._discovery = loop.create_future()
        self._udp.sendto(discovery_request(self.ssrc))
        try:
            answer = await asyncio.wait_for(self._discovery, DISCOVERY_TIMEOUT_S)
        finally:
            self._discovery = None
        try:
            address, port = discovery_answer(answer)
        except ValueError as exc:
            raise VoiceProtocolError(str(exc)) from None
        await self._send(protocol.select_protocol_payload(address, port))

    def datagram(self, data: bytes) -> None:
        if self._discovery is not None and not self._discovery.done():
            self._discovery.set_result(data)
        elif self.on_voice is not None and self.packetizer is not None:
            self._heard(self.on_voice, self.packetizer.key, data)

    def _heard(self, on_voice: VoiceHandler, key: bytes, data: bytes) -> None:
        """A member's packet: transport-opened, DAVE-opened with the speaker's sender key, handed on."""
        packet = open_packet(key, data)
        if packet is None or (user_id := self.speakers.get(packet.ssrc)) is None:
            return
        opus = packet.payload
        if opus.endswith(DAVE_FRAME_MARKER) and self.dave is not None and self.dave.ready:
            try:
                opus = self.dave.decrypt(int(user_id), davey.MediaType.audio, opus)
            except Exception:  # davey raises plain exceptions for a frame it cannot open
                log.debug("voice: a DAVE frame from %s did not open", user_id)
                return
        on_voice(user_id, opus)

    async def _session_described(self, data: dict[str, Any]) -> None:
        if data.get("mode") != protocol.TRANSPORT_MODE:
            raise VoiceProtocolError(f"the voice server chose {data.get('mode')!r}")
        self.packetizer = Packetizer(self.ssrc, bytes(data["secret_key"]))
        self.dave_version = int(data.get("dave_protocol_version") or 0)
        await self._start_dave()
        # Announces the SSRC: Discord routes no audio from it before a speaking update.
        await self._send(protocol.speaking_payload(self.ssrc, False))
        self._ready.set()

    # DAVE

    async def _start_dave(self) -> None:
        """A new MLS group member for the current DAVE version (its key package to the server); at version 0
        the session passes frames through."""
        if self.dave_version > 0 and self.server is not None:
            user, channel = int(self.server.bot_id), int(self.server.channel_id)
            if self.dave is None:
                self.dave = davey.DaveSession(self.dave_version, user, channel)
            else:
                self.dave.reinit(self.dave_version, user, channel)
            await self._send_binary(VoiceOp.MLS_KEY_PACKAGE, self.dave.get_serialized_key_package())
        elif self.dave is not None:
            self.dave.reset()
            self.dave.set_passthrough_mode(True, 10)

    async def _prepare_transition(self, transition_id: int, version: int) -> None:
        self._dave_pending[transition_id] = version
        if transition_id == 0:
            self._execute_transition(transition_id)
            return
        if version == 0 and self.dave is not None:
            self.dave.set_passthrough_mode(True, 120)
        await self._send(protocol.transition_ready_payload(transition_id))

    def _execute_transition(self, transition_id: int) -> None:
        if transition_id in self._dave_pending:
            self.dave_version = self._dave_pending.pop(transition_id)

    async def _handle_binary(self, message: bytes) -> None:
        (self.seq_ack,) = BINARY_SEQ.unpack_from(message)
        op, body = message[2], message[3:]
        if self.dave is None:
            return
        if op == VoiceOp.MLS_EXTERNAL_SENDER:
            self.dave.set_external_sender(body)
        elif op == VoiceOp.MLS_PROPOSALS:
            kind = (
                davey.ProposalsOperationType.append if body[0] == 0 else davey.ProposalsOperationType.revoke
            )
            result = self.dave.process_proposals(kind, body[1:])
            if isinstance(result, davey.CommitWelcome):
                await self._send_binary(VoiceOp.MLS_COMMIT_WELCOME, result.commit + (result.welcome or b""))
        elif op in (VoiceOp.MLS_ANNOUNCE_COMMIT_TRANSITION, VoiceOp.MLS_WELCOME):
            (transition_id,) = TRANSITION_ID.unpack_from(body)
            try:
                if op == VoiceOp.MLS_WELCOME:
                    self.dave.process_welcome(body[2:])
                else:
                    self.dave.process_commit(body[2:])
            except Exception:  # davey raises plain exceptions for a commit it cannot apply
                log.warning(
                    "voice: invalid MLS commit/welcome for transition %s, rejoining the group", transition_id
                )
                await self._send(protocol.invalid_commit_payload(transition_id))
                await self._start_dave()
                return
            if transition_id != 0:
                self._dave_pending[transition_id] = self.dave_version
                await self._send(protocol.transition_ready_payload(transition_id))


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, connection: VoiceConnection) -> None:
        self._connection = connection

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._connection.datagram(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("voice: UDP error %s", exc)
