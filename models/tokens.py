"""Bot token state. The token itself never appears in any model: it lives encrypted in the vault."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from models.common import Payload, ShortText, Snowflake, Strict, utc_now
from models.tiers import TokenTier


class TokenStatus(StrEnum):
    active = "active"
    degraded = "degraded"
    failed = "failed"
    revoked = "revoked"


class BotTokenState(Strict):
    token_id: UUID
    owner_id: UUID
    bot_user_id: Snowflake
    bot_username: ShortText = ""
    tier: TokenTier
    status: TokenStatus = TokenStatus.active
    failure_count: int = Field(default=0, ge=0)
    rate_limit_hits: int = Field(default=0, ge=0)
    guilds_count: int = Field(default=0, ge=0)
    last_validated: datetime | None = None
    created_at: datetime = Field(default_factory=utc_now)


class TokenHealthEvent(Payload):
    """On `tokens.health`: a token's status changed; a revoked token's deployments get reassigned."""

    token_id: UUID
    bot_user_id: Snowflake
    owner_id: UUID | None = None
    status: TokenStatus
    reason: Literal["revoked_401", "close_4004", "health_check", "manual", "recovered", "rate_limited"]
    detail: ShortText = ""
    at: datetime = Field(default_factory=utc_now)
