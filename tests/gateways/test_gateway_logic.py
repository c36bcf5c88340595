"""The gateway's pure parts: close codes, payloads, checkpoints, envelopes, ownership and action plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from discord.http import Route
from pydantic import ValidationError

from gateways import protocol
from gateways.actions import (
    GatewayCommand,
    InvalidAction,
    RestCall,
    VoiceCommand,
    created_before,
    deferral_call,
    deferred_answer,
    interaction_callback,
    message_nonce,
    plan,
    report_calls,
    report_text,
)
from gateways.commands import GLOBAL, placement
from gateways.dispatch import dispatch_ids, envelope, event_id
from gateways.fleet import guild_shard
from gateways.identify import SessionStartLimit, budget_wait_s
from gateways.intents import missing_content_notice
from gateways.ownership import bot_partition, owned
from gateways.protocol import Reconnect, after_close
from gateways.rest import RequestRate, multipart_form
from gateways.watermark import Watermark
from models.actions import (
    AnswerInChannel,
    AnswerInteraction,
    Attachment,
    Ban,
    CreateScheduledEvent,
    DeleteMessage,
    Embed,
    EmbedField,
    InteractionResponse,
    Kick,
    MemberPersonaUpdate,
    NativePoll,
    PresenceUpdate,
    React,
    Reply,
    Report,
    ScheduledEventStatus,
    SendMessage,
    SetScheduledEventStatus,
    Timeout,
    TypingIndicator,
    Unban,
    VoiceJoin,
    VoiceLeave,
    VoicePlay,
    VoiceSpeak,
    Warn,
)
from models.commands import builtin_command
from streams.codec import encode_key

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BOT = "1000"
GUILD = "2000"
CHANNEL = "3000"


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (4004, Reconnect.TOKEN_DEAD),
        (4010, Reconnect.FATAL),
        (4011, Reconnect.SHARDING_REQUIRED),
        (4012, Reconnect.FATAL),
        (4013, Reconnect.FATAL),
        (4014, Reconnect.DISALLOWED_INTENTS),
        (4007, Reconnect.IDENTIFY),
        (4009, Reconnect.IDENTIFY),
        (4000, Reconnect.RESUME),
        (4008, Reconnect.RESUME),
        (1006, Reconnect.RESUME),
        (None, Reconnect.RESUME),
    ],
)
def test_close_codes(code: int | None, expected: Reconnect) -> None:
    assert after_close(code) is expected


def test_backoff_grows_to_a_minute_and_spreads() -> None:
    assert protocol.backoff_delay(0, 0.5) == 0.0
    assert protocol.backoff_delay(1, 0.0) == 0.5
    assert protocol.backoff_delay(1, 0.999) < 1.0
    assert protocol.backoff_delay(4, 0.0) == 4.0
    assert protocol.backoff_delay(30, 0.999) <= 60.0
    assert protocol.backoff_delay(30, 0.0) == 30.0


def test_intents_are_discord_bits_and_unknown_names_are_named() -> None:
    value = protocol.intents_value(protocol.DEFAULT_INTENTS)
    # GUILDS, GUILD_MEMBERS, GUILD_VOICE_STATES, GUILD_MESSAGES, GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGES,
    # MESSAGE_CONTENT, GUILD_SCHEDULED_EVENTS
    bits = (0, 1, 7, 9, 10, 12, 15, 16)
    assert value == sum(1 << bit for bit in bits)
    with pytest.raises(ValueError, match="intents: unknown intent guild_mesages"):
        protocol.intents_value(("guilds", "guild_mesages"))


def test_identify_and_resume_payloads() -> None:
    identify = protocol.identify_payload("tok", 513, 0, 1)
    assert identify["op"] == 2
    assert identify["d"]["token"] == "tok"
    assert identify["d"]["intents"] == 513
    assert identify["d"]["shard"] == [0, 1]
    assert protocol.resume_payload("tok", "sess", 41) == {
        "op": 6,
        "d": {"token": "tok", "session_id": "sess", "seq": 41},
    }
    assert protocol.gateway_url("ws://h:1/") == "ws://h:1/?v=10&encoding=json"


def test_checkpoint_holds_below_the_oldest_unacknowledged_dispatch() -> None:
    checkpoint = Watermark(10)
    assert checkpoint.value == 10
    for seq in (11, 12, 13):
        checkpoint.received(seq)
    assert checkpoint.value == 10
    checkpoint.done(12)  # out of order: 11 is still in flight
    assert checkpoint.value == 10
    checkpoint.done(11)
    assert checkpoint.value == 12
    checkpoint.skipped(14)  # not forwarded, nothing to wait for; 13 still in flight
    assert checkpoint.value == 12
    checkpoint.done(13)
    assert checkpoint.value == 14
    assert checkpoint.in_flight == 0


def test_checkpoint_restart_forgets_what_was_in_flight() -> None:
    checkpoint = Watermark()
    checkpoint.received(1)
    checkpoint.received(2)
    checkpoint.restart(0)
    assert checkpoint.value == 0
    assert checkpoint.in_flight == 0


@pytest.mark.parametrize(
    ("event_type", "data", "ids"),
    [
        ("MESSAGE_CREATE", {"guild_id": GUILD, "channel_id": CHANNEL, "id": "9"}, (GUILD, CHANNEL)),
        ("MESSAGE_CREATE", {"channel_id": CHANNEL, "id": "9"}, (None, CHANNEL)),
        ("GUILD_CREATE", {"id": GUILD}, (GUILD, None)),
        ("CHANNEL_UPDATE", {"id": CHANNEL, "guild_id": GUILD}, (GUILD, CHANNEL)),
        ("VOICE_STATE_UPDATE", {"guild_id": int(GUILD), "channel_id": None}, (GUILD, None)),
        ("READY", {"session_id": "s"}, (None, None)),
        ("MESSAGE_CREATE", {"guild_id": "not-a-snowflake"}, (None, None)),
    ],
)
def test_dispatch_ids(event_type: str, data: dict[str, object], ids: tuple[str | None, str | None]) -> None:
    assert dispatch_ids(event_type, data) == ids


def test_envelope_is_keyed_by_guild_or_by_bot_for_dms() -> None:
    in_guild = envelope(
        event_id(BOT, "gen", 7), BOT, 0, 7, "MESSAGE_CREATE", {"guild_id": GUILD, "channel_id": CHANNEL}, NOW
    )
    assert in_guild.key == GUILD
    assert in_guild.event_id == f"{BOT}:gen:7"
    assert (in_guild.channel_id, in_guild.sequence, in_guild.received_at) == (CHANNEL, 7, NOW)
    in_dm = envelope(event_id(BOT, "gen", 8), BOT, 0, 8, "MESSAGE_CREATE", {"channel_id": CHANNEL}, NOW)
    assert in_dm.key == f"dm:{BOT}"


def test_bot_partition_is_the_producers_partition() -> None:
    partitioner = DefaultPartitioner()
    partitions = list(range(12))
    bots = [str(1_100_000_000_000_000_000 + i * 7919) for i in range(200)]
    for bot_id in bots:
        assert bot_partition(bot_id, 12) == partitioner(encode_key(bot_id), partitions, partitions)
    mine = owned(bots, {0, 1, 2}, 12)
    assert mine and all(bot_partition(bot_id, 12) in {0, 1, 2} for bot_id in mine)
    assert owned(bots, set(range(12)), 12) == set(bots)
    assert owned(bots, {0}, 0) == set()


def test_session_budget() -> None:
    spare = SessionStartLimit(total=1000, remaining=3, reset_after=5000, max_concurrency=1)
    spent = SessionStartLimit(total=1000, remaining=0, reset_after=5000, max_concurrency=1)
    assert budget_wait_s(spare) == 0.0
    assert budget_wait_s(spent) == 5.0


def test_request_rate_spaces_requests_beyond_the_burst() -> None:
    rate = RequestRate(50.0, now=0.0)
    assert [rate.delay(0.0) for _ in range(50)] == [0.0] * 50
    assert rate.delay(0.0) == pytest.approx(1 / 50)
    assert rate.delay(1.0) == 0.0  # a second later the bucket has refilled


# action plans

BASE = {"bot_id": BOT, "guild_id": GUILD}


def test_messages_carry_a_stable_short_nonce_and_no_mass_mentions() -> None:
    call = plan(SendMessage(action_id="a-1", channel_id=CHANNEL, content="hi @everyone", **BASE), NOW)
    assert isinstance(call, RestCall)
    assert (call.method, call.path, call.params) == (
        "POST",
        "/channels/{channel_id}/messages",
        {"channel_id": CHANNEL},
    )
    assert call.body is not None
    assert call.body["nonce"] == message_nonce("a-1")
    assert len(call.body["nonce"]) <= 25
    assert call.body["enforce_nonce"] is True
    assert call.body["allowed_mentions"] == {"parse": ["users"]}
    assert call.deduplicated
    assert message_nonce("a-1") != message_nonce("a-2")


def test_reply_references_the_message_and_embeds_are_discord_shaped() -> None:
    embed = Embed(title="t", description="d", footer="f")
    call = plan(Reply(action_id="a", channel_id=CHANNEL, message_id="77", embed=embed, **BASE), NOW)
    assert isinstance(call, RestCall) and call.body is not None
    assert call.body["message_reference"]["message_id"] == "77"
    assert call.body["embeds"] == [
        {"title": "t", "description": "d", "color": 0x5865F2, "footer": {"text": "f"}}
    ]


def test_an_empty_message_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidAction, match=r"^content:"):
        plan(SendMessage(action_id="a", channel_id=CHANNEL, **BASE), NOW)


def test_scheduled_events_are_guild_only_in_a_voice_channel_or_at_a_place() -> None:
    times = {"scheduled_start_time": NOW, "scheduled_end_time": NOW + timedelta(hours=1)}
    voice = plan(
        CreateScheduledEvent(action_id="e", name="Trivia", voice_channel_id="9", **times, **BASE), NOW
    )
    assert voice == RestCall(
        "POST",
        "/guilds/{guild_id}/scheduled-events",
        {"guild_id": GUILD},
        {
            "name": "Trivia",
            "privacy_level": 2,
            "scheduled_start_time": NOW.isoformat(),
            "scheduled_end_time": (NOW + timedelta(hours=1)).isoformat(),
            "entity_type": 2,
            "channel_id": "9",
        },
    )
    outside = plan(CreateScheduledEvent(action_id="e", name="Films", location="Cinema", **times, **BASE), NOW)
    assert isinstance(outside, RestCall) and outside.body is not None
    assert (outside.body["entity_type"], outside.body["entity_metadata"]) == (3, {"location": "Cinema"})
    assert "channel_id" not in outside.body
    with pytest.raises(InvalidAction, match=r"^location:"):
        plan(CreateScheduledEvent(action_id="e", name="Nowhere", **times, **BASE), NOW)
    # A retried create finds its first attempt's event: same bot, name and start (Discord's time format).
    mine = {
        "creator_id": BOT,
        "name": "Trivia",
        "scheduled_start_time": NOW.isoformat().replace("+00:00", "Z"),
    }
    assert created_before(voice, [mine], BOT)
    assert not created_before(voice, [{**mine, "creator_id": "1"}], BOT)
    assert not created_before(voice, [{**mine, "name": "Films"}], BOT)
    later = (NOW + timedelta(days=7)).isoformat()
    assert not created_before(voice, [{**mine, "scheduled_start_time": later}], BOT)
    status = SetScheduledEventStatus(action_id="s", event_id="77", status=ScheduledEventStatus.active, **BASE)
    assert plan(status, NOW) == RestCall(
        "PATCH",
        "/guilds/{guild_id}/scheduled-events/{event_id}",
        {"guild_id": GUILD, "event_id": "77"},
        {"status": 2},
    )


def test_warn_mentions_only_the_warned_user() -> None:
    call = plan(
        Warn(action_id="a", channel_id=CHANNEL, user_id="55", reason="spam", warn_count=2, **BASE), NOW
    )
    assert isinstance(call, RestCall) and call.body is not None
    assert call.body["content"] == "<@55> warning 2: spam"
    assert call.body["allowed_mentions"] == {"users": ["55"]}


def test_moderation_routes() -> None:
    ban = plan(Ban(action_id="a", user_id="55", reason="r", delete_message_seconds=60, **BASE), NOW)
    kick = plan(Kick(action_id="a", user_id="55", **BASE), NOW)
    timeout = plan(Timeout(action_id="a", user_id="55", duration_s=600, **BASE), NOW)
    delete = plan(DeleteMessage(action_id="a", channel_id=CHANNEL, message_id="9", **BASE), NOW)
    react = plan(React(action_id="a", channel_id=CHANNEL, message_id="9", emoji="👍", **BASE), NOW)
    typing = plan(TypingIndicator(action_id="a", channel_id=CHANNEL, **BASE), NOW)
    assert isinstance(ban, RestCall) and ban.body == {"delete_message_seconds": 60} and ban.reason == "r"
    assert isinstance(kick, RestCall) and (kick.method, kick.params["user_id"]) == ("DELETE", "55")
    assert isinstance(timeout, RestCall) and timeout.body is not None
    assert timeout.body["communication_disabled_until"] == (NOW + timedelta(seconds=600)).isoformat()
    assert isinstance(delete, RestCall) and delete.method == "DELETE"
    assert isinstance(react, RestCall) and react.params["emoji"] == "👍" and react.method == "PUT"
    assert isinstance(typing, RestCall) and typing.path == "/channels/{channel_id}/typing"
    unban = plan(Unban(action_id="a", user_id="55", reason="appeal", **BASE), NOW)
    assert isinstance(unban, RestCall) and (unban.method, unban.path) == (
        "DELETE",
        "/guilds/{guild_id}/bans/{user_id}",
    )
    assert unban.params == {"guild_id": GUILD, "user_id": "55"} and unban.reason == "appeal"


def test_a_poll_goes_as_discords_poll_object() -> None:
    poll = NativePoll(question="Snack?", answers=["boba", "mochi"], duration_hours=2)
    expected = {
        "question": {"text": "Snack?"},
        "answers": [{"poll_media": {"text": "boba"}}, {"poll_media": {"text": "mochi"}}],
        "duration": 2,
        "allow_multiselect": False,
    }
    reply = plan(Reply(action_id="p", channel_id=CHANNEL, message_id="9", poll=poll, **BASE), NOW)
    assert isinstance(reply, RestCall) and reply.body is not None and reply.body["poll"] == expected
    response = InteractionResponse(
        action_id="p", interaction_id="5", interaction_token="t", poll=poll, **BASE
    )
    answered = plan(response, NOW)
    assert isinstance(answered, RestCall) and answered.body is not None
    assert answered.body["data"]["poll"] == expected


def test_a_report_tells_the_outcome_where_the_command_was_given_and_in_the_log() -> None:
    report = Report(
        done="Banned <@55>: raid",
        failed="Could not ban <@55>",
        answer=AnswerInChannel(channel_id=CHANNEL, message_id="9"),
        log_channel_id="4000",
        actor="<@77>",
    )
    ban = Ban(action_id="ban-1", user_id="55", report=report, **BASE)
    assert report_text(report, None) == "Banned <@55>: raid"
    refused = report_text(report, "Discord answered 403 (code 50013): Missing Permissions")
    assert refused == "Could not ban <@55>: Discord answered 403 (code 50013): Missing Permissions"
    reply, log = report_calls(ban, report, refused)
    assert isinstance(reply, RestCall) and isinstance(log, RestCall)
    assert reply.body is not None and reply.body["content"] == refused
    assert reply.body["message_reference"]["message_id"] == "9"
    assert log.params == {"channel_id": "4000"} and log.body is not None
    assert log.body["content"] == f"{refused} · <@77>"
    assert log.body["allowed_mentions"] == {"parse": []}  # the log pings nobody
    # Ids of their own, the same on every retry: Discord drops a repeated nonce.
    assert len({reply.body["nonce"], log.body["nonce"], message_nonce("ban-1")}) == 3
    assert report_calls(ban, report, refused) == [reply, log]


def test_a_slash_commands_report_answers_its_interaction_in_the_agents_embed() -> None:
    report = Report(
        done="Unbanned <@55>",
        failed="Could not unban <@55>",
        answer=AnswerInteraction(interaction_id="5", interaction_token="itok"),
        embed_color=0x123456,
    )
    [answer] = report_calls(Unban(action_id="u", user_id="55", report=report, **BASE), report, report.done)
    assert isinstance(answer, InteractionResponse) and answer.action_id == "u/answer"
    callback = interaction_callback(answer)
    assert callback.params == {"webhook_id": "5", "webhook_token": "itok"} and callback.body is not None
    assert callback.body["data"]["embeds"] == [
        {"color": 0x123456, "title": "Moderation", "description": "Unbanned <@55>"}
    ]
    assert callback.body["data"]["content"] == ""
    in_channel = report.model_copy(
        update={"answer": AnswerInChannel(channel_id=CHANNEL), "embed_color": None}
    )
    [post] = report_calls(Ban(action_id="b", user_id="55", report=in_channel, **BASE), in_channel, "x")
    assert (
        isinstance(post, RestCall)
        and post.body is not None
        and "message_reference" not in post.body
        and post.body["content"] == "x"
    )


def test_an_answer_after_the_deferral_edits_it_and_an_ephemeral_one_replaces_it() -> None:
    answer = InteractionResponse(
        action_id="a", bot_id=BOT, interaction_id="5", interaction_token="itok", content="done"
    )
    assert deferral_call("5", "itok").body == {"type": 5} and not deferral_call("5", "itok").counts_globally
    [edit] = deferred_answer(answer, "app")
    assert (edit.method, edit.path) == (
        "PATCH",
        "/webhooks/{webhook_id}/{webhook_token}/messages/@original",
    )
    assert edit.params == {"webhook_id": "app", "webhook_token": "itok"}
    assert edit.body is not None and edit.body["content"] == "done" and "flags" not in edit.body
    # An ephemeral answer cannot be made of the public thinking message: it goes, a private follow-up comes.
    delete, follow = deferred_answer(answer.model_copy(update={"ephemeral": True}), "app")
    assert (delete.method, follow.method, follow.path) == (
        "DELETE",
        "POST",
        "/webhooks/{webhook_id}/{webhook_token}",
    )
    assert follow.body is not None and follow.body["flags"] == 64 and follow.body["content"] == "done"


CHART = Attachment(filename="stats.png", content_type="image/png", data=b"\x89PNG-bytes", description="bars")
STATS_EMBED = Embed(
    title="Server activity",
    color=0x3498DB,
    fields=[EmbedField(name="Messages", value="5"), EmbedField(name="Busiest", value="<#1>", inline=False)],
    image_url="attachment://stats.png",
)


def test_a_reply_with_a_file_is_multipart_with_the_file_described_in_its_payload() -> None:
    reply = Reply(
        action_id="r", channel_id=CHANNEL, message_id="9", embed=STATS_EMBED, attachment=CHART, **BASE
    )
    call = plan(reply, NOW)
    assert isinstance(call, RestCall) and call.attachment == CHART and call.body is not None
    assert call.body["attachments"] == [{"id": 0, "filename": "stats.png", "description": "bars"}]
    assert call.body["embeds"] == [
        {
            "color": 0x3498DB,
            "title": "Server activity",
            "fields": [
                {"name": "Messages", "value": "5", "inline": True},
                {"name": "Busiest", "value": "<#1>", "inline": False},
            ],
            "image": {"url": "attachment://stats.png"},
        }
    ]
    payload, file = multipart_form(call.body, CHART)
    assert payload == {"name": "payload_json", "value": orjson.dumps(call.body).decode()}
    assert file == {
        "name": "files[0]",
        "value": b"\x89PNG-bytes",
        "filename": "stats.png",
        "content_type": "image/png",
    }


def test_an_interaction_answer_carries_its_file_whether_or_not_it_was_deferred() -> None:
    answer = InteractionResponse(
        action_id="a",
        interaction_id="5",
        interaction_token="itok",
        embed=STATS_EMBED,
        attachment=CHART,
        **BASE,
    )
    callback = interaction_callback(answer)
    assert callback.attachment == CHART and callback.body is not None
    assert callback.body["data"]["attachments"] == [{"id": 0, "filename": "stats.png", "description": "bars"}]
    [edit] = deferred_answer(answer, "app")
    assert edit.method == "PATCH" and edit.attachment == CHART and edit.body is not None
    assert edit.body["attachments"][0]["filename"] == "stats.png"


def test_an_attachment_alone_is_a_message_and_its_bytes_travel_as_base64() -> None:
    call = plan(SendMessage(action_id="s", channel_id=CHANNEL, attachment=CHART, **BASE), NOW)
    assert isinstance(call, RestCall) and call.body is not None and call.body["content"] == ""
    assert CHART.model_dump(mode="json")["data"] == "iVBORy1ieXRlcw=="
    with pytest.raises(ValidationError, match="data"):
        Attachment(filename="a.png", content_type="image/png", data="not base64!")
    with pytest.raises(ValidationError, match="filename"):
        Attachment(filename="../a.png", content_type="image/png", data=b"x")


def test_guild_actions_without_a_guild_are_refused() -> None:
    with pytest.raises(InvalidAction, match=r"^guild_id:"):
        plan(Ban(action_id="a", bot_id=BOT, user_id="55"), NOW)
    with pytest.raises(InvalidAction, match=r"^guild_id:"):
        plan(VoiceJoin(action_id="a", bot_id=BOT, channel_id=CHANNEL), NOW)


def test_interaction_callbacks_do_not_count_against_the_global_limit() -> None:
    call = plan(
        InteractionResponse(
            action_id="a", interaction_id="5", interaction_token="itok", content="x", ephemeral=True, **BASE
        ),
        NOW,
    )
    assert isinstance(call, RestCall) and call.body is not None
    assert not call.counts_globally
    assert call.params == {"webhook_id": "5", "webhook_token": "itok"}
    assert call.body == {
        "type": 4,
        "data": {"content": "x", "flags": 64, "allowed_mentions": {"parse": ["users"]}},
    }


def test_persona_update_inlines_images_and_clears_with_an_empty_url() -> None:
    call = plan(
        MemberPersonaUpdate(
            action_id="a", nick="Luna", avatar_url="https://cdn/x.png", banner_url="", bio="hi", **BASE
        ),
        NOW,
    )
    assert isinstance(call, RestCall)
    assert call.path == "/guilds/{guild_id}/members/@me"
    assert call.body == {"nick": "Luna", "bio": "hi", "banner": None}
    assert call.images == {"avatar": "https://cdn/x.png"}
    with pytest.raises(InvalidAction, match=r"^nick:"):
        plan(MemberPersonaUpdate(action_id="a", **BASE), NOW)


def test_presence_is_a_gateway_command_and_voice_goes_to_the_voice_connection() -> None:
    presence = plan(PresenceUpdate(action_id="a", status="idle", activity="dreaming", **BASE), NOW)
    assert isinstance(presence, GatewayCommand) and presence.payload["op"] == 3
    assert presence.payload["d"]["status"] == "idle"
    assert presence.payload["d"]["activities"][0]["state"] == "dreaming"
    voice_actions: list[VoiceJoin | VoiceLeave | VoicePlay | VoiceSpeak] = [
        VoiceJoin(action_id="a", channel_id=CHANNEL, **BASE),
        VoiceLeave(action_id="a", **BASE),
        VoicePlay(action_id="a", command="play", track="song", **BASE),
        VoiceSpeak(action_id="a", channel_id=CHANNEL, text="hello", **BASE),
    ]
    for action in voice_actions:
        assert plan(action, NOW) == VoiceCommand(GUILD, action)


def test_each_interaction_has_a_rate_limit_bucket_of_its_own() -> None:
    """discord.py keys a route's bucket by its major parameters (channel, guild, webhook id and token): the
    interaction routes must carry them, or all of a bot's interactions share one bucket of 5 per 5 s."""
    answer = InteractionResponse(
        action_id="a",
        bot_id=BOT,
        interaction_id="5",
        interaction_token="itok",
        content="done",
        ephemeral=True,
    )
    calls = [deferral_call("5", "itok"), interaction_callback(answer), *deferred_answer(answer, "app")]
    for call in calls:
        route = Route(call.method, call.path, **call.params)
        assert "itok" in route.major_parameters, call.path


