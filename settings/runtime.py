"""Process settings shared by the platform's long-running services."""

from __future__ import annotations

import gc

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
