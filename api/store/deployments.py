"""Deployments: an agent in a guild through one of the owner's bots, with its channels and status."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import asyncpg

from api.db import in_transaction
from api.policy import check_config, check_slots, check_token
from api.presets import stock_personalities
from api.routing_records import keys_of, stage_routing
from api.schemas import Agent, DeploymentCreate, DeploymentUpdate
from api.store.agents import lock_agent
from api.store.shared import Conflict, NotFound, Staging, deployments_where, in_scope
from models.deployments import Deployment, DeploymentStatus
from models.tiers import TIERS, Tier, TokenTier
from models.tokens import TokenStatus


async def _deployment(db: asyncpg.Connection | asyncpg.Pool, deployment_id: UUID) -> Deployment:
    found = await deployments_where(db, "d.deployment_id = $1", deployment_id)
    if not found:
        raise NotFound(f"deployment {deployment_id} not found")
    return found[0]


async def _check_usable_token(conn: asyncpg.Connection, token_id: UUID, owner_id: UUID, tier: Tier) -> None:
    """The token is the owner's, not revoked, and of a tier the owner's tier allows."""
    row = await conn.fetchrow("SELECT owner_id, tier, status FROM bot_tokens WHERE token_id = $1", token_id)
    row = in_scope(row, owner_id, f"token {token_id}")
    if row["status"] == TokenStatus.revoked:
        raise Conflict(f"token {token_id} is revoked; add the bot's new token")
    check_token(TIERS[tier], TokenTier(row["tier"]))


async def insert_deployment(
    conn: asyncpg.Connection, agent: Agent, tier: Tier, body: DeploymentCreate, namespace: str
) -> Deployment:
    """Deploy `agent` (locked by the caller) and stage the routing records it joins."""
    await _check_usable_token(conn, body.token_id, agent.owner_id, tier)
    dm_enabled = agent.config.channels.dm_enabled if body.dm_enabled is None else body.dm_enabled
    try:
        async with conn.transaction():
            deployment_id = await conn.fetchval(
                """INSERT INTO agent_deployments (config_id, guild_id, token_id, text_channels,
                                                  voice_channels,
                                                  dm_enabled, status)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING deployment_id""",
                agent.agent_id,
                body.guild_id,
                body.token_id,
                body.text_channels,
                body.voice_channels,
                dm_enabled,
                body.status.value,
            )
    except asyncpg.UniqueViolationError as exc:
        what = "this agent" if "agent_guild" in (exc.constraint_name or "") else "this bot"
        raise Conflict(f"{what} is already deployed in guild {body.guild_id}") from None
    deployment = await _deployment(conn, deployment_id)
    await stage_routing(conn, keys_of(deployment), namespace)
    return deployment


async def pause_agents(conn: asyncpg.Connection, agent_ids: Sequence[UUID]) -> None:
    """Pause the active deployments of these agents."""
    await conn.execute(
        """UPDATE agent_deployments SET status = 'paused', updated_at = now()
           WHERE config_id = ANY($1::uuid[]) AND status = 'active'""",
        agent_ids,
    )


async def _older_agents(conn: asyncpg.Connection, owner_id: UUID, agent_id: UUID) -> int:
    """How many of the owner's agents were created before this one (they take the slots first)."""
    count: int = await conn.fetchval(
        """SELECT count(*) FROM agent_configurations a, agent_configurations this
           WHERE this.config_id = $2 AND a.owner_id = $1
             AND (a.created_at, a.config_id) < (this.created_at, this.config_id)""",
        owner_id,
        agent_id,
    )
    return count


async def _lock_deployment(
    conn: asyncpg.Connection, deployment_id: UUID, scope: UUID | None
) -> tuple[Agent, Tier, Deployment]:
    agent_id = await conn.fetchval(
        "SELECT config_id FROM agent_deployments WHERE deployment_id = $1", deployment_id
    )
    if agent_id is None:
        raise NotFound(f"deployment {deployment_id} not found")
    try:
        agent, tier = await lock_agent(conn, agent_id, scope)
    except NotFound:
        raise NotFound(f"deployment {deployment_id} not found") from None
    return agent, tier, await _deployment(conn, deployment_id)


class Deployments(Staging):
    async def deploy(self, agent_id: UUID, scope: UUID | None, body: DeploymentCreate) -> Deployment:
        async def work(conn: asyncpg.Connection) -> Deployment:
            agent, tier = await lock_agent(conn, agent_id, scope)
            return await insert_deployment(conn, agent, tier, body, self.namespace)

        return await in_transaction(self.pool, work)

    async def of_owner(self, owner_id: UUID, agent_id: UUID | None = None) -> list[Deployment]:
        """The owner's deployments, or only those of one of their agents."""
        return await deployments_where(
            self.pool, "c.owner_id = $1 AND ($2::uuid IS NULL OR d.config_id = $2)", owner_id, agent_id
        )

    async def get(self, deployment_id: UUID, scope: UUID | None) -> Deployment:
        deployment = await _deployment(self.pool, deployment_id)
        if scope is not None and deployment.owner_id != scope:
            raise NotFound(f"deployment {deployment_id} not found")
        return deployment

    async def update(self, deployment_id: UUID, scope: UUID | None, body: DeploymentUpdate) -> Deployment:
        async def work(conn: asyncpg.Connection) -> Deployment:
            agent, tier, before = await _lock_deployment(conn, deployment_id, scope)
            if body.token_id is not None and body.token_id != before.token_id:
                await _check_usable_token(conn, body.token_id, agent.owner_id, tier)
            if body.status is DeploymentStatus.active and before.status is not DeploymentStatus.active:
                # A deployment paused by a downgrade resumes only once its agent fits the tier.
                limits = TIERS[tier]
                check_config(limits, agent.config, stock_personalities())
                check_slots(limits, await _older_agents(conn, agent.owner_id, agent.agent_id))
            try:
                async with conn.transaction():
                    await conn.execute(
                        """UPDATE agent_deployments SET token_id = coalesce($2, token_id),
                               text_channels = coalesce($3, text_channels),
                               voice_channels = coalesce($4, voice_channels),
                               dm_enabled = coalesce($5, dm_enabled), status = coalesce($6, status),
                               updated_at = now()
                           WHERE deployment_id = $1""",
                        deployment_id,
                        body.token_id,
                        body.text_channels,
                        body.voice_channels,
                        body.dm_enabled,
                        body.status.value if body.status else None,
                    )
            except asyncpg.UniqueViolationError:
                raise Conflict(f"that bot is already deployed in guild {before.guild_id}") from None
            after = await _deployment(conn, deployment_id)
            await stage_routing(conn, keys_of(before) | keys_of(after), self.namespace)
            return after

        return await in_transaction(self.pool, work)

    async def undeploy(self, deployment_id: UUID, scope: UUID | None) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            _, _, before = await _lock_deployment(conn, deployment_id, scope)
            await conn.execute("DELETE FROM agent_deployments WHERE deployment_id = $1", deployment_id)
            await stage_routing(conn, keys_of(before), self.namespace)

        await in_transaction(self.pool, work)
