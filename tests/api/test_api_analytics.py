"""The console's analytics: the API asks the sinks' answering service (run here, on this test's ClickHouse)
and each owner sees their own agents' rows only, through every filter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from clickhouse_connect.driver.client import Client

from api.analytics import AnalyticsClient
from api.errors import Unavailable
from infra.stack.clickhouse import engine_holder, get_clickhouse_client
from models.agent import AgentMode
from models.analytics import Bucket, OwnerAnalyticsQuery
from models.templates import mode_template
from models.tiers import Tier
from settings import Settings
from sinks.clickhouse.schema import migrate
from sinks.consumer import TableWriter
from sinks.owner_analytics import OwnerAnalyticsService
from sinks.tables import ACTIONS, DECISIONS, INFERENCE_USAGE
from streams.catalog import ANALYTICS_ANSWERS, ANALYTICS_QUERIES, dead_letter_topic
from tests.api.conftest import API_TOPICS, NewOwner, guild_id
from tests.kafka_namespace import temporary_namespace

pytestmark = pytest.mark.stack

SHARED_GUILD = guild_id()
START = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture(scope="module")
async def namespace(base_settings: Settings) -> AsyncIterator[str]:
    topics = (*API_TOPICS, ANALYTICS_QUERIES, ANALYTICS_ANSWERS, dead_letter_topic(ANALYTICS_QUERIES))
    async with temporary_namespace(base_settings.kafka_bootstrap, topics) as namespace:
        yield namespace


@pytest.fixture(scope="module")
def clickhouse(base_settings: Settings) -> Iterator[tuple[Client, str]]:
    holder = None if base_settings.clickhouse_url else engine_holder(base_settings.clickhouse_path)
    if holder is not None:
        pytest.fail(f"the embedded ClickHouse is held by pid {holder}; set CLICKHOUSE_URL=chdb:///tmp/<dir>")
    client = get_clickhouse_client(base_settings)
    database = f"console_{uuid4().hex[:10]}"
    migrate(client, database)
    yield client, database
    client.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")


@pytest.fixture(scope="module")
async def answering(
    clickhouse: tuple[Client, str], base_settings: Settings, namespace: str
) -> AsyncIterator[None]:
    """The sinks process's answering service, on this module's topics and database."""
    client, database = clickhouse
    producer = AIOKafkaProducer(bootstrap_servers=base_settings.kafka_bootstrap)
    await producer.start()
    service = OwnerAnalyticsService(
        client, database, bootstrap=base_settings.kafka_bootstrap, namespace=namespace, producer=producer
    )
    task = asyncio.create_task(service.run())
    yield
    service.stop()
    await task
    await producer.stop()


async def deployed_agent(
    client: httpx.AsyncClient, headers: dict[str, str], add_token: Any, name: str
) -> dict[str, Any]:
    """An agent deployed in the shared guild: the deployment as JSON."""
    config = {**mode_template(AgentMode.bare).model_dump(mode="json"), "name": name}
    agent = (await client.post("/agents", json=config, headers=headers)).json()
    token = await add_token(headers)
    deployed = await client.post(
        f"/agents/{agent['agent_id']}/deployments",
        json={"guild_id": SHARED_GUILD, "token_id": token["token_id"]},
        headers=headers,
    )
    assert deployed.status_code == 201, deployed.text
    return dict(deployed.json())


def call_row(
    deployment: dict[str, Any], event: str, at: datetime, latency_ms: float, *, failed: bool
) -> tuple[Any, ...]:
    """An inference_usage row of the deployment's agent: $0.01 a call that succeeded."""
    d = deployment
    cost = 0.0 if failed else 0.01
    return (uuid4().hex, event, d["deployment_id"], d["agent_id"], d["owner_id"], d["bot_id"], SHARED_GUILD,
            "pro", "standard", "m", 10, 5, latency_ms, cost, False, False, failed, at)  # fmt: skip


def activity(
    client: Client, database: str, deployment: dict[str, Any], messages: list[tuple[str, str, str]]
) -> None:
    """Rows as the sinks write them: a decision per (message id, author, reason) an hour apart from START,
    a reply and an AI call (100 ms more each hour) for each answered one, plus a failed AI call."""
    d = deployment
    decisions, replies = [], []
    calls = [call_row(d, "ev-failed", START + timedelta(minutes=30), 5000.0, failed=True)]
    for index, (message_id, author, reason) in enumerate(messages):
        at = START + timedelta(hours=index, minutes=5)
        respond = reason == "mentioned"
        event = f"ev-{uuid4().hex}"
        decisions.append((event, d["deployment_id"], d["agent_id"], SHARED_GUILD, "200", message_id, author,
                          respond, reason, "", at))  # fmt: skip
        if respond:
            replied = at + timedelta(seconds=1)
            replies.append((uuid4().hex, "reply", d["bot_id"], SHARED_GUILD, "200", d["deployment_id"], event,
                            3, replied))  # fmt: skip
            calls.append(call_row(d, event, at, 100.0 * (index + 1), failed=False))
    TableWriter(client, database, DECISIONS).insert_now(decisions, None)
    TableWriter(client, database, ACTIONS).insert_now(replies, None)
    TableWriter(client, database, INFERENCE_USAGE).insert_now(calls, None)


