"""The endpoint pool over real HTTP (the chat completions protocol as the workers speak it): routing, load
balancing, concurrency limits, retries on another endpoint, the circuit breaker, priority order, the key."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp import web

from emulator.http import LocalHttpServer
from emulator.openai import Behaviour, OpenAICompatibleServer
from inference.breaker import BreakerState
from inference.pool import EndpointPool, InferenceFailed
from models.inference import InferenceRequest
from tests.ai.conftest import endpoint, inference_config
from tests.ai.factories import inference_request
from tests.waiting import wait_until

pytestmark = pytest.mark.stack


@pytest.fixture
async def servers() -> AsyncIterator[tuple[OpenAICompatibleServer, OpenAICompatibleServer]]:
    async with (
        OpenAICompatibleServer(Behaviour(models=[]), name="a") as a,
        OpenAICompatibleServer(Behaviour(models=[]), name="b") as b,
    ):
        yield a, b


def request(text: str = "hi", model: str = "test-model") -> InferenceRequest:
    return inference_request(text=text, model=model)


async def test_routing_by_model_name_prefers_exact_names(servers) -> None:
    a, b = servers
    async with OpenAICompatibleServer(Behaviour(models=[])) as c:
        pool = EndpointPool(
            [
                endpoint("a", a.base_url, ("llama-8b",)),
                endpoint("b", b.base_url, ("gpt-*",)),
                endpoint("c", c.base_url, ("*",)),
            ],
            inference_config("unused:"),
        )
        try:
            assert (await pool.complete(request(model="llama-8b"), 0)).endpoint == "a"
            assert (await pool.complete(request(model="gpt-4o"), 0)).endpoint == "b"
            assert (await pool.complete(request(model="qwen"), 0)).endpoint == "c"
        finally:
            await pool.close()
    assert [call.model for call in a.completions()] == ["llama-8b"]
    assert [call.model for call in b.completions()] == ["gpt-4o"]
    assert [call.model for call in c.completions()] == ["qwen"]


async def test_least_loaded_endpoint_and_concurrency_limits(servers) -> None:
    a, b = servers
    for server in servers:
        server.configure(latency_s=0.05)
    pool = EndpointPool(
        [endpoint("a", a.base_url, concurrency=2), endpoint("b", b.base_url, concurrency=4)],
        inference_config("unused:"),
    )
    try:
        done = await asyncio.gather(*(pool.complete(request(f"r{i}"), 0) for i in range(18)))
    finally:
        await pool.close()
    assert len(done) == 18
    assert a.peak_in_flight == 2 and b.peak_in_flight == 4
    # Load is balanced by share of capacity: b, twice the size, takes about twice the requests.
    assert len(b.completions()) > len(a.completions()) >= 4


async def test_failing_endpoint_is_retried_on_another_and_its_breaker_opens(servers) -> None:
    a, b = servers
    a.configure(fail_status=500)
    config = inference_config("unused:", breaker_failures=2, breaker_cooldown_s=0.3)
    now = 0.0
    pool = EndpointPool([endpoint("a", a.base_url), endpoint("b", b.base_url)], config, clock=lambda: now)
    try:
        for i in range(5):
            completion = await pool.complete(request(f"r{i}"), 0)
            assert completion.endpoint == "b" and completion.text == f"echo: Bob: r{i}"
        assert len(a.completions()) == 2  # then the breaker opened: no more traffic to a
        assert len(b.completions()) == 5
        breaker = pool.endpoints["a"].breaker
        assert breaker.state(pool.clock()) is BreakerState.open
        # After the cool-down one trial goes to a; it succeeds and the breaker closes.
        a.configure(fail_status=None)
        now += 0.35  # the pool's clock passes the cool-down
        assert (await pool.complete(request("trial"), 0)).endpoint == "a"
        assert breaker.state(pool.clock()) is BreakerState.closed
    finally:
        await pool.close()


async def test_a_hanging_endpoint_times_out_and_another_answers(servers) -> None:
    a, b = servers
    a.configure(hang=True)
    pool = EndpointPool(
        [endpoint("a", a.base_url), endpoint("b", b.base_url)],
        inference_config("unused:", request_timeout_s=0.3),
    )
    try:
        completion = await pool.complete(request(), 0)
    finally:
        await pool.close()
    assert completion.endpoint == "b"
    assert len(a.completions()) == 1 and a.completions()[0].status is None  # never answered


async def test_all_endpoints_failing_raises_with_the_reason(servers) -> None:
    a, b = servers
    a.configure(fail_status=429)
    b.configure(fail_status=502)
    pool = EndpointPool([endpoint("a", a.base_url), endpoint("b", b.base_url)], inference_config("unused:"))
    try:
        with pytest.raises(InferenceFailed, match=r"3 attempts failed; last: .*HTTP (429|502)"):
            await pool.complete(request(), 0)
    finally:
        await pool.close()
    # Each retry went to the endpoint not yet tried, then (both tried) to either.
    assert len(a.completions()) + len(b.completions()) == 3
    assert len(a.completions()) >= 1 and len(b.completions()) >= 1


async def test_a_bad_request_is_not_retried_nor_held_against_the_endpoint(servers) -> None:
    a, b = servers
    a.configure(fail_status=400)
    pool = EndpointPool([endpoint("a", a.base_url), endpoint("b", b.base_url)], inference_config("unused:"))
    try:
        with pytest.raises(InferenceFailed, match="refused the request: 400"):
            await pool.complete(request(), 0)
        assert pool.endpoints["a"].breaker.consecutive_failures == 0
    finally:
        await pool.close()
    assert len(a.completions()) == 1 and b.completions() == []


async def test_waiting_requests_are_served_best_rank_first(servers) -> None:
    a, _ = servers
    a.configure(latency_s=0.05)
    pool = EndpointPool([endpoint("a", a.base_url, concurrency=1)], inference_config("unused:"))
    try:
        first = asyncio.create_task(pool.complete(request("first"), 2))
        await wait_until(lambda: pool.endpoints["a"].in_flight == 1, "the first request to take the slot")
        waiting = [asyncio.create_task(pool.complete(request(f"free-{i}"), 2)) for i in range(3)]
        waiting += [asyncio.create_task(pool.complete(request(f"premium-{i}"), 0)) for i in range(3)]
        await asyncio.gather(first, *waiting)
    finally:
        await pool.close()
    served = [call.last_user.removeprefix("Bob: ") for call in a.completions()]
    assert served == ["first", "premium-0", "premium-1", "premium-2", "free-0", "free-1", "free-2"]


async def test_no_free_slot_within_the_queue_timeout_fails(servers) -> None:
    a, _ = servers
    a.configure(latency_s=0.5)
    pool = EndpointPool(
        [endpoint("a", a.base_url, concurrency=1)], inference_config("unused:", queue_timeout_s=0.1)
    )
    try:
        busy = asyncio.create_task(pool.complete(request("busy"), 0))
        await wait_until(lambda: pool.endpoints["a"].in_flight == 1, "the busy request to take the slot")
        with pytest.raises(InferenceFailed, match="queue timeout"):
            await pool.complete(request("late"), 0)
        await busy
        assert pool.endpoints["a"].in_flight == 0
    finally:
        await pool.close()


async def test_when_every_endpoint_is_open_requests_fail_fast(servers) -> None:
    a, _ = servers
    a.configure(fail_status=500)
    config = inference_config("unused:", breaker_failures=2, breaker_cooldown_s=30)
    pool = EndpointPool([endpoint("a", a.base_url)], config)
    try:
        with pytest.raises(InferenceFailed, match="circuit open"):
            await pool.complete(request("first"), 0)
        assert len(a.completions()) == 2  # the third attempt found the breaker open
        with pytest.raises(InferenceFailed, match="circuit open"):
            await pool.complete(request("second"), 0)
        assert len(a.completions()) == 2
    finally:
        await pool.close()


class FixedBodyServer(LocalHttpServer):
    """Answers every chat completion with 200 and the same body, well-formed or not."""

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body
        self.calls = 0

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._answer)

    async def _answer(self, _: web.Request) -> web.Response:
        self.calls += 1
        return web.Response(body=self.body, content_type="application/json")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>bad gateway</html>", ""),  # orjson's message follows
        (b'{"choices": {"message": "hi"}}', "choices: expected a list"),
        (b'{"choices": [{"message": {"content": 7}}]}', "choices[0].message.content: expected a string"),
        (b'{"choices": [], "usage": {"prompt_tokens": "many"}}', "usage: expected integer"),
    ],
)
async def test_a_malformed_response_counts_against_the_endpoint_and_names_the_field(
    servers, body: bytes, reason: str
) -> None:
    _, good = servers
    async with FixedBodyServer(body) as broken:
        alone = EndpointPool(
            [endpoint("broken", f"{broken.root_url}/v1")], inference_config("unused:", max_attempts=1)
        )
        try:
            with pytest.raises(
                InferenceFailed, match=re.escape(f"last: broken: malformed response ({reason}")
            ):
                await alone.complete(request(), 0)
            assert alone.endpoints["broken"].failed == 1
        finally:
            await alone.close()
        pool = EndpointPool(
            [endpoint("broken", f"{broken.root_url}/v1"), endpoint("good", good.base_url)],
            inference_config("unused:"),
        )
        try:
            # Whichever endpoint is tried first, the answer comes from the good one.
            assert (await pool.complete(request("retried"), 0)).endpoint == "good"
        finally:
            await pool.close()


async def test_an_endpoint_with_a_served_model_is_asked_for_that_model(servers) -> None:
    a, _ = servers
    local = replace(endpoint("local", a.base_url, ("*",)), served_model="SmolLM2-135M-Instruct")
    pool = EndpointPool([local], inference_config("unused:"))
    try:
        completion = await pool.complete(request(model="gpt-4-turbo"), 0)
    finally:
        await pool.close()
    # The agent's model name routes to the endpoint; the endpoint's own model answers, and the result says so.
    assert [call.model for call in a.completions()] == ["SmolLM2-135M-Instruct"]
    assert (completion.endpoint, completion.model) == ("local", "SmolLM2-135M-Instruct")


async def test_the_endpoint_key_goes_as_a_bearer_token() -> None:
    async with OpenAICompatibleServer(Behaviour(api_key="sk-right")) as server:
        right = replace(endpoint("right", server.base_url), api_key="sk-right")
        wrong = replace(endpoint("wrong", server.base_url), api_key="sk-wrong")
        pool = EndpointPool([right], inference_config("unused:"))
        refused = EndpointPool([wrong], inference_config("unused:", max_attempts=1))
        try:
            assert (await pool.complete(request(), 0)).endpoint == "right"
            with pytest.raises(InferenceFailed, match="last: wrong: HTTP 401"):
                await refused.complete(request(), 0)
        finally:
            await pool.close()
            await refused.close()
