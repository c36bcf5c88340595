"""How a processors worker takes its input: the batch and fetch settings, read from the environment and
validated, the fetch settings reaching the consumer Faust builds, the partitions its fetcher plans over, and
when a batch's events are acked."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any, cast

import faust
import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.subscription_state import Assignment
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import EventT

from processors.app import (
    DeliveredAcks,
    WorkerOptions,
    _FetchedAssignment,
    create_app,
    kafka_answers,
    refusal_of,
)
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


class Taken:
    """An event as the batches hold it: its message, and whether it was acked."""

    def __init__(self, offset: int) -> None:
        self.message = offset
        self.acked = False

    def ack(self) -> None:
        self.acked = True


class Worker:
    """What `DeliveredAcks` uses of the app: the consumer's unacked messages, and its crash."""

    def __init__(self, unacked: set[int]) -> None:
        self.consumer = SimpleNamespace(unacked=unacked)
        self.crashed: list[BaseException] = []

    async def crash(self, reason: BaseException) -> None:
        self.crashed.append(reason)


async def callbacks_run() -> None:
    """A delivery's answer reaches the acks through the gathering future's callbacks, a few loop turns."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_batches_are_acked_once_delivered_in_the_order_taken_and_a_refusal_stops_the_worker() -> None:
    loop = asyncio.get_running_loop()
    batches = [[Taken(2 * n), Taken(2 * n + 1)] for n in range(4)]
    worker = Worker({event.message for batch in batches for event in batch})
    acks = DeliveredAcks(cast(faust.App, worker))
    first, second, third = (loop.create_future() for _ in range(3))
    acks.once_delivered(cast(list[EventT], batches[0]), [first])
    acks.once_delivered(cast(list[EventT], batches[1]), [second])
    second.set_result(None)  # delivered before the batch taken first
    await callbacks_run()
    assert not any(event.acked for batch in batches for event in batch)
    first.set_result(None)
    await callbacks_run()
    assert all(event.acked for batch in batches[:2] for event in batch)
    acks.once_delivered(cast(list[EventT], batches[2]), [third])
    third.set_exception(KafkaTimeoutError("expired in the producer's buffer"))
    await callbacks_run()
    # Refused: neither acked nor waited for, nor any batch after it; the worker stops.
    acks.once_delivered(cast(list[EventT], batches[3]), [])
    await callbacks_run()
    assert not any(event.acked for batch in batches[2:] for event in batch)
    # The refused ones are no longer waited for (Faust itself drops the acked ones from its set).
    assert worker.consumer.unacked == {0, 1, 2, 3}
    assert [type(reason) for reason in worker.crashed] == [KafkaTimeoutError]


async def test_a_batch_whose_records_could_not_even_be_sent_stops_the_worker_unacked() -> None:
    batch = [Taken(0), Taken(1)]
    worker = Worker({0, 1})
    acks = DeliveredAcks(cast(faust.App, worker))

    async def sending() -> list[Awaitable[Any]]:
        raise MessageSizeTooLargeError("the producer takes no record this large")

    acks.once_delivered(cast(list[EventT], batch), await kafka_answers(sending()))
    await callbacks_run()
    assert not any(event.acked for event in batch) and worker.consumer.unacked == set()
    assert [type(reason) for reason in worker.crashed] == [MessageSizeTooLargeError]


async def test_a_refusal_is_told_once_kafka_answered_every_record() -> None:
    loop = asyncio.get_running_loop()
    taken, refused = loop.create_future(), loop.create_future()
    taken.set_result(None)
    refused.set_exception(KafkaTimeoutError("expired in the producer's buffer"))
    assert await refusal_of([taken]) is None
    assert isinstance(await refusal_of([taken, refused]), KafkaTimeoutError)
