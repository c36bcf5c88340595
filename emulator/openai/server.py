"""An OpenAI-compatible chat completions server for tests and benchmarks: real HTTP on 127.0.0.1.

It speaks the subset of the API that vLLM's `vllm serve` and OpenAI share and the platform uses:
POST /v1/chat/completions (JSON, or server-sent events with stream=true) and GET /v1/models. Replies are
scripted (a queue of replies, a template, or a Python function), and the server can be made slow, failing
(a status for every request, for the next N, or at a rate) or hanging (a request is never answered, so the
client's timeout fires). Every request is logged so tests can assert what arrived.

Control over HTTP, for a server in another process: GET /_emulator/calls, POST /_emulator/behaviour
(fields of Behaviour), POST /_emulator/replies (a JSON list of strings), POST /_emulator/reset.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from uuid import uuid4

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from emulator.http import LocalHttpServer

# Longest a hanging request is held before the server gives up on it itself.
MAX_HANG_S = 600.0


class Behaviour(BaseModel):
    """How the server answers; every field can be changed while it runs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    latency_s: float = Field(default=0.0, ge=0.0)
    # Every request is answered with this status (e.g. 500, 429, 503) when set.
    fail_status: int | None = Field(default=None, ge=400, le=599)
    # The next N requests fail, with fail_status or 500.
    fail_next: int = Field(default=0, ge=0)
    # Share of requests answered with 500, drawn from a generator seeded by `seed`.
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    seed: int = 0
    # Requests are held without an answer until the client gives up (its timeout).
    hang: bool = False
    # Models served (GET /v1/models); a request for another gets 404 as from vLLM. Empty: any model.
    models: list[str] = Field(default_factory=lambda: ["test-model"])
    # Reply when no scripted reply is queued; {last_user}, {model} and {call} are filled in.
    reply_template: str = "echo: {last_user}"
    # API key the client must send as a bearer token; None accepts any.
    api_key: str | None = None
    stream_chunk_chars: int = Field(default=8, ge=1)


@dataclass
class RecordedCall:
    """One request as the server saw it."""

    index: int
    path: str
    model: str
    messages: list[dict[str, Any]]
    stream: bool
    max_tokens: int | None
    temperature: float | None
    received_at: float
    finished_at: float | None = None
    status: int | None = None
    reply: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last_user(self) -> str:
        users = [m.get("content", "") for m in self.messages if m.get("role") == "user"]
        return str(users[-1]) if users else ""


Responder = Callable[[RecordedCall], str]


