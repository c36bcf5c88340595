"""JSON request/response helpers shared by the REST and control APIs."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from .errors import ApiError

# discord.py parses a body as JSON only when Content-Type is exactly this (no charset).
JSON_HEADERS = {"Content-Type": "application/json"}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers={**JSON_HEADERS, **(headers or {})})


def no_content() -> web.Response:
    return web.Response(status=204)


def error_response(error: ApiError) -> web.Response:
    return json_response(error.body(), error.status)


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, 50109, "The request body contains invalid JSON.")
    return body
