"""Character behaviour as numbers: the Big Five traits and the affinity with a user, mapped continuously onto
how the agent acts.

Every mapping is a pure function of a trait (0-100) that is exactly neutral at 50, so an agent with neutral
traits behaves as configured. Probabilities are modulated on the odds scale (p / (1 - p)): a configured 0
stays 0 and 1 stays 1, and every other probability moves smoothly within the documented bounds.

| trait             | behaviour                                             | at 0       | at 100     |
|-------------------|-------------------------------------------------------|------------|------------|
| extraversion      | odds of unprompted triggers (flow, interest, random,  | x 1/4      | x 4        |
|                   | bored) and of proactive messages                      |            |            |
| extraversion      | reply length (tokens)                                 | x 0.6      | x 1.4      |
| conscientiousness | how much length strays from the configured budget     | x 1.5      | x 0.5      |
| conscientiousness | typos per word (none from 50 up)                      | 0.04       | 0          |
| conscientiousness | routine jitter (how late a routine may run)           | 30 min     | 0          |
| agreeableness     | affinity gained per good interaction                  | x 0.5      | x 1.5      |
| agreeableness     | affinity lost per bad interaction                     | x 1.5      | x 0.5      |
| agreeableness     | warmth (with affinity: emoji density, reactions)      | 0          | 1          |
| neuroticism       | mood volatility (weight of every mood factor)         | x 0.5      | x 2        |
| neuroticism       | half-life of the drift back to neutral                | x 0.5      | x 2        |
| openness          | interest breadth: related words of an interest match  | none       | all        |
| openness          | temperature offset                                    | -0.3       | +0.3       |

Affinity bands (from the relationship settings) multiply the odds of unprompted answers: cold x 1/4,
acquaintance x 1, friend x 4; affinity also scales reply length by up to +-20 % and sets warmth together
with agreeableness. Friends and acquaintances the agent remembers are greeted by name.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

from models.agent import AffinityBands, Level, MoodConfig, MoodFactors, PersonalityTraits, SpeechStyle
from models.state import MoodState, Relationship

NEUTRAL = 50
SOCIAL_ODDS_BOUND = 4.0
REPLY_LENGTH_SPAN = 0.4
LENGTH_LOOSENESS_SPAN = 0.5
AFFINITY_LENGTH_SPAN = 0.2
MAX_TYPO_RATE = 0.04
MAX_ROUTINE_JITTER_S = 1800.0
AFFINITY_CHANGE_SPAN = 0.5
MOOD_VOLATILITY_BOUND = 2.0
MOOD_HALF_LIFE_BOUND = 2.0
TEMPERATURE_SPAN = 0.3
MAX_TEMPERATURE = 2.0
# A completion budget never drops below this, however terse the character.
MIN_REPLY_TOKENS = 16

# Reactions: the chance of reacting to a message at neutral traits, mood and emoji usage, and the bounds
# each factor moves its odds within.
BASE_REACTION_CHANCE = 0.05
REACTION_ODDS_BOUND = 3.0
EMOJI_USAGE_ODDS = {Level.none: 0.0, Level.low: 0.5, Level.medium: 1.0, Level.high: 2.0}


class AffinityBand(StrEnum):
    cold = "cold"
    acquaintance = "acquaintance"
    friend = "friend"


BAND_ODDS = {AffinityBand.cold: 0.25, AffinityBand.acquaintance: 1.0, AffinityBand.friend: 4.0}


def deviation(value: float, neutral: float = NEUTRAL, span: float = NEUTRAL) -> float:
    """How far `value` lies from neutral, from -1 to 1."""
    return max(-1.0, min(1.0, (value - neutral) / span))


def odds_scaled(probability: float, factor: float) -> float:
    """`probability` with its odds multiplied by `factor`: 0 and 1 stay put, the rest moves smoothly."""
    if factor == 1.0 or probability <= 0.0 or probability >= 1.0:
        return probability
    odds = probability / (1.0 - probability) * factor
    return odds / (1.0 + odds)


def sociability(traits: PersonalityTraits) -> float:
    """Extraversion's factor on the odds of speaking unprompted (joining, interjecting, proactive)."""
    return SOCIAL_ODDS_BOUND ** deviation(traits.extraversion)


