"""How a processors worker takes its input: the batch and fetch settings, read from the environment and
validated, the fetch settings reaching the consumer Faust builds, and the partitions its fetcher plans
over."""

from __future__ import annotations

from typing import cast

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.subscription_state import Assignment
from faust.transport.drivers import aiokafka as faust_kafka

from processors.app import WorkerOptions, _FetchedAssignment, create_app
from settings import ProcessorsFlow, load_settings


def test_the_defaults_are_the_documented_ones() -> None:
    assert load_settings().processors_flow == ProcessorsFlow(
        batch_max_events=500, batch_wait_ms=10, fetch_min_bytes=1, fetch_max_wait_ms=100
    )


@pytest.mark.parametrize(
    "variable",
    [
        "DEEP_PROCESSORS_BATCH_MAX_EVENTS",
        "DEEP_PROCESSORS_BATCH_WAIT_MS",
        "DEEP_PROCESSORS_FETCH_MIN_BYTES",
        "DEEP_PROCESSORS_FETCH_MAX_WAIT_MS",
    ],
)
def test_a_value_below_one_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "0")
    with pytest.raises(ValueError, match=variable):
        load_settings()


async def test_the_worker_consumer_fetches_as_configured(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("DEEP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DEEP_PROCESSORS_FETCH_MIN_BYTES", "65536")
    monkeypatch.setenv("DEEP_PROCESSORS_FETCH_MAX_WAIT_MS", "50")
    app = create_app(load_settings(), WorkerOptions())
    thread = cast(faust_kafka.Consumer, app.consumer)._new_consumer_thread()
    consumer = thread._create_worker_consumer(cast(faust_kafka.Transport, app.transport))
    assert (consumer._fetch_min_bytes, consumer._fetch_max_wait_ms) == (65536, 50)


async def test_the_fetcher_plans_over_the_partitions_not_paused_and_those_awaiting_a_reset() -> None:
    fetching, changelog, sought = (TopicPartition(topic, 0) for topic in ("events", "changelog", "sought"))
    assignment = Assignment([fetching, changelog, sought])
    for tp in (fetching, changelog, sought):
        assignment.state_value(tp).seek(0)
    assignment.state_value(changelog).pause()
    assignment.state_value(sought).pause()
    assignment.state_value(sought).await_reset("earliest")
    planned = _FetchedAssignment(assignment)
    assert sorted(planned.tps) == [fetching, sought]
    assert planned.state_value(sought) is assignment.state_value(sought)
