"""Fixtures of the emulator tests: one emulator per module, an HTTP session per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from emulator_helpers import fast_config

from emulator.discord import DiscordEmulator


@pytest.fixture(scope="module")
async def emu() -> AsyncIterator[DiscordEmulator]:
    emulator = DiscordEmulator(fast_config())
    await emulator.start()
    yield emulator
    await emulator.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
