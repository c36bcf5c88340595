"""The playground for real servers: one or more deployments followed read-only, without the emulator:
their configuration as the processors have it, their decisions with reasons, mood, relationships and
counters, all read from Kafka."""

from __future__ import annotations

import asyncio
import signal
from uuid import UUID

from demo.playground.agents import ReadOnlyAgents, find_deployment, view_of
from demo.playground.live import LiveFeed, LiveState, Names
from demo.playground.server import Playground, ai_view, create_app, serve
from settings import get_settings
from vault.user_keys import user_keys


def say(message: str) -> None:
    print(f"[playground] {message}", flush=True)


async def _follow(
    deployment_ids: list[UUID], host: str, port: int, namespace: str, stop: asyncio.Event
) -> None:
    settings = get_settings()
    bootstrap = settings.kafka_bootstrap
    views = [view_of(await find_deployment(bootstrap, namespace, d), editable=False) for d in deployment_ids]
    names = Names(users={v.bot_id: v.name for v in views})
    state = LiveState({v.deployment_id: v.bot_id for v in views}, {v.guild_id for v in views}, names)
    async with user_keys(settings) as keys:
        feed = LiveFeed(state, bootstrap, namespace, keys)
        await feed.start()
        runner = await serve(
            create_app(Playground("follow", ai_view(settings), ReadOnlyAgents(views), state)), host, port
        )
        try:
            say(f"following {', '.join(f'{v.name} ({v.deployment_id})' for v in views)}")
            say(f"playground: http://{host}:{port} (read-only); Ctrl-C stops it")
            await stop.wait()
        finally:
            await runner.cleanup()
            await feed.stop()


def follow(
    deployment_ids: list[UUID], host: str = "127.0.0.1", port: int = 7900, namespace: str | None = None
) -> None:
    """Serve the read-only playground until Ctrl-C. Raises LookupError for a deployment not on the topic."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        topic_namespace = get_settings().topic_namespace if namespace is None else namespace
        await _follow(deployment_ids, host, port, topic_namespace, stop)

    asyncio.run(main())