def reply_length_factor(traits: PersonalityTraits, affinity: int | None = None) -> float:
    """What the configured completion budget is multiplied by: extraversion and affinity lengthen it,
    conscientiousness keeps it close to the budget."""
    looseness = 1.0 - LENGTH_LOOSENESS_SPAN * deviation(traits.conscientiousness)
    bond = deviation(affinity) if affinity is not None else 0.0
    stray = REPLY_LENGTH_SPAN * deviation(traits.extraversion) + AFFINITY_LENGTH_SPAN * bond
    return 1.0 + stray * looseness


def reply_tokens(budget: int, traits: PersonalityTraits, affinity: int | None = None) -> int:
    return max(MIN_REPLY_TOKENS, round(budget * reply_length_factor(traits, affinity)))


def typo_rate(traits: PersonalityTraits) -> float:
    """Typos per word: none from neutral conscientiousness up, rising linearly below it."""
    return MAX_TYPO_RATE * max(0.0, -deviation(traits.conscientiousness))


def routine_jitter_s(traits: PersonalityTraits) -> float:
    """How late, at most, a scheduled routine runs: a conscientious character is punctual."""
    return MAX_ROUTINE_JITTER_S * (100 - traits.conscientiousness) / 100


def affinity_change(traits: PersonalityTraits, change: int) -> int:
    """An interaction's affinity change as the character takes it: agreeable characters warm up faster and
    forgive more."""
    weight = 1.0 + AFFINITY_CHANGE_SPAN * deviation(traits.agreeableness) * (1 if change > 0 else -1)
    return round(change * weight)


def warmth(traits: PersonalityTraits, affinity: int | None = None) -> float:
    """0 (cold) to 1 (warm); 0.5 for neutral agreeableness towards a user of neutral (or no) affinity."""
    return (traits.agreeableness + (NEUTRAL if affinity is None else affinity)) / 200


def temperament(config: MoodConfig, traits: PersonalityTraits) -> MoodConfig:
    """The mood configuration as this character lives it: neuroticism weighs every factor more and slows
    the return to neutral."""
    volatility = MOOD_VOLATILITY_BOUND ** deviation(traits.neuroticism)
    if volatility == 1.0:
        return config
    factors = config.factors
    half_life = round(config.drift_half_life_s * MOOD_HALF_LIFE_BOUND ** deviation(traits.neuroticism))
    return config.model_copy(
        update={
            "factors": MoodFactors(
                time_of_day=min(1.0, factors.time_of_day * volatility),
                interaction_quality=min(1.0, factors.interaction_quality * volatility),
                recent_events=min(1.0, factors.recent_events * volatility),
            ),
            "drift_half_life_s": half_life,
        }
    )


def interest_breadth(traits: PersonalityTraits) -> float:
    """0: only the literal interests match; 1: every related word matches."""
    return traits.openness / 100


def temperature(configured: float, traits: PersonalityTraits) -> float:
    return max(0.0, min(MAX_TEMPERATURE, configured + TEMPERATURE_SPAN * deviation(traits.openness)))


