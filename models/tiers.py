"""Subscription tiers and their limits: price, agent slots, monthly AI calls, bot token tier, features,
tools and inference lane."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from models.common import Strict
from models.tools import Tool


class Tier(StrEnum):
    free = "free"
    pro = "pro"
    business = "business"
    enterprise = "enterprise"


class TokenTier(StrEnum):
    """Bot tokens are classified by reach; see gateways' token vault."""

    lite = "lite"
    standard = "standard"
    premium = "premium"

    @property
    def rank(self) -> int:
        return list(TokenTier).index(self)


class Feature(StrEnum):
    custom_personality = "custom_personality"
    voice_tts = "voice_tts"
    custom_voice = "custom_voice"
    advanced_ai = "advanced_ai"
    analytics = "analytics"
    api_access = "api_access"
    white_label = "white_label"
    custom_models = "custom_models"


class InferenceLane(StrEnum):
    """Priority lanes of inference requests; premium is served first."""

    premium = "premium"
    standard = "standard"
    free = "free"


class TierLimits(Strict):
    tier: Tier
    price_usd_month: float | None
    # None means unlimited.
    agent_slots: int | None = Field(ge=0)
    monthly_ai_calls: int | None = Field(ge=0)
    token_tier: TokenTier
    features: frozenset[Feature]
    tools: frozenset[Tool]
    lane: InferenceLane

    def allows_token(self, token_tier: TokenTier) -> bool:
        return token_tier.rank <= self.token_tier.rank


_BASIC_TOOLS = frozenset({Tool.music, Tool.utility, Tool.moderation, Tool.logging, Tool.leveling})
_ALL_TOOLS = frozenset(Tool)

TIERS: dict[Tier, TierLimits] = {
    Tier.free: TierLimits(
        tier=Tier.free,
        price_usd_month=0.0,
        agent_slots=5,
        monthly_ai_calls=1_000,
        token_tier=TokenTier.lite,
        features=frozenset(),
        tools=_BASIC_TOOLS | {Tool.automod, Tool.custom_commands, Tool.games},
        lane=InferenceLane.free,
    ),
    Tier.pro: TierLimits(
        tier=Tier.pro,
        price_usd_month=15.0,
        agent_slots=25,
        monthly_ai_calls=10_000,
        token_tier=TokenTier.standard,
        features=frozenset({Feature.custom_personality, Feature.voice_tts, Feature.analytics}),
        tools=_ALL_TOOLS,
        lane=InferenceLane.standard,
    ),
    Tier.business: TierLimits(
        tier=Tier.business,
        price_usd_month=75.0,
        agent_slots=100,
        monthly_ai_calls=100_000,
        token_tier=TokenTier.premium,
        features=frozenset(
            {
                Feature.custom_personality,
                Feature.voice_tts,
                Feature.custom_voice,
                Feature.advanced_ai,
                Feature.analytics,
                Feature.api_access,
                Feature.white_label,
            }
        ),
        tools=_ALL_TOOLS,
        lane=InferenceLane.premium,
    ),
    Tier.enterprise: TierLimits(
        tier=Tier.enterprise,
        price_usd_month=None,
        agent_slots=None,
        monthly_ai_calls=None,
        token_tier=TokenTier.premium,
        features=frozenset(Feature),
        tools=_ALL_TOOLS,
        lane=InferenceLane.premium,
    ),
}
