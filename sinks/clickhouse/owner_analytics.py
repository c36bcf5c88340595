"""The owner console's analytics: the queries over the sinks' tables and the owner's figures made of their
rows.

Owner isolation is in every query: decisions by the asked agents' ids, actions by their deployments' ids,
AI calls by the owner's id and the agents' ids, all bound as parameters (never formatted into the SQL).
A guild filter narrows further; it never widens.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from clickhouse_connect.driver.client import Client

from models.analytics import (
    AgentAnalytics,
    AnalyticsPoint,
    AnalyticsTotals,
    Bucket,
    GuildAnalytics,
    OwnerAnalytics,
    OwnerAnalyticsQuery,
)
from sinks.clickhouse.schema import checked_database
from sinks.clickhouse.stats import AGENT_MESSAGE_KINDS

Rows = list[tuple[Any, ...]]


class Dimension:
    """What the figures are grouped by: the bucket of time, the agent, or the guild."""

    bucket = "bucket"
    agent = "agent"
    guild = "guild"


DIMENSIONS = (Dimension.bucket, Dimension.agent, Dimension.guild)


@dataclass(frozen=True)
class Query:
    name: str
    dimension: str
    sql: str


def _range(column: str) -> str:
    return (
        f"{column} >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC') "
        f"AND {column} < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC') "
        "AND ({guild:String} = '' OR guild_id = {guild:String})"
    )


def _group(dimension: str, bucket: Bucket, time_column: str, agent_column: str) -> str:
    if dimension == Dimension.bucket:
        start_of = "toStartOfHour" if bucket is Bucket.hour else "toStartOfDay"
        return f"toString(toUnixTimestamp({start_of}({time_column}, 'UTC')))"
    return agent_column if dimension == Dimension.agent else "guild_id"


def owner_queries(database: str, bucket: Bucket) -> list[Query]:
    """Messages seen, replies and AI calls grouped by each dimension, and the decisions by reason."""
    db = f"`{checked_database(database)}`"
    kinds = ", ".join(f"'{kind}'" for kind in AGENT_MESSAGE_KINDS)
    decisions = f"FROM {db}.decisions WHERE {_range('decided_at')} AND has({{agents:Array(UUID)}}, agent_id)"
    # Actions carry their deployment; a reply counts for the deployment's agent.
    actions = (
        f"FROM {db}.actions WHERE {_range('created_at')} AND kind IN ({kinds}) "
        "AND has({deployments:Array(String)}, deployment_id)"
    )
    calls = (
        f"FROM {db}.inference_usage WHERE {_range('completed_at')} AND owner_id = {{owner:UUID}} "
        "AND has({agents:Array(UUID)}, agent_id)"
    )
    queries = [Query("reasons", "", f"SELECT toString(reason), count() {decisions} GROUP BY reason")]
    for dimension in DIMENSIONS:
        seen_key = _group(dimension, bucket, "decided_at", "toString(agent_id)")
        reply_key = _group(dimension, bucket, "created_at", "deployment_id")
        call_key = _group(dimension, bucket, "completed_at", "toString(agent_id)")
        queries += [
            # A message counts once however many of the owner's agents saw it; proactive decisions
            # (routines) have no message and are not messages seen.
            Query(
                "seen",
                dimension,
                f"SELECT {seen_key} AS key, uniqExact(message_id), uniqExactIf(author_id, author_id != '') "
                f"{decisions} AND message_id != '' GROUP BY key",
            ),
            Query("replies", dimension, f"SELECT {reply_key} AS key, count() {actions} GROUP BY key"),
            Query(
                "calls",
                dimension,
                f"SELECT {call_key} AS key, count(), sum(cost_usd), countIf(NOT failed), "
                "quantileExactIf(0.5)(latency_ms, NOT failed), quantileExactIf(0.99)(latency_ms, NOT failed) "
                f"{calls} GROUP BY key",
            ),
        ]
    return queries


def query_parameters(query: OwnerAnalyticsQuery) -> dict[str, Any]:
    return {
        "owner": str(query.owner_id),
        "agents": [str(agent_id) for agent_id in query.agent_ids],
        "deployments": [str(deployment_id) for deployment_id in query.deployments],
        "guild": query.guild_id or "",
        "start": int(query.start.timestamp() * 1000),
        "end": int(query.end.timestamp() * 1000),
    }


@dataclass
class _Figures:
    messages_seen: int = 0
    active_users: int = 0
    replies: int = 0
    ai_calls: int = 0
    ai_cost_usd: float = 0.0
    succeeded: int = 0
    p50: float = 0.0
    p99: float = 0.0

    def totals(self) -> dict[str, Any]:
        return AnalyticsTotals(
            messages_seen=self.messages_seen,
            replies=self.replies,
            ai_calls=self.ai_calls,
            ai_cost_usd=round(self.ai_cost_usd, 6),
        ).model_dump()


def _by_key(
    query: OwnerAnalyticsQuery, rows: dict[tuple[str, str], Rows], dimension: str
) -> dict[str, _Figures]:
    figures: dict[str, _Figures] = defaultdict(_Figures)
    for key, messages, users in rows[("seen", dimension)]:
        figures[str(key)].messages_seen, figures[str(key)].active_users = int(messages), int(users)
    agent_of = {str(deployment): str(agent) for deployment, agent in query.deployments.items()}
    for key, replies in rows[("replies", dimension)]:
        # By agent, the rows are by deployment (the query asked for these only): each adds to its agent.
        target = agent_of[str(key)] if dimension == Dimension.agent else str(key)
        figures[target].replies += int(replies)
    for key, calls, cost, succeeded, p50, p99 in rows[("calls", dimension)]:
        entry = figures[str(key)]
        entry.ai_calls, entry.ai_cost_usd, entry.succeeded = int(calls), float(cost), int(succeeded)
        entry.p50, entry.p99 = float(p50), float(p99)
    return figures


def bucket_starts(query: OwnerAnalyticsQuery) -> list[datetime]:
    """Every bucket of [start, end), the first one holding `start`."""
    size = query.bucket.size
    first = query.start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    if query.bucket is Bucket.day:
        first = first.replace(hour=0)
    count = -(-(query.end - first) // size)
    return [first + index * size for index in range(count)]


def aggregate(query: OwnerAnalyticsQuery, rows: dict[tuple[str, str], Rows]) -> OwnerAnalytics:
    """The owner's figures from each query's rows (by name and dimension)."""
    per_bucket = _by_key(query, rows, Dimension.bucket)
    series = []
    for start in bucket_starts(query):
        entry = per_bucket.get(str(int(start.timestamp())), _Figures())
        series.append(
            AnalyticsPoint(
                t=start,
                messages_seen=entry.messages_seen,
                replies=entry.replies,
                ai_calls=entry.ai_calls,
                ai_cost_usd=round(entry.ai_cost_usd, 6),
                latency_p50_ms=entry.p50 if entry.succeeded else None,
                latency_p99_ms=entry.p99 if entry.succeeded else None,
                active_users=entry.active_users,
            )
        )
    agents = _by_key(query, rows, Dimension.agent)
    guilds = _by_key(query, rows, Dimension.guild)
    return OwnerAnalytics(
        series=series,
        decisions_by_reason={str(reason): int(count) for reason, count in rows[("reasons", "")]},
        by_agent=[
            AgentAnalytics(agent_id=UUID(agent_id), **entry.totals())
            for agent_id, entry in sorted(agents.items())
        ],
        by_guild=[
            GuildAnalytics(guild_id=guild_id, **entry.totals())
            for guild_id, entry in sorted(guilds.items())
            if guild_id
        ],
    )


def owner_analytics(client: Client, database: str, query: OwnerAnalyticsQuery) -> OwnerAnalytics:
    """Run the queries of one owner's analytics (blocking: the embedded engine has no async client)."""
    parameters = query_parameters(query)
    rows = {
        (q.name, q.dimension): [tuple(row) for row in client.query(q.sql, parameters=parameters).result_rows]
        for q in owner_queries(database, query.bucket)
    }
    return aggregate(query, rows)
