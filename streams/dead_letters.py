"""The dead letter of a record a consumer could not process: one definition for every consumer."""

from __future__ import annotations

import base64
from typing import Protocol

from models.operations import DeadLetter
from streams.codec import decode_key

# The most of a record's value a dead letter keeps. Encoded as JSON text a byte can take six (a control
# character's escape): 128 KiB stays well inside the broker's 1 MiB a record, so a letter can always be sent
# (one that could not would stop its consumer on the record it was meant to pass).
VALUE_KEPT_BYTES = 128 * 1024


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
    """The record kept with why: its bytes as text when they are UTF-8, else base64; past
    `VALUE_KEPT_BYTES`, only their start and their size."""
    raw = record.value or b""
    kept = raw[:VALUE_KEPT_BYTES]
    common = {
        "source_topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": decode_key(record.key),
        "error": error[:200],
        "consumer": consumer[:200],
        "original_bytes": len(raw) if len(kept) < len(raw) else None,
    }
    try:
        raw.decode()
    except UnicodeDecodeError:
        return DeadLetter(value=base64.b64encode(kept).decode(), value_encoding="base64", **common)
    # Cut text loses at most the incomplete character at its end.
    return DeadLetter(value=kept.decode(errors="ignore"), value_encoding="utf-8", **common)
