"""What the resource stores share: the errors routes answer 404 and 409 for, scoping, the owner's lock and
the deployment query."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from api.routing_records import DEPLOYMENT_COLUMNS, DEPLOYMENT_FROM, deployment_of, keys_of
from models.deployments import Deployment
from models.tiers import Tier


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


@dataclass(frozen=True)
class Staging:
    """A store whose writes change routing records: it stages them in the namespace's outbox."""

    pool: asyncpg.Pool
    namespace: str


def in_scope(row: asyncpg.Record | None, scope: UUID | None, what: str) -> asyncpg.Record:
    """Another owner's resource is reported exactly like a missing one: 404, nothing leaks."""
    if row is None or (scope is not None and row["owner_id"] != scope):
        raise NotFound(f"{what} not found")
    return row


async def lock_owner_tier(conn: asyncpg.Connection, owner_id: UUID, *, exclusive: bool) -> Tier:
    lock = "FOR UPDATE" if exclusive else "FOR SHARE"
    tier = await conn.fetchval(f"SELECT tier FROM owners WHERE owner_id = $1 {lock}", owner_id)
    if tier is None:
        raise NotFound(f"owner {owner_id} not found")
    return Tier(tier)


async def deployments_where(
    db: asyncpg.Connection | asyncpg.Pool, condition: str, *args: object
) -> list[Deployment]:
    """The deployments meeting `condition`, oldest first; the condition is SQL over `d` (deployments),
    `c` (their agents) and `t` (their tokens)."""
    rows = await db.fetch(
        f"""SELECT {DEPLOYMENT_COLUMNS} FROM {DEPLOYMENT_FROM} WHERE {condition}
            ORDER BY d.deployed_at, d.deployment_id""",
        *args,
    )
    return [deployment_of(row) for row in rows]


def routing_keys(deployments: Iterable[Deployment]) -> set[str]:
    return {key for deployment in deployments for key in keys_of(deployment)}
