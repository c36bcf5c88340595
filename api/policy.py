"""What the platform implements and an owner's tier allows: pure checks over configurations, counts and token
tiers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from uuid import UUID

from api.schemas import Agent
from models.agent import AgentConfig, Character
from models.tiers import TIERS, Feature, TierLimits, TokenTier
from models.tools import IMPLEMENTED_TOOLS, Tool

# What may differ from a stock character without it becoming a custom personality.
_COSMETIC = {"name", "avatar_url", "banner_url", "bio"}


class TierViolation(Exception):
    """The owner's tier does not allow this; `path` names the field when one is at fault."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class UnimplementedTool(ValueError):
    """A tool the platform gives no behaviour yet; `path` names its entry in enabled_tools."""

    def __init__(self, tool: Tool, index: int) -> None:
        available = ", ".join(sorted(t.value for t in IMPLEMENTED_TOOLS))
        self.path = f"enabled_tools.{index}"
        self.message = f"the {tool.value} tool is not implemented; the tools are: {available}"
        super().__init__(f"{self.path}: {self.message}")


def check_implemented(config: AgentConfig) -> None:
    """An owner may enable only tools that act: the first other one is refused."""
    for index, tool in enumerate(config.enabled_tools):
        if tool not in IMPLEMENTED_TOOLS:
            raise UnimplementedTool(tool, index)


def _lowest_tier_with(allows: Callable[[TierLimits], bool]) -> str:
    return next((tier.value for tier, limits in TIERS.items() if allows(limits)), "no")


def _has_tool(tool: Tool) -> Callable[[TierLimits], bool]:
    return lambda limits: tool in limits.tools


def personality_of(character: Character) -> dict[str, object]:
    return character.model_dump(exclude=_COSMETIC)


def check_slots(limits: TierLimits, agents: int) -> None:
    if limits.agent_slots is not None and agents >= limits.agent_slots:
        raise TierViolation(f"agent slot limit of {limits.tier.value} tier ({limits.agent_slots}) reached")


def check_token(limits: TierLimits, token_tier: TokenTier) -> None:
    if not limits.allows_token(token_tier):
        needed = _lowest_tier_with(lambda tier_limits: tier_limits.allows_token(token_tier))
        raise TierViolation(
            f"a {token_tier.value} bot token needs the {needed} tier; the {limits.tier.value} tier allows "
            f"{limits.token_tier.value} tokens",
            "token_id",
        )


def check_feature(limits: TierLimits, feature: Feature) -> None:
    """A route that is a tier's feature (analytics) is refused below the lowest tier that has it."""
    if feature not in limits.features:
        needed = _lowest_tier_with(lambda tier_limits: feature in tier_limits.features)
        raise TierViolation(
            f"the {feature.value} feature is not available on the {limits.tier.value} tier (needs {needed})"
        )


def check_config(
    limits: TierLimits, config: AgentConfig, stock_personalities: Iterable[dict[str, object]]
) -> None:
    """Tools, voice and custom personalities the tier does not include are refused, naming the field."""
    tier = limits.tier.value
    for index, tool in enumerate(config.enabled_tools):
        if tool not in limits.tools:
            needed = _lowest_tier_with(_has_tool(tool))
            raise TierViolation(
                f"the {tool.value} tool is not available on the {tier} tier (needs {needed})",
                f"enabled_tools.{index}",
            )
    if Tool.voice_tts in config.enabled_tools and Feature.voice_tts not in limits.features:
        raise TierViolation(f"voice is not available on the {tier} tier", "enabled_tools")
    if (
        config.ai_config is not None
        and config.ai_config.voice_model
        and Feature.custom_voice not in limits.features
    ):
        needed = _lowest_tier_with(lambda tier_limits: Feature.custom_voice in tier_limits.features)
        raise TierViolation(
            f"custom voice models are not available on the {tier} tier (needs {needed})",
            "ai_config.voice_model",
        )
    if (
        config.character is not None
        and Feature.custom_personality not in limits.features
        and personality_of(config.character) not in list(stock_personalities)
    ):
        needed = _lowest_tier_with(lambda tier_limits: Feature.custom_personality in tier_limits.features)
        raise TierViolation(
            f"custom personalities are not available on the {tier} tier (needs {needed}); "
            "use a preset's character or upgrade",
            "character",
        )


def beyond_tier(
    limits: TierLimits, agents: Sequence[Agent], stock_personalities: Iterable[dict[str, object]]
) -> list[UUID]:
    """The agents (`agents` oldest first) a tier does not cover: those using tools or features it lacks,
    and the newest past its slots. An agent's slot is its place among all the owner's agents, covered or
    not, so covering one never depends on another's configuration."""
    stock = list(stock_personalities)
    beyond = []
    for slot, agent in enumerate(agents):
        try:
            check_slots(limits, slot)
            check_config(limits, agent.config, stock)
        except TierViolation:
            beyond.append(agent.agent_id)
    return beyond
