"""The voice server: Discord's voice gateway (v8) on its own WebSocket port and the voice UDP endpoint.

A bot's op 4 on the main gateway gets a grant (token, gateway session id, channel) and a VOICE_SERVER_UPDATE
pointing here. The voice WebSocket checks IDENTIFY against the grant, hands out an SSRC and the UDP address
(READY), takes SELECT_PROTOCOL (only `aead_xchacha20_poly1305_rtpsize` is offered), sends the 32-byte key
in SESSION_DESCRIPTION with the DAVE protocol version, and runs DAVE (dave.py) when that version is 1.
Server messages after HELLO carry `seq` (binary ones a 2-byte prefix) and are kept for RESUME replay.

UDP answers IP discovery and receives RTP: each packet is opened with its session's key, its nonce counter
checked against replays, its DAVE layer removed, and the Opus frame kept in the user's recording
(voice_audio.py). Rejected packets are counted by reason, per recording or server-wide for unknown SSRCs.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from aiohttp import WSMsgType, web

from . import voice_rtp
from .dave import LISTENER_USER_ID, DaveError, DaveLink
from .errors import UNKNOWN_CHANNEL, ApiError
from .spec import EmulatorConfig
from .voice_audio import ReceivedFrame, Recording, report
from .voice_rtp import PacketRejected, ReplayWindow
from .world import Json

OP_IDENTIFY = 0
OP_SELECT_PROTOCOL = 1
OP_READY = 2
OP_HEARTBEAT = 3
OP_SESSION_DESCRIPTION = 4
OP_SPEAKING = 5
OP_HEARTBEAT_ACK = 6
OP_RESUME = 7
OP_HELLO = 8
OP_RESUMED = 9
OP_CLIENTS_CONNECT = 11
OP_CLIENT_CONNECT = 12
OP_DAVE_EXECUTE_TRANSITION = 22
OP_DAVE_TRANSITION_READY = 23
OP_MLS_EXTERNAL_SENDER = 25
OP_MLS_KEY_PACKAGE = 26
OP_MLS_PROPOSALS = 27
OP_MLS_COMMIT_WELCOME = 28
OP_MLS_ANNOUNCE_COMMIT_TRANSITION = 29
OP_MLS_INVALID_COMMIT_WELCOME = 31

CLOSE_UNKNOWN_OPCODE = 4001
CLOSE_DECODE_ERROR = 4002
CLOSE_NOT_AUTHENTICATED = 4003
CLOSE_AUTHENTICATION_FAILED = 4004
CLOSE_ALREADY_AUTHENTICATED = 4005
CLOSE_SESSION_INVALID = 4006
CLOSE_SESSION_TIMEOUT = 4009
CLOSE_UNKNOWN_PROTOCOL = 4012
CLOSE_DISCONNECTED = 4014
CLOSE_SERVER_CRASHED = 4015
CLOSE_UNKNOWN_ENCRYPTION_MODE = 4016
CLOSE_DAVE_REQUIRED = 4017
# After these (and the client's 1000) a voice session cannot be resumed.
SESSION_ENDING_CLOSES = frozenset(
    {CLOSE_AUTHENTICATION_FAILED, CLOSE_SESSION_INVALID, CLOSE_SESSION_TIMEOUT, CLOSE_DISCONNECTED}
)
# Client opcodes that need an identified session.
_SESSION_OPS = frozenset(
    {
        OP_SELECT_PROTOCOL,
        OP_SPEAKING,
        OP_CLIENT_CONNECT,
        OP_DAVE_TRANSITION_READY,
        OP_MLS_INVALID_COMMIT_WELCOME,
    }
)

VOICE_GATEWAY_VERSION = 8
# Server messages kept per session for RESUME replay.
REPLAY_KEPT = 100
_CLOSE_GRACE_S = 1.0


class _Close(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class VoiceGrant:
    """What a bot's op 4 entitles it to: the token and session its voice IDENTIFY must present."""

    guild_id: str
    channel_id: str
    user_id: str
    session_id: str
    token: str


