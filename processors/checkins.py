"""Check-ins: a routine that addresses one regular the agent has not talked with for a while.

A regular is a user the deployment talked with at least REGULAR_INTERACTIONS times and is not cold
towards; one is away when their last interaction is `away_days` or more before the firing. Whom a check-in
addresses is a weighted draw without replacement over the regulars away, each weighted by their affinity
band's odds (a friend four times an acquaintance, processors/traits.py), seeded by (deployment, local date,
routine): the day's n-th firing addresses the n-th person of that order. Each person's draw comes from a
generator of their own, so their place does not depend on who else is away, and a replay, a restarted
worker or a late timer picks the same people. A budget of n check-ins a day therefore addresses n
different people, or fewer when fewer are away.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from uuid import UUID

from models.agent import RelationshipSettings
from models.state import Relationship
from processors.ids import seeded_rng
from processors.traits import BAND_ODDS, AffinityBand, affinity_band

# Fewer interactions than this and the agent does not know the user well enough to miss them.
REGULAR_INTERACTIONS = 5


def regulars_away(
    relationships: Iterable[Relationship], at: datetime, away: timedelta, settings: RelationshipSettings
) -> list[Relationship]:
    """The regulars whose last interaction with the agent is at least `away` before `at`."""
    bands = settings.affinity_bands
    return [
        relationship
        for relationship in relationships
        if relationship.interaction_count >= REGULAR_INTERACTIONS
        and relationship.last_interaction is not None
        and relationship.last_interaction <= at - away
        and affinity_band(relationship.affinity, bands) is not AffinityBand.cold
    ]


def check_in_order(
    deployment_id: UUID,
    day: date,
    routine: str,
    regulars: Iterable[Relationship],
    settings: RelationshipSettings,
) -> list[Relationship]:
    """The regulars in the order the day's check-ins address them (Efraimidis-Spirakis: the person with the
    largest u ** (1 / weight) first)."""

    def draw(relationship: Relationship) -> tuple[float, str]:
        weight = BAND_ODDS[affinity_band(relationship.affinity, settings.affinity_bands)]
        u = seeded_rng(deployment_id, day.isoformat(), routine, relationship.user_id).random()
        return u ** (1 / weight), relationship.user_id

    return sorted(regulars, key=draw, reverse=True)


def check_in_on(
    deployment_id: UUID,
    day: date,
    routine: str,
    slot: int,
    regulars: Iterable[Relationship],
    settings: RelationshipSettings,
) -> Relationship | None:
    """Whom the day's `slot`-th check-in addresses; None when fewer regulars are away."""
    order = check_in_order(deployment_id, day, routine, regulars, settings)
    return order[slot] if slot < len(order) else None


def mention(user_id: str) -> str:
    return f"<@{user_id}>"