def test_a_command_set_every_guild_agrees_on_goes_global_else_each_guild_gets_its_own() -> None:
    music = [builtin_command("play"), builtin_command("queue")]
    games = [builtin_command("roll")]
    assert placement({"1": music, "2": list(music)}) == {GLOBAL: music, "1": [], "2": []}
    assert placement({"1": music, "2": games}) == {GLOBAL: [], "1": music, "2": games}
    # One guild keeps its own set; guilds that all want nothing register nothing globally.
    assert placement({"1": music}) == {GLOBAL: [], "1": music}
    assert placement({"1": [], "2": []}) == {GLOBAL: [], "1": [], "2": []}
    assert placement({}) == {GLOBAL: []}


def test_a_guild_is_on_the_shard_discord_routes_it_to() -> None:
    assert guild_shard(str(41 << 22), 1) == 0
    assert [guild_shard(str((41 + n) << 22 | 12345), 3) for n in range(4)] == [2, 0, 1, 2]


def test_granted_intents_drop_the_privileged_ones_the_application_flags_do_not_grant() -> None:
    wanted = protocol.intents_value(protocol.DEFAULT_INTENTS)
    members = 1 << 1
    assert protocol.granted_intents(wanted, (1 << 18) | (1 << 14)) == wanted
    assert protocol.granted_intents(wanted, (1 << 19) | (1 << 15)) == wanted  # the LIMITED flags
    without_content = protocol.granted_intents(wanted, 1 << 15)
    assert without_content == wanted & ~protocol.MESSAGE_CONTENT and without_content & members
    assert protocol.granted_intents(wanted, 0) == wanted & ~protocol.PRIVILEGED_INTENTS


def test_the_missing_content_notice_names_the_features_and_fits_a_notification() -> None:
    notice = missing_content_notice("Luna", {"luna": ["prefix commands (!)", "automod links"], "quiet": []})
    assert notice.kind == "message_content_missing"
    assert "needed by luna: prefix commands (!), automod links." in notice.message
    crowded = missing_content_notice("Luna", {f"agent-{n}": ["prefix commands (!)"] for n in range(20)})
    assert len(crowded.message) == 200 and crowded.message.endswith("…")
    assert "none of its agents' features" in missing_content_notice("Luna", {"quiet": []}).message
