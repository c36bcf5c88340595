"""The control plane's state in PostgreSQL: every write is one transaction that also stages its
announcements in the outbox.

Lock order, so concurrent writers serialise instead of racing or deadlocking: the owner row, then agent
rows (sorted), then routing keys (sorted, in stage_routing). Whoever changes what a routing record
contains holds the rows it read, so a record is never built from a configuration another transaction is
about to replace without that transaction building the record again after it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from api.characters import StoredImport
from api.db import in_transaction
from api.policy import TierViolation, check_config, check_slots, check_token
from api.presets import stock_personalities
from api.routing_records import (
    DEPLOYMENT_COLUMNS,
    DEPLOYMENT_FROM,
    deployment_of,
    dm_key,
    keys_of,
    stage_routing,
)
from api.schemas import (
    Agent,
    ApiKeyCreated,
    CharacterFormat,
    DeploymentCreate,
    DeploymentUpdate,
    OutboxStatus,
    Owner,
    OwnerCreate,
    OwnerCreated,
    OwnerUpdate,
    Preset,
    PresetDeploy,
    PresetDeployed,
    Role,
    Usage,
)
from models.agent import AgentConfig
from models.deployments import Deployment, DeploymentStatus
from models.operations import OwnerNotification
from models.tiers import TIERS, Tier, TierLimits, TokenTier
from models.tokens import BotTokenState, TokenHealthEvent, TokenStatus
from streams.catalog import OWNER_NOTIFICATIONS
from streams.outbox import stage, unpublished_count
from vault.store import TOKEN_STATE_COLUMNS, TokenVault, token_state

API_KEY_PREFIX = "dsk_"
_SET_DEPLOYMENT_STATUS = (
    "UPDATE agent_deployments SET status = $2, updated_at = now() WHERE deployment_id = $1"
)

_OWNER_COLUMNS = "owner_id, name, tier, role, created_at"
_AGENT_COLUMNS = (
    "config_id AS agent_id, owner_id, agent_name AS name, config, import_format, created_at, updated_at"
)


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from the API key on every request."""

    owner_id: UUID
    key_id: UUID
    role: Role
    tier: Tier

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    @property
    def scope(self) -> UUID | None:
        """The owner whose resources this caller may touch; None: an operator, every owner's."""
        return None if self.is_admin else self.owner_id


def hash_api_key(api_key: str) -> str:
    # The key is 256 random bits: a plain SHA-256 cannot be brute-forced, and lookups stay indexable.
    return hashlib.sha256(api_key.encode()).hexdigest()