@pytest.fixture(scope="module")
async def owners(
    client: httpx.AsyncClient,
    new_owner: NewOwner,
    add_token: Any,
    clickhouse: tuple[Client, str],
    answering: None,
) -> dict[str, Any]:
    owner_a, owner_b = await new_owner(Tier.pro, name="a"), await new_owner(Tier.pro, name="b")
    deployment_a = await deployed_agent(client, owner_a, add_token, "Agent A")
    deployment_b = await deployed_agent(client, owner_b, add_token, "Agent B")
    activity(
        *clickhouse,
        deployment_a,
        [("1001", "71", "mentioned"), ("1002", "72", "mentioned"), ("1003", "71", "no_trigger")],
    )
    activity(*clickhouse, deployment_b, [("2001", "81", "mentioned")])
    return {"a": (owner_a, deployment_a), "b": (owner_b, deployment_b)}


def window(**extra: str) -> dict[str, str]:
    return {
        "from": START.isoformat(),
        "to": (START + timedelta(hours=3)).isoformat(),
        "bucket": "hour",
        **extra,
    }


async def test_an_owner_sees_their_agents_activity(client: httpx.AsyncClient, owners: dict[str, Any]) -> None:
    headers, deployment = owners["a"]
    url = f"/owners/{deployment['owner_id']}/analytics"
    answer = await client.get(url, params=window(), headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [point["t"] for point in body["series"]] == [
        (START + timedelta(hours=h)).isoformat().replace("+00:00", "Z") for h in range(3)
    ]
    first, second, third = body["series"]
    assert (first["messages_seen"], first["replies"], first["ai_calls"], first["active_users"]) == (
        1,
        1,
        2,
        1,
    )
    # The failed call counts as a call but not in the latencies.
    assert first["latency_p50_ms"] == 100.0 and first["ai_cost_usd"] == 0.01
    assert (second["messages_seen"], second["replies"], second["latency_p99_ms"]) == (1, 1, 200.0)
    assert (third["messages_seen"], third["replies"], third["ai_calls"], third["latency_p50_ms"]) == (
        1,
        0,
        0,
        None,
    )
    assert body["decisions_by_reason"] == {"mentioned": 2, "no_trigger": 1}
    assert body["by_agent"] == [
        {
            "agent_id": deployment["agent_id"],
            "messages_seen": 3,
            "replies": 2,
            "ai_calls": 3,
            "ai_cost_usd": 0.02,
        }
    ]
    assert body["by_guild"] == [
        {"guild_id": SHARED_GUILD, "messages_seen": 3, "replies": 2, "ai_calls": 3, "ai_cost_usd": 0.02}
    ]


async def test_owner_b_sees_none_of_owner_as_rows_through_any_filter(
    client: httpx.AsyncClient, owners: dict[str, Any]
) -> None:
    headers_b, deployment_b = owners["b"]
    _, deployment_a = owners["a"]
    url_b = f"/owners/{deployment_b['owner_id']}/analytics"
    for filters in ({}, {"guild_id": SHARED_GUILD}, {"agent_id": deployment_b["agent_id"]}):
        body = (await client.get(url_b, params=window(**filters), headers=headers_b)).json()
        assert sum(point["messages_seen"] for point in body["series"]) == 1, filters
        assert body["decisions_by_reason"] == {"mentioned": 1}
        assert [agent["agent_id"] for agent in body["by_agent"]] == [deployment_b["agent_id"]]
        assert body["by_guild"][0]["ai_calls"] == 2
    foreign_agent = await client.get(
        url_b, params=window(agent_id=deployment_a["agent_id"]), headers=headers_b
    )
    assert foreign_agent.status_code == 404
    foreign_owner = await client.get(
        f"/owners/{deployment_a['owner_id']}/analytics", params=window(), headers=headers_b
    )
    assert foreign_owner.status_code == 404


async def test_bad_ranges_name_the_field(client: httpx.AsyncClient, owners: dict[str, Any]) -> None:
    headers, deployment = owners["a"]
    url = f"/owners/{deployment['owner_id']}/analytics"
    backwards = await client.get(
        url, params={"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, headers=headers
    )
    assert backwards.status_code == 400 and backwards.json()["errors"][0]["path"] == "from"
    too_long = await client.get(
        url,
        params={"from": "2025-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z", "bucket": "hour"},
        headers=headers,
    )
    assert too_long.status_code == 400 and too_long.json()["errors"][0]["path"] == "from"
    weekly = await client.get(url, params={"bucket": "week"}, headers=headers)
    assert weekly.status_code == 422 and weekly.json()["errors"][0]["path"] == "bucket (query)"


async def test_without_an_answer_analytics_are_unavailable(base_settings: Settings) -> None:
    """No sinks process answers (here: its topics do not even exist): a clear 503, not a hung request."""
    client = AnalyticsClient(base_settings.kafka_bootstrap, f"absent-{uuid4().hex[:8]}.", timeout_s=2.0)
    query = OwnerAnalyticsQuery(
        request_id=uuid4().hex,
        owner_id=uuid4(),
        deployments={},
        agent_ids=[],
        start=START,
        end=START + timedelta(hours=1),
        bucket=Bucket.hour,
    )
    try:
        with pytest.raises(Unavailable):
            await client.ask(query)
    finally:
        await client.close()