class OpenAICompatibleServer(LocalHttpServer):
    """`async with OpenAICompatibleServer() as server:` then point a client at `server.base_url`."""

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        responder: Responder | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "openai-emulator",
    ) -> None:
        super().__init__(host, port)
        self.behaviour = behaviour or Behaviour()
        self.responder = responder
        self.name = name
        self.calls: list[RecordedCall] = []
        self.replies: deque[str] = deque()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._rng = random.Random(self.behaviour.seed)

    @property
    def base_url(self) -> str:
        """What the openai client takes as base_url."""
        return f"{self.root_url}/v1"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/_emulator/calls", self._control_calls)
        app.router.add_post("/_emulator/behaviour", self._control_behaviour)
        app.router.add_post("/_emulator/replies", self._control_replies)
        app.router.add_post("/_emulator/reset", self._control_reset)

    def script(self, *replies: str) -> None:
        """Queue replies, answered in order before the template or responder is used again."""
        self.replies.extend(replies)

    def configure(self, **changes: Any) -> None:
        """Change behaviour fields, validated (e.g. configure(latency_s=0.2, fail_status=500))."""
        for key, value in changes.items():
            setattr(self.behaviour, key, value)
        if "seed" in changes:
            self._rng = random.Random(self.behaviour.seed)

    def reset(self) -> None:
        """Forget logged calls and queued replies; behaviour stays."""
        self.calls.clear()
        self.replies.clear()
        self.peak_in_flight = self.in_flight

    def completions(self) -> list[RecordedCall]:
        return [call for call in self.calls if call.path == "/v1/chat/completions"]

    # --- API -------------------------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        created = int(time.time())
        data = [
            {"id": m, "object": "model", "created": created, "owned_by": self.name} for m in self._served()
        ]
        return _json({"object": "list", "data": data})

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "request body is not JSON", "invalid_request_error")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body.get("model"):
            return _error(400, "model and messages are required", "invalid_request_error", param="messages")
        call = RecordedCall(
            index=len(self.calls),
            path=request.path,
            model=str(body["model"]),
            messages=body["messages"],
            stream=bool(body.get("stream")),
            max_tokens=body.get("max_tokens") or body.get("max_completion_tokens"),
            temperature=body.get("temperature"),
            received_at=time.monotonic(),
            extra={k: v for k, v in body.items() if k not in ("model", "messages", "stream")},
        )
        self.calls.append(call)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            response = await self._answer(request, call)
        finally:
            self.in_flight -= 1
            call.finished_at = time.monotonic()
        call.status = response.status
        return response

    async def _answer(self, request: web.Request, call: RecordedCall) -> web.StreamResponse:
        behaviour = self.behaviour
        if (denied := self._check_key(request)) is not None:
            return denied
        served = self._served()
        if served and call.model not in served:
            return _error(404, f"The model `{call.model}` does not exist.", "NotFoundError", param="model")
        if behaviour.hang:
            # Cancelled when the client disconnects (handler_cancellation), like a stuck upstream.
            await asyncio.sleep(MAX_HANG_S)
            return _error(504, "emulated hang ended", "server_error")
        if behaviour.latency_s:
            await asyncio.sleep(behaviour.latency_s)
        status = self._failure_status()
        if status is not None:
            kind = "rate_limit_exceeded" if status == 429 else "server_error"
            return _error(status, f"emulated failure {status}", kind)
        call.reply = self._reply_for(call)
        if call.stream:
            return await self._stream(request, call, call.reply)
        return _json(_completion(call, call.reply))

    def _failure_status(self) -> int | None:
        behaviour = self.behaviour
        if behaviour.fail_next:
            behaviour.fail_next -= 1
            return behaviour.fail_status or 500
        if behaviour.fail_status is not None:
            return behaviour.fail_status
        if behaviour.error_rate and self._rng.random() < behaviour.error_rate:
            return 500
        return None

    def _reply_for(self, call: RecordedCall) -> str:
        if self.replies:
            return self.replies.popleft()
        if self.responder is not None:
            return self.responder(call)
        return self.behaviour.reply_template.format(
            last_user=call.last_user, model=call.model, call=call.index
        )

    async def _stream(self, request: web.Request, call: RecordedCall, text: str) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        completion_id = f"chatcmpl-{uuid4().hex}"
        size = self.behaviour.stream_chunk_chars
        pieces = [text[i : i + size] for i in range(0, len(text), size)] or [""]
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": piece} for piece in pieces]
        for delta in deltas:
            await _send_event(response, _chunk(completion_id, call, [_stream_choice(delta, None)]))
        await _send_event(response, _chunk(completion_id, call, [_stream_choice({}, "stop")]))
        if (call.extra.get("stream_options") or {}).get("include_usage"):
            await _send_event(response, {**_chunk(completion_id, call, []), "usage": _usage(call, text)})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    def _served(self) -> list[str]:
        return list(self.behaviour.models)

    def _check_key(self, request: web.Request) -> web.Response | None:
        expected = self.behaviour.api_key
        if expected is None or request.headers.get("Authorization") == f"Bearer {expected}":
            return None
        return _error(401, "Incorrect API key provided.", "invalid_request_error", code="invalid_api_key")

    # --- control ---------------------------------------------------------------------------------------

    async def _control_calls(self, request: web.Request) -> web.Response:
        return _json({"calls": [asdict(call) for call in self.calls], "peak_in_flight": self.peak_in_flight})

    async def _control_behaviour(self, request: web.Request) -> web.Response:
        try:
            self.configure(**orjson.loads(await request.read()))
        except (orjson.JSONDecodeError, TypeError, ValidationError, ValueError) as exc:
            return _error(400, f"invalid behaviour: {exc}", "invalid_request_error")
        return _json(self.behaviour.model_dump())

    async def _control_replies(self, request: web.Request) -> web.Response:
        replies = orjson.loads(await request.read())
        if not isinstance(replies, list) or not all(isinstance(r, str) for r in replies):
            return _error(400, "expected a JSON list of strings", "invalid_request_error")
        self.script(*replies)
        return _json({"queued": len(self.replies)})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return _json({"reset": True})


def estimate_tokens(text: str) -> int:
    return max(1, -(-len(text) // 4))


def _usage(call: RecordedCall, text: str) -> dict[str, int]:
    prompt = sum(estimate_tokens(str(m.get("content", ""))) + 4 for m in call.messages)
    completion = estimate_tokens(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(call: RecordedCall, text: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": _usage(call, text),
    }


def _chunk(completion_id: str, call: RecordedCall, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": call.model,
        "choices": choices,
    }


def _stream_choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}


async def _send_event(response: web.StreamResponse, payload: dict[str, Any]) -> None:
    await response.write(b"data: " + orjson.dumps(payload) + b"\n\n")


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(
    status: int, message: str, kind: str, param: str | None = None, code: str | None = None
) -> web.Response:
    return _json({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)
