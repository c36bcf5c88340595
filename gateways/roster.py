"""Which bots the runners must connect: active tokens with at least one active deployment."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

# A degraded token still works (its health checks failed transiently); failed and revoked ones are left alone.
_ROSTER = """
SELECT DISTINCT ON (t.bot_user_id) t.token_id, t.bot_user_id, t.owner_id
FROM bot_tokens t
WHERE t.status IN ('active', 'degraded') AND t.bot_user_id IS NOT NULL
  AND EXISTS (
      SELECT 1 FROM agent_deployments d JOIN agent_configurations c ON c.config_id = d.config_id
      WHERE d.token_id = t.token_id AND d.status = 'active' AND c.status = 'active')
  {bot_filter}
ORDER BY t.bot_user_id, t.updated_at DESC
"""
ROSTER_SQL = _ROSTER.format(bot_filter="")
ROSTER_BOT_SQL = _ROSTER.format(bot_filter="AND t.bot_user_id = $1")


@dataclass(frozen=True)
class RosterEntry:
    bot_id: str
    token_id: UUID
    owner_id: UUID


def _entry(row: asyncpg.Record) -> RosterEntry:
    return RosterEntry(bot_id=row["bot_user_id"], token_id=row["token_id"], owner_id=row["owner_id"])


async def load_roster(pool: asyncpg.Pool) -> dict[str, RosterEntry]:
    return {entry.bot_id: entry for entry in map(_entry, await pool.fetch(ROSTER_SQL))}


async def roster_entry(pool: asyncpg.Pool, bot_id: str) -> RosterEntry | None:
    row = await pool.fetchrow(ROSTER_BOT_SQL, bot_id)
    return _entry(row) if row is not None else None
