"""Preferences people state in chat, found by pattern: "my favourite X is Y", "I like/love/enjoy X",
"I hate/dislike/don't like X". The processors keep them on the relationship (the latest per key); the
memory writer remembers each as a fact about the user."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FAVOURITE = re.compile(r"\bmy fav(?:ou?rite)? ([a-z][\w ]{0,38}?) is ([^.!?,;\n]{1,100})", re.IGNORECASE)
_DISLIKE = re.compile(
    r"\bi (?:really )?(?:hate|dislike|don'?t like|do not like) ([^.!?,;\n]{1,100})", re.IGNORECASE
)
_LIKE = re.compile(r"\bi (?:really )?(?:like|love|enjoy) ([^.!?,;\n]{1,100})", re.IGNORECASE)

LIKES = "likes"
DISLIKES = "dislikes"


@dataclass(frozen=True)
class StatedPreference:
    # "favourite <topic>", LIKES or DISLIKES.
    key: str
    value: str

    def about(self, name: str) -> str:
        """The preference as a sentence about the person who stated it."""
        if self.key in (LIKES, DISLIKES):
            return f"{name} {self.key} {self.value}."
        return f"{name}'s {self.key} is {self.value}."


def stated_preferences(text: str) -> list[StatedPreference]:
    """The preferences stated in a message, favourites first, then dislikes, then likes."""
    found = [
        StatedPreference(f"favourite {topic.strip().lower()}", value.strip())
        for topic, value in _FAVOURITE.findall(text)
    ]
    for key, pattern in ((DISLIKES, _DISLIKE), (LIKES, _LIKE)):
        found += [StatedPreference(key, value.strip()) for value in pattern.findall(text)]
    return found
