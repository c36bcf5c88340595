"""Replay: re-run the decision processors over a time window of `discord.events` into a sandbox namespace,
and report how their decisions differ from the decisions recorded on `agent.decisions`.

Decisions are deterministic (dice seeded by event and deployment), so replaying an unchanged run reports no
difference; a what-if configuration (jobs/overrides.py) reports exactly the decisions it changes. Every
output of the re-run (decisions, actions, audits, inference requests) goes to the sandbox namespace
`<namespace>sandbox.<run id>.`, never to the live topics.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from jobs.overrides import ConfigChanges
from jobs.rerun import Rerun, RerunStats
from jobs.timeline import TimeWindow, merged, spans
from models.common import utc_now
from models.decisions import Decision
from models.events import EventEnvelope
from models.inference import InferenceResult
from processors.engine import Outputs
from streams.admin import apply_catalog
from streams.catalog import (
    AGENT_DECISIONS,
    ANALYTICS_REQUESTS,
    DISCORD_ACTIONS,
    INFERENCE_LANES,
    MODERATION_AUDIT,
    TopicSpec,
)
from streams.codec import CodecError, encode_key
from streams.history import KafkaTools, Track, no_progress
from streams.sealing import DataKeys, open_payload

SANDBOX_TOPICS: tuple[TopicSpec, ...] = (
    AGENT_DECISIONS,
    DISCORD_ACTIONS,
    MODERATION_AUDIT,
    ANALYTICS_REQUESTS,
    *INFERENCE_LANES.values(),
)
# How long after the window a recorded decision may have been stamped (processing lag of the live run).
DECISION_GRACE = timedelta(minutes=10)
_PENDING_SENDS = 10_000

DecisionKey = tuple[str, UUID]


def new_run_id() -> str:
    return f"{utc_now():%Y%m%dT%H%M%S}-{uuid4().hex[:6]}"


def sandbox_namespace(namespace: str, run_id: str) -> str:
    return f"{namespace}sandbox.{run_id}."


def comparable(decision: Decision) -> dict[str, Any]:
    """What a decision decided; when it was made is no part of it."""
    return decision.model_dump(exclude={"decided_at"})


@dataclass(frozen=True)
class DecisionDifference:
    event_id: str
    deployment_id: UUID
    recorded: Decision | None
    replayed: Decision | None

    @property
    def kind(self) -> Literal["changed", "only recorded", "only replayed"]:
        if self.recorded is None:
            return "only replayed"
        return "only recorded" if self.replayed is None else "changed"


def diff_decisions(
    recorded: Mapping[DecisionKey, Decision], replayed: Mapping[DecisionKey, Decision]
) -> list[DecisionDifference]:
    """Differences by (event id, deployment id), in the replay's order, then the recorded-only ones."""
    differences = [
        DecisionDifference(key[0], key[1], recorded.get(key), decision)
        for key, decision in replayed.items()
        if key not in recorded or comparable(recorded[key]) != comparable(decision)
    ]
    differences.extend(
        DecisionDifference(key[0], key[1], decision, None)
        for key, decision in recorded.items()
        if key not in replayed
    )
    return differences


def _reason(decision: Decision | None) -> str:
    return decision.reason.value if decision is not None else "-"


@dataclass(frozen=True)
class ReplayReport:
    run_id: str
    sandbox_namespace: str
    stats: RerunStats
    recorded: int
    replayed: int
    differences: list[DecisionDifference]

    def transitions(self) -> Counter[tuple[str, str]]:
        """How many decisions moved from each recorded reason to each replayed reason."""
        return Counter((_reason(d.recorded), _reason(d.replayed)) for d in self.differences)


async def recorded_decisions(
    bootstrap: str,
    namespace: str,
    window: TimeWindow,
    event_ids: set[str],
    keys: DataKeys,
    *,
    grace: timedelta = DECISION_GRACE,
    track: Track = no_progress,
) -> dict[DecisionKey, Decision]:
    """The decisions on `agent.decisions` for the given events, opened (a redelivered duplicate counts once;
    a decision about an erased author is left out, as the replay skips their event)."""
    start = window.start - grace if window.start is not None else None
    end = window.end + grace if window.end is not None else None
    found: dict[DecisionKey, Decision] = {}
    async with KafkaTools(bootstrap) as kafka:
        decision_spans = await spans(kafka, AGENT_DECISIONS.name_in(namespace), start, end)
        advance = track("reading recorded decisions", sum(span.size for span in decision_spans))
        async for _, record in merged(kafka.reader, [decision_spans]):
            advance(1)
            try:
                decision = AGENT_DECISIONS.codec.decode(record.value)
                if decision.event_id not in event_ids:
                    continue
                decision = await open_payload(decision, AGENT_DECISIONS.sealing, keys)
            except CodecError:
                continue
            if decision is not None:
                found[(decision.event_id, decision.deployment_id)] = decision
    return found


async def replay(
    bootstrap: str,
    namespace: str,
    window: TimeWindow,
    keys: DataKeys,
    *,
    changes: ConfigChanges = ConfigChanges(),
    run_id: str | None = None,
    decision_grace: timedelta = DECISION_GRACE,
    track: Track = no_progress,
) -> ReplayReport:
    run_id = run_id or new_run_id()
    sandbox = sandbox_namespace(namespace, run_id)
    await apply_catalog(bootstrap, sandbox, SANDBOX_TOPICS)
    replayed: dict[DecisionKey, Decision] = {}
    event_ids: set[str] = set()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, acks="all")
    sends: list[asyncio.Future[RecordMetadata]] = []

    async def emit(key: str, cause: EventEnvelope | InferenceResult, outputs: Outputs) -> None:
        if isinstance(cause, EventEnvelope):
            event_ids.add(cause.event_id)
        # Routine firings are decisions of their own, made along the events.
        event_ids.update(decision.event_id for decision in outputs.decisions)
        for decision in outputs.decisions:
            replayed[(decision.event_id, decision.deployment_id)] = decision
        for spec, record_key, value in await outputs.records(key, keys):
            sends.append(await producer.send(spec.name_in(sandbox), value, key=encode_key(record_key)))
        if len(sends) >= _PENDING_SENDS:
            await asyncio.gather(*sends)
            sends.clear()

    await producer.start()
    try:
        rerun = Rerun(keys, changes)
        stats = await rerun.run(bootstrap, namespace, window, emit=emit, track=track)
        await asyncio.gather(*sends)
    finally:
        await producer.stop()
    recorded = await recorded_decisions(
        bootstrap, namespace, window, event_ids, keys, grace=decision_grace, track=track
    )
    return ReplayReport(
        run_id=run_id,
        sandbox_namespace=sandbox,
        stats=stats,
        recorded=len(recorded),
        replayed=len(replayed),
        differences=diff_decisions(recorded, replayed),
    )
