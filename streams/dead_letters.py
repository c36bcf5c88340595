"""The dead letter of a record a consumer could not process: one definition for every consumer."""

from __future__ import annotations

import base64
from typing import Protocol

from models.operations import DeadLetter
from streams.codec import decode_key


class RawRecord(Protocol):
    """What aiokafka's ConsumerRecord and Faust's Message both carry."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


def dead_letter(record: RawRecord, error: str, consumer: str) -> DeadLetter:
    """The record kept with why: its bytes as text when they are UTF-8, else base64."""
    raw = record.value or b""
    common = {
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": decode_key(record.key),
        "error": error[:200],
        "consumer": consumer[:200],
    }
    try:
        return DeadLetter(value=raw.decode(), value_encoding="utf-8", **common)
    except UnicodeDecodeError:
        return DeadLetter(value=base64.b64encode(raw).decode(), value_encoding="base64", **common)
