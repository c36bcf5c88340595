"""Pure parts of the inference worker: endpoint configuration, routing, breaker, offsets, cache keys, cost."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from inference.breaker import BreakerState, CircuitBreaker
from inference.cache import prompt_hash
from inference.config import openai_endpoint, parse_endpoints
from inference.model_routing import EndpointLoad, pick, serving
from inference.pricing import cost_usd
from inference.worker import rank
from models.decisions import Priority
from models.inference import ChatMessage
from models.tiers import InferenceLane
from streams.consumer import OffsetTracker
from tests.ai.factories import inference_request


def test_endpoints_parse_and_errors_name_the_entry_and_field() -> None:
    [a, b] = parse_endpoints("a=http://vllm-a:8000/v1/|llama-8b, qwen|256; b=https://x/v1|*|8", api_key="k")
    assert (a.name, a.base_url, a.models, a.max_concurrency, a.api_key) == (
        "a",
        "http://vllm-a:8000/v1",
        ("llama-8b", "qwen"),
        256,
        "k",
    )
    assert b.models == ("*",)
    assert parse_endpoints("") == []
    for spec, message in [
        ("http://x|m|1", "entry 1: expected name=url"),
        ("a=http://x|m", "entry 1 (a): expected url|models"),
        ("a=ftp://x|m|1", "entry 1 (a): url must start"),
        ("a=http://x| |1", "entry 1 (a): models must name"),
        ("a=http://x|m|0", "entry 1 (a): max_concurrency must be a positive integer"),
        ("a=http://x|m|1;a=http://y|m|1", "entry 2 (a): duplicate"),
    ]:
        with pytest.raises(
            ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")
        ):
            parse_endpoints(spec)


def test_openai_endpoint_only_when_configured() -> None:
    assert openai_endpoint("", "") is None
    official = openai_endpoint("", "sk-x")
    assert (
        official is not None
        and official.base_url == "https://api.openai.com/v1"
        and official.models == ("*",)
    )
    assert "sk-x" not in repr(official)


def test_routing_prefers_exact_names_over_patterns() -> None:
    endpoints = parse_endpoints("a=http://a|llama|1;b=http://b|llama,gpt-*|1;c=http://c|*|1")
    assert serving(endpoints, "llama") == ["a", "b"]
    assert serving(endpoints, "gpt-4o") == ["b"]
    assert serving(endpoints, "other") == ["c"]
    assert serving(parse_endpoints("a=http://a|llama|1"), "other") == []


def test_pick_least_loaded_free_endpoint_avoiding_failed_ones() -> None:
    loads = [EndpointLoad("a", 3, 4, True), EndpointLoad("b", 5, 8, True), EndpointLoad("c", 0, 4, False)]
    assert pick(loads) == "b"  # 5/8 < 3/4; c's breaker is open
    assert pick(loads, avoid=frozenset({"b"})) == "a"
    assert pick([EndpointLoad("a", 4, 4, True)]) is None  # full: wait
    # Avoiding every candidate means any of them may be retried.
    assert pick([EndpointLoad("a", 0, 4, True)], avoid=frozenset({"a"})) == "a"


def test_breaker_opens_after_consecutive_failures_and_half_opens_after_cooldown() -> None:
    breaker = CircuitBreaker(failure_threshold=3, cooldown_s=10)
    breaker.failed(0)
    breaker.failed(1)
    breaker.succeeded()  # resets the streak
    for t in (2, 3, 4):
        breaker.failed(t)
    assert breaker.state(5) is BreakerState.open and not breaker.allows(13.9)
    assert breaker.state(14) is BreakerState.half_open and breaker.allows(14)
    breaker.started(14)
    assert not breaker.allows(14.1)  # one trial at a time
    breaker.failed(15)  # the trial failed: open again for a full cool-down
    assert breaker.state(24) is BreakerState.open and breaker.state(25) is BreakerState.half_open
    breaker.started(25)
    breaker.succeeded()
    assert breaker.state(25) is BreakerState.closed and breaker.times_opened == 2


def test_offsets_commit_only_up_to_the_first_unfinished_record() -> None:
    tp = TopicPartition("lane", 0)
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(tp, offset)
    tracker.done(tp, 11)
    assert tracker.committable() == {tp: 10}
    tracker.committed({tp: 10})
    assert tracker.committable() == {}
    tracker.done(tp, 10)
    assert tracker.committable() == {tp: 12}
    tracker.done(tp, 12)
    assert tracker.committable() == {tp: 13}
    tracker.forget([tp])
    assert tracker.committable() == {}


def test_rank_orders_lanes_strictly_then_priority() -> None:
    ranks = [rank(lane, priority) for lane in InferenceLane for priority in Priority]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    assert rank(InferenceLane.premium, Priority.low) < rank(InferenceLane.standard, Priority.high)


def test_prompt_hash_ignores_whitespace_and_request_identity() -> None:
    one = inference_request(text="hello  world")
    same = inference_request(text=" hello world ")
    assert prompt_hash(one) == prompt_hash(same)
    other_model = one.model_copy(update={"model": "other"})
    other_budget = one.model_copy(update={"max_tokens": 10})
    other_text = inference_request(text="hello world!")
    other_role = one.model_copy(
        update={"messages": [ChatMessage(role="system", content=one.messages[-1].content)]}
    )
    hashes = {prompt_hash(r) for r in (one, other_model, other_budget, other_text, other_role)}
    assert len(hashes) == 5


def test_cost_comes_from_the_price_table() -> None:
    assert cost_usd("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert cost_usd("self-hosted-llama", 1000, 1000) == 0.0
