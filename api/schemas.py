"""Request and response bodies of the configuration API (topic payloads live in models/)."""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, SecretStr, StringConstraints, field_validator

from models.agent import AgentConfig
from models.common import NonEmptyName, Snowflake, Strict
from models.deployments import Deployment, DeploymentStatus
from models.memory import StoredMemory
from models.tiers import Tier, TierLimits

_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._-]+")


class Role(StrEnum):
    owner = "owner"
    admin = "admin"


class CharacterFormat(StrEnum):
    chara_card_v2 = "chara_card_v2"
    chara_card_v3 = "chara_card_v3"
    eliza = "eliza"
    # Our own AgentConfig JSON.
    deep = "deep"


class Container(StrEnum):
    json = "json"
    png = "png"


class FieldError(Strict):
    path: str
    message: str


class ErrorBody(Strict):
    detail: str
    errors: list[FieldError] = Field(default_factory=list)


class OwnerCreate(Strict):
    name: NonEmptyName
    tier: Tier = Tier.free
    role: Role = Role.owner


class OwnerUpdate(Strict):
    name: NonEmptyName | None = None
    tier: Tier | None = None
    role: Role | None = None


class Owner(Strict):
    owner_id: UUID
    name: str
    tier: Tier
    role: Role
    # Parquet exports carry the words of their guilds' members (docs/DATA.md); off by default.
    content_exports: bool = False
    created_at: datetime


class ContentExports(Strict):
    enabled: bool


class ApiKeyCreated(Strict):
    key_id: UUID
    owner_id: UUID
    # Shown once; only its hash is stored.
    api_key: str


class OwnerCreated(Strict):
    owner: Owner
    key: ApiKeyCreated


class Agent(Strict):
    agent_id: UUID
    owner_id: UUID
    name: str
    config: AgentConfig
    # The character format the agent was imported from, if any; export uses it by default.
    import_format: CharacterFormat | None = None
    created_at: datetime
    updated_at: datetime


class ArcStatus(Strict):
    """Where one of an agent's story arcs stands on a local date."""

    name: str
    starts_on: date
    # The arc's last day (the earliest one, when beats wait for conditions).
    ends_on: date
    # The agent's local date the status is for.
    on: date
    # The current beat (0-based) and its situation; None before the arc starts and after it ends, and
    # for an arc whose beats wait for conditions: its progress is the processors' table state.
    beat: int | None
    situation: str | None
    beats: int
    conditional: bool = False


ChannelIds = Annotated[list[Snowflake], Field(max_length=500)]


class DeploymentCreate(Strict):
    guild_id: Snowflake
    token_id: UUID
    text_channels: ChannelIds = Field(default_factory=list)
    voice_channels: ChannelIds = Field(default_factory=list)
    # Unset: the agent's own channels.dm_enabled.
    dm_enabled: bool | None = None
    status: DeploymentStatus = DeploymentStatus.active


class DeploymentUpdate(Strict):
    token_id: UUID | None = None
    text_channels: ChannelIds | None = None
    voice_channels: ChannelIds | None = None
    dm_enabled: bool | None = None
    status: DeploymentStatus | None = None


class TokenAdd(Strict):
    # SecretStr: masked in every repr, log line and error echo.
    token: Annotated[SecretStr, Field(min_length=1, max_length=200)]

    @field_validator("token")
    @classmethod
    def _token_shape(cls, token: SecretStr) -> SecretStr:
        # Checked here, not by Discord: a malformed header is refused before it reaches anyone.
        if not _TOKEN_CHARACTERS.fullmatch(token.get_secret_value()):
            raise ValueError("a bot token has only letters, digits, '.', '_' and '-'")
        return token


class PresetKind(StrEnum):
    premium = "premium"
    mode = "mode"


class Preset(Strict):
    name: str
    kind: PresetKind
    description: str
    config: AgentConfig


class PresetDeploy(Strict):
    guild_id: Snowflake
    token_id: UUID
    # Rename the copy; the preset's name otherwise.
    name: NonEmptyName | None = None
    text_channels: ChannelIds = Field(default_factory=list)
    voice_channels: ChannelIds = Field(default_factory=list)
    dm_enabled: bool | None = None


class PresetDeployed(Strict):
    agent: Agent
    deployment: Deployment


class Usage(Strict):
    period: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
    ai_calls: int
    monthly_ai_calls: int | None
    agents: int
    agent_slots: int | None


class Me(Strict):
    owner: Owner
    limits: TierLimits
    usage: Usage


class OutboxStatus(Strict):
    unpublished: int
    oldest_unpublished_at: datetime | None


class Health(Strict):
    status: Literal["ok"] = "ok"


class MemoryPage(Strict):
    """One page of an agent's memories, newest first; `total` counts every memory the filters matched."""

    memories: list[StoredMemory]
    total: int
    offset: int
    limit: int


class MemoriesDeleted(Strict):
    deleted: int


class ConsoleGuild(Strict):
    """A server the signed-in person can manage (the deploy picker); `bot_present`: one of the owner's
    bots is a member there."""

    id: Snowflake
    name: str
    icon: str | None = None
    bot_present: bool


class GalleryPublish(Strict):
    agent_id: UUID


class GalleryEntry(Strict):
    """A published agent as the gallery lists it: nothing about its author but whether it is the caller."""

    gallery_id: UUID
    name: str
    description: str
    published_at: datetime
    by_you: bool


class GalleryCard(GalleryEntry):
    # A Character Card V3 without token, owner or private fields (api/gallery.py).
    card: dict[str, object]


class GalleryPage(Strict):
    items: list[GalleryEntry]
    page: int
    page_size: int
    total: int


class BillingPlan(Strict):
    tier: Tier
    price_usd_month: float | None
    # The Stripe price a Checkout for this tier uses; None: not bought through the console (free; enterprise
    # is a contract).
    price_id: str | None
    purchasable: bool
    limits: TierLimits


class CheckoutCreate(Strict):
    tier: Tier


class CheckoutSession(Strict):
    checkout_url: str
    session_id: str


class BillingSubscription(Strict):
    """The owner's tier and their Stripe subscription as the last webhook event told (status `none`: no
    subscription was ever started)."""

    tier: Tier
    status: str
    subscription_id: str | None
