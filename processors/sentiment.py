"""A small word-list sentiment: enough to tell a thank-you from an insult, cheap enough for every message."""

from __future__ import annotations

import re

_POSITIVE = (
    "thanks thank thx ty love loved lovely awesome great cool nice amazing wonderful lol haha cute good best "
    "yay pog based fun funny glad happy kind sweet perfect brilliant excellent helpful welcome congrats "
    "congratulations gg wow beautiful"
)
_NEGATIVE = (
    "hate hated stupid dumb annoying bad worst ugly idiot trash cringe boring useless terrible awful shut "
    "sucks suck horrible pathetic lame moron loser gross angry sad disappointing"
)
POSITIVE_WORDS = frozenset(_POSITIVE.split())
NEGATIVE_WORDS = frozenset(_NEGATIVE.split())
POSITIVE_EMOJI = frozenset("❤💕😊😂🥰😍👍🎉✨🙂😄😁🤩")
NEGATIVE_EMOJI = frozenset("😡👎🤬💢😠😒🙄")
NEGATORS = frozenset({"not", "no", "never", "dont", "don't", "isnt", "isn't", "wasnt", "wasn't"})

_TOKEN = re.compile(r"[\w']+|[^\w\s]")


def sentiment(text: str) -> int:
    """+1, 0 or -1. A negator flips the next word: "not bad" is positive, "not good" negative."""
    score = 0
    flip = False
    for token in _TOKEN.findall(text.lower()):
        polarity = 0
        if token in POSITIVE_WORDS or token in POSITIVE_EMOJI:
            polarity = 1
        elif token in NEGATIVE_WORDS or token in NEGATIVE_EMOJI:
            polarity = -1
        score += -polarity if flip else polarity
        flip = token in NEGATORS
    return (score > 0) - (score < 0)
