"""`/stats` without a stack: its time ranges, the queries' parameters, the figures made of query rows, the
embed, the chart and the answer's shape."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import cast

import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError
from PIL import Image

from models.actions import AnswerInChannel, AnswerInteraction, InteractionResponse, Reply
from models.analytics import Bucket, StatsRequest, StatsWindow
from sinks.chart import render_chart
from sinks.clickhouse.stats import aggregate, query_parameters, stats_queries, time_range
from sinks.stats import CHART_FILENAME, UNAVAILABLE, answer_stats, stats_answer, stats_embed

UNTIL = datetime(2026, 3, 4, 15, 42, 7, tzinfo=UTC)


def test_a_day_is_the_last_24_whole_hours_and_a_week_the_last_7_days_today_included() -> None:
    # The same instant written in another zone: the range depends on the instant only.
    day = time_range(StatsWindow.day, UNTIL.astimezone(timezone(timedelta(hours=2))))
    assert (day.start, day.end, day.bucket) == (
        datetime(2026, 3, 3, 16, tzinfo=UTC),
        datetime(2026, 3, 4, 16, tzinfo=UTC),
        Bucket.hour,
    )
    assert len(day.starts()) == 24
    week = time_range(StatsWindow.week, UNTIL)
    assert (week.start, week.end, week.bucket) == (
        datetime(2026, 2, 26, tzinfo=UTC),
        datetime(2026, 3, 5, tzinfo=UTC),
        Bucket.day,
    )
    assert week.starts()[-1] == datetime(2026, 3, 4, tzinfo=UTC)
    assert len(time_range(StatsWindow.month, UNTIL).starts()) == 30


@pytest.mark.parametrize("bucket", list(Bucket))
def test_every_query_is_bound_to_the_guild_by_parameter(bucket: Bucket) -> None:
    queries = stats_queries("deep", bucket)
    assert {query.name for query in queries} == {
        "totals",
        "series",
        "channels",
        "hours",
        "agent_messages",
        "ai_calls",
    }
    for query in queries:
        assert "guild_id = {guild:String}" in query.sql, query.name
    span = time_range(StatsWindow.day, UNTIL)
    assert query_parameters("300", span) == {
        "guild": "300",
        "start": int(span.start.timestamp() * 1000),
        "end": int(span.end.timestamp() * 1000),
    }


def test_a_database_name_that_is_not_an_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="database"):
        stats_queries("deep; DROP TABLE events", Bucket.day)


def rows() -> dict[str, list[tuple[object, ...]]]:
    day = int(datetime(2026, 3, 3, tzinfo=UTC).timestamp())
    today = int(datetime(2026, 3, 4, tzinfo=UTC).timestamp())
    return {
        "totals": [(12, 4)],
        "series": [(day, 5), (today, 7)],
        "channels": [("201", 9), ("202", 3)],
        "hours": [(14, 6), (9, 4), (22, 2)],
        "agent_messages": [(6,)],
        "ai_calls": [(8, 1, 5120)],
    }


def test_rows_become_the_figures_with_every_bucket_present() -> None:
    span = time_range(StatsWindow.week, UNTIL)
    stats = aggregate(StatsWindow.week, span, rows())
    assert (stats.messages, stats.active_members, stats.agent_messages) == (12, 4, 6)
    assert (stats.ai_calls, stats.ai_failures, stats.ai_tokens) == (8, 1, 5120)
    assert stats.busiest_channels == [("201", 9), ("202", 3)]
    assert stats.busiest_hours == [(14, 6), (9, 4), (22, 2)]
    assert [count for _, count in stats.series] == [0, 0, 0, 0, 0, 5, 7]


def test_the_embed_carries_the_figures_and_shows_the_chart() -> None:
    stats = aggregate(StatsWindow.week, time_range(StatsWindow.week, UNTIL), rows())
    embed = stats_embed(stats, 0x3498DB)
    fields = {field.name: field.value for field in embed.fields}
    assert fields == {
        "Messages": "12",
        "Active members": "4",
        "Agent messages": "6",
        "AI calls": "8 (5,120 tokens, 1 failed)",
        "Busiest channels": "<#201> · 9\n<#202> · 3",
        "Busiest hours (UTC)": "14:00 · 6\n09:00 · 4\n22:00 · 2",
    }
    assert embed.title == "Server activity · the last 7 days"
    assert (embed.image_url, embed.color) == (f"attachment://{CHART_FILENAME}", 0x3498DB)


def test_an_empty_window_says_none_rather_than_leaving_fields_blank() -> None:
    empty: dict[str, list[tuple[object, ...]]] = {
        **rows(),
        "totals": [(0, 0)],
        "series": [],
        "channels": [],
        "hours": [],
        "ai_calls": [(0, 0, None)],
    }
    stats = aggregate(StatsWindow.day, time_range(StatsWindow.day, UNTIL), empty)
    fields = {field.name: field.value for field in stats_embed(stats, 0).fields}
    assert (fields["Busiest channels"], fields["AI calls"]) == ("none", "0")
    assert stats.series == [(start, 0) for start in stats.span.starts()]


def test_the_chart_is_a_png_of_one_bar_per_bucket() -> None:
    stats = aggregate(StatsWindow.week, time_range(StatsWindow.week, UNTIL), rows())
    chart = render_chart(stats, 0x3498DB)
    image = Image.open(io.BytesIO(chart.png))
    assert (image.format, image.size) == ("PNG", (800, 300))
    assert chart.bars == [0, 0, 0, 0, 0, 5, 7]
    assert chart.labels[-2:] == ["Mar 03", "Mar 04"]


def request(answer: AnswerInteraction | AnswerInChannel) -> StatsRequest:
    return StatsRequest(
        action_id="stats-1",
        bot_id="900",
        guild_id="300",
        deployment_id="d1",
        cause_event_id="ev-1",
        until=UNTIL,
        answer=answer,
    )


def test_a_slash_command_is_answered_through_its_interaction_and_a_prefix_command_by_a_reply() -> None:
    stats = aggregate(StatsWindow.week, time_range(StatsWindow.week, UNTIL), rows())
    chart = render_chart(stats, 0)
    embed = stats_embed(stats, 0)
    slash = stats_answer(
        request(AnswerInteraction(interaction_id="7", interaction_token="tok")), embed, chart
    )
    assert isinstance(slash, InteractionResponse)
    assert (slash.action_id, slash.interaction_id, slash.ephemeral) == ("stats-1", "7", False)
    assert slash.attachment is not None and slash.attachment.data == chart.png
    assert slash.attachment.filename == CHART_FILENAME
    prefix = stats_answer(request(AnswerInChannel(channel_id="200", message_id="55")), embed, chart)
    assert isinstance(prefix, Reply) and (prefix.message_id, prefix.embed) == ("55", embed)


class Unreachable:
    """A ClickHouse that answers every query with an error."""

    def query(self, sql: str, parameters: dict[str, object]) -> None:
        raise OperationalError("Connection refused")


def test_a_failed_query_is_answered_privately_without_a_chart() -> None:
    asked = request(AnswerInteraction(interaction_id="7", interaction_token="tok"))
    answer = answer_stats(cast(Client, Unreachable()), "deep", asked)
    assert isinstance(answer, InteractionResponse) and answer.action_id == asked.action_id
    assert (answer.ephemeral, answer.attachment, answer.embed, answer.content) == (
        True,
        None,
        None,
        UNAVAILABLE,
    )
