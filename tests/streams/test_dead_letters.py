"""A dead letter always fits on its topic: a large record's letter keeps its value's start and size."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pytest

from streams.catalog import DEAD_LETTERS, DISCORD_EVENTS
from streams.dead_letters import VALUE_KEPT_BYTES, dead_letter

# What the broker and aiokafka's producer take in one record by default.
RECORD_LIMIT = 1024 * 1024
CODEC = DEAD_LETTERS[DISCORD_EVENTS.name].codec


@dataclass(frozen=True)
class Record:
    value: bytes | None
    topic: str = "discord.events"
    partition: int = 3
    offset: int = 41
    key: bytes | None = b"g1"


def test_a_small_record_is_kept_whole() -> None:
    letter = dead_letter(Record(b'{"not": json'), "not JSON", "processors")
    assert (letter.value, letter.value_encoding, letter.original_bytes) == ('{"not": json', "utf-8", None)
    binary = dead_letter(Record(b"\xff\xfe"), "not JSON", "processors")
    assert (base64.b64decode(binary.value), binary.original_bytes) == (b"\xff\xfe", None)
    assert dead_letter(Record(None), "tombstone", "processors").value == ""


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(b"\xff" * 1_000_000, id="binary, base64 a third larger"),
        pytest.param(b"\x01" * 1_000_000, id="control characters, six bytes each as JSON"),
        pytest.param(b'"' * 1_000_000, id="quotes, two bytes each as JSON"),
    ],
)
def test_a_large_record_keeps_its_start_and_size_and_the_letter_fits(value: bytes) -> None:
    letter = dead_letter(Record(value), "not JSON", "processors")
    assert letter.original_bytes == len(value)
    kept = base64.b64decode(letter.value) if letter.value_encoding == "base64" else letter.value.encode()
    assert kept == value[:VALUE_KEPT_BYTES]
    assert len(CODEC.encode(letter)) < RECORD_LIMIT - 64 * 1024  # with room for the batch and headers


def test_cut_text_stays_text_and_drops_only_the_broken_last_character() -> None:
    value = ("a" + "é" * VALUE_KEPT_BYTES).encode()  # the cut falls inside an "é"
    letter = dead_letter(Record(value), "not JSON", "processors")
    assert letter.value_encoding == "utf-8"
    assert letter.value.encode() == value[: VALUE_KEPT_BYTES - 1]