# Words related to common interests, with how closely (0-1): an open mind matches the loose ones too.
RELATED_WORDS: dict[str, tuple[tuple[str, float], ...]] = {
    "anime": (("manga", 0.9), ("otaku", 0.8), ("cosplay", 0.6), ("studio ghibli", 0.6), ("cartoon", 0.3)),
    "jrpg": (("rpg", 0.9), ("final fantasy", 0.9), ("persona", 0.7), ("pokemon", 0.5), ("game", 0.3)),
    "gaming": (("game", 0.9), ("gamer", 0.9), ("console", 0.6), ("speedrun", 0.5), ("steam", 0.4)),
    "game": (("gaming", 0.9), ("play", 0.5), ("level", 0.4), ("boss", 0.4)),
    "streaming": (("stream", 0.9), ("twitch", 0.9), ("youtube", 0.6), ("vod", 0.6), ("live", 0.4)),
    "cat": (("kitten", 0.9), ("kitty", 0.9), ("meow", 0.7), ("pet", 0.5), ("animal", 0.3)),
    "dog": (("puppy", 0.9), ("doggo", 0.9), ("woof", 0.7), ("pet", 0.5), ("animal", 0.3)),
    "boba tea": (("bubble tea", 1.0), ("boba", 0.9), ("milk tea", 0.8), ("tea", 0.5), ("drink", 0.3)),
    "music": (("song", 0.9), ("album", 0.8), ("band", 0.7), ("playlist", 0.7), ("concert", 0.6)),
    "movie": (("film", 1.0), ("cinema", 0.8), ("series", 0.5), ("netflix", 0.5), ("actor", 0.4)),
    "art": (("drawing", 0.9), ("painting", 0.9), ("sketch", 0.8), ("design", 0.5), ("creative", 0.3)),
    "coding": (("programming", 1.0), ("code", 0.9), ("python", 0.7), ("bug", 0.5), ("computer", 0.3)),
    "food": (("cooking", 0.8), ("recipe", 0.8), ("dinner", 0.6), ("snack", 0.6), ("hungry", 0.4)),
    "space": (("star", 0.8), ("planet", 0.8), ("nebula", 0.8), ("galaxy", 0.8), ("astronomy", 0.9)),
    "sport": (("football", 0.8), ("soccer", 0.8), ("basketball", 0.8), ("match", 0.5), ("team", 0.3)),
    "book": (("novel", 0.9), ("reading", 0.8), ("author", 0.7), ("library", 0.5), ("story", 0.4)),
}


def _singular(word: str) -> str:
    lowered = word.strip().lower()
    return lowered[:-1] if lowered.endswith("s") and not lowered.endswith("ss") else lowered


def interest_words(interests: list[str], breadth: float) -> list[str]:
    """The interests and the related words whose closeness reaches 1 - breadth."""
    words = []
    for interest in interests:
        words.append(interest)
        for related, closeness in RELATED_WORDS.get(_singular(interest), ()):
            if closeness >= 1.0 - breadth:
                words.append(related)
    return list(dict.fromkeys(words))


@lru_cache(maxsize=4096)
def _interest_pattern(interests: tuple[str, ...], breadth: float) -> re.Pattern[str]:
    """One pattern for all of a deployment's interest words (built once, not a search per word a message)."""
    words = "|".join(re.escape(word) for word in interest_words(list(interests), breadth))
    return re.compile(rf"(?<!\w)(?:{words})s?(?!\w)", re.IGNORECASE)


def matches_interest(text: str, interests: list[str], breadth: float = 0.0) -> bool:
    if not interests:
        return False
    return _interest_pattern(tuple(interests), breadth).search(text) is not None


def affinity_band(affinity: int, bands: AffinityBands) -> AffinityBand:
    if affinity < bands.cold_below:
        return AffinityBand.cold
    if affinity >= bands.friend_from:
        return AffinityBand.friend
    return AffinityBand.acquaintance


def greeting_name(
    relationship: Relationship | None,
    bands: AffinityBands,
    remember_names: bool,
    conversation_since: datetime,
) -> str | None:
    """The name to greet the user by when a conversation starts (no interaction since
    `conversation_since`): known users the agent is not cold towards, when it remembers names."""
    if relationship is None or not remember_names or not relationship.display_name:
        return None
    last = relationship.last_interaction
    if last is not None and last >= conversation_since:
        return None
    if (
        relationship.interaction_count == 0
        or affinity_band(relationship.affinity, bands) is AffinityBand.cold
    ):
        return None
    return relationship.display_name


def reaction_chance(
    traits: PersonalityTraits, mood: MoodState, style: SpeechStyle, warmth_level: float
) -> float:
    """The chance of reacting with an emoji to a message seen: extraversion, warmth and the mood's energy
    raise it; a character that uses no emoji never reacts."""
    usage = EMOJI_USAGE_ODDS[style.emoji_usage]
    if usage == 0.0:
        return 0.0
    mood_energy = deviation(mood.energy, neutral=0.5, span=0.5)
    exponent = (deviation(traits.extraversion) + deviation(warmth_level, 0.5, 0.5) + mood_energy) / 3
    return odds_scaled(BASE_REACTION_CHANCE, usage * REACTION_ODDS_BOUND**exponent)
