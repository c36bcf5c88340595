"""Automod rules over a user's window, and how violations become actions and audit records."""

from __future__ import annotations

from datetime import timedelta

from models.agent import AgentMode, AutomodConfig, EscalationRule
from models.discord import DiscordMessage
from models.processor_state import AutomodWindow
from processors.automod import check_message, domain_allowed, link_domains
from processors.emit import Emitter
from processors.moderation import enforce_automod
from tests.processors.factories import T0, agent_with, deployed, message_data, snowflake, user

GUILD, CHANNEL, BOT = snowflake(), snowflake(), snowflake()
SPAMMER = user(snowflake(), "spammer")


def msg(content: str, **extra) -> DiscordMessage:
    return DiscordMessage.model_validate(
        message_data(guild_id=GUILD, channel_id=CHANNEL, author=SPAMMER, content=content, **extra)
    )


def run(config: AutomodConfig, contents: list[str], step_s: float = 0.5):
    window: AutomodWindow | None = None
    results = []
    for index, content in enumerate(contents):
        violations, updated = check_message(
            config, msg(content), window, T0 + timedelta(seconds=index * step_s)
        )
        window = updated or window
        results.append([v.rule for v in violations])
    return results, window


def test_spam_fires_on_the_message_past_the_rate_then_starts_over() -> None:
    config = AutomodConfig.model_validate({"spam": {"max_messages": 5, "window_s": 5}})
    results, _ = run(config, [f"message {i}" for i in range(12)])
    assert [("spam" in r) for r in results] == [False] * 5 + [True] + [False] * 5 + [True]


def test_slow_messages_are_not_spam() -> None:
    config = AutomodConfig.model_validate({"spam": {"max_messages": 5, "window_s": 5}})
    results, window = run(config, [f"message {i}" for i in range(12)], step_s=2)
    assert not any(results)
    assert window is not None and len(window.entries) <= 6  # the window keeps what the rules can use


def test_repeated_messages() -> None:
    config = AutomodConfig.model_validate(
        {"repeats": {"max_repeats": 3, "window_s": 60}, "spam": {"enabled": False}}
    )
    results, _ = run(config, ["buy gold", "Buy  GOLD", "hello", "buy gold", "buy gold"], step_s=5)
    assert [("repeats" in r) for r in results] == [False, False, False, True, False]


def test_a_redelivered_message_changes_nothing() -> None:
    config = AutomodConfig()
    message = msg("hi")
    _, window = check_message(config, message, None, T0)
    assert check_message(config, message, window, T0) == ([], None)


def test_link_filter_with_allow_list_and_subdomains() -> None:
    config = AutomodConfig.model_validate({"links": {"enabled": True, "allow_domains": ["youtube.com"]}})
    assert link_domains("see https://www.youtube.com/watch?v=1 and http://evil.example/x") == [
        "www.youtube.com",
        "evil.example",
    ]
    assert domain_allowed("music.youtube.com", ["youtube.com"]) and not domain_allowed(
        "notyoutube.com", ["youtube.com"]
    )
    ok, _ = check_message(config, msg("https://youtube.com/watch"), None, T0)
    bad, _ = check_message(config, msg("free nitro at https://nitro-free.example"), None, T0)
    assert ok == [] and [v.rule for v in bad] == ["links"]


def test_mentions_and_blocked_words() -> None:
    config = AutomodConfig.model_validate(
        {"mentions": {"max_mentions": 2}, "blocked_words": {"enabled": True, "words": ["darn"]}}
    )
    many = [user(snowflake(), f"u{i}") for i in range(3)]
    mentions, _ = check_message(config, msg("hey all", mentions=many), None, T0)
    word, _ = check_message(config, msg("DARN it"), None, T0)
    inside, _ = check_message(config, msg("darnation"), None, T0)
    assert [v.rule for v in mentions] == ["mentions"]
    assert [v.rule for v in word] == ["blocked_words"]
    assert inside == []


def test_enforcement_combines_actions_warns_and_escalates() -> None:
    config = AutomodConfig.model_validate({"blocked_words": {"enabled": True, "words": ["darn"]}})
    agent = agent_with(AgentMode.enhanced)
    emit_for = lambda event: Emitter(event, deployed(agent, guild_id=GUILD, bot_id=BOT), GUILD, SPAMMER["id"])  # noqa: E731
    rules = [EscalationRule(warns=2, action="timeout", duration_s=600)]
    record = None
    kinds = []
    for n in range(2):
        message = msg(f"darn {n}")
        violations, _ = check_message(config, message, None, T0)
        outcome = enforce_automod(violations, message, emit_for(f"evt-{n}"), record, rules, 300, None)
        record = outcome.state
        kinds.append([a.kind for a in outcome.actions])
        assert [a.rule for a in outcome.audits] == ["blocked_words"]
        assert outcome.audits[0].source == "automod" and outcome.audits[0].user_id == SPAMMER["id"]
    assert kinds == [["delete_message", "warn"], ["delete_message", "warn", "timeout"]]
    assert record is not None and record.count == 2
