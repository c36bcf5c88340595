"""Redis commands of many requests in one round trip.

Records arrive in batches and their answers come back in bursts, so many requests reach the same Redis step
(the ledger's claim, its answer) at about the same time. Commands queue, and one sender sends the queue as
one pipeline, waits for its replies, then sends what queued meanwhile: one connection checkout, one write
and one read for the lot, instead of one each per request (the checkouts alone took a tenth of the worker's
CPU). The busier the worker, the larger the batches; an idle worker sends a command at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

Command = tuple[Any, ...]


class RedisBatcher:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queued: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def execute(self, *command: Any) -> Any:
        """The reply to `command`, sent with the others queued; raises what Redis answered."""
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((command, reply))
        if self._sender is None:
            # Starts after the tasks already scheduled in this loop turn, so their commands go along.
            self._sender = asyncio.create_task(self._send_queued())
        return await reply

    async def _send_queued(self) -> None:
        batch: list[tuple[Command, asyncio.Future[Any]]] = []
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                await self._send(batch)
        finally:
            self._sender = None
            # Only when cancelled (shutdown): no sender is left for these.
            for _, reply in batch + self._queued:
                if not reply.done():
                    reply.cancel()
            self._queued = []

    async def _send(self, batch: list[tuple[Command, asyncio.Future[Any]]]) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipeline:
                for command, _ in batch:
                    pipeline.execute_command(*command)
                replies = await pipeline.execute(raise_on_error=False)
        except Exception as exc:  # RedisError, OSError: every caller of the batch gets it
            for _, reply in batch:
                if not reply.done():
                    reply.set_exception(exc)
            return
        for (_, reply), value in zip(batch, replies, strict=True):
            if reply.done():  # the caller was cancelled
                continue
            if isinstance(value, Exception):
                reply.set_exception(value)
            else:
                reply.set_result(value)
