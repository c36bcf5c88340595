"""Pure rules of the Discord emulator: intents, mentions, rate-limit arithmetic, gateway rules, ids."""

from __future__ import annotations

import pytest

from emulator.discord import rules
from emulator.discord.engine import emoji_key, parse_emoji
from emulator.discord.ids import SnowflakeGenerator, make_snowflake, shard_for_guild, snowflake_unix_ms
from emulator.discord.intents import (
    PRIVILEGED,
    Intent,
    check_intents,
    content_visible,
    event_intent,
    strip_content,
)
from emulator.discord.mentions import parse_mentions, resolve_mentions
from emulator.discord.ratelimit import InvalidRequestCounter, bucket_hash, major_parameter, take


def test_privileged_intent_not_enabled_is_4014_and_unknown_bits_4013() -> None:
    assert check_intents(int(Intent.GUILDS | Intent.GUILD_MESSAGES), 0) is None
    assert check_intents(int(Intent.MESSAGE_CONTENT), 0) == 4014
    assert check_intents(int(Intent.MESSAGE_CONTENT), int(Intent.MESSAGE_CONTENT)) is None
    assert check_intents(int(Intent.GUILD_MEMBERS), int(Intent.MESSAGE_CONTENT)) == 4014
    assert check_intents(1 << 40, PRIVILEGED) == 4013
    assert check_intents(-1, PRIVILEGED) == 4013


def test_event_intents_differ_between_guilds_and_dms() -> None:
    assert event_intent("MESSAGE_CREATE", dm=False) == Intent.GUILD_MESSAGES
    assert event_intent("MESSAGE_CREATE", dm=True) == Intent.DIRECT_MESSAGES
    assert event_intent("MESSAGE_REACTION_ADD", dm=False) == Intent.GUILD_MESSAGE_REACTIONS
    assert event_intent("VOICE_STATE_UPDATE", dm=False) == Intent.GUILD_VOICE_STATES
    assert event_intent("INTERACTION_CREATE", dm=False) == 0
    assert event_intent("VOICE_SERVER_UPDATE", dm=False) == 0


def test_message_content_visibility_follows_discords_exceptions() -> None:
    without = int(Intent.GUILD_MESSAGES)
    nobody: frozenset[str] = frozenset()
    assert not content_visible(without, "bot", "user", nobody, dm=False)
    assert content_visible(without, "bot", "user", frozenset({"bot"}), dm=False)
    assert content_visible(without, "bot", "bot", nobody, dm=False)
    assert content_visible(without, "bot", "user", nobody, dm=True)
    assert content_visible(without | Intent.MESSAGE_CONTENT, "bot", "user", nobody, dm=False)


def test_strip_content_empties_content_fields_including_the_referenced_message() -> None:
    message = {
        "id": "1",
        "content": "secret",
        "embeds": [{"title": "x"}],
        "attachments": [{"id": "2"}],
        "components": [{"type": 1}],
        "poll": {},
        "referenced_message": {"id": "0", "content": "old"},
    }
    stripped = strip_content(message)
    assert stripped["content"] == "" and stripped["embeds"] == [] and stripped["attachments"] == []
    assert stripped["components"] == [] and "poll" not in stripped
    assert stripped["referenced_message"]["content"] == ""
    assert message["content"] == "secret"  # the original is untouched


def test_parse_mentions_users_roles_and_everyone_once_each_in_order() -> None:
    parsed = parse_mentions("hi <@2> and <@!1> and <@2> <@&9> @here")
    assert parsed.user_ids == ("2", "1")
    assert parsed.role_ids == ("9",)
    assert parsed.everyone
    assert not parse_mentions("mail me at a@everyoneish.com").everyone


def test_allowed_mentions_filter_and_reply_rule() -> None:
    known = {"1", "2", "3"}
    assert resolve_mentions("<@1> <@4>", None, None, known).user_ids == ("1",)  # unknown users are dropped
    assert resolve_mentions("<@1>", None, "3", known).user_ids == ("1", "3")  # a reply mentions its author
    assert resolve_mentions("<@1>", {"parse": []}, "3", known).user_ids == ()
    assert resolve_mentions("<@1> <@2>", {"users": ["2"], "replied_user": True}, "3", known).user_ids == (
        "2",
        "3",
    )
    assert not resolve_mentions("@everyone", {"parse": ["users"]}, None, known).everyone


