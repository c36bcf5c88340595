"""Re-running the processors over history, in process: the same Engine the Faust app runs, over tables in
memory, fed the records of a time window in timestamp order.

The timeline merges three co-keyed topics: `agent.deployments` from its beginning (so the routing is the
configuration as of each event, the compacted topic's latest value before the window included),
`discord.events` and `inference.results`. A result is applied only when the re-run itself asked for it
(inference request ids are derived from event and deployment), so a what-if run that does not answer a
message does not see the recorded answer in its channel context. State starts empty at the beginning of the
window's warm-up.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord

from jobs.overrides import ConfigChanges
from jobs.timeline import TimeWindow, merged, spans
from models.events import EventEnvelope
from models.inference import InferenceResult
from processors.engine import Engine, Outputs, Tables
from processors.ring import CONTEXT_RING, FLOOR_RING
from streams.catalog import AGENT_DEPLOYMENTS, DISCORD_EVENTS, INFERENCE_RESULTS
from streams.codec import CodecError, decode_key
from streams.history import KafkaTools, Track, no_progress
from streams.sealing import DataKeys, open_payload

log = logging.getLogger(__name__)

# Merge order on equal timestamps: configuration first, then the event, then results.
SOURCES = (AGENT_DEPLOYMENTS, DISCORD_EVENTS, INFERENCE_RESULTS)
DEPLOYMENTS, EVENTS, RESULTS = range(3)

# Called for each event and applied result inside the window (not during the warm-up).
Emit = Callable[[str, EventEnvelope | InferenceResult, Outputs], Awaitable[None]]


def memory_tables() -> Tables:
    """Every table a dict, the channel contexts and floors in the ring layout the live tables keep them in."""
    tables: dict[str, Any] = {f.name: {} for f in dataclasses.fields(Tables)}
    return Tables(**{**tables, "context": CONTEXT_RING.over({}, {}), "floor": FLOOR_RING.over({}, {})})


@dataclass
class RerunStats:
    events: int = 0  # event records stamped inside the window, unreadable ones included
    # Stamped before the window's start: the warm-up, and records a producer stamped late among the window's.
    warmup_events: int = 0
    routing_records: int = 0
    results: int = 0  # recorded results the re-run asked for, applied
    unreadable: int = 0  # records the codec rejects (the live processors dead-lettered them)
    failed: int = 0  # records the engine rejects (dead-lettered live too)


def _joined(*parts: Outputs) -> Outputs:
    return Outputs(
        **{
            f.name: [item for part in parts for item in getattr(part, f.name)]
            for f in dataclasses.fields(Outputs)
        }
    )


class Rerun:
    def __init__(self, keys: DataKeys, changes: ConfigChanges = ConfigChanges()) -> None:
        self.engine = Engine(memory_tables())
        # Events are opened as live: those of erased users are gone from the re-run too.
        self.keys = keys
        self.changes = changes
        self.stats = RerunStats()
        # The partition of discord.events each key's events came from (the partition of its table rows).
        self.partition_of_key: dict[str, int] = {}
        self._requested: set[str] = set()

    async def run(
        self,
        bootstrap: str,
        namespace: str,
        window: TimeWindow,
        *,
        emit: Emit | None = None,
        track: Track = no_progress,
    ) -> RerunStats:
        async with KafkaTools(bootstrap) as kafka:
            sources = [
                await spans(kafka, AGENT_DEPLOYMENTS.name_in(namespace), None, window.end),
                await spans(kafka, DISCORD_EVENTS.name_in(namespace), window.read_from, window.end),
                await spans(kafka, INFERENCE_RESULTS.name_in(namespace), window.read_from, window.end),
            ]
            advance = track("re-running the processors", sum(s.size for spans_ in sources for s in spans_))
            async for source, record in merged(kafka.reader, sources):
                in_window = window.in_window(record.timestamp)
                if source == EVENTS:
                    if in_window:
                        self.stats.events += 1
                    else:
                        self.stats.warmup_events += 1
                outputs = await self.apply(source, record)
                if outputs is not None and emit is not None and in_window:
                    await emit(*outputs)
                advance(1)
        return self.stats

    async def apply(
        self, source: int, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[str, EventEnvelope | InferenceResult, Outputs] | None:
        """One record into the engine: the key, the cause and its outputs for an event or an applied result;
        None for configuration, unreadable records and results the re-run did not ask for."""
        key = decode_key(record.key) or ""
        spec = SOURCES[source]
        if source == DEPLOYMENTS:
            self.stats.routing_records += 1
            if record.value is None:
                self.engine.remove_routing(key)
                return None
        try:
            value = spec.codec.decode(record.value)
        except CodecError:
            self.stats.unreadable += 1
            return None
        if source == DEPLOYMENTS:
            if value.key != key:  # dead-lettered live
                self.stats.failed += 1
            else:
                # Not guarded: a what-if change that does not fit a configuration is the operator's to fix.
                self.engine.apply_routing(self.changes.apply(value))
            return None
        if source == RESULTS and value.request_id not in self._requested:
            return None
        try:
            if source == EVENTS:
                self.partition_of_key[key] = record.partition
                # The routines and hosted-event steps due by the event's time fire first, from the state the
                # live timers saw: a step's own echo (the bot's message, Discord's scheduled-event dispatch)
                # follows it, so the replay makes each step at that echo at the latest.
                opened = await self.engine.opened_for(value, self.keys)
                outputs = _joined(
                    self.engine.fire_routines(key, value.received_at),
                    self.engine.fire_events(key, value.received_at),
                    self.engine.handle_event(opened) if opened is not None else Outputs(),
                )
                self._requested.update(request.request_id for request in outputs.requests)
            else:
                result = await open_payload(value, INFERENCE_RESULTS.sealing, self.keys)
                outputs = self.engine.handle_result(result, key) if result is not None else Outputs()
        except Exception as error:  # the live app dead-letters any record that fails, and goes on
            log.warning("%s[%d]@%d failed: %s", record.topic, record.partition, record.offset, error)
            self.stats.failed += 1
            # No outputs, as live; the cause is still reported, so a replay sees which events it failed on.
            return key, value, Outputs()
        if source == RESULTS:
            self.stats.results += 1
        return key, value, outputs