def current_period(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def _owner(row: asyncpg.Record) -> Owner:
    return Owner(
        owner_id=row["owner_id"],
        name=row["name"],
        tier=row["tier"],
        role=row["role"],
        created_at=row["created_at"],
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


def _within_tier(limits: TierLimits, config: AgentConfig, agents: int) -> bool:
    """Whether an agent fits the tier, `agents` of the owner's agents taking slots before it."""
    try:
        check_slots(limits, agents)
        check_config(limits, config, stock_personalities())
    except TierViolation:
        return False
    return True


def _in_scope(row: asyncpg.Record | None, scope: UUID | None, what: str) -> asyncpg.Record:
    """Another owner's resource is reported exactly like a missing one: 404, nothing leaks."""
    if row is None or (scope is not None and row["owner_id"] != scope):
        raise NotFound(f"{what} not found")
    return row


async def _new_key(conn: asyncpg.Connection, owner_id: UUID) -> ApiKeyCreated:
    api_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = await conn.fetchval(
        "INSERT INTO api_keys (owner_id, key_hash) VALUES ($1, $2) RETURNING key_id",
        owner_id,
        hash_api_key(api_key),
    )
    return ApiKeyCreated(key_id=key_id, owner_id=owner_id, api_key=api_key)


async def create_owner(pool: asyncpg.Pool, body: OwnerCreate) -> OwnerCreated:
    """An owner and their first API key (also how `deep api create-admin` bootstraps an operator)."""

    async def work(conn: asyncpg.Connection) -> OwnerCreated:
        row = await conn.fetchrow(
            f"INSERT INTO owners (name, tier, role) VALUES ($1, $2, $3) RETURNING {_OWNER_COLUMNS}",
            body.name,
            body.tier.value,
            body.role.value,
        )
        return OwnerCreated(owner=_owner(row), key=await _new_key(conn, row["owner_id"]))

    return await in_transaction(pool, work)


class Store:
    def __init__(self, pool: asyncpg.Pool, vault: TokenVault, namespace: str) -> None:
        self.pool = pool
        self.vault = vault
        self.namespace = namespace

    # Owners and API keys.

    async def create_owner(self, body: OwnerCreate) -> OwnerCreated:
        return await create_owner(self.pool, body)

    async def create_key(self, owner_id: UUID, scope: UUID | None) -> ApiKeyCreated:
        await self.get_owner(owner_id, scope)
        return await in_transaction(self.pool, lambda conn: _new_key(conn, owner_id))

    async def revoke_key(self, key_id: UUID, scope: UUID | None) -> None:
        row = await self.pool.fetchrow("SELECT owner_id FROM api_keys WHERE key_id = $1", key_id)
        _in_scope(row, scope, f"API key {key_id}")
        await self.pool.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE key_id = $1 AND revoked_at IS NULL", key_id
        )

    async def principal(self, api_key: str) -> Principal | None:
        row = await self.pool.fetchrow(
            """SELECT k.key_id, o.owner_id, o.role, o.tier FROM api_keys k JOIN owners o USING (owner_id)
               WHERE k.key_hash = $1 AND k.revoked_at IS NULL""",
            hash_api_key(api_key),
        )
        if row is None:
            return None
        return Principal(
            owner_id=row["owner_id"], key_id=row["key_id"], role=Role(row["role"]), tier=Tier(row["tier"])
        )

    async def list_owners(self) -> list[Owner]:
        rows = await self.pool.fetch(f"SELECT {_OWNER_COLUMNS} FROM owners ORDER BY created_at, owner_id")
        return [_owner(row) for row in rows]

    async def get_owner(self, owner_id: UUID, scope: UUID | None) -> Owner:
        if scope is not None and scope != owner_id:
            raise NotFound(f"owner {owner_id} not found")
        row = await self.pool.fetchrow(f"SELECT {_OWNER_COLUMNS} FROM owners WHERE owner_id = $1", owner_id)
        if row is None:
            raise NotFound(f"owner {owner_id} not found")
        return _owner(row)

    async def update_owner(self, owner_id: UUID, body: OwnerUpdate) -> Owner:
        """A tier change is part of every routing record of the owner's deployments: they are restaged."""

        async def work(conn: asyncpg.Connection) -> Owner:
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
                await self._pause_beyond_tier(conn, owner_id, TIERS[Tier(row["tier"])])
                await stage_routing(conn, await self._owner_keys(conn, owner_id), self.namespace)
            return _owner(row)

        return await in_transaction(self.pool, work)

    async def _pause_beyond_tier(self, conn: asyncpg.Connection, owner_id: UUID, limits: TierLimits) -> None:
        """After a tier change, the deployments of agents the tier does not cover are paused: agents using
        tools or features it lacks, and the newest agents past its slots. The owner changes or deletes
        agents, then resumes the deployments (resuming checks the tier again)."""
        rows = await conn.fetch(
            f"""SELECT {_AGENT_COLUMNS} FROM agent_configurations WHERE owner_id = $1
                ORDER BY created_at, config_id""",
            owner_id,
        )
        beyond = [
            row["agent_id"]
            for index, row in enumerate(rows)
            if not _within_tier(limits, _agent(row).config, agents=index)
        ]
        await conn.execute(
            """UPDATE agent_deployments SET status = 'paused', updated_at = now()
               WHERE config_id = ANY($1::uuid[]) AND status = 'active'""",
            beyond,
        )

    async def delete_owner(self, owner_id: UUID) -> None:
        """Erasure: the owner and everything they own; their deployments leave every routing record."""

        async def work(conn: asyncpg.Connection) -> None:
            if await conn.fetchval("SELECT 1 FROM owners WHERE owner_id = $1 FOR UPDATE", owner_id) is None:
                raise NotFound(f"owner {owner_id} not found")
            keys = await self._owner_keys(conn, owner_id)
            await conn.execute(
                """DELETE FROM agent_deployments WHERE config_id IN
                   (SELECT config_id FROM agent_configurations WHERE owner_id = $1)""",
                owner_id,
            )
            await conn.execute("DELETE FROM owners WHERE owner_id = $1", owner_id)
            await stage_routing(conn, keys, self.namespace)

        await in_transaction(self.pool, work)

    async def _owner_keys(self, conn: asyncpg.Connection, owner_id: UUID) -> set[str]:
        rows = await conn.fetch(
            f"SELECT {DEPLOYMENT_COLUMNS} FROM {DEPLOYMENT_FROM} WHERE c.owner_id = $1", owner_id
        )
        return {key for row in rows for key in keys_of(deployment_of(row))}

    # Agents.

    async def _lock_owner_tier(self, conn: asyncpg.Connection, owner_id: UUID, *, exclusive: bool) -> Tier:
        lock = "FOR UPDATE" if exclusive else "FOR SHARE"
        tier = await conn.fetchval(f"SELECT tier FROM owners WHERE owner_id = $1 {lock}", owner_id)
        if tier is None:
            raise NotFound(f"owner {owner_id} not found")
        return Tier(tier)

    async def _insert_agent(
        self, conn: asyncpg.Connection, owner_id: UUID, config: AgentConfig, stored: StoredImport | None
    ) -> Agent:
        # The owner row lock (exclusive) serialises this owner's creations, so the slot count holds.
        limits = TIERS[await self._lock_owner_tier(conn, owner_id, exclusive=True)]
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

    async def create_agent(
        self, owner_id: UUID, config: AgentConfig, stored: StoredImport | None = None
    ) -> Agent:
        return await in_transaction(
            self.pool, lambda conn: self._insert_agent(conn, owner_id, config, stored)
        )

    async def list_agents(self, owner_id: UUID) -> list[Agent]:
        rows = await self.pool.fetch(
            f"""SELECT {_AGENT_COLUMNS} FROM agent_configurations WHERE owner_id = $1
                ORDER BY created_at, config_id""",
            owner_id,
        )
        return [_agent(row) for row in rows]

    async def get_agent(self, agent_id: UUID, scope: UUID | None) -> Agent:
        row = await self.pool.fetchrow(
            f"SELECT {_AGENT_COLUMNS} FROM agent_configurations WHERE config_id = $1", agent_id
        )
        return _agent(_in_scope(row, scope, f"agent {agent_id}"))

    async def stored_import(self, agent_id: UUID, scope: UUID | None) -> tuple[Agent, StoredImport | None]:
        row = await self.pool.fetchrow(
            f"""SELECT {_AGENT_COLUMNS}, import_extensions, import_image FROM agent_configurations
                WHERE config_id = $1""",
            agent_id,
        )
        row = _in_scope(row, scope, f"agent {agent_id}")
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

    async def _lock_agent(
        self, conn: asyncpg.Connection, agent_id: UUID, scope: UUID | None
    ) -> tuple[asyncpg.Record, Tier]:
        """The agent row, locked after its owner's (shared), and the owner's tier."""
        owner_id = await conn.fetchval(
            "SELECT owner_id FROM agent_configurations WHERE config_id = $1", agent_id
        )
        if owner_id is None or (scope is not None and owner_id != scope):
            raise NotFound(f"agent {agent_id} not found")
        tier = await self._lock_owner_tier(conn, owner_id, exclusive=False)
        row = await conn.fetchrow(
            f"SELECT {_AGENT_COLUMNS} FROM agent_configurations WHERE config_id = $1 FOR UPDATE", agent_id
        )
        return _in_scope(row, scope, f"agent {agent_id}"), tier

    async def _agent_keys(self, conn: asyncpg.Connection, agent_id: UUID) -> set[str]:
        rows = await conn.fetch(
            f"SELECT {DEPLOYMENT_COLUMNS} FROM {DEPLOYMENT_FROM} WHERE d.config_id = $1", agent_id
        )
        return {key for row in rows for key in keys_of(deployment_of(row))}

    async def update_agent(self, agent_id: UUID, scope: UUID | None, config: AgentConfig) -> Agent:
        async def work(conn: asyncpg.Connection) -> Agent:
            _, tier = await self._lock_agent(conn, agent_id, scope)
            check_config(TIERS[tier], config, stock_personalities())
            row = await conn.fetchrow(
                f"""UPDATE agent_configurations SET config = $2, agent_name = $3, updated_at = now()
                    WHERE config_id = $1 RETURNING {_AGENT_COLUMNS}""",
                agent_id,
                config.model_dump(mode="json"),
                config.name,
            )
            await stage_routing(conn, await self._agent_keys(conn, agent_id), self.namespace)
            return _agent(row)

        return await in_transaction(self.pool, work)

    async def delete_agent(self, agent_id: UUID, scope: UUID | None) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            await self._lock_agent(conn, agent_id, scope)
            keys = await self._agent_keys(conn, agent_id)
            await conn.execute("DELETE FROM agent_configurations WHERE config_id = $1", agent_id)
            await stage_routing(conn, keys, self.namespace)

        await in_transaction(self.pool, work)

    # Deployments.

    async def _usable_token(
        self, conn: asyncpg.Connection, token_id: UUID, owner_id: UUID, tier: Tier
    ) -> asyncpg.Record:
        row = await conn.fetchrow(
            "SELECT owner_id, tier, status FROM bot_tokens WHERE token_id = $1", token_id
        )
        row = _in_scope(row, owner_id, f"token {token_id}")
        if row["status"] == TokenStatus.revoked:
            raise Conflict(f"token {token_id} is revoked; add the bot's new token")
        check_token(TIERS[tier], TokenTier(row["tier"]))
        return row

    async def _insert_deployment(
        self, conn: asyncpg.Connection, agent: asyncpg.Record, tier: Tier, body: DeploymentCreate
    ) -> Deployment:
        await self._usable_token(conn, body.token_id, agent["owner_id"], tier)
        config = AgentConfig.model_validate(agent["config"])
        dm_enabled = config.channels.dm_enabled if body.dm_enabled is None else body.dm_enabled
        try:
            async with conn.transaction():
                deployment_id = await conn.fetchval(
                    """INSERT INTO agent_deployments (config_id, guild_id, token_id, text_channels,
                                                      voice_channels,
                                                      dm_enabled, status)
                       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING deployment_id""",
                    agent["agent_id"],
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
        deployment = await self._deployment(conn, deployment_id)
        await stage_routing(conn, keys_of(deployment), self.namespace)
        return deployment

    async def deploy(self, agent_id: UUID, scope: UUID | None, body: DeploymentCreate) -> Deployment:
        async def work(conn: asyncpg.Connection) -> Deployment:
            agent, tier = await self._lock_agent(conn, agent_id, scope)
            return await self._insert_deployment(conn, agent, tier, body)

        return await in_transaction(self.pool, work)

    async def _deployment(self, conn: asyncpg.Connection | asyncpg.Pool, deployment_id: UUID) -> Deployment:
        row = await conn.fetchrow(
            f"SELECT {DEPLOYMENT_COLUMNS} FROM {DEPLOYMENT_FROM} WHERE d.deployment_id = $1", deployment_id
        )
        if row is None:
            raise NotFound(f"deployment {deployment_id} not found")
        return deployment_of(row)

    async def list_deployments(self, owner_id: UUID, agent_id: UUID | None = None) -> list[Deployment]:
        rows = await self.pool.fetch(
            f"""SELECT {DEPLOYMENT_COLUMNS} FROM {DEPLOYMENT_FROM}
                WHERE c.owner_id = $1 AND ($2::uuid IS NULL OR d.config_id = $2)
                ORDER BY d.deployed_at, d.deployment_id""",
            owner_id,
            agent_id,
        )
        return [deployment_of(row) for row in rows]

    async def get_deployment(self, deployment_id: UUID, scope: UUID | None) -> Deployment:
        deployment = await self._deployment(self.pool, deployment_id)
        if scope is not None and deployment.owner_id != scope:
            raise NotFound(f"deployment {deployment_id} not found")
        return deployment

    async def _lock_deployment(
        self, conn: asyncpg.Connection, deployment_id: UUID, scope: UUID | None
    ) -> tuple[asyncpg.Record, Tier, Deployment]:
        agent_id = await conn.fetchval(
            "SELECT config_id FROM agent_deployments WHERE deployment_id = $1", deployment_id
        )
        if agent_id is None:
            raise NotFound(f"deployment {deployment_id} not found")
        try:
            agent, tier = await self._lock_agent(conn, agent_id, scope)
        except NotFound:
            raise NotFound(f"deployment {deployment_id} not found") from None
        return agent, tier, await self._deployment(conn, deployment_id)

    async def update_deployment(
        self, deployment_id: UUID, scope: UUID | None, body: DeploymentUpdate
    ) -> Deployment:
        async def work(conn: asyncpg.Connection) -> Deployment:
            agent, tier, before = await self._lock_deployment(conn, deployment_id, scope)
            if body.token_id is not None and body.token_id != before.token_id:
                await self._usable_token(conn, body.token_id, agent["owner_id"], tier)
            if body.status is DeploymentStatus.active and before.status is not DeploymentStatus.active:
                # A deployment paused by a downgrade resumes only once its agent fits the tier.
                limits = TIERS[tier]
                check_config(limits, _agent(agent).config, stock_personalities())
                check_slots(limits, await self._older_agents(conn, agent["owner_id"], agent["agent_id"]))
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
            after = await self._deployment(conn, deployment_id)
            await stage_routing(conn, keys_of(before) | keys_of(after), self.namespace)
            return after

        return await in_transaction(self.pool, work)

    async def _older_agents(self, conn: asyncpg.Connection, owner_id: UUID, agent_id: UUID) -> int:
        """How many of the owner's agents were created before this one (they take the slots first)."""
        count: int = await conn.fetchval(
            """SELECT count(*) FROM agent_configurations a, agent_configurations this
               WHERE this.config_id = $2 AND a.owner_id = $1
                 AND (a.created_at, a.config_id) < (this.created_at, this.config_id)""",
            owner_id,
            agent_id,
        )
        return count

    async def undeploy(self, deployment_id: UUID, scope: UUID | None) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            _, _, before = await self._lock_deployment(conn, deployment_id, scope)
            await conn.execute("DELETE FROM agent_deployments WHERE deployment_id = $1", deployment_id)
            await stage_routing(conn, keys_of(before), self.namespace)

        await in_transaction(self.pool, work)

    async def deploy_preset(self, owner_id: UUID, preset: Preset, body: PresetDeploy) -> PresetDeployed:
        """A preset becomes the owner's own agent and is deployed, in one transaction."""
        config = preset.config
        if body.name is not None:
            config = config.model_copy(update={"name": body.name})

        async def work(conn: asyncpg.Connection) -> PresetDeployed:
            agent = await self._insert_agent(conn, owner_id, config, None)
            agent_row, tier = await self._lock_agent(conn, agent.agent_id, owner_id)
            deployment = await self._insert_deployment(
                conn,
                agent_row,
                tier,
                DeploymentCreate(
                    guild_id=body.guild_id,
                    token_id=body.token_id,
                    text_channels=body.text_channels,
                    voice_channels=body.voice_channels,
                    dm_enabled=body.dm_enabled,
                ),
            )
            return PresetDeployed(agent=agent, deployment=deployment)

        return await in_transaction(self.pool, work)

    # Tokens.

    async def list_tokens(self, owner_id: UUID) -> list[BotTokenState]:
        rows = await self.pool.fetch(
            f"SELECT {TOKEN_STATE_COLUMNS} FROM bot_tokens WHERE owner_id = $1 ORDER BY created_at, token_id",
            owner_id,
        )
        return [token_state(row) for row in rows]

    async def get_token(self, token_id: UUID, scope: UUID | None) -> BotTokenState:
        row = await self.pool.fetchrow(
            f"SELECT {TOKEN_STATE_COLUMNS} FROM bot_tokens WHERE token_id = $1", token_id
        )
        return token_state(_in_scope(row, scope, f"token {token_id}"))

    async def revoke_token(self, token_id: UUID, scope: UUID | None, actor: str) -> BotTokenState:
        """Revoke, announce on tokens.health and move its deployments to another of the owner's bots."""
        await self.get_token(token_id, scope)

        async def work(conn: asyncpg.Connection) -> None:
            event = await self.vault.revoke_in(
                conn, token_id, reason="manual", actor=actor, detail="revoked by its owner"
            )
            if event is not None:
                await self._reassign(conn, event)

        await in_transaction(self.pool, work)
        return await self.get_token(token_id, scope)

    async def apply_health_event(self, event: TokenHealthEvent) -> None:
        """Move or restore a token's deployments after an event from tokens.health (a runner's 4004, a
        health check); see `_reassign`."""
        await in_transaction(self.pool, lambda conn: self._reassign(conn, event))

    async def _reassign(self, conn: asyncpg.Connection, event: TokenHealthEvent) -> None:
        """A dead token's deployments move to another healthy bot of the owner that the tier allows and that
        is not in the guild yet; without one they are marked error. A recovered token's error deployments
        come back. The owner hears about it on owner.notifications."""
        current = await conn.fetchval(
            "SELECT status FROM bot_tokens WHERE token_id = $1 FOR UPDATE", event.token_id
        )
        if current != event.status:
            return  # an old event: the token has changed since (e.g. re-added after a reset)
        if event.status is TokenStatus.active:
            wanted = "d.status = 'error'"
        elif event.status in (TokenStatus.revoked, TokenStatus.failed):
            wanted = "d.status <> 'error'"
        else:
            return
        # Only deployments this event still concerns: applying an event twice changes nothing.
        query = f"""SELECT {DEPLOYMENT_COLUMNS} FROM {DEPLOYMENT_FROM} WHERE d.token_id = $1 AND {wanted}
                    ORDER BY d.deployment_id"""
        rows = await conn.fetch(query, event.token_id)
        if not rows:
            return
        # A token and the agents deployed through it belong to one owner.
        owner_id = rows[0]["owner_id"]
        tier = await self._lock_owner_tier(conn, owner_id, exclusive=False)
        await conn.execute(
            """SELECT 1 FROM agent_configurations WHERE config_id = ANY($1::uuid[])
               ORDER BY config_id FOR UPDATE""",
            sorted({row["agent_id"] for row in rows}),
        )
        rows = await conn.fetch(query, event.token_id)
        keys: set[str] = set()
        moved = errored = 0
        for row in rows:
            deployment = deployment_of(row)
            keys |= keys_of(deployment)
            if event.status is TokenStatus.active:
                await conn.execute(
                    _SET_DEPLOYMENT_STATUS,
                    "active",
                    deployment.deployment_id,
                )
                continue
            replacement = await self._replacement_token(conn, deployment, tier)
            if replacement is None:
                errored += 1
                await conn.execute(
                    _SET_DEPLOYMENT_STATUS,
                    "error",
                    deployment.deployment_id,
                )
            else:
                moved += 1
                await conn.execute(
                    "UPDATE agent_deployments SET token_id = $2, updated_at = now() WHERE deployment_id = $1",
                    deployment.deployment_id,
                    replacement["token_id"],
                )
                if deployment.dm_enabled:
                    keys.add(dm_key(replacement["bot_user_id"]))
        await stage_routing(conn, keys, self.namespace)
        if moved or errored:
            kind = "token_revoked" if event.status is TokenStatus.revoked else "token_failed"
            notification = OwnerNotification(
                notification_id=str(uuid4()),
                owner_id=owner_id,
                kind=kind,
                message=f"bot {event.bot_user_id} is {event.status.value}: {moved} deployment(s) moved to "
                f"another bot, {errored} stopped",
                token_id=event.token_id,
            )
            await stage(conn, OWNER_NOTIFICATIONS, self.namespace, str(owner_id), notification)

    async def _replacement_token(
        self, conn: asyncpg.Connection, deployment: Deployment, tier: Tier
    ) -> asyncpg.Record | None:
        candidates = await conn.fetch(
            """SELECT t.token_id, t.bot_user_id, t.tier FROM bot_tokens t
               WHERE t.owner_id = $1 AND t.status = 'active' AND t.token_id <> $2
                 AND NOT EXISTS (SELECT 1 FROM agent_deployments x
                                 WHERE x.token_id = t.token_id AND x.guild_id = $3)
               ORDER BY t.failure_count, t.guilds_count DESC, t.created_at""",
            deployment.owner_id,
            deployment.token_id,
            deployment.guild_id,
        )
        limits = TIERS[tier]
        return next((row for row in candidates if limits.allows_token(TokenTier(row["tier"]))), None)

    # Usage and operations.

    async def usage(self, owner_id: UUID, tier: Tier, live_ai_calls: int) -> Usage:
        """`live_ai_calls`: the inference workers' count this month (Redis), ahead of the persisted one."""
        period = current_period()
        ai_calls = await self.pool.fetchval(
            "SELECT ai_calls FROM usage_counters WHERE owner_id = $1 AND period = $2", owner_id, period
        )
        agents = await self.pool.fetchval(
            "SELECT count(*) FROM agent_configurations WHERE owner_id = $1", owner_id
        )
        limits = TIERS[tier]
        return Usage(
            period=period,
            ai_calls=max(ai_calls or 0, live_ai_calls),
            monthly_ai_calls=limits.monthly_ai_calls,
            agents=agents,
            agent_slots=limits.agent_slots,
        )

    async def record_usage(self, period: str, counts: dict[UUID, int]) -> None:
        """Persist AI-call counts of `period`; a count never goes down (a late, lower reading is ignored).
        Owners deleted meanwhile are skipped."""
        await self.pool.execute(
            """INSERT INTO usage_counters (owner_id, period, ai_calls)
               SELECT c.owner_id, $1, c.ai_calls
               FROM unnest($2::uuid[], $3::bigint[]) AS c (owner_id, ai_calls)
               JOIN owners o ON o.owner_id = c.owner_id
               ON CONFLICT (owner_id, period)
               DO UPDATE SET ai_calls = GREATEST(usage_counters.ai_calls, EXCLUDED.ai_calls)""",
            period,
            list(counts),
            list(counts.values()),
        )

    async def outbox_status(self) -> OutboxStatus:
        oldest = await self.pool.fetchval("SELECT min(created_at) FROM outbox WHERE published_at IS NULL")
        return OutboxStatus(unpublished=await unpublished_count(self.pool), oldest_unpublished_at=oldest)
