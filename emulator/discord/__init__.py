"""A local Discord (REST /api/v10, gateway v10, control API, a voice server) that unmodified discord.py
clients talk to.

Point discord.py at it with `discord.http.Route.BASE = emulator.api_url` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emulator.gateway_url)`.
"""

from .client import EmulatorControl, EmulatorError
from .errors import ApiError
from .intents import PRIVILEGED, Intent
from .server import DiscordEmulator
from .spec import BotSpec, ChannelSpec, EmulatorConfig, GuildSpec, MemberSpec, RoleSpec, UserSpec, WorldSpec

__all__ = [
    "PRIVILEGED",
    "ApiError",
    "BotSpec",
    "ChannelSpec",
    "DiscordEmulator",
    "EmulatorConfig",
    "EmulatorControl",
    "EmulatorError",
    "GuildSpec",
    "Intent",
    "MemberSpec",
    "RoleSpec",
    "UserSpec",
    "WorldSpec",
]
