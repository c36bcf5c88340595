"""The playground's server against the emulator alone: the page, the demo server's view, and acting as the
person at the keyboard (messages, mentions, slash commands and their answers, public and ephemeral)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from api.presets import all_presets
from demo.playground.agents import ReadOnlyAgents
from demo.playground.live import LiveState, Names
from demo.playground.room import DemoRoom
from demo.playground.server import Playground, ai_view, create_app
from demo.playground.views import AgentView, AiView
from demo.seed import DemoAgent, DemoWorld
from demo.world import AGENTS, WorldIds, agent_config
from emulator.discord import DiscordEmulator, EmulatorControl
from models.commands import agent_commands
from models.inference import LOCAL_MODEL_NAME
from settings import load_settings
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
async def world(seeded: tuple[WorldIds, dict[str, SecretStr]], emulator: DiscordEmulator) -> DemoWorld:
    ids, _ = seeded
    presets = all_presets()
    agents = tuple(
        DemoAgent(
            plan, ids.bot_ids[plan.key], uuid4(), uuid4(), agent_config(plan, presets[plan.preset].config)
        )
        for plan in AGENTS
    )
    # No gateway runner here: each bot registers its agent's commands as the runner would.
    for agent in agents:
        bot = emulator.world.bots[agent.bot_id]
        commands = [command.model_dump(mode="json") for command in agent_commands(agent.config)]
        emulator.put_commands(bot, bot.application_id, ids.guild_id, commands)
    return DemoWorld(ids, agents, uuid4(), SecretStr("unused"))


@pytest.fixture(scope="module")
async def client(world: DemoWorld, control: EmulatorControl) -> AsyncIterator[TestClient]:
    names = Names()
    room = DemoRoom(control, world, names)
    views = [
        AgentView(
            deployment_id=a.deployment_id,
            agent_id=a.agent_id,
            bot_id=a.bot_id,
            guild_id=world.ids.guild_id,
            name=a.plan.name,
            config=a.config,
            editable=False,
        )
        for a in world.agents
    ]
    state = LiveState({a.deployment_id: a.bot_id for a in world.agents}, {world.ids.guild_id}, names)
    ai = AiView(offline=True, description="offline persona responder")
    app = create_app(Playground("demo", ai, ReadOnlyAgents(views), state, room))
    follower = asyncio.create_task(room.run())
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
    follower.cancel()


def bot_of(world: DemoWorld, name: str) -> str:
    return next(a.bot_id for a in world.agents if a.plan.name == name)


async def test_the_page_and_its_assets_are_served_locally(client: TestClient) -> None:
    page = await (await client.get("/")).text()
    assert '<script src="/static/app.js">' in page
    for asset in ("app.js", "style.css"):
        response = await client.get(f"/static/{asset}")
        assert response.status == 200
        # Nothing is fetched from elsewhere: no CDN, no build step.
        assert "http://" not in (await response.text()) and "https://" not in (await response.text())


async def test_the_session_describes_the_demo_server(client: TestClient, world: DemoWorld) -> None:
    session = await (await client.get("/api/session")).json()
    assert session["mode"] == "demo" and session["ai"]["offline"]
    guild = session["guild"]
    assert guild["name"] == "Deep Demo"
    assert [c["name"] for c in guild["channels"]] == [
        "general",
        "anime",
        "gaming",
        "music",
        "Lounge",
        "announcements",
    ]
    assert len(guild["members"]) == 9 and guild["members"][0]["name"] == "You"
    assert {a["name"] for a in session["agents"]} == {plan.name for plan in AGENTS}
    assert session["you"]["id"] == world.ids.you.user_id


async def test_a_message_with_a_mention_reaches_discord_as_a_real_mention(
    client: TestClient, world: DemoWorld, emulator: DiscordEmulator
) -> None:
    general = world.ids.channel_named("general").channel_id
    response = await client.post(
        f"/api/channels/{general}/messages", json={"content": "hi @Luna and @mod bot!"}
    )
    assert response.status == 201
    posted = emulator.history(general, 1)[0]
    assert posted["content"] == f"hi <@{bot_of(world, 'Luna')}> and <@{bot_of(world, 'Mod Bot')}>!"
    assert posted["author"]["id"] == world.ids.you.user_id
    shown = (await (await client.get(f"/api/channels/{general}/messages")).json())[-1]
    assert (shown["author_name"], shown["content"]) == ("You", "hi @Luna and @Mod Bot!")


async def test_a_slash_command_is_an_interaction_and_its_answer_shows_under_it(
    client: TestClient, world: DemoWorld, emulator: DiscordEmulator
) -> None:
    music = world.ids.channel_named("music").channel_id
    response = await client.post(f"/api/channels/{music}/messages", json={"content": "/play lofi"})
    assert (await response.json())["bot_id"] == bot_of(world, "Music Bot")
    interaction = list(emulator.world.interactions.values())[-1]
    assert (interaction.bot_id, interaction.user_id) == (bot_of(world, "Music Bot"), world.ids.you.user_id)
    # The music bot answers as the platform would, through the interaction callback.
    emulator.interaction_callback(
        interaction.id, interaction.token, {"type": 4, "data": {"content": "Playing: lofi"}}
    )
    shown = (await (await client.get(f"/api/channels/{music}/messages")).json())[-1]
    assert (shown["author_name"], shown["content"], shown["command"]) == (
        "Music Bot",
        "Playing: lofi",
        "/play lofi",
    )
    assert shown["bot"] and not shown["ephemeral"]


async def test_an_ephemeral_answer_is_shown_only_here(
    client: TestClient, world: DemoWorld, emulator: DiscordEmulator
) -> None:
    gaming = world.ids.channel_named("gaming").channel_id
    luna = bot_of(world, "Luna")
    response = await client.post(
        f"/api/channels/{gaming}/messages", json={"content": "/queue", "bot_id": luna}
    )
    assert (await response.json())["bot_id"] == luna
    interaction = list(emulator.world.interactions.values())[-1]
    emulator.interaction_callback(
        interaction.id,
        interaction.token,
        {"type": 4, "data": {"content": "The queue is empty.", "flags": 64}},
    )
    assert (
        emulator.history(gaming, 1) == []
        or emulator.history(gaming, 1)[0]["content"] != "The queue is empty."
    )

    async def answer_shown() -> list[dict[str, object]]:
        shown: list[dict[str, object]] = await (await client.get(f"/api/channels/{gaming}/messages")).json()
        return shown if shown and shown[-1]["content"] == "The queue is empty." else []

    shown = await wait_until(answer_shown, "the ephemeral answer in the channel")
    assert (shown[-1]["author_name"], shown[-1]["command"], shown[-1]["ephemeral"]) == (
        "Luna",
        "/queue",
        True,
    )


@pytest.mark.parametrize(
    ("content", "detail"),
    [("/play", "query is missing. Usage: /play <query>"), ("/dance", "no agent here has /dance")],
)
async def test_a_command_that_cannot_be_sent_says_why(
    client: TestClient, world: DemoWorld, content: str, detail: str
) -> None:
    general = world.ids.channel_named("general").channel_id
    response = await client.post(f"/api/channels/{general}/messages", json={"content": content})
    assert response.status == 400
    assert (await response.json())["detail"] == detail


async def test_bad_requests_are_refused_naming_the_field(client: TestClient, world: DemoWorld) -> None:
    general = world.ids.channel_named("general").channel_id
    response = await client.post(f"/api/channels/{general}/messages", json={"content": ""})
    assert response.status == 422
    assert (await response.json())["detail"][0]["loc"] == ["content"]
    luna = next(a for a in world.agents if a.plan.name == "Luna")
    refused = await client.put(
        f"/api/agents/{luna.deployment_id}/config", json=luna.config.model_dump(mode="json")
    )
    assert refused.status == 403 and "read-only" in (await refused.json())["detail"]
    assert (await client.put(f"/api/agents/{uuid4()}/config", json={})).status == 404


async def test_live_view_shows_every_agent_and_its_presence(client: TestClient, world: DemoWorld) -> None:
    live = await (await client.get("/api/live")).json()
    assert {a["deployment_id"] for a in live["agents"]} == {str(a.deployment_id) for a in world.agents}
    # No gateway runner here: every bot is offline.
    assert {a["presence"] for a in live["agents"]} == {"offline"}
    assert live["counters"]["events"] == 0


def test_the_ai_notice_says_which_path_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("INFERENCE_ENDPOINTS", raising=False)
    monkeypatch.setenv("DEEP_LOCAL_MODEL", "true")
    local = ai_view(load_settings())
    assert not local.offline and LOCAL_MODEL_NAME in local.description
    monkeypatch.setenv("DEEP_LOCAL_MODEL", "false")
    assert ai_view(load_settings()).offline
    monkeypatch.setenv("OPENAI_BASE_URL", "http://vllm.internal:8000/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    online = ai_view(load_settings())
    assert (
        not online.offline and "vllm.internal" in online.description and "sk-secret" not in online.description
    )
