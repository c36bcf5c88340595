"""Demo test fixtures: an in-process Discord emulator with the demo world loaded, and Debian's Chromium."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from demo.seed import seed_emulator
from demo.world import WorldIds, allocate_ids
from emulator.discord import DiscordEmulator, EmulatorControl

CHROMIUM = Path("/usr/bin/chromium")
# Debian's packages the browser test needs: the browser, and an emoji font so screenshots show the agents'
# emoji rather than empty boxes.
BROWSER_PACKAGES = {
    "chromium": CHROMIUM,
    "fonts-noto-color-emoji": Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"),
}


def ensure_chromium() -> Path:
    """Debian's Chromium, installed with apt when missing: Playwright drives this binary, so no browser is
    downloaded from anywhere but the package registry."""
    missing = [package for package, path in BROWSER_PACKAGES.items() if not path.exists()]
    if not missing:
        return CHROMIUM
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            pytest.fail(
                f"{', '.join(missing)} missing and this user cannot install them: apt-get install -y ..."
            )
        prefix = [sudo, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*prefix, "apt-get", "update"], check=True, env=env)
    subprocess.run(
        [*prefix, "apt-get", "install", "-y", "--no-install-recommends", *missing], check=True, env=env
    )
    return CHROMIUM


@pytest.fixture(scope="module")
async def emulator() -> AsyncIterator[DiscordEmulator]:
    emu = DiscordEmulator()
    await emu.start()
    yield emu
    await emu.stop()


@pytest.fixture(scope="module")
async def control(emulator: DiscordEmulator) -> AsyncIterator[EmulatorControl]:
    async with EmulatorControl(emulator.base_url) as client:
        yield client


@pytest.fixture(scope="module")
async def seeded(control: EmulatorControl) -> tuple[WorldIds, dict[str, SecretStr]]:
    ids = allocate_ids()
    return ids, await seed_emulator(control, ids)
