"""A minimal voice client for the emulator's voice tests: the bot's op 4 on the main gateway, the voice
WebSocket (v8), UDP IP discovery, rtpsize-encrypted RTP and, with DAVE 1, the member's side of the MLS
handshake with a `davey` session. Exactly the steps a test asks for, so tests can also break them."""

from __future__ import annotations

import asyncio
import math
import struct
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import davey
import numpy as np
import orjson
from discord.opus import Encoder
from emulator_helpers import RawGateway, Scene, scene
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from emulator.discord import DiscordEmulator
from emulator.discord.voice import VoiceGrant

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
MODE = "aead_xchacha20_poly1305_rtpsize"


def tone_frames(frequency_hz: float, seconds: float, amplitude: float = 0.5) -> list[bytes]:
    """A stereo sine tone as 20 ms Opus frames."""
    encoder = Encoder()
    count = round(seconds * SAMPLE_RATE / FRAME_SAMPLES)
    t = np.arange(count * FRAME_SAMPLES) / SAMPLE_RATE
    mono = (amplitude * 32767 * np.sin(2 * math.pi * frequency_hz * t)).astype(np.int16)
    stereo = np.repeat(mono, 2)
    size = FRAME_SAMPLES * 2
    return [encoder.encode(stereo[i * size : (i + 1) * size].tobytes(), FRAME_SAMPLES) for i in range(count)]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)


async def join(gw: RawGateway, s: Scene) -> tuple[VoiceGrant, str]:
    """The bot (identified on `gw`) joins the scene's voice channel with op 4: its grant and the endpoint."""
    await gw.send(
        4, {"guild_id": s.guild.id, "channel_id": s.voice.id, "self_mute": False, "self_deaf": False}
    )
    state = (await gw.dispatch("VOICE_STATE_UPDATE"))["d"]
    server = (await gw.dispatch("VOICE_SERVER_UPDATE"))["d"]
    grant = VoiceGrant(s.guild.id, s.voice.id, s.bot.id, state["session_id"], server["token"])
    return grant, server["endpoint"]


async def joined_bot(
    emu: DiscordEmulator, http: aiohttp.ClientSession, s: Scene
) -> tuple[RawGateway, VoiceClient]:
    """The scene's bot on the main gateway, joined to voice: its gateway and an unconnected voice client."""
    gw = RawGateway(http, emu.gateway_url, compress=False)
    await gw.connect()
    await gw.identify(s.bot.token)
    grant, endpoint = await join(gw, s)
    return gw, VoiceClient(http, grant, endpoint)


async def connected_bot(
    emu: DiscordEmulator, http: aiohttp.ClientSession
) -> tuple[Scene, RawGateway, VoiceClient]:
    """A fresh scene whose bot is connected to voice (with DAVE when the emulator runs it)."""
    s = scene(emu)
    gw, client = await joined_bot(emu, http, s)
    await client.connect()
    return s, gw, client


