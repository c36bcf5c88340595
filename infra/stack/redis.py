"""Redis from the Debian package, with a generated config and append-only files under state_dir/redis."""

from __future__ import annotations

import shutil
from pathlib import Path

import redis.asyncio as aioredis

from infra.stack.service import Launch, NativeService
from settings import Settings


def render_redis_conf(settings: Settings, data_dir: Path) -> str:
    return f"""# Rendered from settings by infra/stack/redis.py on every start.
bind {settings.redis_host}
port {settings.redis_port}
protected-mode yes
daemonize no
dir {data_dir}
appendonly yes
appendfsync everysec
save ""
logfile ""
"""


class Redis(NativeService):
    name = "redis"

    @property
    def address(self) -> str:
        return f"{self.settings.redis_host}:{self.settings.redis_port}"

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [(self.settings.redis_host, self.settings.redis_port)]

    @property
    def config(self) -> Path:
        return self.dir / "redis.conf"

    def missing_packages(self) -> list[str]:
        return ["redis-server"] if shutil.which("redis-server") is None else []

    def prepare(self) -> None:
        data_dir = self.dir / "data"
        data_dir.mkdir(exist_ok=True)
        self.config.write_text(render_redis_conf(self.settings, data_dir))

    def launch(self) -> Launch:
        binary = shutil.which("redis-server") or "redis-server"
        return Launch(argv=[binary, str(self.config)], cwd=self.dir)

    async def check(self) -> None:
        settings = self.settings
        client = aioredis.Redis(host=settings.redis_host, port=settings.redis_port, socket_timeout=5)
        try:
            if not await client.ping():
                raise ConnectionError("PING not answered with PONG")
        finally:
            await client.aclose()
