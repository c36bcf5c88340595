"""What a deployment learns of a user: affinity, interaction counts and stated preferences."""

from __future__ import annotations

from datetime import datetime
from heapq import nsmallest

from memory.preferences import DISLIKES, LIKES, stated_preferences
from models.agent import PersonalityTraits, RelationshipSettings
from models.processor_state import TrackedUsers
from models.state import Relationship
from processors.sentiment import sentiment
from processors.traits import affinity_change

# Talking more raises affinity a little; the tone of the message moves it more.
AFFINITY_PER_INTERACTION = 1
AFFINITY_PER_SENTIMENT = 3
# A tip warms the agent by a point per ten coins, at most ten points.
COINS_PER_AFFINITY = 10
MAX_TIP_AFFINITY = 10
MAX_LISTED_PREFERENCES = 10
_MAX_PREFERENCE_KEYS = 100


def learn_preferences(text: str, known: dict[str, str]) -> dict[str, str]:
    """ "my favourite X is Y" sets `favourite X`; "I like/love X" and "I hate/don't like X" add to `likes` and
    `dislikes` (the latest ten)."""
    learned = dict(known)
    for preference in stated_preferences(text):
        if preference.key not in (LIKES, DISLIKES):
            learned[preference.key] = preference.value
            continue
        items = [item for item in learned.get(preference.key, "").split(", ") if item]
        items = [*(i for i in items if i.lower() != preference.value.lower()), preference.value]
        learned[preference.key] = ", ".join(items[-MAX_LISTED_PREFERENCES:])
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


def tipped(
    relationship: Relationship,
    settings: RelationshipSettings,
    traits: PersonalityTraits,
    amount: int,
    at: datetime,
) -> Relationship | None:
    """The relationship after the user tipped the agent `amount` coins; None when the agent keeps no
    affinity. The caller applies each tip once."""
    if not (settings.track_interactions and settings.affinity_system):
        return None
    gain = affinity_change(traits, min(MAX_TIP_AFFINITY, max(1, amount // COINS_PER_AFFINITY)))
    return relationship.model_copy(
        update={
            "affinity": min(100, max(0, relationship.affinity + gain)),
            "positive_interactions": relationship.positive_interactions + 1,
            "first_met": relationship.first_met or at,
        }
    )


def track(
    tracked: TrackedUsers | None, user_id: str, at: datetime, limit: int
) -> tuple[TrackedUsers, list[str]]:
    """The tracked users after talking with `user_id`, and the users forgotten to stay within `limit`: the
    least recently met go first."""
    last_seen = dict(tracked.last_seen) if tracked is not None else {}
    last_seen[user_id] = at
    # Most interactions are with someone tracked already, within the limit: nobody to rank.
    excess = len(last_seen) - limit
    forgotten = nsmallest(excess, last_seen, key=lambda user: (last_seen[user], user)) if excess > 0 else []
    for user in forgotten:
        del last_seen[user]
    if tracked is None:
        return TrackedUsers(last_seen=last_seen), forgotten
    # Copied, not validated again: the users held were, and the one added is the message's author.
    return tracked.model_copy(update={"last_seen": last_seen}), forgotten
