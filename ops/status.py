"""The control plane's status for `deep ops`: deployments and agents per status, tokens per tier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class DeploymentCount:
    status: str
    owner_tier: str
    deployments: int
    agents: int
    guilds: int


@dataclass(frozen=True)
class AgentStatus:
    deployments: tuple[DeploymentCount, ...]
    # Agent configurations per status (active, paused, suspended).
    agents: dict[str, int]


@dataclass(frozen=True)
class TokenCount:
    """Bot tokens of one tier and status. Counts only: the vault's columns are never read here."""

    tier: str
    status: str
    tokens: int
    guilds: int
    failures: int
    rate_limit_hits: int
    health_check_due: int
    last_validated: datetime | None


_DEPLOYMENTS_BY_STATUS = """
SELECT d.status, o.tier AS owner_tier, count(*) AS deployments,
       count(DISTINCT d.config_id) AS agents, count(DISTINCT d.guild_id) AS guilds
FROM agent_deployments d
JOIN agent_configurations c ON c.config_id = d.config_id
JOIN owners o ON o.owner_id = c.owner_id
GROUP BY d.status, o.tier
ORDER BY d.status, o.tier
"""
_AGENTS_BY_STATUS = "SELECT status, count(*) AS agents FROM agent_configurations GROUP BY status"
_TOKENS_BY_STATUS = """
SELECT tier, status, count(*) AS tokens, coalesce(sum(guilds_count), 0) AS guilds,
       coalesce(sum(failure_count), 0) AS failures, coalesce(sum(rate_limit_hits), 0) AS rate_limit_hits,
       count(*) FILTER (WHERE status <> 'revoked' AND next_health_check <= now()) AS health_check_due,
       max(last_validated) AS last_validated
FROM bot_tokens
GROUP BY tier, status
ORDER BY tier, status
"""


async def agent_status(dsn: str) -> AgentStatus:
    conn = await asyncpg.connect(dsn)
    try:
        deployments = await conn.fetch(_DEPLOYMENTS_BY_STATUS)
        agents = await conn.fetch(_AGENTS_BY_STATUS)
    finally:
        await conn.close()
    return AgentStatus(
        deployments=tuple(DeploymentCount(**dict(row)) for row in deployments),
        agents={row["status"]: row["agents"] for row in agents},
    )


async def token_status(dsn: str) -> list[TokenCount]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(_TOKENS_BY_STATUS)
    finally:
        await conn.close()
    return [TokenCount(**dict(row)) for row in rows]
