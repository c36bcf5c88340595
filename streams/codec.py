"""The one codec of every topic: JSON by orjson over the pydantic models, schema version checked on read; and
the key's bytes and partition."""

from __future__ import annotations

import functools
from typing import Any, Generic, TypeVar

import orjson
from aiokafka.partitioner import DefaultPartitioner, murmur2
from pydantic import TypeAdapter, ValidationError

from models.common import error_paths

T = TypeVar("T")

# Keys whose partition key_partitioner remembers (a few MB at most).
KEY_PARTITIONS_REMEMBERED = 65_536
_random_partitioner = DefaultPartitioner()


class CodecError(ValueError):
    """A record that cannot be read as its topic's model. Consumers send it to the dead-letter topic."""


class Codec(Generic[T]):
    def __init__(self, value_type: Any, schema_version: int = 1) -> None:
        self._adapter: TypeAdapter[T] = TypeAdapter(value_type)
        self.schema_version = schema_version

    def encode(self, value: T) -> bytes:
        # Python mode keeps datetimes, UUIDs and enums as objects: orjson writes them faster itself.
        # Enum-keyed maps (moods) need OPT_NON_STR_KEYS: orjson takes only exact str keys otherwise.
        return orjson.dumps(self._adapter.dump_python(value), option=orjson.OPT_NON_STR_KEYS)

    def encode_document(self, document: dict[str, Any]) -> bytes:
        """A value already dumped to JSON types (`model_dump(mode="json")`): it decodes as its model would."""
        return orjson.dumps(document)

    def decode(self, raw: bytes | None) -> T:
        if raw is None:
            raise CodecError("empty value")
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CodecError(f"not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise CodecError(f"expected a JSON object, got {type(obj).__name__}")
        version = obj.get("schema_version")
        if version != self.schema_version:
            raise CodecError(f"schema_version {version!r} is not the supported {self.schema_version}")
        try:
            return self._adapter.validate_python(obj)
        except ValidationError as exc:
            fields = ", ".join(error_paths(exc)) or "value"
            raise CodecError(f"invalid {fields}: {exc.errors()[0]['msg']}") from None


def encode_key(key: str) -> bytes:
    return key.encode()


def decode_key(raw: bytes | None) -> str | None:
    return raw.decode(errors="replace") if raw is not None else None


@functools.lru_cache(maxsize=KEY_PARTITIONS_REMEMBERED)
def _key_partition_index(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def key_partitioner(key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
    """aiokafka's default partitioner (murmur2 of the key modulo the partition count, as Java clients and
    Faust place a key, which co-partitioning relies on), remembered per key: its pure-Python murmur2 cost
    more than anything else in sending a record. Keys are guilds and bots: a bounded, repeating set."""
    if key is None:
        return _random_partitioner(key, all_partitions, available)
    return all_partitions[_key_partition_index(key, len(all_partitions))]
