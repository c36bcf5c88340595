"""The fleet's event forwarder in process: events held for the linger reach the producer together and in
order, a burst waits for the one before it, a refused event is reported as undelivered, and past its bound
a sender waits for the producer."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError

from gateways.forwarder import EventForwarder
from tests.waiting import wait_until


class GatedProducer:
    """Records what it is sent; with `gated`, its first send waits until `gate` is set (no room yet). Refuses
    the values in `refused`."""

    def __init__(self, *, gated: bool = False, refused: frozenset[bytes] = frozenset()) -> None:
        self.sent: list[bytes] = []
        self.calls = 0
        self.flushes = 0
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self._refused = refused

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.calls += 1
        if self.calls == 1:
            await self.gate.wait()
        if value in self._refused:
            raise KafkaTimeoutError()
        self.sent.append(value)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery

    async def flush(self) -> None:
        self.flushes += 1


class Outcomes:
    def __init__(self) -> None:
        self.delivered: list[bytes] = []
        self.failed: list[tuple[bytes, BaseException]] = []

    def of(self, value: bytes) -> Any:
        def told(delivery: asyncio.Future[Any]) -> None:
            error = delivery.exception()
            if error is None:
                self.delivered.append(value)
            else:
                self.failed.append((value, error))

        return told


def forwarder(producer: GatedProducer, linger_s: float, max_held: int = 100) -> EventForwarder:
    return EventForwarder(cast(AIOKafkaProducer, producer), "events", linger_s, max_held)


async def test_events_are_held_for_the_linger_and_handed_over_together_in_order() -> None:
    producer, outcomes = GatedProducer(), Outcomes()
    events = forwarder(producer, linger_s=0.05)
    for n in range(5):
        await events.send(b"%d" % n, b"guild", outcomes.of(b"%d" % n))
    assert producer.sent == []  # within the linger
    await wait_until(lambda: len(producer.sent) == 5, "the burst handed over")
    assert producer.sent == [b"0", b"1", b"2", b"3", b"4"]
    await wait_until(lambda: len(outcomes.delivered) == 5, "every delivery reported")


async def test_flush_hands_over_at_once_and_waits_for_the_producer() -> None:
    producer, outcomes = GatedProducer(), Outcomes()
    events = forwarder(producer, linger_s=3600)
    await events.send(b"a", b"guild", outcomes.of(b"a"))
    await events.flush()
    assert producer.sent == [b"a"] and producer.flushes == 1


async def test_a_burst_waits_for_the_one_before_it() -> None:
    producer, outcomes = GatedProducer(gated=True), Outcomes()
    events = forwarder(producer, linger_s=0.01)
    await events.send(b"first", b"guild", outcomes.of(b"first"))
    await wait_until(lambda: producer.calls == 1, "the first burst waiting for room in the producer")
    await events.send(b"second", b"guild", outcomes.of(b"second"))
    # Taken by its own burst, which would reach the producer first if it did not wait for the earlier one.
    await wait_until(lambda: events._next is None, "the second burst taken")
    producer.gate.set()
    await events.handed_over()
    assert producer.sent == [b"first", b"second"]


async def test_an_event_the_producer_refuses_is_reported_undelivered_and_the_rest_go_on() -> None:
    producer, outcomes = GatedProducer(refused=frozenset({b"b"})), Outcomes()
    events = forwarder(producer, linger_s=3600)
    for value in (b"a", b"b", b"c"):
        await events.send(value, b"guild", outcomes.of(value))
    await events.handed_over()
    await wait_until(lambda: len(outcomes.delivered) + len(outcomes.failed) == 3, "every outcome reported")
    assert outcomes.delivered == [b"a", b"c"]
    assert [(value, type(error)) for value, error in outcomes.failed] == [(b"b", KafkaTimeoutError)]


async def test_past_its_bound_a_sender_waits_until_the_producer_took_the_held_events() -> None:
    producer, outcomes = GatedProducer(), Outcomes()
    events = forwarder(producer, linger_s=3600, max_held=3)
    await events.send(b"a", b"guild", outcomes.of(b"a"))
    await events.send(b"b", b"guild", outcomes.of(b"b"))
    assert producer.sent == []
    await events.send(b"c", b"guild", outcomes.of(b"c"))
    assert producer.sent == [b"a", b"b", b"c"]


async def test_without_a_linger_each_event_goes_to_the_producer_at_once() -> None:
    producer, outcomes = GatedProducer(), Outcomes()
    events = forwarder(producer, linger_s=0)
    await events.send(b"a", b"guild", outcomes.of(b"a"))
    assert producer.sent == [b"a"]
