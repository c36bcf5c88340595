"""`/stats` answered by the stats consumer of the sinks process: rows planted in ClickHouse for two guilds,
a request on `analytics.requests`, the answer read back from `discord.actions`."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from clickhouse_connect.driver.client import Client
from PIL import Image

from models.actions import Action, AnswerInChannel, AnswerInteraction, InteractionResponse, Reply
from models.analytics import StatsRequest, StatsWindow
from models.events import EventEnvelope
from models.inference import InferenceResult
from models.tiers import Tier
from settings import Settings
from sinks.clickhouse.stats import time_range
from sinks.consumer import SinkOptions, TableWriter
from sinks.stats import CHART_FILENAME, StatsService
from sinks.tables import ACTIONS, EVENTS, INFERENCE_USAGE
from streams.catalog import ANALYTICS_REQUESTS, DISCORD_ACTIONS, dead_letter_topic
from tests.analytics.factories import event, inference_result
from tests.kafka_namespace import temporary_namespace
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

UNTIL = datetime(2026, 3, 4, 15, 42, tzinfo=UTC)
MINE, OTHER = "3001", "3002"
BOT = "900"


@pytest.fixture(scope="module")
async def namespace(stack_up: Settings) -> AsyncIterator[str]:
    topics = (ANALYTICS_REQUESTS, dead_letter_topic(ANALYTICS_REQUESTS), DISCORD_ACTIONS)
    async with temporary_namespace(stack_up.kafka_bootstrap, topics) as ns:
        yield ns


def message(n: int, guild_id: str, channel_id: str, author_id: str, at: datetime) -> EventEnvelope:
    planted = event(n, at, bot_id=BOT, guild_id=guild_id, author_id=author_id)
    return planted.model_copy(update={"channel_id": channel_id})


def agent_reply(n: int, guild_id: str, at: datetime) -> Reply:
    return Reply(
        action_id=f"reply-{guild_id}-{n}",
        bot_id=BOT,
        guild_id=guild_id,
        channel_id="201",
        message_id=str(60_000 + n),
        content="hi",
        created_at=at,
    )


def plant(clickhouse: Client, database: str) -> None:
    """My guild: 2 messages yesterday at 10:00 in #201, 3 today at 14:00 (2 in #202, 1 in #201, one of them
    seen by two bots) by 3 members, one bot message (not a member's), one message 8 days ago (outside the
    week); 2 agent replies,
    2 AI calls. The other guild: more of everything, in the same hours."""
    yesterday, today = datetime(2026, 3, 3, 10, 5, tzinfo=UTC), datetime(2026, 3, 4, 14, 20, tzinfo=UTC)
    events = [
        message(1, MINE, "201", "501", yesterday),
        message(2, MINE, "201", "502", yesterday + timedelta(minutes=3)),
        message(3, MINE, "202", "501", today),
        message(4, MINE, "202", "503", today + timedelta(minutes=1)),
        message(5, MINE, "201", "503", today + timedelta(minutes=2)),
        message(6, MINE, "201", "501", UNTIL - timedelta(days=8)),
        *(message(100 + n, OTHER, "299", str(600 + n), today) for n in range(20)),
    ]
    # Another bot of the guild receives message 3 too: an event of its own about the same message.
    seen_twice = message(3, MINE, "202", "501", today).model_copy(
        update={"event_id": "ev-3-b", "bot_id": "901"}
    )
    events.append(seen_twice)
    bot_message = message(7, MINE, "201", BOT, today)
    bot_message.data["author"]["bot"] = True
    events.append(bot_message)
    TableWriter(clickhouse, database, EVENTS).insert_now([EVENTS.row(e) for e in events], None)
    replies = [agent_reply(n, MINE, today) for n in range(2)]
    replies += [agent_reply(n, OTHER, today) for n in range(9)]
    TableWriter(clickhouse, database, ACTIONS).insert_now([ACTIONS.row(r) for r in replies], None)
    calls = [ai_call(n, MINE, today) for n in range(2)] + [ai_call(10 + n, OTHER, today) for n in range(5)]
    TableWriter(clickhouse, database, INFERENCE_USAGE).insert_now(
        [INFERENCE_USAGE.row(c) for c in calls], None
    )


def ai_call(n: int, guild_id: str, at: datetime) -> InferenceResult:
    """One AI call of 120 tokens for the guild."""
    result = inference_result(
        n,
        at,
        tier=Tier.pro,
        model="local",
        cost_usd=0.001,
        prompt_tokens=100,
        completion_tokens=20,
        latency_ms=50.0,
    )
    return result.model_copy(update={"target": result.target.model_copy(update={"guild_id": guild_id})})


def request(n: int, window: StatsWindow, answer: AnswerInteraction | AnswerInChannel) -> StatsRequest:
    return StatsRequest(
        action_id=f"stats-{n}",
        bot_id=BOT,
        guild_id=MINE,
        deployment_id="d1",
        cause_event_id=f"ev-stats-{n}",
        window=window,
        until=UNTIL,
        answer=answer,
        embed_color=0x3498DB,
    )


async def test_stats_answer_with_this_guilds_figures_and_a_chart_of_them(
    stack_up: Settings, clickhouse: Client, database: str, namespace: str, producer: AIOKafkaProducer
) -> None:
    plant(clickhouse, database)
    service = StatsService(
        clickhouse,
        database,
        bootstrap=stack_up.kafka_bootstrap,
        namespace=namespace,
        producer=producer,
        options=SinkOptions(),
    )
    task = asyncio.create_task(service.run())
    slash = request(1, StatsWindow.week, AnswerInteraction(interaction_id="77", interaction_token="tok"))
    prefix = request(2, StatsWindow.day, AnswerInChannel(channel_id="201", message_id="88"))
    topic = ANALYTICS_REQUESTS.name_in(namespace)
    # The slash request twice: a redelivery is answered under the same action id.
    for sent in (slash, prefix, slash):
        await producer.send_and_wait(topic, ANALYTICS_REQUESTS.codec.encode(sent), MINE.encode())
    answers = await read_actions(stack_up, namespace, count=3)
    service.stop()
    await task

    assert [a.action_id for a in answers] == ["stats-1", "stats-2", "stats-1"]
    week, day, again = answers
    assert isinstance(week, InteractionResponse) and isinstance(day, Reply)
    assert again == week.model_copy(update={"created_at": again.created_at})
    assert week.embed is not None and week.attachment is not None
    fields = {field.name: field.value for field in week.embed.fields}
    assert fields == {
        "Messages": "5",
        "Active members": "3",
        "Agent messages": "2",
        "AI calls": "2 (240 tokens, 0 failed)",
        "Busiest channels": "<#201> · 3\n<#202> · 2",
        "Busiest hours (UTC)": "14:00 · 3\n10:00 · 2",
    }
    assert week.embed.image_url == f"attachment://{CHART_FILENAME}"
    image = Image.open(io.BytesIO(week.attachment.data))
    assert image.format == "PNG"
    # One bar per day of the week, today last: the bars drawn are the planted messages.
    assert week.attachment.description == "Messages per bucket: 0, 0, 0, 0, 0, 2, 3"

    assert day.embed is not None and day.attachment is not None
    assert (day.channel_id, day.message_id) == ("201", "88")
    day_fields = {field.name: field.value for field in day.embed.fields}
    # The last 24 whole hours reach back to 16:00 yesterday: only today's three messages.
    assert (day_fields["Messages"], day_fields["Active members"]) == ("3", "2")
    bars = [int(bar) for bar in day.attachment.description.split(": ")[1].split(", ")]
    span = time_range(StatsWindow.day, UNTIL)
    assert len(bars) == 24 and bars[span.starts().index(datetime(2026, 3, 4, 14, tzinfo=UTC))] == 3
    assert sum(bars) == 3


async def read_actions(settings: Settings, namespace: str, *, count: int) -> list[Action]:
    """The first `count` actions of the topic, in order (the answers of one guild share a partition)."""
    reader = AIOKafkaConsumer(
        DISCORD_ACTIONS.name_in(namespace),
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await reader.start()
    found: list[Action] = []
    try:

        async def enough() -> bool:
            fetched = await reader.getmany(timeout_ms=500)
            for records in fetched.values():
                found.extend(DISCORD_ACTIONS.codec.decode(record.value) for record in records)
            return len(found) >= count

        await wait_until(enough, f"{count} actions", timeout_s=60)
    finally:
        await reader.stop()
    return found