@dataclass
class VoiceSession:
    grant: VoiceGrant
    ssrc: int
    recording: Recording
    ws: web.WebSocketResponse | None = None
    mode: str | None = None
    secret_key: bytes | None = None
    dave: DaveLink | None = None
    replay: ReplayWindow = field(default_factory=ReplayWindow)
    seq: int = 0
    sent: deque[tuple[int, str | bytes]] = field(default_factory=lambda: deque(maxlen=REPLAY_KEPT))
    disconnected_at: float | None = None


def _str_field(data: Json, name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _Close(CLOSE_DECODE_ERROR, f"{name} must be a non-empty string")
    return value


class _VoiceDatagrams(asyncio.DatagramProtocol):
    def __init__(self, server: VoiceServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.server.on_datagram(data, (str(addr[0]), int(addr[1])))


class VoiceServer:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.grants: dict[tuple[str, str], VoiceGrant] = {}
        self.sessions: dict[tuple[str, str], VoiceSession] = {}
        self.by_ssrc: dict[int, VoiceSession] = {}
        self.recordings: dict[tuple[str, str, str], Recording] = {}
        # Packets that matched no session (unknown SSRC, not RTP at all).
        self.rejected: Counter[str] = Counter()
        self.host = "127.0.0.1"
        self.port = 0
        self.udp_port = 0
        self._runner: web.AppRunner | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._closing: set[asyncio.Task[bool]] = set()

    # --- lifecycle -------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str | None:
        """host:port for VOICE_SERVER_UPDATE; None until started."""
        return f"{self.host}:{self.port}" if self._runner is not None else None

    async def start(self, host: str) -> None:
        app = web.Application()
        app.router.add_get("/", self.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _VoiceDatagrams(self), local_addr=(host, 0)
        )
        self._udp = transport
        self.udp_port = transport.get_extra_info("sockname")[1]
        self.host = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host

    async def stop(self) -> None:
        for session in list(self.sessions.values()):
            if session.ws is not None:
                self._close_soon(session.ws, CLOSE_SERVER_CRASHED)
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- grants from the main gateway ----------------------------------------------------------------

    def grant(self, guild_id: str, channel_id: str, user_id: str, session_id: str) -> VoiceGrant:
        """A bot joined or moved (op 4): a new token; a session in another channel is disconnected."""
        current = self.sessions.get((guild_id, user_id))
        if current is not None and current.grant.channel_id != channel_id:
            self._end(current, CLOSE_DISCONNECTED)
        grant = VoiceGrant(guild_id, channel_id, user_id, session_id, secrets.token_hex(16))
        self.grants[(guild_id, user_id)] = grant
        return grant

    def revoke(self, guild_id: str, user_id: str) -> None:
        """A bot left voice: its session is closed with 4014 and its grant is gone."""
        self.grants.pop((guild_id, user_id), None)
        session = self.sessions.get((guild_id, user_id))
        if session is not None:
            self._end(session, CLOSE_DISCONNECTED)

    def _end(self, session: VoiceSession, code: int) -> None:
        key = (session.grant.guild_id, session.grant.user_id)
        if self.sessions.get(key) is session:
            del self.sessions[key]
        self.by_ssrc.pop(session.ssrc, None)
        ws, session.ws = session.ws, None
        if ws is not None:
            self._close_soon(ws, code)

    def _close_soon(self, ws: web.WebSocketResponse, code: int) -> None:
        # Not awaited: closing waits for the client's answer, which may come after the caller returns.
        if not ws.closed:
            task = asyncio.get_running_loop().create_task(ws.close(code=code))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def drop(self, user_id: str | None, code: int) -> int:
        """Close voice WebSockets (all, or one user's) with `code`; a resumable code keeps the session."""
        dropped = 0
        for session in list(self.sessions.values()):
            if session.ws is None or (user_id is not None and session.grant.user_id != user_id):
                continue
            dropped += 1
            if code in SESSION_ENDING_CLOSES:
                self._end(session, code)
            else:
                self._close_soon(session.ws, code)
        return dropped

    # --- the WebSocket --------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        interval_ms = self.config.voice_heartbeat_interval_ms
        hello = {"op": OP_HELLO, "d": {"v": VOICE_GATEWAY_VERSION, "heartbeat_interval": interval_ms}}
        await ws.send_str(orjson.dumps(hello).decode())
        silence_limit_s = interval_ms * 1.5 / 1000 + self.config.heartbeat_grace_s
        session: VoiceSession | None = None
        try:
            while True:
                try:
                    message = await ws.receive(timeout=silence_limit_s)
                except TimeoutError:
                    raise _Close(CLOSE_SESSION_TIMEOUT, "Session timeout.") from None
                if message.type == WSMsgType.TEXT:
                    session = await self._on_text(ws, session, message.data)
                elif message.type == WSMsgType.BINARY:
                    await self._on_binary(session, message.data)
                else:
                    # A client closing with 1000 leaves voice for good; any other way keeps it resumable.
                    if session is not None and message.type == WSMsgType.CLOSE and message.data == 1000:
                        self._end(session, 1000)
                    break
        except _Close as close:
            if session is not None and close.code in SESSION_ENDING_CLOSES:
                self._end(session, close.code)
            await ws.close(code=close.code, message=close.reason.encode())
        finally:
            if session is not None and session.ws is ws:
                session.ws = None
                session.disconnected_at = time.monotonic()
        return ws

    async def _send(self, session: VoiceSession, op: int, data: Any) -> None:
        session.seq += 1
        message = orjson.dumps({"op": op, "d": data, "seq": session.seq}).decode()
        session.sent.append((session.seq, message))
        if session.ws is not None:
            await session.ws.send_str(message)

    async def _send_binary(self, session: VoiceSession, op: int, body: bytes) -> None:
        session.seq += 1
        message = struct.pack(">HB", session.seq & 0xFFFF, op) + body
        session.sent.append((session.seq, message))
        if session.ws is not None:
            await session.ws.send_bytes(message)

    async def _on_text(
        self, ws: web.WebSocketResponse, session: VoiceSession | None, raw: str
    ) -> VoiceSession | None:
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Close(CLOSE_DECODE_ERROR, "Failed to decode payload.") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("op"), int):
            raise _Close(CLOSE_DECODE_ERROR, "Failed to decode payload.")
        op, data = payload["op"], payload.get("d")
        if op == OP_HEARTBEAT:
            nonce = data.get("t") if isinstance(data, dict) else data
            await ws.send_str(orjson.dumps({"op": OP_HEARTBEAT_ACK, "d": {"t": nonce}}).decode())
            return session
        if op in (OP_IDENTIFY, OP_RESUME):
            if session is not None:
                raise _Close(CLOSE_ALREADY_AUTHENTICATED, "Already authenticated.")
            if not isinstance(data, dict):
                raise _Close(CLOSE_DECODE_ERROR, "Failed to decode payload.")
            return await (self._identify(ws, data) if op == OP_IDENTIFY else self._resume(ws, data))
        if op not in _SESSION_OPS:
            raise _Close(CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")
        if session is None:
            raise _Close(CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
        if not isinstance(data, dict):
            raise _Close(CLOSE_DECODE_ERROR, "Failed to decode payload.")
        if op == OP_SELECT_PROTOCOL:
            await self._select_protocol(session, data)
        elif op == OP_SPEAKING:
            flags = data.get("speaking")
            if not isinstance(flags, int) or data.get("ssrc", session.ssrc) != session.ssrc:
                raise _Close(CLOSE_DECODE_ERROR, "speaking needs integer flags and the session's ssrc")
            session.recording.speaking.append(flags)
        elif op == OP_DAVE_TRANSITION_READY:
            transition_id = data.get("transition_id")
            if (
                isinstance(transition_id, int)
                and session.dave is not None
                and session.dave.transition_ready(transition_id)
            ):
                await self._send(session, OP_DAVE_EXECUTE_TRANSITION, {"transition_id": transition_id})
        elif op == OP_MLS_INVALID_COMMIT_WELCOME:
            # The member could not use a commit or welcome; it starts over with a new key package.
            session.recording.rejected["dave_invalid_commit_welcome"] += 1
        # OP_CLIENT_CONNECT announces the client's audio/video SSRCs; audio's is already the session's.
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> VoiceSession:
        guild_id, user_id = _str_field(data, "server_id"), _str_field(data, "user_id")
        session_id, token = _str_field(data, "session_id"), _str_field(data, "token")
        grant = self.grants.get((guild_id, user_id))
        if grant is None or grant.session_id != session_id:
            raise _Close(CLOSE_SESSION_INVALID, "Session is no longer valid.")
        if not secrets.compare_digest(grant.token, token):
            raise _Close(CLOSE_AUTHENTICATION_FAILED, "Authentication failed.")
        max_dave = data.get("max_dave_protocol_version", 0)
        if not isinstance(max_dave, int) or max_dave < self.config.voice_dave_protocol_version:
            raise _Close(CLOSE_DAVE_REQUIRED, "E2EE/DAVE protocol required.")
        previous = self.sessions.get((guild_id, user_id))
        if previous is not None:
            self._end(previous, CLOSE_SESSION_INVALID)
        recording = self.recordings.setdefault(
            (guild_id, grant.channel_id, user_id),
            Recording(guild_id, grant.channel_id, user_id, self.config.voice_frames_kept),
        )
        ssrc = self._new_ssrc()
        session = VoiceSession(grant, ssrc, recording, ws=ws)
        recording.ssrcs.append(ssrc)
        self.sessions[(guild_id, user_id)] = session
        self.by_ssrc[ssrc] = session
        ready = {"ssrc": ssrc, "ip": self.host, "port": self.udp_port, "modes": [voice_rtp.TRANSPORT_MODE]}
        await self._send(session, OP_READY, ready)
        return session

    def _new_ssrc(self) -> int:
        while True:
            ssrc = secrets.randbelow(0xFFFF_FFFF) + 1
            if ssrc not in self.by_ssrc:
                return ssrc

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> VoiceSession:
        guild_id, session_id = _str_field(data, "server_id"), _str_field(data, "session_id")
        token = _str_field(data, "token")
        session = next(
            (
                s
                for s in self.sessions.values()
                if s.grant.guild_id == guild_id
                and s.grant.session_id == session_id
                and secrets.compare_digest(s.grant.token, token)
            ),
            None,
        )
        expired = (
            session is not None
            and session.disconnected_at is not None
            and time.monotonic() - session.disconnected_at > self.config.resume_timeout_s
        )
        if session is None or expired:
            raise _Close(CLOSE_SESSION_INVALID, "Session is no longer valid.")
        seq_ack = data.get("seq_ack", -1)
        if not isinstance(seq_ack, int):
            raise _Close(CLOSE_DECODE_ERROR, "seq_ack must be an integer")
        if session.ws is not None:
            self._close_soon(session.ws, CLOSE_SESSION_INVALID)
        session.ws, session.disconnected_at = ws, None
        for seq, message in list(session.sent):
            if seq > seq_ack:
                await (ws.send_str(message) if isinstance(message, str) else ws.send_bytes(message))
        await ws.send_str(orjson.dumps({"op": OP_RESUMED, "d": None}).decode())
        return session

    async def _select_protocol(self, session: VoiceSession, data: Json) -> None:
        if data.get("protocol") != "udp":
            raise _Close(CLOSE_UNKNOWN_PROTOCOL, "Unknown protocol.")
        details = data.get("data")
        if (
            not isinstance(details, dict)
            or not isinstance(details.get("address"), str)
            or not isinstance(details.get("port"), int)
        ):
            raise _Close(CLOSE_DECODE_ERROR, "select protocol needs data.address, data.port and data.mode")
        if details.get("mode") != voice_rtp.TRANSPORT_MODE:
            raise _Close(CLOSE_UNKNOWN_ENCRYPTION_MODE, "Unknown encryption mode.")
        session.mode = details["mode"]
        session.secret_key = secrets.token_bytes(32)
        session.replay = ReplayWindow()
        version = self.config.voice_dave_protocol_version
        await self._send(
            session,
            OP_SESSION_DESCRIPTION,
            {
                "mode": session.mode,
                "secret_key": list(session.secret_key),
                "dave_protocol_version": version,
                "audio_codec": "opus",
                "media_session_id": secrets.token_hex(16),
            },
        )
        if version > 0:
            grant = session.grant
            session.dave = DaveLink(version, int(grant.channel_id), int(grant.user_id))
            await self._send(session, OP_CLIENTS_CONNECT, {"user_ids": [str(LISTENER_USER_ID)]})
            await self._send_binary(session, OP_MLS_EXTERNAL_SENDER, session.dave.external_sender)

    async def _on_binary(self, session: VoiceSession | None, raw: bytes) -> None:
        if session is None:
            raise _Close(CLOSE_NOT_AUTHENTICATED, "Not authenticated.")
        if not raw:
            raise _Close(CLOSE_DECODE_ERROR, "Failed to decode payload.")
        op, body = raw[0], raw[1:]
        if op not in (OP_MLS_KEY_PACKAGE, OP_MLS_COMMIT_WELCOME):
            raise _Close(CLOSE_UNKNOWN_OPCODE, "Unknown opcode.")
        dave = session.dave
        if dave is None:
            session.recording.rejected["dave_without_session"] += 1
            return
        try:
            if op == OP_MLS_KEY_PACKAGE:
                await self._send_binary(session, OP_MLS_PROPOSALS, dave.proposals_for(body))
            else:
                transition_id, commit = dave.commit_welcome(body)
                await self._send_binary(
                    session, OP_MLS_ANNOUNCE_COMMIT_TRANSITION, struct.pack(">H", transition_id) + commit
                )
        except DaveError as error:
            session.recording.rejected[error.reason] += 1

    # --- UDP ------------------------------------------------------------------------------------------

    def on_datagram(self, data: bytes, addr: tuple[str, int]) -> None:
        if voice_rtp.is_discovery_request(data):
            session = self.by_ssrc.get(voice_rtp.discovery_ssrc(data))
            if session is None:
                self.rejected["unknown_ssrc"] += 1
            elif self._udp is not None:
                self._udp.sendto(voice_rtp.discovery_response(session.ssrc, addr[0], addr[1]), addr)
            return
        try:
            packet = voice_rtp.parse_rtp(data)
        except PacketRejected as rejected:
            self.rejected[rejected.reason] += 1
            return
        session = self.by_ssrc.get(packet.ssrc)
        if session is None:
            self.rejected["unknown_ssrc"] += 1
            return
        try:
            frame = self._open(session, packet)
        except (PacketRejected, DaveError) as rejected:
            session.recording.rejected[rejected.reason] += 1
            return
        session.recording.add(frame)

    def _open(self, session: VoiceSession, packet: voice_rtp.RtpPacket) -> ReceivedFrame:
        if session.secret_key is None:
            raise PacketRejected("before_session_description")
        if packet.payload_type != voice_rtp.OPUS_PAYLOAD_TYPE:
            raise PacketRejected("payload_type")
        window = voice_rtp.accept_counter(session.replay, packet.counter)
        if window is None:
            raise PacketRejected("replay")
        payload = voice_rtp.open_rtpsize(session.secret_key, packet)
        # Only an authentic packet moves the window, so forged counters cannot block real ones.
        session.replay = window
        opus, e2ee = session.dave.open_frame(payload) if session.dave is not None else (payload, False)
        return ReceivedFrame(time.monotonic(), packet.sequence, packet.timestamp, opus, e2ee)

    # --- read-back ------------------------------------------------------------------------------------

    def received(self, guild_id: str | None = None, channel_id: str | None = None) -> Json:
        recordings = [
            report(r)
            for (g, c, _), r in self.recordings.items()
            if (guild_id is None or g == guild_id) and (channel_id is None or c == channel_id)
        ]
        return {"recordings": recordings, "rejected": dict(self.rejected)}

    def pcm(self, guild_id: str, channel_id: str, user_id: str) -> np.ndarray:
        """What a user sent in a channel, decoded: int16 samples, shape (n, 2), 48 kHz."""
        recording = self.recordings.get((guild_id, channel_id, user_id))
        if recording is None:
            raise ApiError(404, UNKNOWN_CHANNEL, "Nothing was received from this user in this channel.")
        return recording.pcm()

    def clear(self) -> None:
        """Forget what was received (the recordings of connected sessions start again, empty)."""
        self.rejected.clear()
        for key, recording in list(self.recordings.items()):
            fresh = Recording(
                recording.guild_id, recording.channel_id, recording.user_id, self.config.voice_frames_kept
            )
            self.recordings[key] = fresh
            for session in self.sessions.values():
                if session.recording is recording:
                    fresh.ssrcs.append(session.ssrc)
                    session.recording = fresh
