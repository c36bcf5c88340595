"""Process settings shared by the platform's long-running services."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Collection
from typing import Any

# A young pass every 50,000 allocations, a middle one every 50 young ones, a full one every 100 middle ones
# (hundreds of millions of allocations: minutes to hours under load).
GC_THRESHOLDS = (50_000, 50, 100)


def settle_garbage_collector() -> None:
    """Keep the garbage collector's pauses short under load; call once a service has started.

    What is alive at that point (modules, clients) lives as long as the process and is frozen out of the
    collector's passes. Under load a service holds many objects for a while (requests in flight, rows of a
    batch, recent messages and actions); with the default thresholds the full passes over them stalled the
    event loop for 40-230 ms every second or few (measured in the Discord emulator at 2,500 messages/s and
    in the inference worker with 1,000 requests in flight), and young passes went over batches being built
    again and again (the sinks). These services make little cyclic garbage (0-400 objects per full pass),
    so rare full passes cost little memory."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def cancel_until_done(tasks: Collection[asyncio.Task[Any]], every_s: float = 0.5) -> None:
    """Cancel the tasks and return once every one has ended, cancelling again those still running.

    A single cancellation can be lost: on Python 3.11, `asyncio.wait_for` swallows it when the awaited call
    completes in the same instant (the Redis client wraps every command in one), and the task then goes on
    to its next step as if never cancelled. An access export cancelled once at the API's shutdown ran its
    remaining steps for over a minute that way."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every_s)
