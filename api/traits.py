"""What the Big Five traits change, as numbers an owner can read: the processors' behaviour functions
(processors/traits.py) evaluated at the given traits, beside their values at neutral ones."""

from __future__ import annotations

from collections.abc import Callable

from api.schemas import TraitEffect, TraitName, TraitPreview
from models.agent import MoodConfig, PersonalityTraits
from processors import traits as behaviour

EXAMPLE_INTEREST = "music"
# The affinity change one good (or bad) interaction makes before the character takes it its way.
EXAMPLE_AFFINITY_CHANGE = 10
_NEUTRAL = PersonalityTraits()
_MOOD = MoodConfig()


def _factor(value: float) -> str:
    return f"x {value:.2f}"


def _mood_volatility(traits: PersonalityTraits) -> float:
    lived = behaviour.temperament(_MOOD, traits)
    return lived.factors.interaction_quality / _MOOD.factors.interaction_quality


def _drift_half_life_factor(traits: PersonalityTraits) -> float:
    return behaviour.temperament(_MOOD, traits).drift_half_life_s / _MOOD.drift_half_life_s


# Each row: the trait, the behaviour, how it is computed and how its value reads.
_EFFECTS: tuple[tuple[TraitName, str, Callable[[PersonalityTraits], float], Callable[[float], str]], ...] = (
    (TraitName.extraversion, "odds of speaking unprompted", behaviour.sociability, _factor),
    (TraitName.extraversion, "reply length", behaviour.reply_length_factor, _factor),
    (
        TraitName.conscientiousness,
        "typos per 100 words",
        lambda t: 100 * behaviour.typo_rate(t),
        "{:.1f}".format,
    ),
    (
        TraitName.conscientiousness,
        "how late a routine may run",
        lambda t: behaviour.routine_jitter_s(t) / 60,
        "{:.0f} min".format,
    ),
    (
        TraitName.agreeableness,
        "affinity gained per good interaction",
        lambda t: behaviour.affinity_change(t, EXAMPLE_AFFINITY_CHANGE),
        "+{:.0f}".format,
    ),
    (
        TraitName.agreeableness,
        "affinity lost per bad interaction",
        lambda t: -behaviour.affinity_change(t, -EXAMPLE_AFFINITY_CHANGE),
        "-{:.0f}".format,
    ),
    (TraitName.agreeableness, "warmth towards a new user (0-1)", behaviour.warmth, "{:.2f}".format),
    (TraitName.neuroticism, "mood volatility", _mood_volatility, _factor),
    (TraitName.neuroticism, "time to calm down", _drift_half_life_factor, _factor),
    (TraitName.openness, "interest breadth (0-1)", behaviour.interest_breadth, "{:.2f}".format),
    (
        TraitName.openness,
        "temperature offset",
        lambda t: behaviour.temperature(1.0, t) - 1.0,
        "{:+.2f}".format,
    ),
)


def preview(traits: PersonalityTraits) -> TraitPreview:
    effects = [
        TraitEffect(
            trait=trait,
            behaviour=name,
            value=round(compute(traits), 4),
            neutral=round(compute(_NEUTRAL), 4),
            shown=show(compute(traits)),
        )
        for trait, name, compute, show in _EFFECTS
    ]
    breadth = behaviour.interest_breadth(traits)
    return TraitPreview(
        effects=effects,
        example_interest=EXAMPLE_INTEREST,
        interest_matches=behaviour.interest_words([EXAMPLE_INTEREST], breadth),
    )
