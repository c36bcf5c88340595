"""Erasure of one Discord user's data everywhere, and the access export of what is held about them.

An erasure is a job of ordered steps, one per store; each step's completion is recorded, so a rerun after a
crash does only the steps not yet done (every step is idempotent, so a step redone after a crash between
its work and its record harms nothing)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import Field, model_validator

from models.common import Payload, Snowflake, Strict, utc_now
from models.events import SealedData


def names_user(text: str, user_id: str) -> bool:
    """Whether a text holds the user's id as a whole number (a mention `<@id>`, a field): "12" is not in
    "3124"."""
    return re.search(id_pattern(user_id), text) is not None


def id_pattern(user_id: str) -> str:
    """A regular expression matching the id where no digit touches it."""
    return rf"(^|[^0-9]){re.escape(user_id)}([^0-9]|$)"


class ErasureStep(StrEnum):
    """The stores an erasure reaches, in the order it reaches them. The keys are destroyed last: until then
    the events sealed with them can still be read by the steps that need them."""

    tables = "tables"  # the processors' Faust tables, every partition (acknowledged per partition)
    analytics = "analytics"  # ClickHouse, erased by the sinks process that holds it
    postgres = "postgres"  # relationships, notifications naming them
    redis = "redis"  # keys naming them and the caches holding prompts
    memories = "memories"  # Weaviate: what they said and the facts about them
    parquet = "parquet"  # the Parquet exports, rewritten without their rows
    keys = "keys"  # crypto-shredding: their data keys, so their events in Kafka stay unreadable


class ErasureStatus(StrEnum):
    running = "running"
    done = "done"


class StepRecord(Strict):
    step: ErasureStep
    done_at: datetime
    # What the step removed, for the audit (a count of rows, keys, files, partitions).
    removed: int = Field(ge=0)


class Erasure(Strict):
    """The status resource of one erasure request."""

    erasure_id: UUID
    # Known while the erasure runs; a finished one keeps only the digest (sha256 of the id).
    user_id: Snowflake | None
    user_digest: str
    status: ErasureStatus
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None = None
    steps: list[StepRecord] = Field(default_factory=list)

    @property
    def remaining(self) -> list[ErasureStep]:
        done = {record.step for record in self.steps}
        return [step for step in ErasureStep if step not in done]


class ErasureComponent(StrEnum):
    """Who acknowledges an erasure control record."""

    processors = "processors"  # per partition: that partition's tables hold nothing of the user any more
    analytics = "analytics"  # once: ClickHouse holds no row of the user any more


class ErasureControl(Payload):
    """On `privacy.erasures`, one record per partition: the worker owning the partition erases the user from
    that partition's tables. A redelivered record erases nothing more and is acknowledged again."""

    erasure_id: UUID
    user_id: Snowflake
    at: datetime = Field(default_factory=utc_now)


class ErasureAck(Payload):
    """On `privacy.erasure.acks`: one component finished its part of an erasure on one partition."""

    erasure_id: UUID
    component: ErasureComponent
    partition: int = Field(ge=0)
    # Table keys removed or rewritten, or rows deleted.
    removed: int = Field(ge=0)
    at: datetime = Field(default_factory=utc_now)


class UserDataExport(Strict):
    """Everything held about one person, by store (the subject-access export). Values are the stores' own
    records as JSON: table values by table and key, rows by table, memories, Parquet rows, events."""

    user_id: Snowflake
    generated_at: datetime = Field(default_factory=utc_now)
    tables: dict[str, dict[str, Any]] = Field(default_factory=dict)
    postgres: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    redis: dict[str, str] = Field(default_factory=dict)
    memories: list[dict[str, Any]] = Field(default_factory=list)
    parquet: list[dict[str, Any]] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    # ClickHouse's rows naming them, by table (ids, kinds, sizes, times; never content).
    analytics: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


class _AboutOneUser(Payload):
    """A privacy record naming its user: the user id is None only while `sealed` holds it, under the user's
    data key (streams/catalog.py: EXPORT_SEALING), so the user's erasure leaves the record naming no one."""

    user_id: Snowflake | None
    sealed: SealedData | None = None

    @model_validator(mode="after")
    def _names_the_user(self) -> _AboutOneUser:
        if self.user_id is None and self.sealed is None:
            raise ValueError("user_id: the exported user is required")
        return self


class AnalyticsExportRequest(_AboutOneUser):
    """On `privacy.exports`: the sinks process (it holds ClickHouse) answers with the rows naming the user."""

    export_id: UUID


class AnalyticsExportAnswer(_AboutOneUser):
    """On `privacy.export.answers`: ClickHouse's rows naming the user, by table, as JSON (sealed with the
    user id)."""

    export_id: UUID
    rows: dict[str, list[dict[str, Any]]]


class ExportStatus(StrEnum):
    running = "running"
    done = "done"
    failed = "failed"


class DataExport(Strict):
    """The status resource of one access export; `data` once it is done."""

    export_id: UUID
    user_id: Snowflake
    status: ExportStatus
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None = None
    # Why it failed (a store that did not answer); asking again starts a new export.
    error: str | None = None
    data: UserDataExport | None = None
