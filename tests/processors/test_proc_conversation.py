"""Conversation state: sentiment, affinity and preferences, mood factors and drift, channel context."""

from __future__ import annotations

from datetime import timedelta

import pytest

from models.agent import MoodConfig, MoodName, PersonalityTraits, RelationshipSettings
from models.state import ContextMessage, Relationship
from processors.context import PENDING_MESSAGE_ID, record_message, spoke_since
from processors.mood import MoodEvent, after_event, after_interaction, drift, initial_mood, mood_name
from processors.relationships import learn_preferences, record_interaction
from processors.sentiment import sentiment
from tests.processors.factories import T0, snowflake

SETTINGS = RelationshipSettings()
TRAITS = PersonalityTraits()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thanks Luna, you're awesome!", 1),
        ("you are so annoying, shut up", -1),
        ("it's not bad actually", 1),
        ("that was not good", -1),
        ("what time is it", 0),
        ("I love this 😊", 1),
    ],
)
def test_sentiment(text: str, expected: int) -> None:
    assert sentiment(text) == expected


def test_affinity_grows_with_kind_words_and_drops_with_insults() -> None:
    user_id = snowflake()
    rel = Relationship(user_id=user_id)
    kind = record_interaction(
        rel, SETTINGS, TRAITS, display_name="Kai", content="thank you, that's great", at=T0
    )
    assert kind is not None
    assert kind.affinity == 54  # 50 + 1 for talking + 3 for the tone
    assert (kind.interaction_count, kind.positive_interactions, kind.negative_interactions) == (1, 1, 0)
    assert kind.first_met == T0 and kind.last_interaction == T0 and kind.display_name == "Kai"
    rude = record_interaction(
        kind, SETTINGS, TRAITS, display_name="Kai", content="you're stupid", at=T0 + timedelta(1)
    )
    assert rude is not None and rude.affinity == 52 and rude.negative_interactions == 1
    assert rude.first_met == T0


def test_affinity_stays_within_0_and_100() -> None:
    rel = Relationship(user_id=snowflake(), affinity=99)
    for n in range(3):
        rel = (
            record_interaction(
                rel, SETTINGS, TRAITS, display_name="x", content="awesome", at=T0 + timedelta(n)
            )
            or rel
        )
    assert rel.affinity == 100
    low = Relationship(user_id=snowflake(), affinity=1)
    low = record_interaction(low, SETTINGS, TRAITS, display_name="x", content="idiot", at=T0) or low
    assert low.affinity == 0


def test_redelivered_interaction_counts_once() -> None:
    rel = record_interaction(
        Relationship(user_id=snowflake()), SETTINGS, TRAITS, display_name="x", content="hi", at=T0
    )
    assert rel is not None
    assert record_interaction(rel, SETTINGS, TRAITS, display_name="x", content="hi", at=T0) is None


def test_affinity_off_and_tracking_off() -> None:
    rel = Relationship(user_id=snowflake())
    no_affinity = RelationshipSettings(affinity_system=False)
    counted = record_interaction(rel, no_affinity, TRAITS, display_name="x", content="awesome", at=T0)
    assert counted is not None and counted.affinity == 50 and counted.interaction_count == 1
    untracked = RelationshipSettings(track_interactions=False)
    assert record_interaction(rel, untracked, TRAITS, display_name="x", content="awesome", at=T0) is None


def test_preferences_are_learned() -> None:
    prefs = learn_preferences("My favourite anime is Frieren. I like boba tea and cats", {})
    prefs = learn_preferences("i love jrpgs! I don't like horror", prefs)
    prefs = learn_preferences("I like Boba Tea and cats", prefs)
    assert prefs == {
        "favourite anime": "Frieren",
        "likes": "jrpgs, Boba Tea and cats",
        "dislikes": "horror",
    }


def test_mood_name_is_the_nearest_prototype() -> None:
    assert mood_name(0.8, 0.95) is MoodName.excited
    assert mood_name(0.0, 0.5) is MoodName.neutral
    assert mood_name(-0.7, 0.3) is MoodName.sad
    assert mood_name(-0.1, 0.05) is MoodName.bored


def test_kind_interactions_cheer_up_and_rude_ones_sadden() -> None:
    config = MoodConfig()
    mood = drift(initial_mood(config), config, T0)
    for n in range(4):
        mood = after_interaction(mood, config, 1, T0 + timedelta(seconds=n))
    assert mood.mood in (MoodName.happy, MoodName.excited) and mood.valence > 0.5
    for n in range(10):
        mood = after_interaction(mood, config, -1, T0 + timedelta(seconds=10 + n))
    assert mood.mood is MoodName.sad


def test_mood_drifts_back_to_neutral_with_the_half_life() -> None:
    config = MoodConfig(current=MoodName.excited, drift_half_life_s=3600)
    start = drift(initial_mood(config), config, T0)
    assert start.mood is MoodName.excited and start.valence == pytest.approx(0.7)
    hour = drift(start, config, T0 + timedelta(hours=1))
    assert hour.valence == pytest.approx(0.35)
    day = drift(start, config, T0 + timedelta(days=1))
    assert day.mood is MoodName.neutral and abs(day.valence) < 0.01
    assert drift(start, config, T0 - timedelta(hours=1)) == start  # the clock never goes back


def test_time_of_day_moves_neutral_energy() -> None:
    config = MoodConfig()
    start = drift(initial_mood(config), config, T0)
    afternoon = drift(start, config, T0.replace(hour=15) + timedelta(days=3))
    night = drift(start, config, T0.replace(hour=3) + timedelta(days=3))
    assert afternoon.energy > 0.55 > 0.45 > night.energy


def test_recent_events() -> None:
    config = MoodConfig()
    mood = drift(initial_mood(config), config, T0)
    joined = after_event(mood, config, MoodEvent.member_joined, T0)
    banned = after_event(mood, config, MoodEvent.moderation, T0)
    assert joined.valence > mood.valence > banned.valence
    assert after_event(mood, MoodConfig(enabled=False), MoodEvent.member_joined, T0) == mood


def entry(author: str, content: str, message_id: str | None = None, minutes: float = 0) -> ContextMessage:
    return ContextMessage(
        message_id=message_id or snowflake(),
        author_id=author,
        author_name="x",
        content=content,
        at=T0 + timedelta(minutes=minutes),
    )


def test_context_keeps_the_last_n_and_ignores_duplicates() -> None:
    channel, author = snowflake(), snowflake()
    context = None
    first = entry(author, "m0")
    for n in range(5):
        context = record_message(context, channel, first if n == 0 else entry(author, f"m{n}"), 3) or context
    assert context is not None and [m.content for m in context.messages] == ["m2", "m3", "m4"]
    assert record_message(context, channel, context.messages[-1], 3) is None


def test_pending_own_reply_is_replaced_by_the_real_message() -> None:
    channel, bot = snowflake(), snowflake()
    context = record_message(None, channel, entry(bot, "hello~", PENDING_MESSAGE_ID), 50)
    assert context is not None and spoke_since(context, bot, T0 - timedelta(minutes=5))
    real = entry(bot, "hello~")
    context = record_message(context, channel, real, 50)
    assert context is not None and [m.message_id for m in context.messages] == [real.message_id]
