"""Building blocks shared by every payload: strict base classes, identifiers and size limits."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic_core import PydanticCustomError

# Discord ids are 64-bit snowflakes; JSON carries them as decimal strings.
Snowflake = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
NonEmptyName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
SHORT_TEXT_MAX = 200
ShortText = Annotated[str, StringConstraints(max_length=SHORT_TEXT_MAX)]
# Discord's limit for one message's content.
MessageText = Annotated[str, StringConstraints(max_length=2000)]
LongText = Annotated[str, StringConstraints(max_length=4000)]
PromptText = Annotated[str, StringConstraints(max_length=8000)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Trait = Annotated[int, Field(ge=0, le=100)]

MAX_LIST = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


class Strict(BaseModel):
    """Configuration and payload models: unknown fields are errors, so a typo never goes unnoticed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=False)


class Payload(Strict):
    """A value written to a topic. The codec checks SCHEMA_VERSION on read."""

    SCHEMA_VERSION: ClassVar[int] = 1
    schema_version: int = 1


def field_error(path: str, message: str) -> PydanticCustomError:
    """A cross-field error that still names the field it is about (a model validator has no loc)."""
    return PydanticCustomError("invalid_field", "{path}: {message}", {"path": path, "message": message})


def error_paths(exc: ValidationError) -> list[str]:
    """Dotted field paths of every error, e.g. 'behavior.response_triggers.random.probability'."""
    paths = []
    for error in exc.errors():
        parts = [str(part) for part in error["loc"]]
        ctx = error.get("ctx") or {}
        if error["type"] == "invalid_field":
            parts.append(str(ctx["path"]))
        paths.append(".".join(parts))
    return paths


@functools.lru_cache(maxsize=65_536)
def uuid_text(value: UUID) -> str:
    """`str(value)`, remembered: Python spells a UUID out digit by digit, and the same deployment ids go into
    several table keys and ids of every message."""
    return str(value)


def part_text(part: object) -> str:
    """A key's or an id's part as text, a UUID's remembered."""
    if type(part) is str:
        return part
    return uuid_text(part) if type(part) is UUID else str(part)
