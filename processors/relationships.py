"""What a deployment learns of a user: affinity, interaction counts and stated preferences."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from heapq import heapify, heappop, heappush

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
# Ranks a user never met (no relationship) before everyone met.
_NEVER = datetime.min.replace(tzinfo=UTC)
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
            "last_met": max(relationship.last_met or at, at),
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
            "last_met": max(relationship.last_met or at, at),
        }
    )


class MetOrder:
    """Whom a deployment tracks, least recently met first, for forgetting users past `max_tracked_users`
    without ranking them all each time: a heap of (last met, user) entries, built the first time someone is
    to be forgotten.

    An entry goes stale when its user meets the agent again, as the relationship then holds a later time
    (`last_met` reads it); it is checked when it comes to the top and put back in its place if stale. A
    user's time only grows (an interaction or tip older than it leaves it as it is), so the top, once
    checked, is the least recently met. The order derives from the tables: it `follows` the tracked users'
    value it last produced, and a different value (recovered, erased) means starting again."""

    def __init__(self, tracked: TrackedUsers | None) -> None:
        self.follows = tracked
        self._heap: list[tuple[datetime, str]] | None = None

    def track(
        self, newcomer: str | None, limit: int, last_met: Callable[[str], datetime | None]
    ) -> tuple[TrackedUsers | None, list[str]]:
        """Whom the deployment tracks after an interaction, `newcomer` added when met for the first time,
        and the users forgotten to stay within `limit`, least recently met first. None: unchanged, as after
        most interactions (with someone tracked already, within the limit)."""
        tracked = self.follows
        users = tracked.users if tracked is not None else []
        if newcomer is not None:
            users = [*users, newcomer]
            if self._heap is not None:
                heappush(self._heap, (last_met(newcomer) or _NEVER, newcomer))
        excess = len(users) - limit
        if excess <= 0 and newcomer is None:
            return None, []
        forgotten = self._least_met(users, excess, last_met) if excess > 0 else []
        if forgotten:
            gone = set(forgotten)
            users = [user for user in users if user not in gone]
        # Copied, not validated again: the users held were, and a newcomer is a message's author.
        held = TrackedUsers(users=users) if tracked is None else tracked.model_copy(update={"users": users})
        self.follows = held
        return held, forgotten

    def _least_met(
        self, users: list[str], most: int, last_met: Callable[[str], datetime | None]
    ) -> list[str]:
        if self._heap is None:
            self._heap = [(last_met(user) or _NEVER, user) for user in users]
            heapify(self._heap)
        taken: list[str] = []
        while self._heap and len(taken) < most:
            held, user = heappop(self._heap)
            met = last_met(user) or _NEVER
            if met > held:
                heappush(self._heap, (met, user))
            else:
                taken.append(user)
        return taken