@dataclass
class VoiceClient:
    http: aiohttp.ClientSession
    grant: VoiceGrant
    endpoint: str
    ws: aiohttp.ClientWebSocketResponse | None = None
    ssrc: int = 0
    udp: asyncio.DatagramTransport | None = None
    datagrams: _Datagrams = field(default_factory=_Datagrams)
    server_address: tuple[str, int] = ("127.0.0.1", 0)
    secret_key: bytes = b""
    dave_version: int = 0
    dave: davey.DaveSession | None = None
    seq_ack: int = -1
    closed_with: int | None = None
    counter: int = 0
    sequence: int = 0
    timestamp: int = 0

    async def open(self) -> dict[str, Any]:
        """Connect; returns HELLO."""
        self.ws = await self.http.ws_connect(f"ws://{self.endpoint}/?v=8")
        return await self.message()

    async def receive(self, wait_s: float = 5.0) -> dict[str, Any] | bytes | None:
        """The next JSON message, or a binary one as (op, body) packed back into bytes from its op on;
        None once the server closed."""
        assert self.ws is not None
        msg = await self.ws.receive(timeout=wait_s)
        if msg.type is aiohttp.WSMsgType.TEXT:
            payload: dict[str, Any] = orjson.loads(msg.data)
            self.seq_ack = payload.get("seq", self.seq_ack)
            return payload
        if msg.type is aiohttp.WSMsgType.BINARY:
            self.seq_ack = struct.unpack_from(">H", msg.data)[0]
            return bytes(msg.data[2:])
        if msg.type is aiohttp.WSMsgType.CLOSE:
            self.closed_with = msg.data
        return None

    async def message(self, op: int | None = None, wait_s: float = 5.0) -> dict[str, Any]:
        """The next JSON message (with `op`: skipping others); fails if the server closed."""
        while True:
            payload = await self.receive(wait_s)
            assert payload is not None, "voice connection closed"
            if isinstance(payload, dict) and (op is None or payload["op"] == op):
                return payload

    async def close_code(self, wait_s: float = 5.0) -> int | None:
        """Read until the server closes; the code of its close frame."""
        while await self.receive(wait_s) is not None:
            pass
        return self.closed_with

    async def send(self, op: int, data: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(orjson.dumps({"op": op, "d": data}).decode())

    async def send_binary(self, op: int, body: bytes) -> None:
        assert self.ws is not None
        await self.ws.send_bytes(bytes([op]) + body)

    async def identify(self, max_dave_protocol_version: int = 1, **changes: Any) -> None:
        g = self.grant
        fields = {
            "server_id": g.guild_id,
            "user_id": g.user_id,
            "session_id": g.session_id,
            "token": g.token,
            "max_dave_protocol_version": max_dave_protocol_version,
        }
        await self.send(0, {**fields, **changes})

    async def discover(self) -> tuple[str, int]:
        """UDP IP discovery: the address and port the server saw."""
        assert self.udp is not None
        request = struct.pack(">HHI66x", 1, 70, self.ssrc)
        self.udp.sendto(request, self.server_address)
        answer = await asyncio.wait_for(self.datagrams.received.get(), 5)
        assert len(answer) == 74 and struct.unpack_from(">HHI", answer) == (2, 70, self.ssrc)
        address = answer[8 : answer.index(0, 8)].decode()
        return address, struct.unpack_from(">H", answer, 72)[0]

    async def connect(self, max_dave_protocol_version: int = 1) -> None:
        """HELLO, IDENTIFY, READY, IP discovery, SELECT PROTOCOL, SESSION DESCRIPTION, and with DAVE the
        handshake up to the executed transition."""
        await self.open()
        await self.identify(max_dave_protocol_version)
        ready = (await self.message(2))["d"]
        assert MODE in ready["modes"]
        self.ssrc, self.server_address = ready["ssrc"], (ready["ip"], ready["port"])
        loop = asyncio.get_running_loop()
        self.udp, _ = await loop.create_datagram_endpoint(
            lambda: self.datagrams, remote_addr=self.server_address
        )
        address, port = await self.discover()
        await self.send(1, {"protocol": "udp", "data": {"address": address, "port": port, "mode": MODE}})
        description = (await self.message(4))["d"]
        self.secret_key = bytes(description["secret_key"])
        self.dave_version = description["dave_protocol_version"]
        if self.dave_version:
            await self._dave_handshake()

    async def _dave_handshake(self) -> None:
        # As discord.py: a key package right after the session description, then the server's messages.
        self.dave = davey.DaveSession(self.dave_version, int(self.grant.user_id), int(self.grant.channel_id))
        await self.send_binary(26, self.dave.get_serialized_key_package())
        while True:
            message = await self.receive()
            assert message is not None, "voice connection closed during the DAVE handshake"
            if isinstance(message, dict):
                if message["op"] == 22:
                    return
                continue
            op, body = message[0], message[1:]
            if op == 25:
                self.dave.set_external_sender(body)
            elif op == 27:
                assert body[0] == 0, "the server only appends members"
                result = self.dave.process_proposals(davey.ProposalsOperationType.append, body[1:])
                assert result is not None and result.welcome is not None
                await self.send_binary(28, result.commit + result.welcome)
            elif op == 29:
                transition_id = struct.unpack_from(">H", body)[0]
                self.dave.process_commit(body[2:])
                await self.send(23, {"transition_id": transition_id})

    def packet(self, opus: bytes, key: bytes | None = None) -> bytes:
        """The next RTP packet carrying `opus` (end-to-end encrypted first when DAVE is on)."""
        payload = self.dave.encrypt_opus(opus) if self.dave is not None else opus
        header = struct.pack(">BBHII", 0x80, 0x78, self.sequence, self.timestamp, self.ssrc)
        nonce = struct.pack(">I", self.counter)
        sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(
            payload, header, nonce + bytes(20), key or self.secret_key
        )
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFF_FFFF
        self.counter += 1
        return header + sealed + nonce

    def send_opus(self, frames: list[bytes]) -> None:
        for opus in frames:
            self.send_packet(self.packet(opus))

    async def resume(self, seq_ack: int) -> None:
        """A new WebSocket, HELLO, then RESUME of this session."""
        await self.open()
        g = self.grant
        await self.send(
            7, {"server_id": g.guild_id, "session_id": g.session_id, "token": g.token, "seq_ack": seq_ack}
        )

    def send_packet(self, packet: bytes) -> None:
        assert self.udp is not None
        self.udp.sendto(packet)

    async def close(self) -> None:
        if self.udp is not None:
            self.udp.close()
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
