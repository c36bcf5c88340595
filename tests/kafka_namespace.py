"""A topic namespace of a test's own: the given topics are created in it and everything under it is deleted
afterwards (every partition costs the broker open files)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import uuid4

from streams.admin import apply_catalog, delete_namespace
from streams.catalog import CATALOG, TopicSpec


@asynccontextmanager
async def temporary_namespace(bootstrap: str, topics: tuple[TopicSpec, ...] = CATALOG) -> AsyncIterator[str]:
    namespace = f"t{uuid4().hex[:8]}."
    await apply_catalog(bootstrap, namespace, topics)
    try:
        yield namespace
    finally:
        await delete_namespace(bootstrap, namespace)
