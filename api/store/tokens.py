"""Bot tokens as the control plane sees them: listed without secrets, revoked, and their deployments moved
when a token dies or recovers (the plan is api.reassignment's; this module loads its inputs and applies it).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from uuid import UUID, uuid4

import asyncpg

from api.db import in_transaction
from api.reassignment import Candidate, ReassignmentPlan, concerned, plan_reassignment
from api.routing_records import dm_key, stage_routing
from api.store.shared import deployments_where, in_scope, lock_owner_tier, routing_keys
from models.deployments import Deployment
from models.operations import OwnerNotification
from models.tiers import TIERS
from models.tokens import BotTokenState, TokenHealthEvent, TokenStatus
from streams.catalog import OWNER_NOTIFICATIONS
from streams.outbox import stage
from vault.store import TOKEN_STATE_COLUMNS, TokenVault, token_state

_SET_STATUS = "UPDATE agent_deployments SET status = $2, updated_at = now() WHERE deployment_id = $1"


async def _token_deployments(conn: asyncpg.Connection, token_id: UUID) -> list[Deployment]:
    return await deployments_where(conn, "d.token_id = $1", token_id)


async def _candidates(conn: asyncpg.Connection, owner_id: UUID, guild_ids: set[str]) -> list[Candidate]:
    """The owner's bots, each with those of `guild_ids` where it already serves a deployment."""
    tokens = await conn.fetch(f"SELECT {TOKEN_STATE_COLUMNS} FROM bot_tokens WHERE owner_id = $1", owner_id)
    served = await conn.fetch(
        """SELECT d.token_id, d.guild_id FROM agent_deployments d JOIN bot_tokens t USING (token_id)
           WHERE t.owner_id = $1 AND d.guild_id = ANY($2::text[])""",
        owner_id,
        sorted(guild_ids),
    )
    guilds: defaultdict[UUID, set[str]] = defaultdict(set)
    for row in served:
        guilds[row["token_id"]].add(row["guild_id"])
    return [Candidate(token_state(row), frozenset(guilds[row["token_id"]])) for row in tokens]


@dataclass(frozen=True)
class Tokens:
    pool: asyncpg.Pool
    vault: TokenVault
    namespace: str

    async def of_owner(self, owner_id: UUID) -> list[BotTokenState]:
        rows = await self.pool.fetch(
            f"SELECT {TOKEN_STATE_COLUMNS} FROM bot_tokens WHERE owner_id = $1 ORDER BY created_at, token_id",
            owner_id,
        )
        return [token_state(row) for row in rows]

    async def get(self, token_id: UUID, scope: UUID | None) -> BotTokenState:
        row = await self.pool.fetchrow(
            f"SELECT {TOKEN_STATE_COLUMNS} FROM bot_tokens WHERE token_id = $1", token_id
        )
        return token_state(in_scope(row, scope, f"token {token_id}"))

    async def revoke(self, token_id: UUID, scope: UUID | None, actor: str) -> BotTokenState:
        """Revoke, announce on tokens.health and move its deployments to another of the owner's bots."""
        await self.get(token_id, scope)

        async def work(conn: asyncpg.Connection) -> None:
            event = await self.vault.revoke_in(
                conn, token_id, reason="manual", actor=actor, detail="revoked by its owner"
            )
            if event is not None:
                await self._reassign(conn, event)

        await in_transaction(self.pool, work)
        return await self.get(token_id, scope)

    async def apply_health_event(self, event: TokenHealthEvent) -> None:
        """Act on an event from tokens.health (a runner's 4004, a health check): reassign its deployments."""
        await in_transaction(self.pool, lambda conn: self._reassign(conn, event))

    async def _reassign(self, conn: asyncpg.Connection, event: TokenHealthEvent) -> None:
        status = await conn.fetchval(
            "SELECT status FROM bot_tokens WHERE token_id = $1 FOR UPDATE", event.token_id
        )
        token_status = None if status is None else TokenStatus(status)
        affected = concerned(event, token_status, await _token_deployments(conn, event.token_id))
        if not affected:
            return
        # A token and the agents deployed through it belong to one owner. Lock order: the owner, then the
        # agents (sorted); then read the deployments again, as they are now.
        owner_id = affected[0].owner_id
        tier = await lock_owner_tier(conn, owner_id, exclusive=False)
        await conn.execute(
            """SELECT 1 FROM agent_configurations WHERE config_id = ANY($1::uuid[])
               ORDER BY config_id FOR UPDATE""",
            sorted({deployment.agent_id for deployment in affected}),
        )
        deployments = await _token_deployments(conn, event.token_id)
        candidates = await _candidates(conn, owner_id, {deployment.guild_id for deployment in deployments})
        plan = plan_reassignment(event, token_status, TIERS[tier], deployments, candidates)
        await self._apply(conn, plan, owner_id, event)

    async def _apply(
        self, conn: asyncpg.Connection, plan: ReassignmentPlan, owner_id: UUID, event: TokenHealthEvent
    ) -> None:
        for deployment in plan.restored:
            await conn.execute(_SET_STATUS, deployment.deployment_id, "active")
        for deployment in plan.stopped:
            await conn.execute(_SET_STATUS, deployment.deployment_id, "error")
        for move in plan.moved:
            await conn.execute(
                "UPDATE agent_deployments SET token_id = $2, updated_at = now() WHERE deployment_id = $1",
                move.deployment.deployment_id,
                move.to.token_id,
            )
        keys = routing_keys([*plan.restored, *plan.stopped, *(move.deployment for move in plan.moved)])
        keys |= {dm_key(move.to.bot_user_id) for move in plan.moved if move.deployment.dm_enabled}
        await stage_routing(conn, keys, self.namespace)
        if plan.notice is not None:
            notification = OwnerNotification(
                notification_id=str(uuid4()),
                owner_id=owner_id,
                kind=plan.notice.kind,
                message=plan.notice.message,
                token_id=event.token_id,
            )
            await stage(conn, OWNER_NOTIFICATIONS, self.namespace, str(owner_id), notification)
