"""Run the OpenAI-compatible server on its own: `python -m emulator.openai --latency 1.5`.

Prints one JSON line with its base_url once it listens, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

import orjson

from emulator.openai.server import Behaviour, OpenAICompatibleServer
from settings.runtime import settle_garbage_collector


async def serve(args: argparse.Namespace) -> None:
    behaviour = Behaviour(latency_s=args.latency, models=args.model or [], error_rate=args.error_rate)
    async with OpenAICompatibleServer(behaviour, host=args.host, port=args.port) as server:
        sys.stdout.write(orjson.dumps({"base_url": server.base_url, "port": server.port}).decode() + "\n")
        sys.stdout.flush()
        # It holds every request for the latency, as the worker does: its collector must not stall it
        # (benchmarks would count the pauses as the worker's overhead).
        settle_garbage_collector()
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m emulator.openai", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--model", action="append", help="a served model (repeatable); none: any model")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
