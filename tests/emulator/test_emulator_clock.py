"""The emulated Discord on the test clock (settings.clock_file): what it stamps carries the controlled time,
and what expires does so as that clock moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from emulator.discord import DiscordEmulator
from emulator.discord.errors import ApiError
from emulator.discord.ids import snowflake_unix_ms
from settings.clock import file_clock
from tests.clock_file import set_clock
from tests.emulator.emulator_helpers import fast_config, register, scene

CONTROLLED = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def test_messages_snowflakes_polls_and_interaction_tokens_follow_the_test_clock(tmp_path: Path) -> None:
    now = tmp_path / "now"
    set_clock(now, CONTROLLED)
    emu = DiscordEmulator(fast_config(), clock=file_clock(now))
    s = scene(emu)
    said = emu.post_user_message(s.alice.id, "hello", s.text.id)
    assert datetime.fromisoformat(said["timestamp"]) == CONTROLLED
    assert snowflake_unix_ms(int(said["id"])) == CONTROLLED.timestamp() * 1000
    poll = {"question": {"text": "tea?"}, "answers": [{"poll_media": {"text": "yes"}}], "duration": 2}
    sent = emu.bot_send_message(s.bot, s.text.id, {"content": "", "poll": poll})
    assert datetime.fromisoformat(sent["poll"]["expiry"]) == CONTROLLED + timedelta(hours=2)
    assert emu.actions()[-1].at == CONTROLLED.timestamp()

    register(emu, s, "ping")
    interaction = emu.invoke_command(s.bot.id, s.alice.id, s.text.id, "ping")
    emu.interaction_callback(interaction["id"], interaction["token"], {"type": 5})
    # The token lives 15 minutes of the test clock, however little real time passed.
    set_clock(now, CONTROLLED + timedelta(minutes=14))
    emu.followup(s.bot.application_id, interaction["token"], {"content": "still here"})
    set_clock(now, CONTROLLED + timedelta(minutes=16))
    with pytest.raises(ApiError) as expired:
        emu.followup(s.bot.application_id, interaction["token"], {"content": "too late"})
    assert expired.value.code == 50027
