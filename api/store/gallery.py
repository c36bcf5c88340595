"""The gallery: published cards, searched by anyone signed in, unpublished by their author."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from api.schemas import GalleryCard, GalleryEntry, GalleryPage
from api.store.shared import NotFound

PAGE_SIZE = 20
_COLUMNS = "gallery_id, author_id, name, description, published_at"


def _like(text: str) -> str:
    """`text` as a literal ILIKE pattern (its % and _ match themselves)."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _entry(row: asyncpg.Record, caller: UUID) -> GalleryEntry:
    return GalleryEntry(
        gallery_id=row["gallery_id"],
        name=row["name"],
        description=row["description"],
        published_at=row["published_at"],
        by_you=row["author_id"] == caller,
    )


@dataclass(frozen=True)
class Gallery:
    pool: asyncpg.Pool

    async def publish(
        self, author_id: UUID, agent_id: UUID, name: str, description: str, card: dict[str, Any]
    ) -> GalleryCard:
        """Publishing an agent again replaces its card (and keeps its gallery id)."""
        row = await self.pool.fetchrow(
            f"""INSERT INTO gallery_cards (author_id, agent_id, name, description, card)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (agent_id) DO UPDATE SET name = excluded.name, description = excluded.description,
                    card = excluded.card, published_at = now()
                RETURNING {_COLUMNS}, card""",
            author_id,
            agent_id,
            name,
            description,
            card,
        )
        return GalleryCard(**_entry(row, author_id).model_dump(), card=row["card"])

    async def search(self, caller: UUID, query: str, page: int) -> GalleryPage:
        pattern = _like(query)
        where = "name ILIKE $1 OR description ILIKE $1"
        rows = await self.pool.fetch(
            f"""SELECT {_COLUMNS} FROM gallery_cards WHERE {where}
                ORDER BY published_at DESC, gallery_id LIMIT $2 OFFSET $3""",
            pattern,
            PAGE_SIZE,
            (page - 1) * PAGE_SIZE,
        )
        total = await self.pool.fetchval(f"SELECT count(*) FROM gallery_cards WHERE {where}", pattern)
        return GalleryPage(
            items=[_entry(row, caller) for row in rows], page=page, page_size=PAGE_SIZE, total=total
        )

    async def get(self, gallery_id: UUID, caller: UUID) -> GalleryCard:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS}, card FROM gallery_cards WHERE gallery_id = $1", gallery_id
        )
        if row is None:
            raise NotFound(f"gallery card {gallery_id} not found")
        return GalleryCard(**_entry(row, caller).model_dump(), card=row["card"])

    async def author(self, gallery_id: UUID) -> UUID:
        author = await self.pool.fetchval(
            "SELECT author_id FROM gallery_cards WHERE gallery_id = $1", gallery_id
        )
        if author is None:
            raise NotFound(f"gallery card {gallery_id} not found")
        return UUID(str(author))

    async def unpublish(self, gallery_id: UUID) -> None:
        await self.pool.execute("DELETE FROM gallery_cards WHERE gallery_id = $1", gallery_id)
