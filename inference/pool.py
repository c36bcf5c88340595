"""The endpoint pool: OpenAI-compatible endpoints (vLLM servers, OpenAI) behind one `complete` call.

Requests wait for a slot in one priority queue for the whole pool, so under load a premium request gets the
next free slot before any free-tier request that waited longer. A slot is a place within an endpoint's
max_concurrency whose circuit breaker admits traffic; among free slots the least loaded endpoint wins. A
failed attempt (timeout, connection error, 5xx, 429, a model the endpoint does not have) counts against the
endpoint's breaker and is retried after a backoff on another endpoint serving the model.

A call is one POST of the chat completions wire protocol on the endpoint's kept-alive connections (up to
max_concurrency, inference/http.py): the body encoded once per request with orjson, the response body parsed
with orjson into a Completion. The openai SDK's request path (options, header merging, its httpx2 layer over
aiohttp) took half the worker's CPU per request (0.94-1.07 ms with it, 0.45-0.48 ms without, in
bench/inference.py at 1,000 requests in flight), and aiohttp's own about 220 µs of the rest; what they added
over the protocol (the bearer token, status and timeout errors) is here in a few lines.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from inference.breaker import BreakerState, CircuitBreaker
from inference.config import EndpointConfig, InferenceConfig
from inference.http import HttpEndpoint
from inference.model_routing import EndpointLoad, pick, serving
from models.inference import InferenceRequest

# The request itself is wrong (too long for the model, bad parameters): another endpoint would refuse it too.
REQUEST_ERRORS = frozenset({400, 413, 422})


class InferenceFailed(Exception):
    """No endpoint produced a completion; the message says why, without any secret."""


class NoEndpoint(InferenceFailed):
    """No configured endpoint serves the model."""


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    endpoint: str
    prompt_tokens: int
    completion_tokens: int


@dataclass
class Endpoint:
    config: EndpointConfig
    http: HttpEndpoint
    breaker: CircuitBreaker
    in_flight: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def name(self) -> str:
        return self.config.name

    def load(self, now: float) -> EndpointLoad:
        return EndpointLoad(self.name, self.in_flight, self.config.max_concurrency, self.breaker.allows(now))


@dataclass(order=True)
class _Waiter:
    rank: int
    seq: int
    model: str = field(compare=False)
    avoid: frozenset[str] = field(compare=False)
    future: asyncio.Future[Endpoint] = field(compare=False)


class EndpointPool:
    def __init__(
        self,
        endpoints: list[EndpointConfig],
        config: InferenceConfig,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.clock = clock
        self.endpoints = {e.name: self._endpoint(e) for e in endpoints}
        self._configs = list(endpoints)
        self._serving: dict[str, list[Endpoint]] = {}
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._wakeups: set[asyncio.TimerHandle] = set()

    def _endpoint(self, endpoint: EndpointConfig) -> Endpoint:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if endpoint.api_key:  # vLLM started without --api-key needs none
            headers["Authorization"] = f"Bearer {endpoint.api_key}"
        http = HttpEndpoint(f"{endpoint.base_url}/chat/completions", headers)
        breaker = CircuitBreaker(self.config.breaker_failures, self.config.breaker_cooldown_s)
        return Endpoint(endpoint, http, breaker)

    def serving(self, model: str) -> list[Endpoint]:
        if model not in self._serving:
            self._serving[model] = [self.endpoints[name] for name in serving(self._configs, model)]
        return self._serving[model]

    def serves(self, model: str) -> bool:
        return bool(self.serving(model))

    async def close(self) -> None:
        for handle in self._wakeups:
            handle.cancel()
        for endpoint in self.endpoints.values():
            endpoint.http.close()

    async def complete(self, request: InferenceRequest, rank: int) -> Completion:
        """A completion for `request`; lower `rank` is served first. Raises InferenceFailed."""
        if not self.serves(request.model):
            raise NoEndpoint(f"no endpoint serves model {request.model!r}")
        payload = {
            "model": request.model,
            "messages": [m.for_model() for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
            # Providers that keep completions (OpenAI's stored completions, for evals and distillation) must
            # not: a member's message is sent only to be answered. Servers without the option ignore it.
            "store": False,
        }
        body = orjson.dumps(payload)
        deadline = self.clock() + self.config.queue_timeout_s
        failed_on: set[str] = set()
        reason = "no attempt made"
        for attempt in range(self.config.max_attempts):
            if attempt:
                await asyncio.sleep(self.config.backoff_base_s * 2 ** (attempt - 1))
            endpoint = await self.acquire(request.model, rank, frozenset(failed_on), deadline)
            outcome: bool | None = False
            served = endpoint.config.served_model
            content = orjson.dumps({**payload, "model": served}) if served else body
            try:
                # The whole attempt, connecting and the answer read included.
                status, raw = await endpoint.http.post(content, self.config.request_timeout_s)
                if status in REQUEST_ERRORS:
                    outcome = None
                    raise InferenceFailed(f"{endpoint.name} refused the request: {status}")
                if not 200 <= status < 300:
                    reason = f"{endpoint.name}: HTTP {status}"
                else:
                    completion = _completion(raw, endpoint.name, request)
                    outcome = True
            # Before OSError, of which TimeoutError is one.
            except TimeoutError:
                reason = f"{endpoint.name}: timed out after {self.config.request_timeout_s} s"
            except OSError as exc:
                reason = f"{endpoint.name}: connection failed ({type(exc).__name__})"
            except ValueError as exc:
                reason = f"{endpoint.name}: malformed response ({exc})"
            finally:
                self.release(endpoint, outcome)
            if outcome:
                return completion
            failed_on.add(endpoint.name)
        raise InferenceFailed(f"{self.config.max_attempts} attempts failed; last: {reason}")

    async def acquire(self, model: str, rank: int, avoid: frozenset[str], deadline: float) -> Endpoint:
        """A slot on an endpoint serving `model`, waiting in priority order until `deadline` (clock time).
        Raises InferenceFailed when none frees up in time."""
        now = self.clock()
        if all(e.breaker.state(now) is BreakerState.open for e in self.serving(model)):
            # Nothing will free up before a cool-down ends: answer now (the persona) rather than wait.
            raise InferenceFailed(f"every endpoint for model {model!r} is failing (circuit open)")
        loop = asyncio.get_running_loop()
        waiter = _Waiter(rank, next(self._seq), model, avoid, loop.create_future())
        heapq.heappush(self._waiters, waiter)
        self._dispatch()
        if waiter.future.done():  # a slot was free: no timer to arm (wait_for's is one per request)
            return waiter.future.result()
        try:
            return await asyncio.wait_for(waiter.future, max(deadline - self.clock(), 0.0))
        except TimeoutError:
            raise InferenceFailed(f"no free endpoint for model {model!r} within the queue timeout") from None
        except asyncio.CancelledError:
            # Cancelled after a slot was handed over: give it back.
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(waiter.future.result(), None)
            raise

    def release(self, endpoint: Endpoint, outcome: bool | None) -> None:
        """Free the slot; outcome True/False feeds the breaker, None (not the endpoint's fault) does not."""
        endpoint.in_flight -= 1
        now = self.clock()
        if outcome is True:
            endpoint.completed += 1
            endpoint.breaker.succeeded()
        elif outcome is False:
            endpoint.failed += 1
            endpoint.breaker.failed(now)
            reopens = endpoint.breaker.reopens_at()
            if reopens is not None:
                self._wake_at(reopens)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free slots to waiters, best rank first. A waiter whose model has no free slot is passed over
        (another model's endpoints may be free) and keeps its place."""
        if not self._waiters:
            return
        now = self.clock()
        passed_over: list[_Waiter] = []
        blocked: set[tuple[str, frozenset[str]]] = set()
        while self._waiters:
            waiter = heapq.heappop(self._waiters)
            if waiter.future.done():
                continue
            need = (waiter.model, waiter.avoid)
            chosen = None
            if need not in blocked:
                chosen = pick([e.load(now) for e in self.serving(waiter.model)], waiter.avoid)
            if chosen is None:
                passed_over.append(waiter)
                blocked.add(need)
                if not any(e.load(now).free for e in self.endpoints.values()):
                    break
                continue
            endpoint = self.endpoints[chosen]
            endpoint.in_flight += 1
            endpoint.breaker.started(now)
            waiter.future.set_result(endpoint)
        for waiter in passed_over:
            heapq.heappush(self._waiters, waiter)

    def _wake_at(self, when: float) -> None:
        """Dispatch again when an open breaker turns half-open, so waiters for it are not stranded."""
        loop = asyncio.get_running_loop()
        handle = loop.call_later(max(when - self.clock(), 0.0) + 0.001, self._woken)
        self._wakeups.add(handle)

    def _woken(self) -> None:
        now = asyncio.get_running_loop().time()
        self._wakeups = {handle for handle in self._wakeups if handle.when() > now}
        self._dispatch()


def _completion(raw: bytes, endpoint: str, request: InferenceRequest) -> Completion:
    """The Completion in a chat completion response body; ValueError names what is malformed."""
    body = orjson.loads(raw)  # orjson.JSONDecodeError is a ValueError
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list):
        raise ValueError("choices: expected a list")
    text = ""
    if choices:
        try:
            content = choices[0]["message"]["content"]
        except (KeyError, TypeError):
            raise ValueError("choices[0].message.content: missing") from None
        if content is not None and not isinstance(content, str):
            raise ValueError("choices[0].message.content: expected a string or null")
        text = content or ""
    usage = body.get("usage")
    if isinstance(usage, dict):
        prompt_tokens, completion_tokens = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt_tokens, int) or not isinstance(completion_tokens, int):
            raise ValueError("usage: expected integer prompt_tokens and completion_tokens")
    else:
        prompt_tokens = sum(len(m.content) for m in request.messages) // 4
        completion_tokens = len(text) // 4
    model = body.get("model")
    if not isinstance(model, str) or not model:
        model = request.model
    return Completion(text, model, endpoint, prompt_tokens, completion_tokens)
