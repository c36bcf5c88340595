"""The playground's web server: the static page and the JSON it polls. Local only, no build step.

In the demo it shows the demo server and lets a person act in it; following real deployments it shows
their decisions and state, read-only, without the emulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ValidationError

from demo.playground.agents import AgentError, AgentSource
from demo.playground.compose import ComposeError
from demo.playground.live import LiveState
from demo.playground.room import DemoRoom
from demo.playground.views import (
    AiView,
    ComposeRequest,
    LiveView,
    ProcessView,
    SessionView,
)
from inference.config import LOCAL_ENDPOINT_NAME, inference_config
from models.agent import AgentConfig
from models.inference import LOCAL_MODEL_NAME
from settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
DECISIONS_SHOWN = 40
ModelT = TypeVar("ModelT", bound=BaseModel)


def ai_view(settings: Settings) -> AiView:
    """How AI agents answer here: the configured model endpoints (by host, never a key), or the offline
    persona responder."""
    endpoints = inference_config(settings, settings.inference_endpoints).endpoints
    if not endpoints:
        return AiView(
            offline=True,
            description="AI agents answer through the offline persona responder (no model endpoint is "
            "configured and DEEP_LOCAL_MODEL is off): in character, from their catchphrases, interests and "
            "mood. Set OPENAI_BASE_URL (a vLLM server or OpenAI) and OPENAI_API_KEY to use a model.",
        )
    if [e.name for e in endpoints] == [LOCAL_ENDPOINT_NAME]:
        return AiView(
            offline=False,
            description=f"AI agents answer through the embedded model {LOCAL_MODEL_NAME} "
            f"({urlsplit(endpoints[0].base_url).netloc}, started by `deep stack up`): a tiny model, quick "
            "on a CPU. Set OPENAI_BASE_URL (a vLLM server or OpenAI) and OPENAI_API_KEY to use a larger one.",
        )
    hosts = ", ".join(f"{e.name} ({urlsplit(e.base_url).hostname})" for e in endpoints)
    return AiView(offline=False, description=f"AI agents answer through {hosts}.")


@dataclass
class Playground:
    mode: Literal["demo", "follow"]
    ai: AiView
    agents: AgentSource
    state: LiveState
    room: DemoRoom | None = None
    processes: Callable[[], list[ProcessView]] = field(default=list)


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json(), status=status, content_type="application/json")


def _error(status: int, detail: object) -> web.Response:
    return web.json_response({"detail": detail}, status=status)


async def _body(request: web.Request, model: type[ModelT]) -> ModelT:
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as error:
        raise web.HTTPUnprocessableEntity(
            text=f'{{"detail": {error.json(include_url=False, include_context=False)}}}',
            content_type="application/json",
        ) from None


def create_app(playground: Playground) -> web.Application:
    app = web.Application()

    def room() -> DemoRoom:
        if playground.room is None:
            raise web.HTTPForbidden(
                text='{"detail": "read-only: no demo server here"}', content_type="application/json"
            )
        return playground.room

    def deployment(request: web.Request) -> UUID:
        try:
            deployment_id = UUID(request.match_info["deployment_id"])
        except ValueError:
            raise web.HTTPNotFound() from None
        if deployment_id not in playground.state.tallies:
            raise web.HTTPNotFound()
        return deployment_id

    async def index(_: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC_DIR / "index.html")

    async def session(_: web.Request) -> web.Response:
        demo_room = playground.room
        return _json(
            SessionView(
                mode=playground.mode,
                ai=playground.ai,
                guild=demo_room.guild() if demo_room is not None else None,
                you=demo_room.you if demo_room is not None else None,
                agents=playground.agents.agents(),
            )
        )

    async def live(_: web.Request) -> web.Response:
        state = playground.state
        demo_room = playground.room
        you = demo_room.you.id if demo_room is not None else None
        agents = []
        for agent in playground.agents.agents():
            presence, status = demo_room.presence(agent.bot_id) if demo_room is not None else ("unknown", "")
            agents.append(state.agent(agent.deployment_id, you, presence, status))
        return _json(
            LiveView(
                counters=state.counters(time.monotonic()),
                agents=agents,
                decisions=state.decisions(DECISIONS_SHOWN),
                moderation=state.moderation_view(),
                processes=playground.processes(),
            )
        )

    async def messages(request: web.Request) -> web.Response:
        shown = await room().messages(request.match_info["channel_id"], playground.state.answers)
        return web.Response(
            body=b"[" + b",".join(m.model_dump_json().encode() for m in shown) + b"]",
            content_type="application/json",
        )

    async def compose(request: web.Request) -> web.Response:
        body = await _body(request, ComposeRequest)
        try:
            result = await room().compose(request.match_info["channel_id"], body, playground.agents.agents())
        except ComposeError as error:
            return _error(400, str(error))
        return _json(result, 201)

    async def decisions(request: web.Request) -> web.Response:
        shown = playground.state.decisions(DECISIONS_SHOWN, deployment(request))
        return web.Response(
            body=b"[" + b",".join(d.model_dump_json().encode() for d in shown) + b"]",
            content_type="application/json",
        )

    async def notifications(_: web.Request) -> web.Response:
        try:
            shown = await playground.agents.notifications()
        except AgentError as error:
            return web.json_response(error.body, status=error.status)
        return web.Response(
            body=b"[" + b",".join(n.model_dump_json().encode() for n in shown) + b"]",
            content_type="application/json",
        )

    async def update_config(request: web.Request) -> web.Response:
        deployment_id = deployment(request)
        config = await _body(request, AgentConfig)
        try:
            updated = await playground.agents.update(deployment_id, config)
        except AgentError as error:
            return web.json_response(error.body, status=error.status)
        return _json(updated)

    app.router.add_get("/", index)
    app.router.add_static("/static", STATIC_DIR)
    app.router.add_get("/api/session", session)
    app.router.add_get("/api/live", live)
    app.router.add_get("/api/channels/{channel_id:\\d+}/messages", messages)
    app.router.add_post("/api/channels/{channel_id:\\d+}/messages", compose)
    app.router.add_get("/api/agents/{deployment_id}/decisions", decisions)
    app.router.add_put("/api/agents/{deployment_id}/config", update_config)
    app.router.add_get("/api/notifications", notifications)
    return app


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
