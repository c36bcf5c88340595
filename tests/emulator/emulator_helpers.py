"""Shared pieces for the Discord emulator tests: a small world per test and a raw gateway client."""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from emulator.discord import PRIVILEGED, DiscordEmulator, EmulatorConfig, Intent
from emulator.discord.world import Bot, Channel, Guild, User

# Everything but the privileged intents, as discord.Intents.default() asks for.
DEFAULT_INTENTS = int(sum(Intent)) & ~PRIVILEGED


def fast_config(**changes: Any) -> EmulatorConfig:
    # Short heartbeats and no identify pacing keep the suite fast; tests that need pacing turn it on.
    base: dict[str, Any] = {
        "heartbeat_interval_ms": 1000,
        "identify_interval_s": 0.0,
        "interaction_response_timeout_s": 30.0,
    }
    return EmulatorConfig.model_validate({**base, **changes})


@dataclass
class Scene:
    guild: Guild
    text: Channel
    voice: Channel
    alice: User
    bob: User
    bot: Bot


def scene(emu: DiscordEmulator, **bot: Any) -> Scene:
    """A fresh guild with a text and a voice channel, two users and one bot."""
    guild = emu.add_guild("guild")
    text = emu.add_channel(guild.id, "general")
    voice = emu.add_channel(guild.id, "Lounge", type=2)
    alice = emu.add_user("alice")
    bob = emu.add_user("bob")
    emu.add_member(guild.id, alice.id)
    emu.add_member(guild.id, bob.id)
    return Scene(guild, text, voice, alice, bob, emu.add_bot("testbot", guild_ids=[guild.id], **bot))


def register(emu: DiscordEmulator, s: Scene, *names: str) -> None:
    """The scene's bot registers these guild commands, as its bulk overwrite would."""
    commands = [{"name": name, "description": name} for name in names]
    emu.put_commands(s.bot, s.bot.application_id, s.guild.id, commands)


class RawGateway:
    """A bare gateway client: exactly the payloads a test sends, and every frame the server sends back."""

    def __init__(self, session: aiohttp.ClientSession, url: str, *, compress: bool = True) -> None:
        self.session = session
        self.url = url
        self.compress = compress
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._inflate = zlib.decompressobj()
        self._buffer = bytearray()
        self.binary_frames = 0

    async def connect(self) -> dict[str, Any]:
        query = "?v=10&encoding=json" + ("&compress=zlib-stream" if self.compress else "")
        self.ws = await self.session.ws_connect(self.url + query)
        hello = await self.recv()
        assert hello is not None and hello["op"] == 10
        return hello

    async def recv(self, wait_s: float = 5.0) -> dict[str, Any] | None:
        """The next payload, or None once the server closed the connection."""
        assert self.ws is not None
        while True:
            msg = await self.ws.receive(timeout=wait_s)
            if msg.type is aiohttp.WSMsgType.TEXT:
                payload: dict[str, Any] = orjson.loads(msg.data)
                return payload
            if msg.type is aiohttp.WSMsgType.BINARY:
                self.binary_frames += 1
                self._buffer.extend(msg.data)
                if not self._buffer.endswith(b"\x00\x00\xff\xff"):
                    continue
                text = self._inflate.decompress(bytes(self._buffer))
                self._buffer.clear()
                payload = orjson.loads(text)
                return payload
            return None

    async def frame(self, wait_s: float = 5.0) -> dict[str, Any]:
        """The next payload; fails the test if the connection closed instead."""
        payload = await self.recv(wait_s)
        assert payload is not None, "connection closed"
        return payload

    async def send(self, op: int, data: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(orjson.dumps({"op": op, "d": data}).decode())

    async def identify(self, token: str, intents: int = DEFAULT_INTENTS, **extra: Any) -> dict[str, Any]:
        await self.send(2, {"token": token, "intents": intents, "properties": {"os": "linux"}, **extra})
        ready = await self.recv()
        assert ready is not None and ready["t"] == "READY", ready
        return ready

    async def dispatch(self, event: str, wait_s: float = 5.0) -> dict[str, Any]:
        """Skip frames until the named dispatch arrives; returns the whole frame (op, s, t, d)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            frame = await self.recv(max(deadline - loop.time(), 0.01))
            assert frame is not None, f"connection closed while waiting for {event}"
            if frame.get("t") == event:
                return frame

    async def close_code(self, wait_s: float = 5.0) -> int | None:
        """Read until the server closes; the close code it sent."""
        assert self.ws is not None
        while await self.recv(wait_s) is not None:
            pass
        return self.ws.close_code

    async def close(self) -> None:
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()
