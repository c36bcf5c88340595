"""Gateway sessions in Redis, so a bot that moves to another runner, or whose runner restarted, RESUMEs.

A RESUME costs nothing; an IDENTIFY spends one of the token's 1,000 daily session starts.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

REDIS_CONNECTIONS = 32


def connect_redis(url: str) -> aioredis.Redis:
    """A client whose callers queue for a connection: thousands of shards checkpointing or identifying at once
    would otherwise exceed the pool and fail."""
    return aioredis.Redis(
        connection_pool=aioredis.BlockingConnectionPool.from_url(
            url, max_connections=REDIS_CONNECTIONS, timeout=None
        )
    )


# Discord forgets a disconnected session within minutes; an older record only costs one failed RESUME.
SESSION_TTL_S = 24 * 3600


class GatewaySession(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    session_id: str = Field(min_length=1)
    # The last sequence whose dispatch Kafka acknowledged: a RESUME replays everything after it.
    seq: int = Field(ge=0)
    resume_gateway_url: str = Field(min_length=1)
    # The IDENTIFY this session began with (gateways/dispatch.py): part of every event id, kept so a
    # replay after RESUME, on whichever runner, gets the ids the first delivery had.
    generation: str = Field(min_length=1)
    # The IDENTIFY's [shard_id, shard_count]: a session resumes only into the layout it was opened with.
    shard_count: int = Field(default=1, ge=1)


class SessionStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}gw:session:"

    def _key(self, bot_id: str, shard_id: int) -> str:
        return f"{self._prefix}{bot_id}:{shard_id}"

    async def load(self, bot_id: str, shard_id: int) -> GatewaySession | None:
        return _parse(await self._redis.get(self._key(bot_id, shard_id)))

    async def load_bot(self, bot_id: str, shard_count: int) -> list[GatewaySession | None]:
        """The sessions of a bot's shards 0..shard_count-1; one opened under another count is dropped."""
        raws = await self._redis.mget([self._key(bot_id, shard_id) for shard_id in range(shard_count)])
        sessions = [_parse(raw) for raw in raws]
        return [session if session and session.shard_count == shard_count else None for session in sessions]

    async def save_many(self, sessions: Iterable[tuple[str, int, GatewaySession | None]]) -> None:
        """Write these sessions; None forgets one (Discord invalidated it)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for bot_id, shard_id, session in sessions:
                if session is None:
                    pipe.delete(self._key(bot_id, shard_id))
                else:
                    pipe.set(self._key(bot_id, shard_id), session.model_dump_json(), ex=SESSION_TTL_S)
            await pipe.execute()

    async def forget(self, bot_id: str, shard_id: int) -> None:
        await self._redis.delete(self._key(bot_id, shard_id))


def _parse(raw: bytes | str | None) -> GatewaySession | None:
    if raw is None:
        return None
    try:
        return GatewaySession.model_validate_json(raw)
    except ValidationError:
        return None  # unreadable: identify afresh rather than fail the bot
