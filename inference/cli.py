"""Running an inference worker: `run_worker()` (wired as `deep inference`), or
`python -m inference.cli` with explicit options (benchmarks, ad-hoc pools)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

import httpx
import uvloop
from redis.asyncio import BlockingConnectionPool, Redis

from inference.config import InferenceConfig, inference_config
from inference.knowledge import (
    REQUEST_TIMEOUT_S,
    KnowledgeCache,
    KnowledgeLookup,
    WikipediaClient,
    user_agent,
)
from inference.pool import EndpointPool
from inference.worker import InferenceWorker
from memory.embedding import Embedder
from memory.recall import Recaller
from memory.store import MemoryStore, connect
from models.tiers import InferenceLane
from settings import Settings, get_settings
from settings.runtime import settle_garbage_collector
from vault.user_keys import user_keys

log = logging.getLogger(__name__)

REDIS_CONNECTIONS = 64


async def serve(
    config: InferenceConfig,
    settings: Settings,
    namespace: str,
    group_id: str,
    lanes: Sequence[InferenceLane],
    stop: asyncio.Event,
) -> None:
    # from_pool: the client owns the pool, so closing it closes the pool's connections too.
    redis = Redis.from_pool(
        BlockingConnectionPool.from_url(settings.redis_url, max_connections=REDIS_CONNECTIONS)
    )
    pool = EndpointPool(list(config.endpoints), config)
    memory_client = connect(settings)
    await memory_client.connect()
    recaller = Recaller(MemoryStore(memory_client), Embedder.from_settings(settings))
    if not settings.wikipedia_contact:
        log.warning(
            "WIKIPEDIA_CONTACT is not set: Wikimedia asks every client for a contact in its User-Agent"
        )
    wiki_http = httpx.AsyncClient(
        headers={"User-Agent": user_agent(settings.wikipedia_contact)}, timeout=REQUEST_TIMEOUT_S
    )
    wiki = settings.wikipedia_url_template
    knowledge = KnowledgeLookup(
        WikipediaClient(wiki_http, wiki), KnowledgeCache(redis, config.key_prefix, source=wiki)
    )
    async with user_keys(settings) as keys:
        worker = InferenceWorker(
            config,
            pool,
            redis,
            settings.kafka_bootstrap,
            namespace,
            group_id,
            lanes,
            keys=keys,
            recaller=recaller,
            knowledge=knowledge,
        )
        await worker.start()
        settle_garbage_collector()
        log.info(
            "inference worker %s on %s: endpoints %s",
            group_id,
            ", ".join(worker.lane_of),
            ", ".join(f"{e.name} ({', '.join(e.models)})" for e in config.endpoints)
            or "none (persona fallback)",
        )
        run = asyncio.create_task(worker.run())
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({run, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await worker.stop()
            stopped.cancel()
            await redis.aclose()
            await wiki_http.aclose()
            await memory_client.close()
        run.result()


def run_worker(
    settings: Settings | None = None,
    *,
    endpoints: str = "",
    endpoint_api_key: str = "",
    namespace: str | None = None,
    group_id: str = "deep-inference",
    lanes: Sequence[InferenceLane] = tuple(InferenceLane),
    **limits: Any,
) -> None:
    """Run one inference worker until SIGINT or SIGTERM; in-flight requests finish before it exits.

    `limits` override InferenceConfig fields (request_timeout_s, max_attempts, key_prefix, ...)."""
    settings = settings or get_settings()
    config = inference_config(settings, endpoints, endpoint_api_key, **limits)
    topic_namespace = settings.topic_namespace if namespace is None else namespace

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(config, settings, topic_namespace, group_id, lanes, stop)

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(main())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inference.cli", description=__doc__)
    parser.add_argument("--endpoints", default="", help="name=url|models|max_concurrency;...")
    parser.add_argument("--namespace", default=None, help="topic namespace (default: DEEP_TOPIC_NAMESPACE)")
    parser.add_argument("--group", default="deep-inference", help="consumer group id")
    parser.add_argument("--key-prefix", default="deep:inference:", help="prefix of the worker's Redis keys")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds per attempt")
    parser.add_argument("--max-in-flight", type=int, default=1024, help="requests in the worker per lane")
    parser.add_argument("--instance-id", default=None, help="stable group instance id (static membership)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=get_settings().log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    run_worker(
        endpoints=args.endpoints,
        namespace=args.namespace,
        group_id=args.group,
        key_prefix=args.key_prefix,
        request_timeout_s=args.request_timeout,
        max_in_flight_per_lane=args.max_in_flight,
        instance_id=args.instance_id,
    )


if __name__ == "__main__":
    main()
