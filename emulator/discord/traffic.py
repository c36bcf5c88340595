"""Background user traffic: messages posted at a steady rate, as if many people were chatting."""

from __future__ import annotations

import asyncio
import contextlib
import string
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .engine import Engine
from .errors import ApiError
from .spec import CHANNEL_TEXT, Snowflake
from .world import Json

TEMPLATE_FIELDS = frozenset({"n", "channel_id", "guild_id", "author_id", "bot_mention"})
MAX_COUNT = 10_000_000
MAX_DURATION_S = 86_400.0
# Messages posted per event-loop turn at most, so a job that is behind still lets sockets be served.
_BATCH = 500


class TrafficRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    guild_ids: list[Snowflake] = Field(default_factory=list)
    channel_ids: list[Snowflake] = Field(default_factory=list)
    rate_per_s: float = Field(gt=0)
    duration_s: float | None = Field(None, gt=0, le=MAX_DURATION_S)
    count: int | None = Field(None, ge=1, le=MAX_COUNT)
    # str.format fields: {n} {channel_id} {guild_id} {author_id} {bot_mention} (mentions the guild's bots
    # in turn, empty when it has none).
    content: str = "traffic message {n}"

    @model_validator(mode="after")
    def _check(self) -> TrafficRequest:
        if not self.guild_ids and not self.channel_ids:
            raise ValueError("guild_ids or channel_ids is required")
        if self.duration_s is None and self.count is None:
            raise ValueError("duration_s or count is required (traffic is bounded)")
        used = {name for _, name, _, _ in string.Formatter().parse(self.content) if name is not None}
        if not used <= TEMPLATE_FIELDS:
            raise ValueError(f"unknown template fields {sorted(used - TEMPLATE_FIELDS)}")
        return self


@dataclass(slots=True)
class _Target:
    channel_id: str
    guild_id: str
    authors: list[str]
    bots: list[str]


@dataclass(slots=True)
class TrafficJob:
    id: int
    request: TrafficRequest
    targets: list[_Target]
    sent: int = 0
    errors: int = 0
    running: bool = True
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def as_json(self) -> Json:
        return {
            "id": self.id,
            "running": self.running,
            "sent": self.sent,
            "errors": self.errors,
            "rate_per_s": self.request.rate_per_s,
            "count": self.request.count,
            "duration_s": self.request.duration_s,
            "channels": len(self.targets),
        }


class TrafficGenerator:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.jobs: dict[int, TrafficJob] = {}
        self._next_id = 1

    def _targets(self, request: TrafficRequest) -> list[_Target]:
        world = self.engine.world
        channels = [world.channel(c) for c in request.channel_ids]
        for guild_id in request.guild_ids:
            channels += [c for c in world.guild(guild_id).channels.values() if c.type == CHANNEL_TEXT]
        targets = []
        for channel in channels:
            guild = world.guild_of(channel)
            if guild is None:
                raise ApiError(400, 0, f"channel {channel.id} is not a guild channel")
            authors = [u for u in guild.members if u not in world.bots]
            if not authors:
                raise ApiError(400, 0, f"guild {guild.id} has no user members to post as")
            targets.append(_Target(channel.id, guild.id, authors, sorted(guild.bot_ids, key=int)))
        if not targets:
            raise ApiError(400, 0, "no text channels to post in")
        return targets

    def start(self, request: TrafficRequest) -> TrafficJob:
        if request.rate_per_s > self.engine.config.traffic_max_rate_per_s:
            raise ApiError(400, 0, f"rate_per_s above {self.engine.config.traffic_max_rate_per_s}")
        job = TrafficJob(self._next_id, request, self._targets(request))
        self._next_id += 1
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job))
        return job

    async def _run(self, job: TrafficJob) -> None:
        loop = asyncio.get_running_loop()
        request = job.request
        start = loop.time()
        deadline = None if request.duration_s is None else start + request.duration_s
        total = request.count
        try:
            while total is None or job.sent + job.errors < total:
                now = loop.time()
                if deadline is not None and now >= deadline:
                    break
                done = job.sent + job.errors
                due = int((now - start) * request.rate_per_s) + 1 - done
                if total is not None:
                    due = min(due, total - done)
                if due <= 0:
                    await asyncio.sleep((done / request.rate_per_s) - (now - start))
                    continue
                for _ in range(min(due, _BATCH)):
                    self._post(job, job.sent + job.errors)
                await asyncio.sleep(0)
        finally:
            job.running = False

    def _post(self, job: TrafficJob, n: int) -> None:
        target = job.targets[n % len(job.targets)]
        turn = n // len(job.targets)
        author = target.authors[turn % len(target.authors)]
        mention = f"<@{target.bots[turn % len(target.bots)]}>" if target.bots else ""
        content = job.request.content.format(
            n=n, channel_id=target.channel_id, guild_id=target.guild_id, author_id=author, bot_mention=mention
        )
        try:
            self.engine.post_user_message(author, content, target.channel_id)
        except ApiError:
            job.errors += 1  # e.g. the channel or author went away meanwhile
        else:
            job.sent += 1

    async def stop(self, job_id: int | None = None) -> list[TrafficJob]:
        jobs = list(self.jobs.values()) if job_id is None else [self._job(job_id)]
        for job in jobs:
            if job.task is not None:
                job.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job.task
        return jobs

    def _job(self, job_id: int) -> TrafficJob:
        try:
            return self.jobs[job_id]
        except KeyError:
            raise ApiError(404, 0, f"no traffic job {job_id}") from None
