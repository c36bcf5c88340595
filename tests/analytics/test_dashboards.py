"""Every panel of every provisioned dashboard, run against the real engine on a timeline with known figures.

The timeline is inserted through the sinks' table writers (so the rollups fill through their materialized
views) with records inside the dashboards' time range and some outside it. Each panel's rows are compared
with the same figure computed in Python from the timeline.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]
from clickhouse_connect.driver.client import Client

from models.actions import Action, Ban, DeleteMessage, Kick, Timeout, TypingIndicator
from models.analytics import ConsumerLag
from models.decisions import Decision, DecisionReason
from models.events import EventEnvelope
from models.inference import InferenceResult
from models.operations import ModerationAudit
from models.tiers import Tier
from models.tokens import TokenHealthEvent, TokenStatus
from sinks.consumer import TableWriter
from sinks.tables import (
    ACTIONS,
    CONSUMER_LAG,
    DECISIONS,
    EVENTS,
    INFERENCE_USAGE,
    MODERATION,
    TOKEN_HEALTH,
    SinkTable,
)
from tests.analytics.factories import (
    T0,
    audit,
    decision,
    event,
    inference_result,
    reply,
    token_health,
)
from tests.analytics.grafana import GRAFANA, Panel, expand, load_panels

START, END = T0, T0 + timedelta(minutes=10)
BEFORE = T0 - timedelta(hours=1)
INTERVAL_S = 60
EVENTS_PER_MINUTE = (120, 60, 30)
REPLY_KINDS = {"send_message", "reply", "interaction_response"}
MODERATION_KINDS = {"ban", "kick", "timeout", "warn", "delete_message"}
OTHER_DEPLOYMENT = UUID("00000000-0000-4000-8000-0000000000d2")

Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class Timeline:
    events: list[EventEnvelope]
    decisions: list[Decision]
    actions: list[Action]
    inference: list[InferenceResult]
    audits: list[ModerationAudit]
    health: list[TokenHealthEvent]
    lag: list[ConsumerLag]


def build_timeline() -> Timeline:
    events: list[EventEnvelope] = []
    for offset, count in enumerate(EVENTS_PER_MINUTE):
        for k in range(count):
            n = len(events)
            events.append(
                event(
                    n,
                    T0 + timedelta(minutes=offset, milliseconds=400 * k),
                    bot_id=str(900 + n % 3),
                    guild_id=None if n % 10 == 9 else str(300 + n % 5),
                    kind="INTERACTION_CREATE" if n % 6 == 0 else "MESSAGE_CREATE",
                    content="x" * (n % 7),
                )
            )
    events += [event(1000 + k, BEFORE, bot_id="999", guild_id="399") for k in range(20)]

    decisions = []
    actions: list[Action] = []
    for e in events:
        if e.sequence % 2:
            continue
        respond = e.sequence % 4 == 0
        reason = (
            DecisionReason.mentioned
            if respond
            else (DecisionReason.no_trigger if e.sequence % 3 else DecisionReason.random)
        )
        decisions.append(decision(e, respond=respond, reason=reason))
        if respond:
            common = {
                "bot_id": e.bot_id,
                "guild_id": e.guild_id,
                "cause_event_id": e.event_id,
                "channel_id": "200",
            }
            actions.append(
                TypingIndicator(
                    action_id=f"typing-{e.event_id}",
                    created_at=e.received_at + timedelta(milliseconds=50),
                    **common,
                )
            )
            actions.append(reply(e, after_ms=100 * (1 + e.sequence % 5)))
    at = T0 + timedelta(minutes=3)
    moderation_common = {"bot_id": "900", "guild_id": "300", "created_at": at}
    actions += [Ban(action_id=f"ban-{i}", user_id=str(600 + i), **moderation_common) for i in range(3)]
    actions += [
        Timeout(action_id=f"to-{i}", user_id="610", duration_s=60, **moderation_common) for i in range(2)
    ]
    actions += [
        Kick(action_id="kick-0", user_id="620", **moderation_common),
        DeleteMessage(action_id="del-0", channel_id="200", message_id="1", **moderation_common),
        Ban(action_id="ban-old", user_id="630", bot_id="900", guild_id="300", created_at=BEFORE),
    ]

    inference = []
    plan: list[tuple[Tier, str, float, int, int, float, dict[str, Any]]] = [
        # tier, model, cost, prompt, completion, latency, extra
        (Tier.free, "small", 0.0, 100, 20, 200.0, {}),
        (Tier.free, "small", 0.0, 120, 30, 300.0, {}),
        (Tier.free, "small", 0.0, 90, 25, 400.0, {}),
        (Tier.free, "small", 0.0, 80, 10, 1.0, {"cached": True}),
        (Tier.pro, "medium", 0.002125, 300, 60, 700.0, {}),
        (Tier.pro, "medium", 0.002375, 320, 80, 650.0, {"fallback": True}),
        (Tier.pro, "medium", 0.0, 310, 0, 5000.0, {"error": "upstream timeout"}),
        (Tier.pro, "medium", 0.0, 280, 40, 2.0, {"cached": True}),
        (Tier.business, "large", 0.010125, 500, 100, 900.0, {"deployment_id": OTHER_DEPLOYMENT}),
        (Tier.business, "large", 0.020250, 600, 150, 1000.0, {}),
        (Tier.business, "large", 0.030375, 700, 200, 1100.0, {"deployment_id": OTHER_DEPLOYMENT}),
    ]
    for i, (tier, model, cost, prompt, completion, latency, extra) in enumerate(plan):
        inference.append(
            inference_result(
                i,
                T0 + timedelta(seconds=30 * i),
                tier=tier,
                model=model,
                cost_usd=cost,
                prompt_tokens=prompt,
                completion_tokens=completion,
                latency_ms=latency,
                **extra,
            )
        )
    inference += [
        inference_result(
            90 + i,
            BEFORE,
            tier=Tier.business,
            model="large",
            cost_usd=5.0,
            prompt_tokens=9,
            completion_tokens=9,
            latency_ms=1.0,
        )
        for i in range(2)
    ]

    audits = []
    rules = [
        ("spam", "automod", ["delete_message", "timeout"]),
        ("spam", "automod", ["delete_message", "timeout"]),
        ("spam", "automod", ["delete_message"]),
        ("spam", "automod", ["delete_message", "timeout"]),
        ("links", "automod", ["delete_message"]),
        ("links", "automod", ["delete_message"]),
        ("ban", "command", ["ban"]),
        ("ban", "command", ["ban"]),
    ]
    for i, (rule, source, outcome) in enumerate(rules):
        audits.append(
            audit(
                i,
                T0 + timedelta(seconds=40 * i),
                rule=rule,
                source=source,
                actions=outcome,
                guild_id=str(300 + i % 2),
                user_id=str(500 + i % 3),
            )
        )
    audits.append(
        audit(99, BEFORE, rule="spam", source="automod", actions=["ban"], guild_id="300", user_id="500")
    )

    minute = timedelta(minutes=1)
    health = [
        token_health(1, T0 + minute, TokenStatus.active, "health_check"),
        token_health(1, T0 + 2 * minute, TokenStatus.degraded, "rate_limited"),
        token_health(1, T0 + 3 * minute, TokenStatus.active, "recovered"),
        token_health(2, T0 + minute, TokenStatus.active, "health_check"),
        token_health(2, T0 + 4 * minute, TokenStatus.revoked, "revoked_401"),
        token_health(3, T0 + 5 * minute, TokenStatus.failed, "health_check"),
        token_health(4, T0 + 20 * minute, TokenStatus.revoked, "close_4004"),
        token_health(5, T0 - 30 * minute, TokenStatus.active, "manual"),
    ]

    lag = []
    for at, lags in (
        (T0 + minute, {("gA", "tA", 0): 5, ("gA", "tA", 1): 3, ("gB", "tB", 0): 10}),
        (T0 + 2 * minute, {("gA", "tA", 0): 2, ("gA", "tA", 1): 0, ("gB", "tB", 0): 4}),
        (T0 + 15 * minute, {("gA", "tA", 0): 100, ("gB", "tB", 0): 100}),
    ):
        for (group, topic, partition), behind in lags.items():
            lag.append(
                ConsumerLag(
                    sampled_at=at,
                    group=group,
                    topic=topic,
                    partition=partition,
                    committed_offset=1000,
                    end_offset=1000 + behind,
                )
            )
    return Timeline(events, decisions, actions, inference, audits, health, lag)


TIMELINE = build_timeline()


@pytest.fixture(scope="module")
def loaded(clickhouse: Client, database: str) -> str:
    tables: list[tuple[SinkTable[Any], list[Any]]] = [
        (EVENTS, TIMELINE.events),
        (DECISIONS, TIMELINE.decisions),
        (ACTIONS, TIMELINE.actions),
        (INFERENCE_USAGE, TIMELINE.inference),
        (MODERATION, TIMELINE.audits),
        (TOKEN_HEALTH, TIMELINE.health),
        (CONSUMER_LAG, TIMELINE.lag),
    ]
    for table, records in tables:
        TableWriter(clickhouse, database, table).insert_now(
            [table.row(record) for record in records], token=None
        )
    return database


# Python's reading of the same figures ------------------------------------------------------------------


def in_range(at: datetime) -> bool:
    return START <= at <= END


def bucket(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def q_exact(values: Iterable[float], level: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(level * len(ordered)), len(ordered) - 1)]


def events_in_range() -> list[EventEnvelope]:
    return [e for e in TIMELINE.events if in_range(e.received_at)]


def decisions_in_range() -> list[Decision]:
    return [d for d in TIMELINE.decisions if in_range(d.decided_at)]


def actions_in_range() -> list[Action]:
    return [a for a in TIMELINE.actions if in_range(a.created_at)]


def inference_in_range() -> list[InferenceResult]:
    return [r for r in TIMELINE.inference if in_range(r.completed_at)]


def audits_in_range() -> list[ModerationAudit]:
    return [a for a in TIMELINE.audits if in_range(a.at)]


def counted(keys: Iterable[tuple[Any, ...]]) -> Rows:
    return [(*key, count) for key, count in sorted(Counter(keys).items())]


def latencies() -> list[tuple[Action, int]]:
    received = {e.event_id: e.received_at for e in TIMELINE.events}
    return [
        (a, int((a.created_at - received[a.cause_event_id]) / timedelta(milliseconds=1)))
        for a in actions_in_range()
        if a.cause_event_id in received
    ]


def by_time_and(key: Callable[[Any], str], records: Iterable[Any], at: Callable[[Any], datetime]) -> Rows:
    return counted((bucket(at(r)), key(r)) for r in records)


def fleet_events_per_second() -> Rows:
    per_minute = Counter(bucket(e.received_at) for e in events_in_range())
    return [(minute, count / INTERVAL_S) for minute, count in sorted(per_minute.items())]


def fleet_response_rate() -> Rows:
    decisions = decisions_in_range()
    return [(round(sum(d.respond for d in decisions) / len(decisions), 4),)]


def fleet_reasons() -> Rows:
    counts = Counter(d.reason.value for d in decisions_in_range())
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def latency_over_time() -> Rows:
    per_minute: dict[datetime, list[int]] = defaultdict(list)
    for action, ms in latencies():
        per_minute[bucket(action.created_at)].append(ms)
    return [
        (minute, q_exact(ms, 0.5), q_exact(ms, 0.95), q_exact(ms, 0.99))
        for minute, ms in sorted(per_minute.items())
    ]


def latency_by_kind() -> Rows:
    per_kind: dict[str, list[int]] = defaultdict(list)
    for action, ms in latencies():
        per_kind[action.kind].append(ms)
    return [
        (kind, len(ms), q_exact(ms, 0.5), q_exact(ms, 0.95), max(ms)) for kind, ms in sorted(per_kind.items())
    ]


def inference_latency() -> Rows:
    per_tier: dict[str, list[float]] = defaultdict(list)
    for result in inference_in_range():
        if not result.cached:
            per_tier[result.tier.value].append(result.latency_ms)
    return [(tier, len(ms), q_exact(ms, 0.5), q_exact(ms, 0.95)) for tier, ms in sorted(per_tier.items())]


def sums_by(
    key: Callable[[InferenceResult], tuple[Any, ...]], value: Callable[[InferenceResult], float]
) -> Rows:
    totals: dict[tuple[Any, ...], float] = defaultdict(float)
    for result in inference_in_range():
        totals[key(result)] += value(result)
    return [(*k, v) for k, v in sorted(totals.items())]


def usage_by_tier_and_model() -> Rows:
    groups: dict[tuple[str, str], list[InferenceResult]] = defaultdict(list)
    for r in inference_in_range():
        groups[(r.tier.value, r.model)].append(r)
    return [
        (
            tier,
            model,
            len(rs),
            sum(r.prompt_tokens for r in rs),
            sum(r.completion_tokens for r in rs),
            sum(r.cost_usd for r in rs),
            round(sum(r.latency_ms for r in rs) / len(rs), 1),
            sum(r.cached for r in rs),
            sum(r.fallback for r in rs),
            sum(r.error is not None for r in rs),
        )
        for (tier, model), rs in sorted(groups.items())
    ]


def top_deployments() -> Rows:
    groups: dict[UUID, list[float]] = defaultdict(list)
    for r in inference_in_range():
        groups[r.deployment_id].append(r.cost_usd)
    rows = [(str(d), len(costs), sum(costs)) for d, costs in groups.items()]
    return sorted(rows, key=lambda row: (-row[2], row[0]))


def rules_fired() -> Rows:
    groups: dict[tuple[str, str], list[ModerationAudit]] = defaultdict(list)
    for a in audits_in_range():
        groups[(a.rule, a.source)].append(a)
    rows = [
        (rule, source, len(audits), len({a.guild_id for a in audits}), len({a.user_id for a in audits}))
        for (rule, source), audits in groups.items()
    ]
    return sorted(rows, key=lambda row: (-row[2], row[0], row[1]))


def outcomes_by_action() -> Rows:
    counts = Counter(action for a in audits_in_range() for action in a.actions)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def current_token_status() -> Rows:
    latest: dict[UUID, TokenHealthEvent] = {}
    for h in sorted(TIMELINE.health, key=lambda h: h.at):
        if h.at <= END:
            latest[h.token_id] = h
    return counted((h.status.value,) for h in latest.values())


def revocations() -> Rows:
    rows = [
        (h.at, str(h.token_id), h.bot_user_id, h.status.value, h.reason, h.detail)
        for h in TIMELINE.health
        if in_range(h.at) and h.status in (TokenStatus.revoked, TokenStatus.failed)
    ]
    return sorted(rows, key=lambda row: (-row[0].timestamp(), row[1]))


def lag_per_group() -> Rows:
    per_sample: dict[tuple[datetime, str, datetime], int] = defaultdict(int)
    for s in TIMELINE.lag:
        if in_range(s.sampled_at):
            per_sample[(bucket(s.sampled_at), s.group, s.sampled_at)] += s.lag
    worst: dict[tuple[datetime, str], int] = defaultdict(int)
    for (minute, group, _), total in per_sample.items():
        worst[(minute, group)] = max(worst[(minute, group)], total)
    return [(*key, value) for key, value in sorted(worst.items())]


def latest_lag() -> Rows:
    latest = max(s.sampled_at for s in TIMELINE.lag if in_range(s.sampled_at))
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for s in TIMELINE.lag:
        if s.sampled_at == latest:
            groups[(s.group, s.topic)].append(s.lag)
    rows = [(group, topic, sum(lags), max(lags)) for (group, topic), lags in groups.items()]
    return sorted(rows, key=lambda row: (-row[2], row[0], row[1]))


EXPECTED: dict[tuple[str, str], Callable[[], Rows]] = {
    ("deep-fleet", "Active agents"): lambda: [(len({e.bot_id for e in events_in_range()}),)],
    ("deep-fleet", "Active guilds"): lambda: [(len({e.guild_id for e in events_in_range() if e.guild_id}),)],
    ("deep-fleet", "Replies sent"): lambda: [(sum(a.kind in REPLY_KINDS for a in actions_in_range()),)],
    ("deep-fleet", "Response rate"): fleet_response_rate,
    ("deep-fleet", "Events per second"): fleet_events_per_second,
    ("deep-fleet", "Events by type"): lambda: by_time_and(
        lambda e: e.type, events_in_range(), lambda e: e.received_at
    ),
    ("deep-fleet", "Decisions"): lambda: by_time_and(
        lambda d: "respond" if d.respond else "stay silent", decisions_in_range(), lambda d: d.decided_at
    ),
    ("deep-fleet", "Decision reasons"): fleet_reasons,
    ("deep-fleet", "Actions by kind"): lambda: by_time_and(
        lambda a: a.kind, actions_in_range(), lambda a: a.created_at
    ),
    ("deep-latency", "Event to action latency"): latency_over_time,
    ("deep-latency", "Latency by action kind"): latency_by_kind,
    ("deep-latency", "Inference latency by tier"): inference_latency,
    ("deep-ai", "AI cost"): lambda: [(sum(r.cost_usd for r in inference_in_range()),)],
    ("deep-ai", "Cache hit ratio"): lambda: [
        (round(sum(r.cached for r in inference_in_range()) / len(inference_in_range()), 4),)
    ],
    ("deep-ai", "Cost per tier"): lambda: sums_by(
        lambda r: (bucket(r.completed_at), r.tier.value), lambda r: r.cost_usd
    ),
    ("deep-ai", "Tokens per tier"): lambda: sums_by(
        lambda r: (bucket(r.completed_at), r.tier.value), lambda r: r.prompt_tokens + r.completion_tokens
    ),
    ("deep-ai", "Usage by tier and model"): usage_by_tier_and_model,
    ("deep-ai", "Cost by lane"): lambda: sums_by(lambda r: (r.lane.value,), lambda r: r.cost_usd),
    ("deep-ai", "Top deployments by cost"): top_deployments,
    ("deep-moderation", "Moderation over time"): lambda: by_time_and(
        lambda a: a.source, audits_in_range(), lambda a: a.at
    ),
    ("deep-moderation", "Rules that fired"): rules_fired,
    ("deep-moderation", "Outcomes by action"): outcomes_by_action,
    ("deep-moderation", "Moderation actions performed"): lambda: counted(
        (a.kind,) for a in actions_in_range() if a.kind in MODERATION_KINDS
    ),
    ("deep-tokens", "Tokens by current status"): current_token_status,
    ("deep-tokens", "Status changes"): lambda: by_time_and(
        lambda h: h.status.value, [h for h in TIMELINE.health if in_range(h.at)], lambda h: h.at
    ),
    ("deep-tokens", "Revocations and failures"): revocations,
    ("deep-lag", "Lag per group"): lag_per_group,
    ("deep-lag", "Latest lag by topic"): latest_lag,
}


def normalised(rows: Iterable[Iterable[Any]]) -> Rows:
    """Engine and Python values in one shape: times in UTC, ids as text, floats to 6 places."""

    def value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        if isinstance(v, UUID):
            return str(v)
        if isinstance(v, float):
            return round(v, 6)
        return v

    return [tuple(value(v) for v in row) for row in rows]


PANELS = load_panels()


def test_every_panel_has_expected_figures() -> None:
    assert {(p.dashboard, p.title) for p in PANELS} == set(EXPECTED)


def test_the_fixture_is_not_trivial() -> None:
    """Guards the figures the panels are checked against: every panel sees rows in range and out of it."""
    assert [count for _, count in fleet_events_per_second()] == [2.0, 1.0, 0.5]
    assert EXPECTED[("deep-fleet", "Active agents")]() == [(3,)]
    assert EXPECTED[("deep-fleet", "Active guilds")]() == [(5,)]
    assert current_token_status() == [("active", 2), ("failed", 1), ("revoked", 1)]
    assert len(inference_in_range()) < len(TIMELINE.inference)
    assert len(audits_in_range()) < len(TIMELINE.audits)


@pytest.mark.stack
@pytest.mark.parametrize("panel", PANELS, ids=[f"{p.dashboard}:{p.title}" for p in PANELS])
def test_panel_returns_the_expected_figures(clickhouse: Client, loaded: str, panel: Panel) -> None:
    sql = expand(panel.sql, start=START, end=END, interval_s=INTERVAL_S, database=loaded)
    result = clickhouse.query(sql)
    if panel.query_type == "timeSeries":
        assert result.column_names[0] == "time"
    expected = normalised(EXPECTED[(panel.dashboard, panel.title)]())
    assert expected, "the fixture gives this panel nothing to show"
    assert normalised(result.result_rows) == expected


def test_provisioning_points_the_dashboards_at_the_clickhouse_datasource() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    assert {panel.datasource_uid for panel in PANELS} == {source["uid"]}
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "deep.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert {panel.dashboard for panel in PANELS} == {
        "deep-fleet",
        "deep-latency",
        "deep-ai",
        "deep-moderation",
        "deep-tokens",
        "deep-lag",
    }
