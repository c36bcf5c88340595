"""Agents: an owner's configurations, within what the tier allows, and the import each was made from."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from api.characters import StoredImport
from api.db import in_transaction
from api.policy import check_config, check_implemented, check_slots
from api.presets import stock_personalities
from api.routing_records import stage_routing
from api.schemas import Agent, CharacterFormat
from api.store.shared import NotFound, Staging, deployments_where, in_scope, lock_owner_tier, routing_keys
from models.agent import AgentConfig
from models.tiers import TIERS, Tier

_AGENT_COLUMNS = (
    "config_id AS agent_id, owner_id, agent_name AS name, config, import_format, created_at, updated_at"
)


def _agent(row: asyncpg.Record) -> Agent:
    return Agent(
        agent_id=row["agent_id"],
        owner_id=row["owner_id"],
        name=row["name"],
        config=AgentConfig.model_validate(row["config"]),
        import_format=row["import_format"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def owner_agents(db: asyncpg.Connection | asyncpg.Pool, owner_id: UUID) -> list[Agent]:
    """The owner's agents, oldest first (the order they take the tier's slots in)."""
    rows = await db.fetch(
        f"""SELECT {_AGENT_COLUMNS} FROM agent_configurations WHERE owner_id = $1
            ORDER BY created_at, config_id""",
        owner_id,
    )
    return [_agent(row) for row in rows]


async def insert_agent(
    conn: asyncpg.Connection, owner_id: UUID, config: AgentConfig, stored: StoredImport | None
) -> Agent:
    check_implemented(config)
    # The owner row lock (exclusive) serialises this owner's creations, so the slot count holds.
    limits = TIERS[await lock_owner_tier(conn, owner_id, exclusive=True)]
    check_slots(
        limits,
        await conn.fetchval("SELECT count(*) FROM agent_configurations WHERE owner_id = $1", owner_id),
    )
    check_config(limits, config, stock_personalities())
    row = await conn.fetchrow(
        f"""INSERT INTO agent_configurations (owner_id, agent_name, config, import_format,
                                              import_extensions,
                                              import_image)
            VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_AGENT_COLUMNS}""",
        owner_id,
        config.name,
        config.model_dump(mode="json"),
        stored.format.value if stored else None,
        stored.extensions() if stored else None,
        stored.image if stored else None,
    )
    return _agent(row)


async def lock_agent(conn: asyncpg.Connection, agent_id: UUID, scope: UUID | None) -> tuple[Agent, Tier]:
    """The agent, its row locked after its owner's (shared), and the owner's tier."""
    owner_id = await conn.fetchval("SELECT owner_id FROM agent_configurations WHERE config_id = $1", agent_id)
    if owner_id is None or (scope is not None and owner_id != scope):
        raise NotFound(f"agent {agent_id} not found")
    tier = await lock_owner_tier(conn, owner_id, exclusive=False)
    row = await conn.fetchrow(
        f"SELECT {_AGENT_COLUMNS} FROM agent_configurations WHERE config_id = $1 FOR UPDATE", agent_id
    )
    return _agent(in_scope(row, scope, f"agent {agent_id}")), tier


async def _agent_keys(conn: asyncpg.Connection, agent_id: UUID) -> set[str]:
    return routing_keys(await deployments_where(conn, "d.config_id = $1", agent_id))


class Agents(Staging):
    async def create(self, owner_id: UUID, config: AgentConfig, stored: StoredImport | None = None) -> Agent:
        return await in_transaction(self.pool, lambda conn: insert_agent(conn, owner_id, config, stored))

    async def of_owner(self, owner_id: UUID) -> list[Agent]:
        return await owner_agents(self.pool, owner_id)

    async def get(self, agent_id: UUID, scope: UUID | None) -> Agent:
        row = await self.pool.fetchrow(
            f"SELECT {_AGENT_COLUMNS} FROM agent_configurations WHERE config_id = $1", agent_id
        )
        return _agent(in_scope(row, scope, f"agent {agent_id}"))

    async def stored_import(self, agent_id: UUID, scope: UUID | None) -> tuple[Agent, StoredImport | None]:
        row = await self.pool.fetchrow(
            f"""SELECT {_AGENT_COLUMNS}, import_extensions, import_image FROM agent_configurations
                WHERE config_id = $1""",
            agent_id,
        )
        row = in_scope(row, scope, f"agent {agent_id}")
        agent = _agent(row)
        if agent.import_format is None or row["import_extensions"] is None:
            return agent, None
        extensions = row["import_extensions"]
        stored = StoredImport(
            format=CharacterFormat(agent.import_format),
            original=extensions["original"],
            baseline=extensions["baseline"],
            image=row["import_image"],
        )
        return agent, stored

    async def update(self, agent_id: UUID, scope: UUID | None, config: AgentConfig) -> Agent:
        check_implemented(config)

        async def work(conn: asyncpg.Connection) -> Agent:
            _, tier = await lock_agent(conn, agent_id, scope)
            check_config(TIERS[tier], config, stock_personalities())
            row = await conn.fetchrow(
                f"""UPDATE agent_configurations SET config = $2, agent_name = $3, updated_at = now()
                    WHERE config_id = $1 RETURNING {_AGENT_COLUMNS}""",
                agent_id,
                config.model_dump(mode="json"),
                config.name,
            )
            await stage_routing(conn, await _agent_keys(conn, agent_id), self.namespace)
            return _agent(row)

        return await in_transaction(self.pool, work)

    async def delete(self, agent_id: UUID, scope: UUID | None) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await lock_agent(conn, agent_id, scope)
            keys = await _agent_keys(conn, agent_id)
            await conn.execute("DELETE FROM agent_configurations WHERE config_id = $1", agent_id)
            await stage_routing(conn, keys, self.namespace)

        await in_transaction(self.pool, work)
