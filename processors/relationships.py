"""What a deployment learns of a user: affinity, interaction counts and stated preferences."""

from __future__ import annotations

import re
from datetime import datetime

from models.agent import PersonalityTraits, RelationshipSettings
from models.processor_state import TrackedUsers
from models.state import Relationship
from processors.sentiment import sentiment
from processors.traits import affinity_change

# Talking more raises affinity a little; the tone of the message moves it more.
AFFINITY_PER_INTERACTION = 1
AFFINITY_PER_SENTIMENT = 3
MAX_LISTED_PREFERENCES = 10
_MAX_PREFERENCE_KEYS = 100

_FAVOURITE = re.compile(r"\bmy fav(?:ou?rite)? ([a-z][\w ]{0,38}?) is ([^.!?,;\n]{1,100})", re.IGNORECASE)
_DISLIKE = re.compile(
    r"\bi (?:really )?(?:hate|dislike|don'?t like|do not like) ([^.!?,;\n]{1,100})", re.IGNORECASE
)
_LIKE = re.compile(r"\bi (?:really )?(?:like|love|enjoy) ([^.!?,;\n]{1,100})", re.IGNORECASE)


def learn_preferences(text: str, known: dict[str, str]) -> dict[str, str]:
    """ "my favourite X is Y" sets `favourite X`; "I like/love X" and "I hate/don't like X" add to `likes` and
    `dislikes` (the latest ten)."""
    learned = dict(known)
    for topic, value in _FAVOURITE.findall(text):
        learned[f"favourite {topic.strip().lower()}"] = value.strip()
    for key, pattern in (("dislikes", _DISLIKE), ("likes", _LIKE)):
        for value in pattern.findall(text):
            items = [item for item in learned.get(key, "").split(", ") if item]
            item = value.strip()
            items = [*(i for i in items if i.lower() != item.lower()), item][-MAX_LISTED_PREFERENCES:]
            learned[key] = ", ".join(items)
    if len(learned) > _MAX_PREFERENCE_KEYS:
        return known
    return learned


def record_interaction(
    relationship: Relationship,
    settings: RelationshipSettings,
    traits: PersonalityTraits,
    *,
    display_name: str,
    content: str,
    at: datetime,
) -> Relationship | None:
    """The relationship after one interaction, or None when `at` is not newer than the last interaction
    (a redelivered event must not count twice)."""
    if not settings.track_interactions:
        return None
    if relationship.last_interaction is not None and at <= relationship.last_interaction:
        return None
    tone = sentiment(content)
    affinity = relationship.affinity
    if settings.affinity_system:
        change = affinity_change(traits, AFFINITY_PER_INTERACTION + AFFINITY_PER_SENTIMENT * tone)
        affinity = min(100, max(0, affinity + change))
    preferences = relationship.preferences
    if settings.remember_preferences:
        preferences = learn_preferences(content, preferences)
    return relationship.model_copy(
        update={
            "display_name": display_name[:100] if settings.remember_names else relationship.display_name,
            "affinity": affinity,
            "interaction_count": relationship.interaction_count + 1,
            "positive_interactions": relationship.positive_interactions + (tone > 0),
            "negative_interactions": relationship.negative_interactions + (tone < 0),
            "first_met": relationship.first_met or at,
            "last_interaction": at,
            "preferences": preferences,
        }
    )


def track(
    tracked: TrackedUsers | None, user_id: str, at: datetime, limit: int
) -> tuple[TrackedUsers, list[str]]:
    """The tracked users after talking with `user_id`, and the users forgotten to stay within `limit`: the
    least recently met go first."""
    last_seen = dict(tracked.last_seen) if tracked is not None else {}
    last_seen[user_id] = at
    forgotten = sorted(last_seen, key=lambda user: (last_seen[user], user))[: max(0, len(last_seen) - limit)]
    for user in forgotten:
        del last_seen[user]
    return TrackedUsers(last_seen=last_seen), forgotten
