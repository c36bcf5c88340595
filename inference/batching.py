"""Redis commands of many requests in one round trip.

Records arrive in batches and their answers come back in bursts, so many requests reach the same Redis step
(the ledger's claim, its answer) at about the same time. Commands queue, and one sender writes the queue at
once, reads its replies, then sends what queued meanwhile: one write and one read for the lot, instead of one
each per request. The busier the worker, the larger the batches; an idle worker sends a command at once.

The sender holds one connection of the client's pool while it lives, and writes on it directly: a redis-py
pipeline per batch (a connection checked out and back, its retry wrapper, its own state built and reset)
cost twice the CPU of the round trip itself, about 140 µs against 60 µs. A connection that fails is closed,
and connects afresh for the next batch.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

Command = tuple[Any, ...]


class RedisBatcher:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._queued: list[tuple[Command, asyncio.Future[Any]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._connection: AbstractConnection | None = None

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
            replies = await self._round_trip([command for command, _ in batch])
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

    async def _round_trip(self, commands: list[Command]) -> list[Any]:
        """The replies to `commands` (an error reply as its exception), written at once on the held
        connection, parsed as the client parses them."""
        if self._connection is None:
            self._connection = await self.redis.connection_pool.get_connection()
        connection = self._connection
        try:
            await connection.send_packed_command(connection.pack_commands(commands), check_health=False)
            replies: list[Any] = []
            for command in commands:
                try:
                    replies.append(self._parsed(command, await connection.read_response()))
                except ResponseError as exc:  # read whole: the connection stays in step
                    replies.append(exc)
            return replies
        except BaseException:
            # Failed or cancelled mid-exchange: what the connection holds is unknown. It connects afresh when
            # next used.
            await connection.disconnect(nowait=True)
            raise

    def _parsed(self, command: Command, raw: Any) -> Any:
        callback = self.redis.response_callbacks.get(command[0])
        return raw if callback is None else callback(raw)
