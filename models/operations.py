"""Operational records: moderation audit, owner notifications and dead letters."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import Field, model_validator

from models.common import Payload, ShortText, Snowflake, Strict, utc_now
from models.events import SealedData

NotificationKind = Literal[
    "token_revoked",
    "token_failed",
    "ai_quota_exceeded",
    "no_inference_endpoint",
    "deployment_error",
    "message_content_missing",
    # A person reported one of the deployment's messages (processors/reports.py).
    "message_reported",
]


class ModerationAudit(Payload):
    """On `moderation.audit`: one rule or command outcome."""

    audit_id: str
    deployment_id: UUID
    guild_id: Snowflake
    channel_id: Snowflake | None = None
    # The moderated member; None only while `sealed` holds it with the moderator and the reason, under the
    # member's data key (streams/catalog.py: AUDIT_SEALING).
    user_id: Snowflake | None = None
    moderator_id: Snowflake | None = None  # None when an automod rule acted
    source: Literal["automod", "command"]
    rule: ShortText
    actions: list[str]
    reason: ShortText = ""
    message_id: Snowflake | None = None
    at: datetime = Field(default_factory=utc_now)
    sealed: SealedData | None = None

    @model_validator(mode="after")
    def _names_the_member(self) -> ModerationAudit:
        if self.user_id is None and self.sealed is None:
            raise ValueError("user_id: the moderated member is required")
        return self


class OwnerNotice(Strict):
    """What an owner is to hear, as a decision states it; the service sending it adds the notification's
    id, subject and time."""

    kind: NotificationKind
    message: ShortText


class OwnerNotification(Payload):
    """On `owner.notifications`: something an owner must hear about (a dead token, a spent AI quota, a
    reported message)."""

    notification_id: str
    owner_id: UUID
    kind: NotificationKind
    message: ShortText
    deployment_id: UUID | None = None
    token_id: UUID | None = None
    at: datetime = Field(default_factory=utc_now)
    # The member it is about (a report's reporter), whose data key seals it on the topic
    # (streams/catalog.py: NOTIFICATION_SEALING); None: about no one (a token, a quota).
    about_user_id: Snowflake | None = None
    sealed: SealedData | None = None


class DeadLetter(Payload):
    """On `deadletter.<topic>`: a record a consumer could not process, kept with why."""

    source_topic: str
    partition: int
    offset: int
    key: str | None
    # The original bytes, as text when they decode, else base64 (value_encoding says which); only their
    # start when `original_bytes` is set.
    value: str
    value_encoding: Literal["utf-8", "base64"]
    error: ShortText
    consumer: ShortText
    failed_at: datetime = Field(default_factory=utc_now)
    # The original value's size, set when the letter keeps only its start: a letter must fit where its
    # record did, and as text or base64 it takes more room. The whole record stays on its source topic.
    original_bytes: int | None = None
