"""Styled replies: safety filter, speech style, mood indicator, typing first, splitting under 2,000."""

from __future__ import annotations

from models.actions import Reply, SendMessage, TypingIndicator
from models.agent import Level, MoodName, SafetyConfig, SpeechStyle
from models.state import MoodState
from processors.replies import BLOCKED_REPLY, compose_reply, split_message, strip_speaker_prefix
from processors.safety import check_output
from processors.styling import EMOJI_BY_MOOD, apply_formality, style_text, typing_delay_ms
from tests.ai.factories import CHANNEL_ID, inference_result, luna

PLAIN = SpeechStyle()
HAPPY = MoodState(mood=MoodName.happy)


def contents(actions: list) -> list[str]:
    return [a.content for a in actions if isinstance(a, Reply | SendMessage)]


def test_unsafe_completion_is_blocked() -> None:
    agent = luna(safety={"blocked_words": ["darn"], "mode": "block"})
    actions = compose_reply(inference_result("Well DARN it, that is bad."), agent, HAPPY)
    assert all("darn" not in text.casefold() for text in contents(actions))
    assert contents(actions)[0].startswith(BLOCKED_REPLY[:-1])


def test_rewrite_mode_masks_whole_words_only() -> None:
    config = SafetyConfig(blocked_words=["heck", "bad word"], mode="rewrite")
    verdict = check_output("Heck! The checkers have a Bad  word? no: bad word.", config)
    assert not verdict.blocked
    assert verdict.text == "****! The checkers have a Bad  word? no: *** ****."
    assert verdict.reasons == ("blocked_word",)


def test_obfuscated_spellings_are_caught() -> None:
    config = SafetyConfig(blocked_words=["heck"])
    assert check_output("\uff48\uff45\uff43\uff4b", config).blocked  # fullwidth
    assert check_output("he\u200bck", config).blocked  # zero-width space inside
    assert not check_output("heckle", config).blocked


def test_platform_rules_apply_even_when_the_owner_filter_is_off() -> None:
    off = SafetyConfig(enabled=False, blocked_words=["heck"])
    assert not check_output("heck", off).blocked
    token_like = "MTA1NjQ4NzU2NzE5NjA4ODMyMA.GhXyZa.abcdefghijklmnopqrstuvwxyz0123456789"
    assert check_output(f"here you go: {token_like}", off).blocked
    defused = check_output("hey @everyone and @here", off)
    assert "@everyone" not in defused.text and "@here" not in defused.text
    assert "everyone" in defused.text and defused.reasons == ("mass_mention",)


def test_typing_comes_first_and_ids_are_deterministic() -> None:
    result = inference_result("Hello there. Nice to meet you.", request_id="req-7")
    first = compose_reply(result, luna(), HAPPY)
    again = compose_reply(result, luna(), HAPPY)
    assert isinstance(first[0], TypingIndicator) and first[0].channel_id == CHANNEL_ID
    assert [a.action_id for a in first] == ["req-7:typing", "req-7:0"]
    assert first == again
    reply = first[1]
    assert isinstance(reply, Reply)
    # The pause before the reply is the one for the text actually sent, less what the model already took.
    assert first[0].delay_ms == typing_delay_ms(reply.content) - round(result.latency_ms) > 0
    assert isinstance(reply, Reply) and reply.message_id == "1000"


def test_without_a_target_message_the_reply_is_a_plain_send() -> None:
    actions = compose_reply(inference_result("Hello.", message_id=None), luna(), HAPPY)
    assert [type(a) for a in actions] == [TypingIndicator, SendMessage]


def test_long_text_is_split_under_the_limit_at_boundaries() -> None:
    sentence = "This sentence is about forty characters. "
    text = sentence * 120  # ~4,900 characters
    actions = compose_reply(inference_result(text), luna(character__speech_style={}), MoodState())
    chunks = contents(actions)
    assert len(chunks) == 3
    assert all(len(chunk) <= 2000 for chunk in chunks)
    assert all(chunk.endswith(".") for chunk in chunks)
    assert isinstance(actions[1], Reply) and all(isinstance(a, SendMessage) for a in actions[2:])
    assert [a.action_id for a in actions[1:]] == ["req-1:0", "req-1:1", "req-1:2"]


def test_split_counts_utf16_units_and_cuts_unbroken_text() -> None:
    emoji_text = "😊" * 1500  # 3,000 UTF-16 units
    chunks = split_message(emoji_text)
    assert all(len(chunk.encode("utf-16-le")) // 2 <= 2000 for chunk in chunks)
    assert "".join(chunks) == emoji_text
    assert split_message("word " * 500, limit=100)[0] == ("word " * 20).strip()
    assert split_message("   ") == []


def test_empty_completion_sends_nothing() -> None:
    assert compose_reply(inference_result("   "), luna(), HAPPY) == []


def test_speaker_prefix_is_dropped() -> None:
    assert strip_speaker_prefix("luna: hi!", "Luna") == "hi!"
    assert strip_speaker_prefix("Lunatic: hi", "Luna") == "Lunatic: hi"


def test_speech_style_is_applied_deterministically() -> None:
    style = SpeechStyle(
        formality="casual",
        emoji_usage=Level.high,
        emoticon_usage=Level.none,
        sentence_enders=["~"],
        slang=["pog"],
    )
    text = "I am here. I do not mind. We are friends. Let us go. It will be fun."
    styled = {style_text(text, style, MoodName.happy, "😊", seed=f"s{i}") for i in range(20)}
    assert len(styled) > 1, "the seed varies the styling"
    sample = style_text(text, style, MoodName.happy, "😊", seed="s1")
    assert sample == style_text(text, style, MoodName.happy, "😊", seed="s1")
    for variant in styled:
        assert "I'm here" in variant and "don't" in variant and "Let's go" in variant
        assert variant.endswith("😊")
        assert any(emoji in variant for emoji in EMOJI_BY_MOOD[MoodName.happy])
    assert any("~" in variant for variant in styled)
    assert any("pog" in variant for variant in styled)


def test_plain_style_changes_nothing() -> None:
    text = "I am here. Do not worry."
    assert style_text(text, PLAIN, MoodName.happy, "😊", seed="x") == text


def test_formal_style_expands_contractions_and_code_is_untouched() -> None:
    assert apply_formality("I'm sure you can't.", "formal") == "I am sure you cannot."
    style = SpeechStyle(formality="formal", sentence_enders=["~"])
    code = "```\nI'm code.\n```"
    for seed in ("a", "b", "c"):
        assert code in style_text(f"Run this. {code} Don't.", style, MoodName.neutral, "", seed=seed)


def test_mood_emoji_is_shown_when_emoji_are_allowed() -> None:
    chatty = luna()
    assert contents(compose_reply(inference_result("Hi."), chatty, MoodState(mood=MoodName.sad)))[0].endswith(
        "😢"
    )
    quiet = luna(character__speech_style={"emoji_usage": "none"})
    assert (
        "😢" not in contents(compose_reply(inference_result("Hi."), quiet, MoodState(mood=MoodName.sad)))[0]
    )


def test_typing_delay_grows_with_length_and_is_capped() -> None:
    assert typing_delay_ms("hi") < typing_delay_ms("hi" * 50) < typing_delay_ms("hi" * 5000)
    assert typing_delay_ms("x" * 100_000) <= 10_000
