"""Command parsing and the handlers of each tool: moderation with permissions and escalation, leveling,
reminders, polls and custom commands (games: test_proc_games.py, music: test_proc_music.py)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from models.actions import (
    AnswerInChannel,
    AnswerInteraction,
    Ban,
    InteractionResponse,
    Reply,
    Timeout,
    Unban,
    Warn,
)
from models.agent import AgentMode, EscalationRule, LevelingConfig
from models.analytics import StatsRequest, StatsWindow
from models.commands import COMMAND_OPTIONS
from models.discord import DiscordUser, InteractionOption, PollMessage
from models.permissions import ADMINISTRATOR, BAN_MEMBERS, KICK_MEMBERS, MODERATE_MEMBERS
from models.processor_state import TABLE_VALUE_MAX_BYTES, GuildDirectory, Leaderboard, UtilityBook
from processors.analytics import handle_stats
from processors.commands import (
    Invocation,
    UsageError,
    parse_prefix_args,
    parse_slash_options,
    split_prefix,
)
from processors.emit import Emitter, InteractionOrigin, MessageOrigin, Say
from processors.ids import seeded_rng
from processors.leveling import award_xp, handle_leveling, progress, update_leaderboard, xp_to_next
from processors.moderation import escalation_for, handle_moderation, log_channel_id
from processors.permissions import granted, member_permissions
from processors.tables import ModelCodec
from processors.utility import (
    handle_utility,
    poll_results,
    render_custom,
    take_due_reminders,
)
from tests.processors.factories import T0, agent_with, deployed, snowflake

GUILD, CHANNEL, BOT = snowflake(), snowflake(), snowflake()
MOD, MEMBER, OWNER = snowflake(), snowflake(), snowflake()


def invocation(
    name: str,
    options: dict[str, Any] | None = None,
    *,
    user_id: str = MEMBER,
    permissions: int = 0,
    slash: bool = True,
    at=T0,
) -> Invocation:
    origin = InteractionOrigin(snowflake(), "tok") if slash else MessageOrigin(CHANNEL, snowflake())
    return Invocation(
        name=name,
        options=options or {},
        user=DiscordUser(id=user_id, username="u"),
        channel_id=CHANNEL,
        guild_id=GUILD,
        permissions=permissions,
        role_ids=(),
        at=at,
        origin=origin,
    )


def emitter(mode: AgentMode = AgentMode.enhanced, event: str | None = None, **agent: Any) -> Emitter:
    dep = deployed(agent_with(mode, **agent), guild_id=GUILD, bot_id=BOT)
    return Emitter(event or f"evt-{snowflake()}", dep, GUILD, MEMBER)


# Parsing --------------------------------------------------------------------------------------------------


def test_split_prefix() -> None:
    assert split_prefix("!play lofi hip hop", "!") == ("play", "lofi hip hop")
    assert split_prefix("!SKIP", "!") == ("skip", "")
    assert split_prefix("?? play", "??") is None
    assert split_prefix("play lofi", "!") is None
    assert split_prefix("$$queue", "$$") == ("queue", "")


def test_prefix_options_in_declaration_order() -> None:
    assert parse_prefix_args(COMMAND_OPTIONS["ban"], f"<@{MEMBER}> spamming links") == {
        "user": MEMBER,
        "reason": "spamming links",
    }
    assert parse_prefix_args(COMMAND_OPTIONS["timeout"], f"<@!{MEMBER}> 10m be nice") == {
        "user": MEMBER,
        "duration": 600,
        "reason": "be nice",
    }
    assert parse_prefix_args(COMMAND_OPTIONS["timeout"], f"{MEMBER} calm down") == {
        "user": MEMBER,
        "reason": "calm down",
    }
    assert parse_prefix_args(COMMAND_OPTIONS["remind"], "2h stretch") == {"when": 7200, "text": "stretch"}
    assert parse_prefix_args(COMMAND_OPTIONS["volume"], "150") == {"level": 150}


@pytest.mark.parametrize(("command", "text"), [("ban", "spamming"), ("play", ""), ("remind", "soon do it")])
def test_missing_required_options_name_the_option(command: str, text: str) -> None:
    with pytest.raises(UsageError, match=r"is missing|not a duration"):
        parse_prefix_args(COMMAND_OPTIONS[command], text)


def test_slash_options() -> None:
    given = [
        InteractionOption(name="user", type=6, value=MEMBER),
        InteractionOption(name="duration", type=3, value="1h"),
    ]
    assert parse_slash_options(COMMAND_OPTIONS["timeout"], given) == {"user": MEMBER, "duration": 3600}
    with pytest.raises(UsageError, match="user is missing"):
        parse_slash_options(COMMAND_OPTIONS["ban"], [])
    with pytest.raises(UsageError, match="whole number"):
        parse_slash_options(
            COMMAND_OPTIONS["volume"], [InteractionOption(name="level", type=3, value="loud")]
        )


# Moderation -------------------------------------------------------------------------------------------


def moderate(
    name: str,
    permissions: int,
    record=None,
    *,
    directory=None,
    rules=None,
    user_id=MOD,
    emit=None,
    roles=(),
    named_member_roles=None,
    **options,
):
    inv = invocation(name, {"user": MEMBER, **options}, user_id=user_id, permissions=permissions)
    inv = replace(inv, role_ids=roles, named_member_roles=named_member_roles or {})
    rules = rules if rules is not None else [EscalationRule(warns=3, action="timeout", duration_s=600)]
    return handle_moderation(inv, record, emit or emitter(AgentMode.utility), directory, rules, "/")


def test_ban_needs_the_permission() -> None:
    allowed = moderate("ban", BAN_MEMBERS, reason="raiding")
    [ban] = allowed.actions
    assert isinstance(ban, Ban) and ban.user_id == MEMBER and ban.reason == "raiding"
    [audit] = allowed.audits
    assert (audit.rule, audit.actions, audit.moderator_id, audit.source) == ("ban", ["ban"], MOD, "command")
    refused = moderate("ban", KICK_MEMBERS | MODERATE_MEMBERS)
    assert refused.actions == [] and refused.audits == []
    assert refused.say is not None and "Ban Members" in refused.say.text and refused.say.ephemeral
    assert moderate("ban", ADMINISTRATOR).actions  # administrators may do everything


def test_ban_and_unban_are_told_once_discord_answers() -> None:
    directory = GuildDirectory(guild_id=GUILD, channel_names={"9001": "mod-log"})
    emit = emitter(AgentMode.utility, moderation={"log_channel": "#Mod-Log"})
    banned = moderate("ban", BAN_MEMBERS, directory=directory, emit=emit, reason="raid")
    [ban] = banned.actions
    assert banned.say is None  # nothing is said before Discord confirms
    assert isinstance(ban, Ban) and ban.report is not None
    assert (ban.report.done, ban.report.failed) == (f"Banned <@{MEMBER}>: raid", f"Could not ban <@{MEMBER}>")
    assert isinstance(ban.report.answer, AnswerInteraction)
    assert (ban.report.log_channel_id, ban.report.actor) == ("9001", f"<@{MOD}>")
    unbanned = moderate("unban", BAN_MEMBERS)
    [unban] = unbanned.actions
    assert isinstance(unban, Unban) and unban.user_id == MEMBER and unban.report is not None
    assert unban.report.done == f"Unbanned <@{MEMBER}>" and unban.report.log_channel_id is None
    assert [a.rule for a in unbanned.audits] == ["unban"]
    assert moderate("unban", KICK_MEMBERS).actions == []


def test_the_log_channel_is_an_id_or_a_name_the_directory_knows() -> None:
    directory = GuildDirectory(guild_id=GUILD, channel_names={"9001": "mod-log"})
    assert log_channel_id("", directory) is None
    assert log_channel_id("1234", None) == "1234"
    assert log_channel_id("#mod-log", directory) == "9001"
    assert log_channel_id("elsewhere", directory) is None


def test_nobody_acts_on_a_member_at_or_above_the_moderator_or_the_bot() -> None:
    helper, senior, bots = snowflake(), snowflake(), snowflake()
    directory = GuildDirectory(
        guild_id=GUILD,
        owner_id=OWNER,
        role_positions={helper: 1, bots: 2, senior: 3},
        bot_roles={BOT: [bots]},
    )

    def ban(user_id: str, roles: tuple[str, ...], target_roles: tuple[str, ...]):
        return moderate(
            "ban",
            BAN_MEMBERS,
            directory=directory,
            user_id=user_id,
            roles=roles,
            named_member_roles={MEMBER: target_roles},
        )

    assert ban(MOD, (senior,), (helper,)).actions
    equal = ban(MOD, (helper,), (helper,))
    assert equal.actions == [] and equal.say is not None and "not below yours" in equal.say.text
    same_rank = ban(MOD, (senior,), (senior,))
    assert same_rank.actions == [] and same_rank.say is not None
    assert "not below yours" in same_rank.say.text
    over_the_bot = ban(OWNER, (), (senior,))  # the owner outranks everyone, the bot does not
    assert over_the_bot.actions == [] and over_the_bot.say is not None
    assert "not below mine" in over_the_bot.say.text
    assert ban(OWNER, (), (helper,)).actions
    # A target named by a bare id brings no roles: Discord's own check (a refusal, reported) is left.
    assert moderate("ban", BAN_MEMBERS, directory=directory).actions


def test_targets_that_cannot_be_moderated() -> None:
    directory = GuildDirectory(guild_id=GUILD, owner_id=MEMBER)
    assert moderate("kick", KICK_MEMBERS, directory=directory).actions == []
    assert moderate("kick", KICK_MEMBERS, user_id=MEMBER).actions == []  # oneself
    bot = handle_moderation(
        invocation("ban", {"user": BOT}, user_id=MOD, permissions=BAN_MEMBERS), None, emitter(), None, [], "/"
    )
    assert bot.actions == [] and bot.say is not None and "myself" in bot.say.text


def test_timeout_default_and_given_duration() -> None:
    [default] = moderate("timeout", MODERATE_MEMBERS).actions
    [given] = moderate("timeout", MODERATE_MEMBERS, duration=3600).actions
    assert isinstance(default, Timeout) and default.duration_s == 600
    assert isinstance(given, Timeout) and given.duration_s == 3600


def test_warn_counts_and_escalates_at_three() -> None:
    record = None
    kinds = []
    for _ in range(4):
        outcome = moderate("warn", MODERATE_MEMBERS, record, reason="rude")
        record = outcome.state
        kinds.append([a.kind for a in outcome.actions])
    assert kinds == [["warn"], ["warn"], ["warn", "timeout"], ["warn", "timeout"]]
    assert record is not None and record.count == 4
    # The warning is answered at once; the escalation is told in the channel once Discord confirms it.
    escalated = moderate("warn", MODERATE_MEMBERS, record, reason="rude")
    assert escalated.say is not None and escalated.say.text == f"Warned <@{MEMBER}> (5 warnings): rude"
    timeout = escalated.actions[1]
    assert isinstance(timeout, Timeout) and timeout.report is not None
    assert timeout.report.answer == AnswerInChannel(channel_id=CHANNEL)
    assert timeout.report.done == f"Timed out <@{MEMBER}> for 10m: 5 warnings"
    warn = moderate("warn", MODERATE_MEMBERS, record).actions[0]
    assert isinstance(warn, Warn) and warn.warn_count == 5
    count = moderate("warnings", MODERATE_MEMBERS, record)
    assert count.say is not None and count.say.text == f"<@{MEMBER}> has 4 warnings."


def test_a_moderation_answer_is_about_the_member_acted_on_not_the_moderator() -> None:
    # The event is the moderator's command: its other answers are about them.
    emit = Emitter(
        f"evt-{snowflake()}", deployed(agent_with(AgentMode.enhanced), guild_id=GUILD, bot_id=BOT), GUILD, MOD
    )
    origins = (MessageOrigin(CHANNEL, snowflake()), InteractionOrigin(snowflake(), "token"))
    for name in ("warn", "warnings"):
        say = moderate(name, MODERATE_MEMBERS, reason="rude", emit=emit).say
        assert say is not None
        assert [emit.answer(say, origin).about_user_id for origin in origins] == [MEMBER, MEMBER]
    assert emit.answer(Say("pong"), origins[0]).about_user_id == MOD


def test_escalation_picks_the_strictest_rule_reached() -> None:
    rules = [EscalationRule(warns=3, action="timeout"), EscalationRule(warns=5, action="kick")]
    assert escalation_for(rules, 2) is None
    assert escalation_for(rules, 3) == rules[0]
    assert escalation_for(rules, 4) == rules[0]
    assert escalation_for(rules, 7) == rules[1]


def test_member_permissions_from_roles() -> None:
    helper_role, admin_role = snowflake(), snowflake()
    directory = GuildDirectory(
        guild_id=GUILD,
        owner_id=OWNER,
        role_permissions={GUILD: 1 << 10, helper_role: KICK_MEMBERS, admin_role: ADMINISTRATOR},
    )
    assert member_permissions(directory, MEMBER, []) == 1 << 10
    assert granted(member_permissions(directory, MEMBER, [helper_role]), KICK_MEMBERS)
    assert not granted(member_permissions(directory, MEMBER, [helper_role]), BAN_MEMBERS)
    assert granted(member_permissions(directory, MEMBER, [admin_role]), BAN_MEMBERS | MODERATE_MEMBERS)
    assert granted(member_permissions(directory, OWNER, []), BAN_MEMBERS)
    assert member_permissions(None, OWNER, [admin_role]) == 0


# Leveling ---------------------------------------------------------------------------------------------


def test_level_curve_like_mee6() -> None:
    assert [xp_to_next(n) for n in range(4)] == [100, 155, 220, 295]
    assert progress(99) == (0, 99, 100)
    assert progress(100) == (1, 0, 155)
    assert progress(100 + 155 + 10) == (2, 10, 220)


def test_xp_has_a_cooldown() -> None:
    config = LevelingConfig(xp_min=15, xp_max=25, cooldown_s=60)
    entry = award_xp(None, config, lambda: seeded_rng("a"), T0)
    assert entry is not None and 15 <= entry.xp <= 25

    def unthrown() -> random.Random:
        raise AssertionError("inside the cooldown no dice are thrown")

    assert award_xp(entry, config, unthrown, T0 + timedelta(seconds=59)) is None
    later = award_xp(entry, config, lambda: seeded_rng("c"), T0 + timedelta(seconds=60))
    assert later is not None and later.xp > entry.xp and later.last_xp_at == T0 + timedelta(seconds=60)


def test_leaderboard_keeps_the_top_ten() -> None:
    board: Leaderboard | None = None
    for n in range(12):
        board = update_leaderboard(board, f"{n + 100}", n * 10) or board
    assert board is not None and [e.score for e in board.entries] == [
        110,
        100,
        90,
        80,
        70,
        60,
        50,
        40,
        30,
        20,
    ]
    assert update_leaderboard(board, "999", 5) is None
    board = update_leaderboard(board, "102", 500)
    assert board is not None and board.entries[0].user_id == "102" and len(board.entries) == 10
    rank = handle_leveling(invocation("rank", {"user": "102"}), None, board)
    assert rank.text.endswith("#1")
    top = handle_leveling(invocation("leaderboard"), None, board)
    assert top.text.splitlines()[0] == "1. <@102> — level 3 (500 XP)"


# Utility, games, custom commands -------------------------------------------------------------------------


def test_reminders_fire_when_due() -> None:
    emit = emitter(AgentMode.semi_autonomous)
    outcome = handle_utility(invocation("remind", {"when": 600, "text": "stretch"}), None, emit)
    assert outcome.say is not None and outcome.say.text == "I'll remind you in 10m: stretch"
    book = outcome.state
    assert (
        book is not None
        and handle_utility(invocation("remind", {"when": 1, "text": "x"}), book, emit).state is None
    )
    due, rest = take_due_reminders(book, T0 + timedelta(minutes=9))
    assert due == [] and rest.reminders == book.reminders
    due, rest = take_due_reminders(book, T0 + timedelta(minutes=10))
    assert [r.text for r in due] == ["stretch"] and rest.reminders == []


def test_a_reminder_that_would_take_the_guilds_book_past_a_changelog_record_is_refused() -> None:
    """Six members' 25 reminders each of 1,900 emoji (7.6 KB as JSON) within the count limits would make a
    record of 1.2 MB, over the 1,000,000 bytes the worker's producer sends."""
    book: UtilityBook | None = None
    members = [snowflake() for _ in range(6)]
    for n in range(6 * 25):
        ask = invocation("remind", {"when": 3600, "text": "🎉" * 1900}, user_id=members[n // 25])
        outcome = handle_utility(ask, book, emitter(AgentMode.semi_autonomous))
        if outcome.state is None:
            break
        book = outcome.state
    assert (
        outcome.say is not None and outcome.say.text == "This server's reminders hold too much text already."
    )
    assert book is not None and 90 < len(book.reminders) < 6 * 25
    assert len(ModelCodec(UtilityBook).dumps(book)) <= TABLE_VALUE_MAX_BYTES


def test_a_poll_is_a_native_poll_and_its_results_are_told_once_final() -> None:
    emit = emitter(AgentMode.semi_autonomous)
    outcome = handle_utility(
        invocation("poll", {"question": "Best snack? | boba | mochi | ramen"}), None, emit
    )
    assert outcome.say is not None and outcome.say.poll is not None and outcome.state is None
    assert (outcome.say.poll.question, outcome.say.poll.answers) == (
        "Best snack?",
        ["boba", "mochi", "ramen"],
    )
    bad = handle_utility(invocation("poll", {"question": "Only one | option"}), None, emit)
    assert bad.say is not None and bad.say.ephemeral and bad.say.poll is None

    def closed(counts: dict[int, int], finalized: bool = True) -> PollMessage:
        return PollMessage.model_validate(
            {
                "id": "1",
                "channel_id": CHANNEL,
                "poll": {
                    "question": {"text": "Best snack?"},
                    "answers": [
                        {"answer_id": n, "poll_media": {"text": t}}
                        for n, t in enumerate(["boba", "mochi", "ramen"], 1)
                    ],
                    "results": {
                        "is_finalized": finalized,
                        "answer_counts": [{"id": n, "count": c} for n, c in counts.items()],
                    },
                },
            }
        )

    assert poll_results(closed({1: 1}, finalized=False)) is None
    tie = poll_results(closed({1: 2, 3: 2}))
    assert tie is not None and tie.text.splitlines()[1:] == [
        "boba: 2 votes",
        "mochi: 0 votes",
        "ramen: 2 votes",
        "Tie: boba, ramen",
    ]
    empty = poll_results(closed({}))
    assert empty is not None and empty.text.endswith("No votes.")


def test_a_book_written_with_pending_reaction_polls_still_loads() -> None:
    old = {"reminders": [], "polls": [{"poll_id": "e", "marker": "📊 ?"}]}
    assert UtilityBook.model_validate(old) == UtilityBook()


def test_custom_command_templates_fill_only_known_placeholders() -> None:
    agent = agent_with(
        AgentMode.utility,
        enabled_tools=["moderation", "custom_commands"],
        custom_commands=[
            {"name": "hug", "template": "{agent} hugs {args} for {user} in {guild} {user.__class__}"}
        ],
    )
    inv = invocation("hug", {"args": "everyone"}, user_id=MEMBER)
    say = render_custom(agent.custom_commands[0], inv, agent.name, "Anime Hangout")
    assert say.text == f"Mod Bot hugs everyone for <@{MEMBER}> in Anime Hangout {{user.__class__}}"


# Answers ----------------------------------------------------------------------------------------------


def test_answers_follow_the_response_style() -> None:
    plain = emitter(AgentMode.bare)
    slash = plain.answer(Say("Playing: lofi", title="Music"), InteractionOrigin("1", "tok"))
    assert isinstance(slash, InteractionResponse) and slash.content == "Playing: lofi" and slash.embed is None
    embed = emitter(AgentMode.utility, response_style={"format": "embed", "embed_color": 0xFF0000})
    reply = embed.answer(Say("Banned", title="Moderation"), MessageOrigin(CHANNEL, "5"))
    assert isinstance(reply, Reply) and reply.content == "" and reply.embed is not None
    assert (reply.embed.title, reply.embed.description, reply.embed.color) == (
        "Moderation",
        "Banned",
        0xFF0000,
    )


def test_action_ids_are_deterministic() -> None:
    dep = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=BOT)
    first = [Emitter("evt-1", dep, GUILD, MEMBER).send(Say("x"), CHANNEL).action_id for _ in range(2)]
    two = Emitter("evt-1", dep, GUILD, MEMBER)
    pair = [two.send(Say("x"), CHANNEL).action_id, two.send(Say("y"), CHANNEL).action_id]
    assert first[0] == first[1] == pair[0] != pair[1]


# Stats ----------------------------------------------------------------------------------------------------


def test_stats_are_for_moderators_only_and_refused_privately() -> None:
    refused = handle_stats(invocation("stats"), emitter(), "/")
    assert refused == Say("You need the Moderate Members permission to use /stats.", ephemeral=True)


def test_stats_name_the_window_option_when_it_is_not_one_of_the_windows() -> None:
    said = handle_stats(invocation("stats", {"window": "1y"}, permissions=MODERATE_MEMBERS), emitter(), "/")
    assert said == Say("window: '1y' is not one of 24h, 7d, 30d.", ephemeral=True)


def test_a_moderators_stats_become_a_request_with_a_stable_answer_id() -> None:
    emit = emitter(event="evt-stats", response_style={"format": "embed", "embed_color": 0x3498DB})
    slash = invocation("stats", {"window": "30d"}, permissions=MODERATE_MEMBERS)
    request = handle_stats(slash, emit, "/")
    assert isinstance(request, StatsRequest)
    assert (request.guild_id, request.bot_id, request.window) == (GUILD, BOT, StatsWindow.month)
    assert (request.until, request.embed_color, request.cause_event_id) == (T0, 0x3498DB, "evt-stats")
    assert isinstance(slash.origin, InteractionOrigin)
    assert request.answer == AnswerInteraction(
        interaction_id=slash.origin.interaction_id, interaction_token="tok"
    )
    # The same event handled again (a redelivery) asks under the same answer id.
    again = handle_stats(slash, emit, "/")
    assert isinstance(again, StatsRequest) and again.action_id == request.action_id


def test_a_prefix_stats_defaults_to_a_week_and_is_answered_by_a_reply() -> None:
    owner = invocation("stats", permissions=ADMINISTRATOR, slash=False)
    request = handle_stats(owner, emitter(), "!")
    assert isinstance(request, StatsRequest) and request.window is StatsWindow.week
    assert isinstance(owner.origin, MessageOrigin)
    assert request.answer == AnswerInChannel(channel_id=CHANNEL, message_id=owner.origin.message_id)
