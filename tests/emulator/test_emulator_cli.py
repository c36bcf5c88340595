"""`python -m emulator.discord` serves a world file until SIGTERM, on the test clock of DEEP_CLOCK_FILE."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator.discord import EmulatorControl

pytestmark = pytest.mark.stack


async def test_module_entry_point_serves_a_world_file_until_sigterm(tmp_path: Path) -> None:
    world = tmp_path / "world.json"
    world.write_text(
        json.dumps(
            {
                "users": [{"id": "100", "username": "alice"}],
                "guilds": [
                    {
                        "id": "200",
                        "name": "g",
                        "channels": [{"id": "300", "name": "general"}],
                        "members": ["100"],
                    }
                ],
                "bots": [{"id": "400", "token": "cli-token", "guild_ids": ["200"]}],
                "config": {"heartbeat_interval_ms": 5000},
            }
        )
    )
    # The processors' test clock is the emulated Discord's too.
    clock = tmp_path / "now"
    controlled = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    clock.write_text(controlled.isoformat())
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator.discord",
        "--port",
        "0",
        "--world",
        str(world),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "DEEP_CLOCK_FILE": str(clock)},
    )
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        found = re.search(r" on (http://[\d.]+:\d+)", banner)
        assert found is not None, banner
        async with EmulatorControl(found.group(1)) as control:
            assert (await control.health())["bots"] == 1
            dumped = await control.world()
            assert dumped["bots"][0]["token"] == "cli-token"
            message = await control.post_user_message("100", "hello", "300")
            assert message["guild_id"] == "200"
            assert datetime.fromisoformat(message["timestamp"]) == controlled
    finally:
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
