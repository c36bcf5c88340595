"""How the producers batch and the bulk readers fetch: the settings' defaults, their validation, and the
clients taking them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from processors.app import WorkerOptions, create_app
from settings import (
    BULK_FETCH,
    GATEWAY_PRODUCER,
    FetchBatching,
    ProcessorsFlow,
    ProducerBatching,
    load_settings,
)
from streams.catalog import DISCORD_EVENTS
from streams.codec import key_partitioner
from streams.consumer import AtLeastOnceConsumer, ConsumerOptions, ConsumerService, Records


def test_the_defaults_are_the_documented_ones() -> None:
    settings = load_settings()
    assert settings.gateway_producer == GATEWAY_PRODUCER
    assert settings.processors_flow.producer == ProcessorsFlow.producer
    assert settings.bulk_fetch == BULK_FETCH


def test_each_producer_takes_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEP_GATEWAY_PRODUCER_LINGER_MS", "0")
    monkeypatch.setenv("DEEP_GATEWAY_PRODUCER_MAX_BATCH_BYTES", "4096")
    monkeypatch.setenv("DEEP_PROCESSORS_PRODUCER_LINGER_MS", "20")
    monkeypatch.setenv("DEEP_BULK_FETCH_MIN_BYTES", "1")
    monkeypatch.setenv("DEEP_BULK_FETCH_MAX_WAIT_MS", "100")
    settings = load_settings()
    assert settings.bulk_fetch == FetchBatching(min_bytes=1, max_wait_ms=100)
    assert settings.gateway_producer == ProducerBatching(linger_ms=0, max_batch_bytes=4096)
    assert settings.processors_flow.producer == ProducerBatching(
        linger_ms=20, max_batch_bytes=ProcessorsFlow.producer.max_batch_bytes
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DEEP_GATEWAY_PRODUCER_LINGER_MS", "-1"),
        ("DEEP_GATEWAY_PRODUCER_LINGER_MS", "1001"),
        ("DEEP_GATEWAY_PRODUCER_MAX_BATCH_BYTES", "1023"),
        ("DEEP_PROCESSORS_PRODUCER_LINGER_MS", "soon"),
        ("DEEP_PROCESSORS_PRODUCER_MAX_BATCH_BYTES", "0"),
        ("DEEP_BULK_FETCH_MIN_BYTES", "0"),
        ("DEEP_BULK_FETCH_MAX_WAIT_MS", "30001"),
    ],
)
def test_a_value_out_of_bounds_is_refused_naming_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=variable):
        load_settings()


def test_the_processors_producer_batches_as_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEEP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DEEP_PROCESSORS_PRODUCER_LINGER_MS", "12")
    monkeypatch.setenv("DEEP_PROCESSORS_PRODUCER_MAX_BATCH_BYTES", "65536")
    conf = create_app(load_settings(), WorkerOptions()).conf
    assert (conf.producer_linger, conf.producer_max_batch_size) == (0.012, 65536)
    # Faust types this setting as a callable attribute, which mypy reads as a method bound to Settings (or
    # not, depending on its cache): read untyped.
    assert cast(Any, conf).producer_partitioner is key_partitioner


class Reader(ConsumerService):
    async def apply(self, fetched: Mapping[TopicPartition, Records]) -> None:
        raise AssertionError("nothing is fetched here")


async def test_a_consumer_fetches_as_its_options_say() -> None:
    fetch = FetchBatching(min_bytes=300_000, max_wait_ms=700)
    options = ConsumerOptions(group_id="g", client_id="c", consumer_name="reader", broker_fetch=fetch)
    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1")  # never started: nothing is sent
    consumer = AtLeastOnceConsumer(
        Reader(),
        [DISCORD_EVENTS],
        namespace="t.",
        bootstrap="127.0.0.1:1",
        producer=producer,
        options=options,
    )
    assert (consumer._kafka._fetch_min_bytes, consumer._kafka._fetch_max_wait_ms) == (300_000, 700)
