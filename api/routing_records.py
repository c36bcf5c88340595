"""Routing records: what processors hold per guild (and per bot for DMs), rebuilt on every change.

`stage_routing` runs inside the transaction of the change. For each affected key it bumps the key's
version row first: that row lock makes concurrent writers of one key take turns, so the record built
next sees every committed deployment, and versions and outbox ids grow together.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from models.agent import AgentConfig, message_content_features
from models.deployments import DeployedAgent, Deployment, DeploymentStatus, RoutingRecord
from models.events import DM_PREFIX, partition_key
from models.tiers import Tier
from streams.catalog import AGENT_DEPLOYMENTS
from streams.outbox import stage

MAX_DEPLOYMENTS_PER_KEY = RoutingRecord.model_fields["deployments"].metadata[0].max_length

DEPLOYMENT_COLUMNS = """d.deployment_id, d.config_id AS agent_id, c.owner_id, d.guild_id,
    t.bot_user_id AS bot_id,
    d.token_id, d.text_channels, d.voice_channels, d.dm_enabled, d.status, d.deployed_at, t.message_content,
    c.config"""
DEPLOYMENT_FROM = """agent_deployments d JOIN agent_configurations c USING (config_id)
    JOIN bot_tokens t ON t.token_id = d.token_id"""

_RECORD_QUERY = f"""
    SELECT {DEPLOYMENT_COLUMNS}, o.tier
    FROM {DEPLOYMENT_FROM} JOIN owners o ON o.owner_id = c.owner_id
    WHERE {{where}}
    ORDER BY d.deployed_at, d.deployment_id
"""
_GUILD_RECORD = _RECORD_QUERY.format(where="d.guild_id = $1")
_DM_RECORD = _RECORD_QUERY.format(where="t.bot_user_id = $1 AND d.dm_enabled")
_BUMP_VERSION = """
    INSERT INTO routing_versions (key, version) VALUES ($1, 1)
    ON CONFLICT (key) DO UPDATE SET version = routing_versions.version + 1
    RETURNING version
"""


class RoutingLimitExceeded(Exception):
    pass


def dm_key(bot_id: str) -> str:
    return partition_key(None, bot_id)


def keys_of(deployment: Deployment) -> set[str]:
    """The routing keys whose records contain this deployment."""
    keys = {deployment.guild_id}
    if deployment.dm_enabled:
        keys.add(dm_key(deployment.bot_id))
    return keys


def deployment_of(row: asyncpg.Record) -> Deployment:
    message_content: bool | None = row["message_content"]
    needs = (
        []
        if message_content is not False
        else message_content_features(AgentConfig.model_validate(row["config"]))
    )
    return Deployment(
        deployment_id=row["deployment_id"],
        agent_id=row["agent_id"],
        owner_id=row["owner_id"],
        guild_id=row["guild_id"],
        bot_id=row["bot_id"],
        token_id=row["token_id"],
        text_channels=list(row["text_channels"]),
        voice_channels=list(row["voice_channels"]),
        dm_enabled=row["dm_enabled"],
        status=DeploymentStatus(row["status"]),
        deployed_at=row["deployed_at"],
        message_content=message_content,
        needs_message_content=needs,
    )


async def build_record(conn: asyncpg.Connection, key: str, version: int) -> RoutingRecord:
    if key.startswith(DM_PREFIX):
        rows = await conn.fetch(_DM_RECORD, key.removeprefix(DM_PREFIX))
    else:
        rows = await conn.fetch(_GUILD_RECORD, key)
    if len(rows) > MAX_DEPLOYMENTS_PER_KEY:
        raise RoutingLimitExceeded(
            f"{key} would have {len(rows)} deployments, over {MAX_DEPLOYMENTS_PER_KEY}"
        )
    deployed = [
        DeployedAgent(
            deployment=deployment_of(row),
            agent=AgentConfig.model_validate(row["config"]),
            owner_tier=Tier(row["tier"]),
        )
        for row in rows
    ]
    return RoutingRecord(key=key, deployments=deployed, version=version)


async def stage_routing(conn: asyncpg.Connection, keys: Iterable[str], namespace: str) -> None:
    """Queue the current record of every key for `agent.deployments`, in the caller's transaction.
    Keys are locked in sorted order, so two transactions never wait on each other's keys in a cycle."""
    for key in sorted(set(keys)):
        version = await conn.fetchval(_BUMP_VERSION, key)
        await stage(conn, AGENT_DEPLOYMENTS, namespace, key, await build_record(conn, key, version))
