"""What `/stats` reads of one guild from the tables the sinks write: its time range, the queries, and the
guild's figures made of their rows.

Every query filters `guild_id = {guild:String}` with the guild id bound as a parameter (never formatted
into the SQL), so one guild's answer is made of its own rows only. Times are bound as Unix milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clickhouse_connect.driver.client import Client

from models.analytics import Bucket, StatsWindow
from sinks.clickhouse.schema import checked_database

TOP = 3
# The actions that put an agent's words in the guild: its replies and the messages it sends.
AGENT_MESSAGE_KINDS = ("reply", "send_message")


@dataclass(frozen=True)
class TimeRange:
    """[start, end) in whole buckets: the chart's bars are whole hours or days."""

    start: datetime
    end: datetime
    bucket: Bucket

    def starts(self) -> list[datetime]:
        count = (self.end - self.start) // self.bucket.size
        return [self.start + index * self.bucket.size for index in range(count)]


def time_range(window: StatsWindow, until: datetime) -> TimeRange:
    """The window ending with the bucket that holds `until`: the last 24 whole hours (hourly bars) or the
    last 7 or 30 days, today included (daily bars), in UTC."""
    bucket = Bucket.hour if window is StatsWindow.day else Bucket.day
    at = until.astimezone(UTC)
    floor = at.replace(minute=0, second=0, microsecond=0)
    if bucket is Bucket.day:
        floor = floor.replace(hour=0)
    end = floor + bucket.size
    return TimeRange(end - window.span, end, bucket)


@dataclass(frozen=True)
class Query:
    name: str
    sql: str


_MESSAGES = "type = 'MESSAGE_CREATE' AND NOT author_is_bot"
# Every bot in the guild records the same message as an event of its own: a message counts once, by its id
# (rows from before message ids were kept count by event).
_COUNT = "uniqExact(if(message_id = '', event_id, message_id))"


def _in_range(column: str) -> str:
    return (
        f"guild_id = {{guild:String}} AND {column} >= fromUnixTimestamp64Milli({{start:Int64}}, 'UTC') "
        f"AND {column} < fromUnixTimestamp64Milli({{end:Int64}}, 'UTC')"
    )


def stats_queries(database: str, bucket: Bucket) -> list[Query]:
    """The queries of one answer; their parameters come from query_parameters()."""
    db = f"`{checked_database(database)}`"
    events = f"FROM {db}.events WHERE {_in_range('received_at')} AND {_MESSAGES}"
    start_of = "toStartOfHour" if bucket is Bucket.hour else "toStartOfDay"
    kinds = ", ".join(f"'{kind}'" for kind in AGENT_MESSAGE_KINDS)
    return [
        Query("totals", f"SELECT {_COUNT}, uniqExactIf(author_id, author_id != '') {events}"),
        Query(
            "series",
            f"SELECT toUnixTimestamp({start_of}(received_at, 'UTC')) AS bucket, {_COUNT} {events} "
            "GROUP BY bucket ORDER BY bucket",
        ),
        Query(
            "channels",
            f"SELECT channel_id, {_COUNT} AS messages {events} AND channel_id != '' "
            f"GROUP BY channel_id ORDER BY messages DESC, channel_id LIMIT {TOP}",
        ),
        Query(
            "hours",
            f"SELECT toHour(received_at, 'UTC') AS hour, {_COUNT} AS messages {events} "
            f"GROUP BY hour ORDER BY messages DESC, hour LIMIT {TOP}",
        ),
        Query(
            "agent_messages",
            f"SELECT count() FROM {db}.actions WHERE {_in_range('created_at')} AND kind IN ({kinds})",
        ),
        Query(
            "ai_calls",
            "SELECT count(), countIf(failed), sum(prompt_tokens + completion_tokens) "
            f"FROM {db}.inference_usage WHERE {_in_range('completed_at')}",
        ),
    ]


def query_parameters(guild_id: str, span: TimeRange) -> dict[str, Any]:
    return {
        "guild": guild_id,
        "start": int(span.start.timestamp() * 1000),
        "end": int(span.end.timestamp() * 1000),
    }


Rows = list[tuple[Any, ...]]


@dataclass(frozen=True)
class GuildStats:
    window: StatsWindow
    span: TimeRange
    messages: int
    active_members: int
    # (channel id, messages), busiest first.
    busiest_channels: list[tuple[str, int]]
    # (hour of the day in UTC, messages), busiest first.
    busiest_hours: list[tuple[int, int]]
    agent_messages: int
    ai_calls: int
    ai_failures: int
    ai_tokens: int
    # Members' messages per bucket of the range, every bucket present (0 where none).
    series: list[tuple[datetime, int]]


def aggregate(window: StatsWindow, span: TimeRange, rows: dict[str, Rows]) -> GuildStats:
    """The guild's figures from each query's rows (by query name)."""
    [(messages, members)] = rows["totals"]
    [(agent_messages,)] = rows["agent_messages"]
    [(calls, failures, tokens)] = rows["ai_calls"]
    per_bucket = {datetime.fromtimestamp(int(at), UTC): int(count) for at, count in rows["series"]}
    return GuildStats(
        window=window,
        span=span,
        messages=int(messages),
        active_members=int(members),
        busiest_channels=[(str(channel), int(count)) for channel, count in rows["channels"]],
        busiest_hours=[(int(hour), int(count)) for hour, count in rows["hours"]],
        agent_messages=int(agent_messages),
        ai_calls=int(calls),
        ai_failures=int(failures),
        ai_tokens=int(tokens or 0),
        series=[(start, per_bucket.get(start, 0)) for start in span.starts()],
    )


def guild_stats(
    client: Client, database: str, guild_id: str, window: StatsWindow, until: datetime
) -> GuildStats:
    """Run the queries for one guild (blocking: the embedded engine has no async client)."""
    span = time_range(window, until)
    parameters = query_parameters(guild_id, span)
    rows = {
        query.name: [tuple(row) for row in client.query(query.sql, parameters=parameters).result_rows]
        for query in stats_queries(database, span.bucket)
    }
    return aggregate(window, span, rows)