def test_fixed_window_spends_then_refuses_until_reset() -> None:
    window, verdict = take(None, 100.0, 2, 5.0)
    assert verdict.allowed and verdict.remaining == 1 and verdict.reset_after == 5.0
    window, verdict = take(window, 101.0, 2, 5.0)
    assert verdict.allowed and verdict.remaining == 0
    window, verdict = take(window, 102.0, 2, 5.0)
    assert not verdict.allowed and verdict.reset_after == pytest.approx(3.0)
    window, verdict = take(window, 105.0, 2, 5.0)
    assert verdict.allowed and verdict.remaining == 1


def test_bucket_hash_is_per_route_and_major_parameter_splits_it() -> None:
    messages = bucket_hash("POST", "/channels/{channel_id}/messages")
    assert messages == bucket_hash("POST", "/channels/{channel_id}/messages")
    assert messages != bucket_hash("GET", "/channels/{channel_id}/messages")
    assert major_parameter({"channel_id": "5", "message_id": "7"}) == "5"
    assert major_parameter({"guild_id": "3", "user_id": "9"}) == "3"
    assert major_parameter({"webhook_id": "1", "webhook_token": "tok"}) == "1+tok"
    assert major_parameter({"application_id": "1"}) == ""


def test_invalid_request_counter_slides_over_its_window() -> None:
    counter = InvalidRequestCounter(window_s=600, slots=10)
    for t in (0.0, 1.0, 59.0):
        counter.add("10.0.0.1", t)
    assert counter.add("10.0.0.1", 300.0) == 4
    assert counter.count("10.0.0.2", 300.0) == 0
    assert counter.count("10.0.0.1", 660.0) == 1  # the first minute's three fell out of the window
    assert counter.snapshot(2000.0) == {}


def test_identify_pacing_per_bucket() -> None:
    assert rules.identify_bucket(5, 1) == 0
    assert rules.identify_bucket(5, 4) == 1
    assert rules.identify_allowed(None, 10.0, 5.0)
    assert not rules.identify_allowed(10.0, 14.9, 5.0)
    assert rules.identify_allowed(10.0, 15.0, 5.0)


def test_shard_parsing_and_routing() -> None:
    assert rules.parse_shard(None) == (0, 1)
    assert rules.parse_shard([1, 2]) == (1, 2)
    assert rules.parse_shard([2, 2]) is None
    assert rules.parse_shard([0, 0]) is None
    assert rules.parse_shard(["0", 1]) is None
    guild_id = str(make_snowflake(1_700_000_000_000, 1, 0))
    shard = shard_for_guild(guild_id, 4)
    assert rules.guild_on_shard(guild_id, shard, 4)
    assert not rules.guild_on_shard(guild_id, (shard + 1) % 4, 4)
    assert rules.recommended_shards(0, 1000) == 1 and rules.recommended_shards(1001, 1000) == 2
    assert rules.recommended_shards(7, 3) == 3


def test_resume_is_replayable_only_inside_the_buffer() -> None:
    assert rules.resume_replayable(10, first_buffered_seq=5, last_seq=12)
    assert rules.resume_replayable(4, first_buffered_seq=5, last_seq=12)  # nothing missing before 5
    assert not rules.resume_replayable(3, first_buffered_seq=5, last_seq=12)
    assert not rules.resume_replayable(13, first_buffered_seq=5, last_seq=12)


def test_snowflakes_increase_and_encode_time() -> None:
    gen = SnowflakeGenerator()
    ids = [gen.next_int(1_700_000_000_000) for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert snowflake_unix_ms(ids[0]) == 1_700_000_000_000


def test_reaction_emoji_forms() -> None:
    assert parse_emoji("👍") == {"id": None, "name": "👍"}
    assert parse_emoji("party:123") == {"id": "123", "name": "party", "animated": False}
    assert parse_emoji("a:dance:456")["animated"] is True
    assert emoji_key(parse_emoji("party:123")) == "party:123"


def test_member_permissions_as_discord_computes_them() -> None:
    ban, kick = 1 << 2, 1 << 1
    assert rules.member_permissions("owner", "owner", [], 0) == rules.ALL_PERMISSIONS
    assert rules.member_permissions("owner", "u", [], kick) == kick
    assert rules.member_permissions("owner", "u", [ban], kick) == ban | kick
    # ADMINISTRATOR grants everything.
    assert rules.member_permissions("owner", "u", [1 << 3], 0) == rules.ALL_PERMISSIONS
