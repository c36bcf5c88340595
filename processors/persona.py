"""The offline persona responder: an in-character line without a model.

Used when the owner's AI quota is spent, no inference endpoint is configured, or every endpoint failed:
the inference worker marks the result `fallback=True` and the reply is built here from the agent's
catchphrases, interests and mood, then styled like any other reply. Deterministic by seed.
"""

from __future__ import annotations

import random

from models.agent import AgentConfig, MoodName
from models.state import MoodState

OPENERS: dict[MoodName, tuple[str, ...]] = {
    MoodName.excited: ("Ooh!", "Wait, wait!", "Eee!"),
    MoodName.happy: ("Hehe.", "Aww, hi!", "Hey there!"),
    MoodName.neutral: ("Hmm.", "Oh, hey.", "Right."),
    MoodName.sad: ("Oh...", "Mm...", "Sorry..."),
    MoodName.bored: ("Meh.", "*yawns*", "Ugh."),
}
# Saying, in character, that a real answer has to wait.
AWAY_LINES = (
    "My head is all over the place right now, can we pick this up a bit later?",
    "I can't think straight at the moment, ask me again in a little while.",
    "Give me a moment, my brain needs a break.",
)
INTEREST_LINES = (
    "I'm totally distracted by {interest} right now.",
    "Have you been into {interest} lately?",
    "Let's talk about {interest} instead for now.",
)
# Agents without a character (Mode 4) say it plainly.
PLAIN_LINE = "I can't answer right now. Please try again a bit later."
CATCHPHRASE_CHANCE = 0.5


def persona_reply(agent: AgentConfig, mood: MoodState, seed: str) -> str:
    character = agent.character
    if character is None:
        return PLAIN_LINE
    rng = random.Random(seed)
    parts = [rng.choice(OPENERS[mood.mood]), rng.choice(AWAY_LINES)]
    if character.interests:
        parts.append(rng.choice(INTEREST_LINES).format(interest=rng.choice(character.interests)))
    if character.catchphrases and rng.random() < CATCHPHRASE_CHANCE:
        parts.append(rng.choice(character.catchphrases))
    return " ".join(parts)
