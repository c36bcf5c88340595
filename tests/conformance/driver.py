"""The driver: how the conformance suite makes a Discord-compatible server do what only Discord's users or
Discord itself would do (a member posts, runs a slash command, joins voice; the server drops a session).

A server under test implements these operations behind its control hook (DISCORD_CONFORMANCE_DRIVER_URL).
`Driver` speaks them over HTTP as the Discord emulator's control API serves them (docs/conformance.md lists
the routes); a server with another hook subclasses `Driver` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emulator.discord import EmulatorControl
from emulator.discord.client import EmulatorError

VOICE_CHANNEL = 2


@dataclass(frozen=True)
class Scene:
    """A fresh guild for one test: text channels, a voice channel, two members and one bot in it."""

    guild_id: str
    text_channel_ids: list[str]
    voice_channel_id: str
    member_ids: list[str]
    bot_id: str
    bot_token: str
    application_id: str

    @property
    def channel_id(self) -> str:
        return self.text_channel_ids[0]


class DriverRefused(Exception):
    """The server refused a driven operation (e.g. a slash command the bot never registered)."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


class Driver:
    """The driver over the Discord emulator's control API: another server serves the same routes at its
    driver URL, or a subclass overrides these methods."""

    def __init__(self, base_url: str) -> None:
        self.control = EmulatorControl(base_url)

    async def scene(self, text_channels: int = 1) -> Scene:
        control = self.control
        guild = await control.add_guild("conformance")
        texts = [(await control.add_channel(guild["id"], f"text-{n}"))["id"] for n in range(text_channels)]
        voice = await control.add_channel(guild["id"], "voice", type=VOICE_CHANNEL)
        members = []
        for name in ("alice", "bob"):
            user = await control.add_user(name)
            await control.add_member(guild["id"], user["id"])
            members.append(user["id"])
        bot = await control.add_bot(username="conformance-bot", guild_ids=[guild["id"]])
        return Scene(guild["id"], texts, voice["id"], members, bot["id"], bot["token"], bot["application_id"])

    async def post_message(self, user_id: str, channel_id: str, content: str) -> dict[str, Any]:
        return await self.control.post_user_message(user_id, content, channel_id)

    async def invoke(
        self,
        bot_id: str,
        user_id: str,
        channel_id: str,
        name: str,
        options: list[dict[str, Any]],
        interaction_type: int = 2,
    ) -> dict[str, Any]:
        """A member runs a command (type 2) or types in an autocomplete option (type 4); returns the
        interaction. Raises DriverRefused for a command the bot did not register."""
        try:
            return await self.control.invoke_command(
                bot_id, user_id, channel_id, name, options, interaction_type
            )
        except EmulatorError as exc:
            raise DriverRefused(exc.status, exc.body) from None

    async def join_voice(self, guild_id: str, user_id: str, channel_id: str | None) -> None:
        await self.control.user_voice(guild_id, user_id, channel_id)

    async def invalidate_sessions(self, bot_id: str, resumable: bool) -> None:
        """The server sends op 9 INVALID_SESSION with d=`resumable` to the bot's sessions."""
        await self.control.invalidate_sessions(bot_id, resumable)

    async def close(self) -> None:
        await self.control.close()
