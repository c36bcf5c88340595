"""Errors as HTTP answers: one body shape (ErrorBody) naming the field at fault, never echoing input.

Input is never echoed because it may be a bot token (POST /tokens): pydantic's own 422 includes it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from weaviate.exceptions import WeaviateBaseError

from api.characters import CharacterError
from api.policy import TierViolation, UnimplementedTool
from api.routing_records import RoutingLimitExceeded
from api.schemas import ErrorBody, FieldError
from api.store import Conflict, NotFound
from models.common import error_paths
from streams.outbox import OutboxValueTooLarge
from vault.errors import BotTaken, DiscordUnavailable, TokenNotFound, TokenRejected

log = logging.getLogger(__name__)

_LOCATIONS = ("body", "query", "path", "header")


class Unauthorized(Exception):
    pass


class Forbidden(Exception):
    pass


class BadField(Exception):
    """A 400 naming the field at fault, for input that is well-formed but not acceptable now (an expired
    sign-in state)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class Unavailable(Exception):
    """A service the answer needs is down (503); the message says which, never how it failed inside."""


class BodyTooLarge(StarletteHTTPException):
    """A request body found over the limit as it arrives. An HTTP exception, which FastAPI's body parsing
    passes on (any other it answers with a 400 of its own)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: is larger than {limit} bytes")
        self.limit = limit


class BodyLimit:
    """Refuses a request body larger than `max_bytes` before it is read into memory whole: by its declared
    Content-Length, else as it arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _body_too_large(self.max_bytes)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, counted, send)


class RateLimited(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limit exceeded; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def error_response(
    status: int, detail: str, errors: list[FieldError] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(detail=detail, errors=errors or [])
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _body_too_large(limit: int) -> JSONResponse:
    message = f"is larger than {limit} bytes"
    return error_response(413, f"body: {message}", [FieldError(path="body", message=message)])


async def _body_refused(_: Request, exc: Exception) -> JSONResponse:
    return _body_too_large(cast(BodyTooLarge, exc).limit)


def _field_errors(exc: RequestValidationError) -> list[FieldError]:
    # error_paths only calls .errors(), which RequestValidationError has with pydantic's shape.
    paths = error_paths(cast(ValidationError, exc))
    errors = []
    for path, error in zip(paths, exc.errors(), strict=True):
        location, _, rest = path.partition(".")
        if location == "body":
            path = rest or "body"
        elif location in _LOCATIONS:
            path = f"{rest} ({location})" if rest else location
        ctx = error.get("ctx") or {}
        message = str(ctx["message"]) if error["type"] == "invalid_field" else str(error["msg"])
        errors.append(FieldError(path=path, message=message))
    return errors


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    errors = _field_errors(cast(RequestValidationError, exc))
    detail = "; ".join(f"{error.path}: {error.message}" for error in errors[:5]) or "invalid request"
    return error_response(422, detail, errors)


def _simple(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handler(_: Request, exc: Exception) -> JSONResponse:
        return error_response(status, str(exc))

    return handler


async def _tier(_: Request, exc: Exception) -> JSONResponse:
    violation = cast(TierViolation, exc)
    errors = [FieldError(path=violation.path, message=violation.message)] if violation.path else []
    return error_response(403, violation.message, errors)


async def _unimplemented(_: Request, exc: Exception) -> JSONResponse:
    error = cast(UnimplementedTool, exc)
    return error_response(422, str(error), [FieldError(path=error.path, message=error.message)])


async def _character(_: Request, exc: Exception) -> JSONResponse:
    error = cast(CharacterError, exc)
    return error_response(
        422, str(error), [FieldError(path=path, message=error.message) for path in error.paths]
    )


async def _bad_field(_: Request, exc: Exception) -> JSONResponse:
    error = cast(BadField, exc)
    return error_response(400, str(error), [FieldError(path=error.path, message=error.message)])


async def _token_rejected(_: Request, exc: Exception) -> JSONResponse:
    return error_response(422, f"token: {exc}", [FieldError(path="token", message=str(exc))])


async def _memory_unavailable(_: Request, exc: Exception) -> JSONResponse:
    # Weaviate's message may name tenants and hosts: the caller learns only that memory is down.
    log.warning("long-term memory unavailable: %s", exc)
    return error_response(503, "long-term memory is unavailable; try again later")


async def _unauthorized(_: Request, exc: Exception) -> JSONResponse:
    return error_response(401, str(exc), headers={"WWW-Authenticate": "Bearer"})


async def _rate_limited(_: Request, exc: Exception) -> JSONResponse:
    retry = cast(RateLimited, exc).retry_after_s
    return error_response(429, str(exc), headers={"Retry-After": str(retry)})


def _nul_paths(value: Any, path: str = "") -> list[str]:
    """Where a JSON document holds a NUL character, which PostgreSQL text and jsonb cannot store."""
    if isinstance(value, str):
        return [path or "body"] if "\x00" in value else []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    paths = []
    for key, item in items:
        child = f"{path}.{key}" if path else str(key)
        paths.extend([child] if "\x00" in str(key) else _nul_paths(item, child))
    return paths


async def _unstorable_text(request: Request, _: Exception) -> JSONResponse:
    try:
        paths = _nul_paths(orjson.loads(await request.body())) or ["body"]
    except orjson.JSONDecodeError:
        paths = ["body"]
    message = "text must not contain NUL (\\u0000) characters"
    return error_response(
        422, f"{paths[0]}: {message}", [FieldError(path=path, message=message) for path in paths]
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(BodyTooLarge, _body_refused)
    app.add_exception_handler(TierViolation, _tier)
    app.add_exception_handler(UnimplementedTool, _unimplemented)
    app.add_exception_handler(CharacterError, _character)
    app.add_exception_handler(TokenRejected, _token_rejected)
    app.add_exception_handler(BadField, _bad_field)
    app.add_exception_handler(Unauthorized, _unauthorized)
    app.add_exception_handler(RateLimited, _rate_limited)
    app.add_exception_handler(WeaviateBaseError, _memory_unavailable)
    app.add_exception_handler(asyncpg.CharacterNotInRepertoireError, _unstorable_text)
    app.add_exception_handler(asyncpg.UntranslatableCharacterError, _unstorable_text)
    for exc_type, status in (
        (NotFound, 404),
        (TokenNotFound, 404),
        (Forbidden, 403),
        (Conflict, 409),
        (BotTaken, 409),
        (RoutingLimitExceeded, 409),
        (OutboxValueTooLarge, 409),
        (DiscordUnavailable, 502),
        (Unavailable, 503),
    ):
        app.add_exception_handler(exc_type, _simple(status))
