"""Owner notifications as the API keeps them: stored from `owner.notifications`, read newest first."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg

from models.operations import OwnerNotification

_COLUMNS = "notification_id, owner_id, kind, message, deployment_id, token_id, at"


@dataclass(frozen=True)
class Notifications:
    pool: asyncpg.Pool

    async def record(self, notification: OwnerNotification) -> None:
        """Store one notification; a redelivered one, or one of an owner deleted since, changes nothing."""
        await self.pool.execute(
            f"""INSERT INTO owner_notifications ({_COLUMNS})
                SELECT $1, owner_id, $3, $4, $5, $6, $7 FROM owners WHERE owner_id = $2
                ON CONFLICT (notification_id) DO NOTHING""",
            notification.notification_id,
            notification.owner_id,
            notification.kind,
            notification.message,
            notification.deployment_id,
            notification.token_id,
            notification.at,
        )

    async def newest(self, owner_id: UUID | None, limit: int) -> list[OwnerNotification]:
        """The latest `limit` notifications of one owner, or of every owner when `owner_id` is None."""
        rows = await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM owner_notifications
                WHERE $1::uuid IS NULL OR owner_id = $1
                ORDER BY at DESC, notification_id LIMIT $2""",
            owner_id,
            limit,
        )
        return [OwnerNotification.model_validate(dict(row)) for row in rows]
