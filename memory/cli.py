"""`deep memory`: run the writer, and list, search and delete an agent's or a user's memories."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar
from uuid import UUID

import redis.asyncio as aioredis
import typer
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from memory.embedding import BATCH_THREADS, Embedder
from memory.model import MemoryModel
from memory.recall import recall
from memory.store import MemoryStore, connect
from memory.writer import MemoryWriter
from models.agent import MemoryConfig
from models.memory import RecallQuery, StoredMemory
from settings import Settings, get_settings
from settings.runtime import settle_garbage_collector
from vault.user_keys import user_keys

memory_app = typer.Typer(no_args_is_help=True)
console = Console(highlight=False)
T = TypeVar("T")


async def _with_store(settings: Settings, use: Callable[[MemoryStore], Awaitable[T]]) -> T:
    client = connect(settings)
    await client.connect()
    try:
        store = MemoryStore(client)
        await store.ensure_collection()
        return await use(store)
    finally:
        await client.close()


async def serve_writer(settings: Settings, stop: asyncio.Event, *, instance_id: str | None = None) -> None:
    """Run the writer until `stop` is set; what it holds is written or left to redelivery."""
    settle_garbage_collector()
    # The writer embeds batches (a fetch's messages), recall single questions.
    embedder = Embedder.from_settings(settings, threads=BATCH_THREADS)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, client_id="deep-memory", acks="all"
    )
    model = MemoryModel.from_settings(settings)
    redis = aioredis.from_url(settings.redis_url)
    await producer.start()
    try:

        async def run(store: MemoryStore) -> None:
            async with user_keys(settings) as keys:
                writer = MemoryWriter(
                    store,
                    embedder,
                    bootstrap=settings.kafka_bootstrap,
                    namespace=settings.topic_namespace,
                    producer=producer,
                    keys=keys,
                    model=model,
                    instance_id=instance_id,
                    redis=redis,
                    retention_days=settings.retention.memories_days,
                    fetch=settings.bulk_fetch,
                )
                task = asyncio.create_task(writer.run())
                stopped = asyncio.create_task(stop.wait())
                await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
                writer.stop()
                stopped.cancel()
                await task

        await _with_store(settings, run)
    finally:
        await producer.stop()
        await redis.aclose()
        if model is not None:
            await model.close()


@memory_app.command("writer")
def writer_command(
    instance_id: str | None = typer.Option(
        None,
        help="Stable group instance id (static membership): a restart takes its partitions back at once."
        " Unique per writer; none joins dynamically.",
    ),
) -> None:
    """Turn what AI agents see and say into memories until Ctrl-C."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve_writer(settings, stop, instance_id=instance_id)

    asyncio.run(main())


def _show(memories: Sequence[StoredMemory]) -> None:
    table = Table("id", "at", "kind", "imp", "where", "author", "text")
    for memory in memories:
        r = memory.record
        where = f"guild {r.guild_id} #{r.channel_id}" if r.guild_id else f"DM {r.channel_id}"
        table.add_row(
            str(memory.id),
            f"{r.at:%Y-%m-%d %H:%M}",
            r.kind.value,
            str(r.importance),
            where,
            escape(r.author_name or r.author_id),
            escape(r.text),
        )
    console.print(table)


@memory_app.command("list")
def list_command(
    deployment: UUID = typer.Argument(..., help="The deployment whose memories to list."),
    author: str | None = typer.Option(None, help="Only memories of this Discord user id."),
) -> None:
    """An agent's memories (one deployment), or those of one user in it, oldest first."""
    _show(asyncio.run(_with_store(get_settings(), lambda store: store.listed(deployment, author_id=author))))


@memory_app.command("search")
def search_command(
    deployment: UUID = typer.Argument(..., help="The deployment to search."),
    text: str = typer.Argument(..., help="What to recall, as a message would say it."),
    guild: str | None = typer.Option(None, help="The guild asking; without it, a DM channel."),
    channel: str = typer.Option(..., help="The channel asking (a DM channel when --guild is not given)."),
) -> None:
    """What the agent would recall for a message in that channel, with the scores that chose it."""
    settings = get_settings()
    query = RecallQuery(
        deployment_id=deployment, guild_id=guild, channel_id=channel, text=text, at=datetime.now(UTC)
    )
    embedder = Embedder.from_settings(settings)
    recalled = asyncio.run(
        _with_store(settings, lambda store: recall(store, embedder, query, MemoryConfig()))
    )
    for memory in recalled:
        console.print(
            f"{memory.score:.2f} (recency {memory.recency:.2f}, importance {memory.importance:.2f}, "
            f"relevance {memory.relevance:.2f}) {escape(memory.record.text)}"
        )


@memory_app.command("delete")
def delete_command(
    deployment: UUID = typer.Argument(..., help="The deployment whose memories to delete."),
    ids: list[UUID] = typer.Option([], "--id", help="A memory to delete (repeatable)."),
    author: str | None = typer.Option(None, help="Delete every memory of this Discord user id."),
) -> None:
    """Delete memories by id, or all of one user's."""
    if not ids and author is None:
        raise typer.BadParameter("give --id or --author")

    async def delete(store: MemoryStore) -> int:
        chosen = list(ids)
        if author is not None:
            chosen += [m.id for m in await store.listed(deployment, author_id=author)]
        return await store.delete(deployment, chosen)

    console.print(f"deleted {asyncio.run(_with_store(get_settings(), delete))} memories")
