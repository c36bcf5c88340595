"""Crossposting as Discord rules it: only in an announcement channel (type 5), only the bot's own message,
once."""

from __future__ import annotations

import pytest

from emulator.discord import DiscordEmulator
from emulator.discord.errors import ApiError
from emulator.discord.spec import CHANNEL_ANNOUNCEMENT
from tests.emulator.emulator_helpers import fast_config, scene


def test_a_bots_message_in_an_announcement_channel_is_crossposted_once() -> None:
    emu = DiscordEmulator(fast_config())
    s = scene(emu)
    news = emu.add_channel(s.guild.id, "news", type=CHANNEL_ANNOUNCEMENT)
    sent = emu.bot_send_message(s.bot, news.id, {"content": "big news"})
    published = emu.bot_crosspost(s.bot, news.id, sent["id"])
    assert published["flags"] & 1  # CROSSPOSTED
    assert [a.kind for a in emu.actions()][-1] == "crosspost"
    with pytest.raises(ApiError) as twice:
        emu.bot_crosspost(s.bot, news.id, sent["id"])
    assert (twice.value.status, twice.value.code) == (400, 40033)


def test_no_crosspost_outside_an_announcement_channel_nor_of_someone_elses_message() -> None:
    emu = DiscordEmulator(fast_config())
    s = scene(emu)
    plain = emu.bot_send_message(s.bot, s.text.id, {"content": "hi"})
    with pytest.raises(ApiError) as wrong_type:
        emu.bot_crosspost(s.bot, s.text.id, plain["id"])
    assert wrong_type.value.code == 50024
    news = emu.add_channel(s.guild.id, "news", type=CHANNEL_ANNOUNCEMENT)
    theirs = emu.post_user_message(s.alice.id, "mine", news.id)
    with pytest.raises(ApiError) as not_ours:
        emu.bot_crosspost(s.bot, news.id, theirs["id"])
    assert not_ours.value.status == 403
