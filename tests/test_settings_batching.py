"""How the producers batch: the settings' defaults, their validation, and the processors' Faust producer
taking them."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.app import WorkerOptions, create_app
from settings import GATEWAY_PRODUCER, ProcessorsFlow, ProducerBatching, load_settings
from streams.codec import key_partitioner


def test_the_defaults_are_the_documented_ones() -> None:
    settings = load_settings()
    assert settings.gateway_producer == GATEWAY_PRODUCER
    assert settings.processors_flow.producer == ProcessorsFlow.producer


def test_each_producer_takes_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEP_GATEWAY_PRODUCER_LINGER_MS", "0")
    monkeypatch.setenv("DEEP_GATEWAY_PRODUCER_MAX_BATCH_BYTES", "4096")
    monkeypatch.setenv("DEEP_PROCESSORS_PRODUCER_LINGER_MS", "20")
    settings = load_settings()
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
    assert conf.producer_partitioner is key_partitioner
