"""Owners: their accounts and tiers. A tier change pauses what the new tier does not cover."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from api.db import in_transaction
from api.policy import beyond_tier
from api.presets import stock_personalities
from api.routing_records import stage_routing
from api.schemas import Owner, OwnerCreate, OwnerCreated, OwnerUpdate
from api.store.agents import owner_agents
from api.store.deployments import pause_agents
from api.store.keys import new_key
from api.store.shared import NotFound, Staging, deployments_where, in_scope, routing_keys
from models.tiers import TIERS, Tier

_OWNER_COLUMNS = "owner_id, name, tier, role, content_exports, created_at"


def _owner(row: asyncpg.Record) -> Owner:
    return Owner(
        owner_id=row["owner_id"],
        name=row["name"],
        tier=row["tier"],
        role=row["role"],
        content_exports=row["content_exports"],
        created_at=row["created_at"],
    )


async def create_owner(pool: asyncpg.Pool, body: OwnerCreate) -> OwnerCreated:
    """An owner and their first API key (also how `deep api create-admin` bootstraps an operator)."""

    async def work(conn: asyncpg.Connection) -> OwnerCreated:
        row = await conn.fetchrow(
            f"INSERT INTO owners (name, tier, role) VALUES ($1, $2, $3) RETURNING {_OWNER_COLUMNS}",
            body.name,
            body.tier.value,
            body.role.value,
        )
        return OwnerCreated(owner=_owner(row), key=await new_key(conn, row["owner_id"]))

    return await in_transaction(pool, work)


async def _owner_keys(conn: asyncpg.Connection, owner_id: UUID) -> set[str]:
    return routing_keys(await deployments_where(conn, "c.owner_id = $1", owner_id))


async def update_owner(conn: asyncpg.Connection, owner_id: UUID, body: OwnerUpdate, namespace: str) -> Owner:
    """A tier change is part of every routing record of the owner's deployments: they are restaged, after
    the deployments of agents the new tier does not cover are paused. The owner changes or deletes agents,
    then resumes the deployments (resuming checks the tier again). Runs in the caller's transaction."""
    before = await conn.fetchrow("SELECT tier FROM owners WHERE owner_id = $1 FOR UPDATE", owner_id)
    if before is None:
        raise NotFound(f"owner {owner_id} not found")
    row = await conn.fetchrow(
        f"""UPDATE owners
            SET name = coalesce($2, name), tier = coalesce($3, tier), role = coalesce($4, role)
            WHERE owner_id = $1 RETURNING {_OWNER_COLUMNS}""",
        owner_id,
        body.name,
        body.tier.value if body.tier else None,
        body.role.value if body.role else None,
    )
    if row["tier"] != before["tier"]:
        limits = TIERS[Tier(row["tier"])]
        agents = await owner_agents(conn, owner_id)
        await pause_agents(conn, beyond_tier(limits, agents, stock_personalities()))
        await stage_routing(conn, await _owner_keys(conn, owner_id), namespace)
    return _owner(row)


class Owners(Staging):
    async def create(self, body: OwnerCreate) -> OwnerCreated:
        return await create_owner(self.pool, body)

    async def all(self) -> list[Owner]:
        rows = await self.pool.fetch(f"SELECT {_OWNER_COLUMNS} FROM owners ORDER BY created_at, owner_id")
        return [_owner(row) for row in rows]

    async def get(self, owner_id: UUID, scope: UUID | None) -> Owner:
        row = await self.pool.fetchrow(f"SELECT {_OWNER_COLUMNS} FROM owners WHERE owner_id = $1", owner_id)
        return _owner(in_scope(row, scope, f"owner {owner_id}"))

    async def update(self, owner_id: UUID, body: OwnerUpdate) -> Owner:
        return await in_transaction(
            self.pool, lambda conn: update_owner(conn, owner_id, body, self.namespace)
        )

    async def set_content_exports(self, owner_id: UUID, enabled: bool, scope: UUID | None) -> Owner:
        """Whether exports may carry the owner's guilds' message content; read by the export job only."""
        # Scoped in the statement: another owner's flag is neither changed nor reported (404).
        row = await self.pool.fetchrow(
            f"""UPDATE owners SET content_exports = $2
                WHERE owner_id = $1 AND ($3::uuid IS NULL OR owner_id = $3) RETURNING {_OWNER_COLUMNS}""",
            owner_id,
            enabled,
            scope,
        )
        return _owner(in_scope(row, None, f"owner {owner_id}"))

    async def delete(self, owner_id: UUID) -> None:
        """Erasure: the owner and everything they own; their deployments leave every routing record."""

        async def work(conn: asyncpg.Connection) -> None:
            if await conn.fetchval("SELECT 1 FROM owners WHERE owner_id = $1 FOR UPDATE", owner_id) is None:
                raise NotFound(f"owner {owner_id} not found")
            keys = await _owner_keys(conn, owner_id)
            await conn.execute(
                """DELETE FROM agent_deployments WHERE config_id IN
                   (SELECT config_id FROM agent_configurations WHERE owner_id = $1)""",
                owner_id,
            )
            await conn.execute("DELETE FROM owners WHERE owner_id = $1", owner_id)
            await stage_routing(conn, keys, self.namespace)

        await in_transaction(self.pool, work)
