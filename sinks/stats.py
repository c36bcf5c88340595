"""`/stats` answered in the sinks process, the one process that holds the (embedded) ClickHouse.

The processors put a StatsRequest on `analytics.requests`; this consumer reads the guild's figures, renders
the chart and puts the answer (an embed with the chart attached) on `discord.actions` under the action id
the request carries, so a request read twice is posted once: the gateway's ledger skips the repeat.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from models.actions import (
    Action,
    AnswerInteraction,
    Attachment,
    Embed,
    EmbedField,
    InteractionResponse,
    Reply,
    SendMessage,
)
from models.analytics import StatsRequest, StatsWindow
from sinks.answering import AnsweringService
from sinks.chart import Chart, render_chart
from sinks.clickhouse.stats import GuildStats, guild_stats
from streams.catalog import ANALYTICS_REQUESTS, DISCORD_ACTIONS
from streams.codec import encode_key

log = logging.getLogger(__name__)

CHART_FILENAME = "stats.png"
WINDOW_TITLES = {
    StatsWindow.day: "the last 24 hours",
    StatsWindow.week: "the last 7 days",
    StatsWindow.month: "the last 30 days",
}
UNAVAILABLE = "Server statistics are unavailable right now; try again in a few minutes."


def _listed(lines: list[str]) -> str:
    return "\n".join(lines) or "none"


def stats_embed(stats: GuildStats, color: int) -> Embed:
    """The figures as embed fields, with the chart (attached as CHART_FILENAME) as the embed's image."""
    span = stats.span
    calls = f"{stats.ai_calls:,}"
    if stats.ai_calls:
        calls += f" ({stats.ai_tokens:,} tokens, {stats.ai_failures:,} failed)"
    fields = [
        EmbedField(name="Messages", value=f"{stats.messages:,}"),
        EmbedField(name="Active members", value=f"{stats.active_members:,}"),
        EmbedField(name="Agent messages", value=f"{stats.agent_messages:,}"),
        EmbedField(name="AI calls", value=calls),
        EmbedField(
            name="Busiest channels",
            value=_listed([f"<#{channel}> · {count:,}" for channel, count in stats.busiest_channels]),
            inline=False,
        ),
        EmbedField(
            name="Busiest hours (UTC)",
            value=_listed([f"{hour:02d}:00 · {count:,}" for hour, count in stats.busiest_hours]),
            inline=False,
        ),
    ]
    return Embed(
        title=f"Server activity · {WINDOW_TITLES[stats.window]}",
        color=color,
        fields=fields,
        image_url=f"attachment://{CHART_FILENAME}",
        footer=f"UTC {span.start:%Y-%m-%d %H:%M} to {span.end:%Y-%m-%d %H:%M}",
    )


def stats_answer(request: StatsRequest, embed: Embed | None, chart: Chart | None, text: str = "") -> Action:
    """The answer where `/stats` was given, under the request's action id."""
    attachment = None
    if chart is not None:
        description = "Messages per bucket: " + ", ".join(map(str, chart.bars))
        attachment = Attachment(
            filename=CHART_FILENAME, content_type="image/png", data=chart.png, description=description[:1024]
        )
    common: dict[str, Any] = {
        "action_id": request.action_id,
        "bot_id": request.bot_id,
        "guild_id": request.guild_id,
        "deployment_id": request.deployment_id,
        "cause_event_id": request.cause_event_id,
        "content": text,
        "embed": embed,
        "attachment": attachment,
    }
    answer = request.answer
    if isinstance(answer, AnswerInteraction):
        return InteractionResponse(
            interaction_id=answer.interaction_id,
            interaction_token=answer.interaction_token,
            ephemeral=chart is None,
            **common,
        )
    if answer.message_id is None:
        return SendMessage(channel_id=answer.channel_id, **common)
    return Reply(channel_id=answer.channel_id, message_id=answer.message_id, **common)


def answer_stats(client: Client, database: str, request: StatsRequest) -> Action:
    """Query, render and answer (blocking: ClickHouse and matplotlib run in a thread)."""
    try:
        stats = guild_stats(client, database, request.guild_id, request.window, request.until)
    except ClickHouseError as exc:
        log.warning("stats for guild %s failed: %s", request.guild_id, exc)
        return stats_answer(request, None, None, UNAVAILABLE)
    return stats_answer(
        request, stats_embed(stats, request.embed_color), render_chart(stats, request.embed_color)
    )


class StatsService(AnsweringService):
    """Reads `analytics.requests` in its own group and answers each request on `discord.actions`."""

    def __init__(self, client: Client, database: str, **kwargs: Any) -> None:
        super().__init__(ANALYTICS_REQUESTS, "stats", client, database, **kwargs)
        self._actions_topic = DISCORD_ACTIONS.name_in(self.namespace)

    async def answer(self, request: StatsRequest) -> None:
        action = await asyncio.to_thread(answer_stats, self.client, self.database, request)
        await self.producer.send_and_wait(
            self._actions_topic, DISCORD_ACTIONS.codec.encode(action), encode_key(action.bot_id)
        )
