"""The operators' view of the outbox: how far the relay is behind."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from api.schemas import OutboxStatus
from streams.outbox import unpublished_count


@dataclass(frozen=True)
class Outbox:
    pool: asyncpg.Pool

    async def status(self) -> OutboxStatus:
        oldest = await self.pool.fetchval("SELECT min(created_at) FROM outbox WHERE published_at IS NULL")
        return OutboxStatus(unpublished=await unpublished_count(self.pool), oldest_unpublished_at=oldest)
