"""Character behaviour as numbers: every trait and affinity mapping is monotone, bounded and neutral at 50,
and the decision engine, mood and reply path use them."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import timedelta

import pytest

from models.agent import AffinityBands, Level, MoodConfig, PersonalityTraits, SpeechStyle
from models.decisions import DecisionReason
from models.discord import DiscordMessage
from models.processor_state import TrackedUsers
from models.state import ChannelContext, ContextMessage, MoodState, Relationship
from processors.decide import Situation, decide
from processors.mood import after_interaction, drift
from processors.relationships import MetOrder
from processors.traits import (
    AffinityBand,
    affinity_band,
    affinity_change,
    greeting_name,
    interest_breadth,
    interest_words,
    matches_interest,
    odds_scaled,
    reaction_chance,
    reply_length_factor,
    reply_tokens,
    routine_jitter_s,
    sociability,
    temperament,
    temperature,
    typo_rate,
    warmth,
)
from tests.processors.factories import T0, deployed, luna, message_data, snowflake, user

TRAIT_VALUES = range(0, 101, 5)
NEUTRAL = PersonalityTraits()
GUILD, CHANNEL, BOT = snowflake(), snowflake(), snowflake()


def with_trait(name: str, value: int) -> PersonalityTraits:
    return NEUTRAL.model_copy(update={name: value})


def along(name: str, mapping) -> list[float]:
    return [mapping(with_trait(name, value)) for value in TRAIT_VALUES]


def non_decreasing(values: Sequence[float]) -> bool:
    return all(a <= b for a, b in itertools.pairwise(values))


def non_increasing(values: Sequence[float]) -> bool:
    return non_decreasing([-v for v in values])


@pytest.mark.parametrize("probability", [0.0, 0.05, 0.3, 0.7, 1.0])
def test_neutral_traits_give_exactly_the_configured_probability(probability: float) -> None:
    assert sociability(NEUTRAL) == 1.0
    assert odds_scaled(probability, sociability(NEUTRAL)) == probability


@pytest.mark.parametrize("probability", [0.05, 0.3, 0.7])
def test_extraversion_raises_unprompted_odds_within_a_factor_of_four(probability: float) -> None:
    chances = along("extraversion", lambda t: odds_scaled(probability, sociability(t)))
    assert non_decreasing(chances) and chances[0] < probability < chances[-1]
    odds = probability / (1 - probability)
    assert chances[0] / (1 - chances[0]) == pytest.approx(odds / 4)
    assert chances[-1] / (1 - chances[-1]) == pytest.approx(odds * 4)
    # A trigger configured off stays off, one configured always stays always.
    assert odds_scaled(0.0, 4.0) == 0.0 and odds_scaled(1.0, 0.25) == 1.0


def test_reply_length_grows_with_extraversion_and_conscientiousness_keeps_it_near_the_budget() -> None:
    lengths = along("extraversion", reply_length_factor)
    assert non_decreasing(lengths) and lengths[0] == pytest.approx(0.6) and lengths[-1] == pytest.approx(1.4)
    assert reply_length_factor(NEUTRAL) == 1.0 and reply_tokens(350, NEUTRAL) == 350
    chatty = with_trait("extraversion", 100)
    strays = [reply_length_factor(chatty.model_copy(update={"conscientiousness": c})) for c in TRAIT_VALUES]
    assert non_increasing(strays) and strays[0] == pytest.approx(1.6) and strays[-1] == pytest.approx(1.2)
    # Friends get longer answers than the cold.
    assert (
        reply_length_factor(NEUTRAL, 10) < reply_length_factor(NEUTRAL, 50) < reply_length_factor(NEUTRAL, 90)
    )
    assert reply_tokens(120, with_trait("extraversion", 0), 0) >= 16


def test_conscientiousness_removes_typos_and_makes_routines_punctual() -> None:
    typos = along("conscientiousness", typo_rate)
    assert non_increasing(typos) and typos[0] == pytest.approx(0.04) and typo_rate(NEUTRAL) == 0.0
    jitter = along("conscientiousness", routine_jitter_s)
    assert non_increasing(jitter) and jitter[0] == 1800 and jitter[-1] == 0


def test_agreeableness_weighs_affinity_gains_up_and_losses_down() -> None:
    gains = along("agreeableness", lambda t: affinity_change(t, 4))
    losses = along("agreeableness", lambda t: affinity_change(t, -4))
    assert non_decreasing(gains) and gains[0] == 2 and gains[-1] == 6
    assert non_decreasing(losses) and losses[0] == -6 and losses[-1] == -2
    assert affinity_change(NEUTRAL, 4) == 4 and affinity_change(NEUTRAL, -2) == -2


def test_warmth_rises_with_agreeableness_and_affinity() -> None:
    warmths = along("agreeableness", warmth)
    assert non_decreasing(warmths) and 0.0 <= warmths[0] < warmths[-1] <= 1.0
    assert warmth(NEUTRAL) == warmth(NEUTRAL, 50) == 0.5
    assert warmth(NEUTRAL, 10) < warmth(NEUTRAL, 90)


def test_neuroticism_makes_the_mood_volatile_and_slow_to_settle() -> None:
    config = MoodConfig()
    assert temperament(config, NEUTRAL) == config
    tempers = [temperament(config, with_trait("neuroticism", n)) for n in TRAIT_VALUES]
    half_lives = [t.drift_half_life_s for t in tempers]
    weights = [t.factors.interaction_quality for t in tempers]
    assert non_decreasing(half_lives) and half_lives[0] == 1800 and half_lives[-1] == 7200
    assert non_decreasing(weights) and weights[0] == 0.25 and weights[-1] == 1.0
    calm, anxious = tempers[0], tempers[-1]
    swings = [after_interaction(MoodState(), c, -1, T0).valence for c in (calm, config, anxious)]
    assert swings[0] > swings[1] > swings[2]
    later = T0 + timedelta(hours=1)
    settled = [
        abs(drift(after_interaction(MoodState(), c, -1, T0), c, later).valence) for c in (calm, anxious)
    ]
    # The anxious character is both hit harder and still further from neutral an hour on.
    assert settled[0] < settled[1]


def test_openness_widens_interest_matching_and_creativity() -> None:
    breadths = along("openness", interest_breadth)
    assert non_decreasing(breadths) and breadths[0] == 0.0 and breadths[-1] == 1.0
    sizes = [len(interest_words(["anime", "cats"], b)) for b in breadths]
    assert non_decreasing(sizes) and sizes[0] == 2
    assert not matches_interest(
        "reading manga tonight", ["anime"], interest_breadth(with_trait("openness", 0))
    )
    assert matches_interest("reading manga tonight", ["anime"], interest_breadth(NEUTRAL))
    assert not matches_interest("a wild animal documentary", ["cats"], interest_breadth(NEUTRAL))
    curious = interest_breadth(with_trait("openness", 100))
    assert matches_interest("a wild animal documentary", ["cats"], curious)
    temperatures = along("openness", lambda t: temperature(0.8, t))
    assert non_decreasing(temperatures) and temperatures[0] == pytest.approx(0.5)
    assert temperatures[-1] == pytest.approx(1.1) and temperature(0.8, NEUTRAL) == 0.8
    assert (
        temperature(1.9, with_trait("openness", 100)) == 2.0
        and temperature(0.1, with_trait("openness", 0)) == 0
    )


def test_reactions_follow_extraversion_mood_and_emoji_usage() -> None:
    style = SpeechStyle(emoji_usage=Level.medium)
    mood = MoodState()
    chances = along("extraversion", lambda t: reaction_chance(t, mood, style, 0.5))
    assert non_decreasing(chances) and 0.0 < chances[0] < chances[-1] < 0.2
    assert reaction_chance(NEUTRAL, mood, style, 0.5) == 0.05
    excited = MoodState(valence=0.7, energy=0.9)
    assert reaction_chance(NEUTRAL, excited, style, 0.5) > reaction_chance(NEUTRAL, mood, style, 0.5)
    levels = [reaction_chance(NEUTRAL, mood, SpeechStyle(emoji_usage=level), 0.5) for level in Level]
    assert levels[0] == 0.0 and non_decreasing(levels)


def test_affinity_bands_and_greeting_by_name() -> None:
    bands = AffinityBands()
    assert [affinity_band(a, bands) for a in (0, 29, 30, 69, 70, 100)] == [
        AffinityBand.cold,
        AffinityBand.cold,
        AffinityBand.acquaintance,
        AffinityBand.acquaintance,
        AffinityBand.friend,
        AffinityBand.friend,
    ]
    with pytest.raises(ValueError, match="friend_from"):
        AffinityBands(cold_below=60, friend_from=50)
    start = T0 - timedelta(minutes=5)
    friend = Relationship(
        user_id="1",
        display_name="Kai",
        affinity=80,
        interaction_count=3,
        last_interaction=T0 - timedelta(hours=2),
    )
    assert greeting_name(friend, bands, True, start) == "Kai"
    assert greeting_name(friend, bands, False, start) is None
    assert greeting_name(friend.model_copy(update={"affinity": 10}), bands, True, start) is None
    # In the middle of a conversation nobody is greeted again.
    assert greeting_name(friend.model_copy(update={"last_interaction": T0}), bands, True, start) is None
    assert greeting_name(None, bands, True, start) is None


def test_the_least_recently_met_users_are_forgotten_past_the_limit() -> None:
    met = {"1": T0, "2": T0 + timedelta(1)}
    order = MetOrder(None)
    order.track("1", 2, met.get)
    tracked, forgotten = order.track("2", 2, met.get)
    assert tracked is not None and tracked.users == ["1", "2"] and forgotten == []
    # Meeting someone tracked already, within the limit, changes nothing.
    met["1"] = T0 + timedelta(2)
    assert order.track(None, 2, met.get) == (None, [])
    met["3"] = T0 + timedelta(3)
    tracked, forgotten = order.track("3", 2, met.get)
    assert tracked is not None and tracked.users == ["1", "3"] and forgotten == ["2"]
    # "1" met again after "3": "3" is now the least recently met.
    met["1"], met["4"] = T0 + timedelta(4), T0 + timedelta(5)
    tracked, forgotten = order.track("4", 2, met.get)
    assert tracked is not None and tracked.users == ["1", "4"] and forgotten == ["3"]
    # A limit lowered takes effect at the next interaction, with someone tracked already too.
    tracked, forgotten = order.track(None, 1, met.get)
    assert tracked is not None and tracked.users == ["4"] and forgotten == ["1"]
    assert MetOrder(None).track("1", 0, met.get) == (TrackedUsers(users=[]), ["1"])


def situation(agent, relationship: Relationship | None, content: str = "nice weather today") -> Situation:
    message = DiscordMessage.model_validate(
        message_data(guild_id=GUILD, channel_id=CHANNEL, author=user("42", "kai"), content=content)
    )
    context = ChannelContext(
        channel_id=CHANNEL,
        messages=[
            ContextMessage(
                message_id=snowflake(),
                author_id=BOT,
                author_name="x",
                content="hi",
                at=T0 - timedelta(minutes=1),
            )
        ],
    )
    return Situation(
        event_id=f"evt-{message.id}",
        deployed=deployed(agent, guild_id=GUILD, bot_id=BOT),
        message=message,
        context=context,
        mood=MoodState(),
        streak=0,
        at=T0,
        relationship=relationship,
    )


def agent_of(extraversion: int, flow: float = 0.3):
    data = luna().model_dump(mode="json")
    data["character"]["personality"] = {**NEUTRAL.model_dump(), "extraversion": extraversion}
    data["behavior"]["response_triggers"] = {
        "conversation_flow": {"probability": flow},
        "keyword_match": {"probability": 0.0},
        "random": {"probability": 0.0},
    }
    return type(luna()).model_validate(data)


def test_decisions_record_the_effective_probability_of_traits_and_affinity() -> None:
    stranger = decide(situation(agent_of(50), None))
    # Every decision of the same situation rolls the same die; the probability it used is on record.
    assert stranger.reason in (DecisionReason.conversation_flow, DecisionReason.no_trigger)
    flow = [decide(situation(agent_of(e), None)) for e in (50, 90, 10)]
    fired = [d.probability for d in flow if d.reason is DecisionReason.conversation_flow]
    assert all(p is not None for p in fired)
    friend = Relationship(user_id="42", affinity=90, interaction_count=5)
    cold = Relationship(user_id="42", affinity=5, interaction_count=5)

    def rate(agent, relationship: Relationship | None) -> float:
        decisions = [decide(situation(agent, relationship)) for _ in range(300)]
        return sum(d.reason is DecisionReason.conversation_flow for d in decisions) / 300

    neutral_rate = rate(agent_of(50), None)
    assert 0.22 < neutral_rate < 0.38  # the configured 0.3
    assert rate(agent_of(10), None) < neutral_rate - 0.1 < neutral_rate + 0.1 < rate(agent_of(90), None)
    assert rate(agent_of(50), cold) < neutral_rate - 0.1 < neutral_rate + 0.1 < rate(agent_of(50), friend)
    # A flow trigger configured off stays off, for friends and extraverts too.
    assert rate(agent_of(100, flow=0.0), friend) == 0.0
