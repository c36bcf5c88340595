"""The playground lists the demo owner's notifications, read through the configuration API with their key."""

from __future__ import annotations

from uuid import uuid4

import httpx
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from demo.playground.agents import ApiAgents
from demo.playground.live import LiveState, Names
from demo.playground.server import Playground, create_app
from demo.playground.views import AiView
from models.operations import OwnerNotification

OWNER = uuid4()
REPORT = OwnerNotification(
    notification_id="n1", owner_id=OWNER, kind="message_reported", message="User 1 reported a message"
)


def configuration_api(request: httpx.Request) -> httpx.Response:
    if request.headers.get("Authorization") != "Bearer owner-key":
        return httpx.Response(401, json={"detail": "missing or unknown API key"})
    if request.url.path != f"/owners/{OWNER}/notifications":
        return httpx.Response(404, json={"detail": "not found"})
    return httpx.Response(200, json=[REPORT.model_dump(mode="json")])


async def test_the_page_lists_the_owners_notifications_from_the_api() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(configuration_api), base_url="http://api"
    ) as http:
        agents = ApiAgents(http, OWNER, SecretStr("owner-key"), [])
        state = LiveState({}, set(), Names())
        app = create_app(Playground("demo", AiView(offline=True, description="offline"), agents, state))
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/api/notifications")
            assert response.status == 200
            [shown] = [OwnerNotification.model_validate(n) for n in await response.json()]
    assert shown == REPORT


async def test_an_api_refusal_is_passed_on() -> None:
    async with httpx.AsyncClient(
        transport=httpx.MockTransport(configuration_api), base_url="http://api"
    ) as http:
        agents = ApiAgents(http, OWNER, SecretStr("wrong-key"), [])
        app = create_app(
            Playground(
                "demo", AiView(offline=True, description="offline"), agents, LiveState({}, set(), Names())
            )
        )
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/api/notifications")
            assert response.status == 401
