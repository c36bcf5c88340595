"""A deployment's mood: valence and energy moved by three weighted factors, drifting back toward neutral.

- interaction quality: the tone of messages addressed to the agent moves valence, any interaction energy;
- recent events: activity in its channels, members joining, moderation;
- time of day: neutral energy is higher in the afternoon than at night (UTC; guilds carry no time zone).

Drift is exponential with the configured half-life and is applied when the mood is read or changed, which
is exact: a value at rest needs no timer to age. The mood's name is the nearest of the five moods.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import Enum

from models.agent import MoodConfig, MoodName
from models.state import MoodState

# (valence, energy) of each mood; the mood's name is the nearest prototype.
PROTOTYPES: dict[MoodName, tuple[float, float]] = {
    MoodName.excited: (0.7, 0.9),
    MoodName.happy: (0.5, 0.6),
    MoodName.neutral: (0.0, 0.5),
    MoodName.sad: (-0.6, 0.3),
    MoodName.bored: (-0.1, 0.1),
}
# How far one interaction moves valence and energy at full weight of its factor.
INTERACTION_VALENCE = 0.3
INTERACTION_ENERGY = 0.1
PEAK_ENERGY_HOUR = 15.0


class MoodEvent(Enum):
    """Recent events and their (valence, energy) effect at full weight."""

    activity = (0.0, 0.02)
    member_joined = (0.2, 0.1)
    moderation = (-0.2, 0.05)


def mood_name(valence: float, energy: float) -> MoodName:
    return min(
        PROTOTYPES,
        key=lambda name: (PROTOTYPES[name][0] - valence) ** 2 + (PROTOTYPES[name][1] - energy) ** 2,
    )


def initial_mood(config: MoodConfig) -> MoodState:
    """The configured starting mood, not yet aged."""
    valence, energy = PROTOTYPES[config.current]
    return MoodState(mood=config.current, valence=valence, energy=energy, updated_at=None)


def neutral_energy(config: MoodConfig, at: datetime) -> float:
    hours = at.hour + at.minute / 60
    return 0.5 + 0.5 * config.factors.time_of_day * math.cos(2 * math.pi * (hours - PEAK_ENERGY_HOUR) / 24)


def _state(config: MoodConfig, valence: float, energy: float, at: datetime) -> MoodState:
    valence = min(1.0, max(-1.0, valence))
    energy = min(1.0, max(0.0, energy))
    return MoodState(mood=mood_name(valence, energy), valence=valence, energy=energy, updated_at=at)


def _not_before(mood: MoodState, at: datetime) -> datetime:
    """Events can arrive slightly out of order across bots; the mood's clock never goes back."""
    return max(at, mood.updated_at) if mood.updated_at is not None else at


def drift(mood: MoodState, config: MoodConfig, now: datetime) -> MoodState:
    """The mood at `now`: the distance to neutral halves every `drift_half_life_s`."""
    if not config.enabled:
        return mood
    if mood.updated_at is None:
        return _state(config, mood.valence, mood.energy, now)
    elapsed = (now - mood.updated_at).total_seconds()
    if elapsed <= 0:
        return mood
    keep = 0.5 ** (elapsed / config.drift_half_life_s)
    rest = neutral_energy(config, now)
    return _state(config, mood.valence * keep, rest + (mood.energy - rest) * keep, now)


def after_interaction(mood: MoodState, config: MoodConfig, tone: int, at: datetime) -> MoodState:
    """`tone` is the sentiment of a message addressed to the agent: -1, 0 or 1."""
    if not config.enabled:
        return mood
    at = _not_before(mood, at)
    current = drift(mood, config, at)
    weight = config.factors.interaction_quality
    return _state(
        config,
        current.valence + weight * INTERACTION_VALENCE * tone,
        current.energy + weight * INTERACTION_ENERGY,
        at,
    )


def after_event(mood: MoodState, config: MoodConfig, event: MoodEvent, at: datetime) -> MoodState:
    if not config.enabled:
        return mood
    at = _not_before(mood, at)
    current = drift(mood, config, at)
    weight = config.factors.recent_events
    valence, energy = event.value
    return _state(config, current.valence + weight * valence, current.energy + weight * energy, at)
