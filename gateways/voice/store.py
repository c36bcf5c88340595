"""Each voice connection's state in Redis, so a runner that takes a bot over (after a kill or a rebalance)
rejoins its channels and goes on with the track where it was. The queue is the processors'; only what is
playing now is kept here."""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# A bot nobody took over within a day is not rejoined: its listeners have gone.
PRESENCE_TTL_S = 24 * 3600


class NowPlaying(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The VoicePlay that started it: it names the track's end event, the same on whichever runner ends it.
    play_id: str = Field(min_length=1)
    track: str = Field(min_length=1)
    position_s: float = Field(ge=0)


class VoicePresence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    guild_id: str = Field(min_length=1)
    channel_id: str = Field(min_length=1)
    volume: int = Field(ge=0, le=200)
    paused: bool
    playing: NowPlaying | None = None


class VoiceStore:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = f"{prefix}gw:voice:"

    def _key(self, bot_id: str) -> str:
        return f"{self._prefix}{bot_id}"

    async def load(self, bot_id: str) -> list[VoicePresence]:
        """The bot's voice connections as last saved; an unreadable record is skipped."""
        presences = []
        for raw in (await self._redis.hgetall(self._key(bot_id))).values():
            try:
                presences.append(VoicePresence.model_validate_json(raw))
            except ValidationError:
                continue
        return presences

    async def save(self, bot_id: str, presences: Iterable[VoicePresence]) -> None:
        key = self._key(bot_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for presence in presences:
                pipe.hset(key, presence.guild_id, presence.model_dump_json())
            pipe.expire(key, PRESENCE_TTL_S)
            await pipe.execute()

    async def forget(self, bot_id: str, guild_id: str) -> None:
        await self._redis.hdel(self._key(bot_id), guild_id)
