"""The access export as a background job: `export_user_data` reads every store (minutes on a large
platform), so a request records a `DataExport` (PostgreSQL `data_exports`, migration 0010), runs it in a task
of this process and keeps the result for the status resource to give. A result is a copy of everything held
about the person: it is kept EXPORT_KEPT after the request, and the person's erasure deletes it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg

from models.erasure import DataExport, ExportStatus, UserDataExport
from ops.erasure import RUNNING_AT_ONCE, ErasureStores, export_user_data
from settings.runtime import cancel_until_done

log = logging.getLogger(__name__)

EXPORT_KEPT = timedelta(days=1)


class ExportLedger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def request(self, user_id: str, actor: str) -> DataExport:
        """A new running export; the expired ones go first."""
        export_id = uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM data_exports WHERE requested_at < now() - $1::interval", EXPORT_KEPT
            )
            await conn.execute(
                "INSERT INTO data_exports (export_id, user_id, requested_by) VALUES ($1, $2, $3)",
                export_id,
                user_id,
                actor,
            )
        export = await self.get(export_id)
        assert export is not None
        return export

    async def get(self, export_id: UUID) -> DataExport | None:
        """The export; None when there is none, or it expired."""
        row = await self.pool.fetchrow(
            "SELECT * FROM data_exports WHERE export_id = $1 AND requested_at >= now() - $2::interval",
            export_id,
            EXPORT_KEPT,
        )
        if row is None:
            return None
        status = ExportStatus.running
        if row["error"] is not None:
            status = ExportStatus.failed
        elif row["finished_at"] is not None:
            status = ExportStatus.done
        return DataExport(
            export_id=UUID(str(row["export_id"])),
            user_id=row["user_id"],
            status=status,
            requested_by=row["requested_by"],
            requested_at=row["requested_at"],
            finished_at=row["finished_at"],
            error=row["error"],
            data=UserDataExport.model_validate_json(row["data"]) if row["data"] is not None else None,
        )

    async def finish(self, export_id: UUID, data: UserDataExport) -> None:
        await self.pool.execute(
            "UPDATE data_exports SET finished_at = now(), data = $2::jsonb WHERE export_id = $1",
            export_id,
            data.model_dump_json(),
        )

    async def fail(self, export_id: UUID, error: str) -> None:
        await self.pool.execute(
            "UPDATE data_exports SET finished_at = now(), error = $2 WHERE export_id = $1", export_id, error
        )


class ExportRunner:
    """Runs access exports in the background of a long-lived process (the API), a few at a time. An export
    that fails records why; asking again starts a new one."""

    def __init__(self, stores: ErasureStores) -> None:
        self.stores = stores
        self.ledger = ExportLedger(stores.pool)
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(RUNNING_AT_ONCE)

    async def request(self, user_id: str, actor: str) -> DataExport:
        export = await self.ledger.request(user_id, actor)
        task = asyncio.create_task(self._run(export, actor), name=f"export-{export.export_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return export

    async def _run(self, export: DataExport, actor: str) -> None:
        try:
            async with self._slots:
                data = await export_user_data(self.stores, export.user_id, actor)
        except Exception as exc:
            log.exception("export %s failed", export.export_id)
            await self.ledger.fail(export.export_id, f"{type(exc).__name__}: {exc}"[:500])
        else:
            await self.ledger.finish(export.export_id, data)

    async def close(self) -> None:
        await cancel_until_done(self._tasks)
