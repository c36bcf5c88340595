"""`/stats` end to end: members talk in the emulator's guild, the sinks copy the events into ClickHouse (an
engine of the demo's own), a moderator asks Nova for `/stats`, and the answer arrives in the emulator as an
embed with the chart attached: emulator -> gateway -> processors -> analytics.requests -> sinks ->
discord.actions -> gateway -> emulator."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

import httpx
import pytest
from PIL import Image

from emulator.openai import OpenAICompatibleServer
from emulator.openai.server import Behaviour
from settings import Settings
from tests.e2e.conftest import COMPLETION, Demo, demo_env, demo_world

pytestmark = pytest.mark.stack

# The sinks flush every second; an answer is asked again until it counts what was said.
COUNTED_S = 90.0


@pytest.fixture(scope="module")
async def demo(stack_up: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Demo]:
    inference = OpenAICompatibleServer(Behaviour(models=[], reply_template=COMPLETION))
    await inference.start()
    engine_dir = tmp_path_factory.mktemp("e2e-stats-clickhouse")
    env = demo_env(
        OPENAI_BASE_URL=inference.base_url, OPENAI_API_KEY="test-key", CLICKHOUSE_URL=f"chdb://{engine_dir}"
    )
    try:
        async with demo_world(stack_up, tmp_path_factory.mktemp("e2e-stats"), env, sinks=True) as world:
            yield Demo(**{f.name: getattr(world, f.name) for f in fields(world)}, inference=inference)
    finally:
        await inference.stop()


def stats_answer(nova: str) -> Any:
    """Matches Nova's /stats answer: an interaction response (or its edit) with an embed and a file."""

    def match(action: dict[str, Any]) -> bool:
        payload = action["payload"]
        data = payload.get("data") or {}
        return (
            action["bot_id"] == nova
            and action["kind"] == "interaction_response"
            and any(e.get("title", "").startswith("Server activity") for e in data.get("embeds") or [])
        )

    return match


async def test_a_moderator_gets_the_guilds_activity_as_an_embed_with_its_chart(demo: Demo) -> None:
    nova, general = demo.bots["Nova"], demo.channels["general"]
    for text in ("first", "second", "third"):
        await demo.control.post_user_message(demo.users["aiko"], f"stats e2e {text}", general)
    deadline = time.monotonic() + COUNTED_S
    fields_shown: dict[str, str] = {}
    while fields_shown.get("Messages") != "3":
        assert time.monotonic() < deadline, f"/stats never counted the 3 messages: {fields_shown}"
        since = await demo.last_seq()
        await demo.control.invoke_command(nova, demo.users["owner"], general, "stats", [])
        answer = await demo.wait_action(since, stats_answer(nova))
        [embed] = answer["payload"]["data"]["embeds"]
        fields_shown = {field["name"]: field["value"] for field in embed["fields"]}
    assert fields_shown["Active members"] == "1"
    assert fields_shown["Busiest channels"] == f"<#{general}> · 3"
    assert embed["image"]["url"] == "attachment://stats.png"
    [attachment] = answer["payload"]["data"]["attachments"]
    assert attachment["filename"] == "stats.png"
    async with httpx.AsyncClient() as http:
        chart = await http.get(attachment["url"])
    assert chart.status_code == 200
    assert Image.open(io.BytesIO(chart.content)).format == "PNG"
    # Only moderators: a member is refused, privately.
    since = await demo.last_seq()
    await demo.control.invoke_command(nova, demo.users["aiko"], general, "stats", [])
    refused = await demo.wait_action(
        since, lambda a: a["bot_id"] == nova and "Moderate Members" in str(a["payload"].get("data"))
    )
    assert refused["payload"]["data"]["flags"] & 64
