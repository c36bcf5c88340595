"""The one codec of every topic: JSON by orjson over the pydantic models, schema version checked on read."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from models.common import error_paths

T = TypeVar("T")


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
