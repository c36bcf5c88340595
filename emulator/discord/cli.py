"""`python -m emulator.discord` / `deep emulator`: serve an emulated Discord until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
from pathlib import Path

from settings import load_settings
from settings.clock import clock_of
from settings.runtime import settle_garbage_collector

from .server import DiscordEmulator
from .spec import WorldSpec

DEFAULT_PORT = 7990
_LISTED_BOTS = 10


def _raise_fd_limit() -> None:
    """Thousands of gateway sockets need more than the usual 1024 descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _serve(host: str, port: int, world: WorldSpec | None) -> None:
    # The test clock, where a test set one, is the processors' and the emulated Discord's alike.
    settings = load_settings()
    clock = clock_of(settings.clock_file)
    emulator = DiscordEmulator(world.config if world else None, world, clock)
    # The console's OAuth2 application, so sign-in works locally with the settings' defaults.
    emulator.register_oauth2_client(
        settings.discord_client_id, settings.discord_client_secret, [settings.discord_redirect_url]
    )
    base = await emulator.start(host, port)
    print(
        f"Discord emulator on {base}: REST {emulator.api_url}, gateway {emulator.gateway_url}, "
        f"control {base}/_control, voice ws://{emulator.voice.endpoint}",
        flush=True,
    )
    bots = list(emulator.world.bots.values())
    for bot in bots[:_LISTED_BOTS]:
        # Tokens stay off the console, as everywhere in the platform: GET /_control/world has them.
        print(f"  bot {bot.user.username} id={bot.id}", flush=True)
    if len(bots) > _LISTED_BOTS:
        print(f"  ... and {len(bots) - _LISTED_BOTS} more bots (GET {base}/_control/world)", flush=True)
    settle_garbage_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def serve(host: str, port: int, world_file: Path | None) -> None:
    """Run the emulator until Ctrl-C or SIGTERM; `world_file` is a JSON WorldSpec (users, guilds, bots)."""
    world = WorldSpec.model_validate_json(world_file.read_bytes()) if world_file is not None else None
    _raise_fd_limit()
    asyncio.run(_serve(host, port, world))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator.discord", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--world", type=Path, default=None, help="JSON world spec to load at start")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.world)
