"""Which of an owner's agents a tier does not cover (their deployments pause after a downgrade); the presets
enable only implemented tools."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from api.policy import beyond_tier, check_implemented
from api.presets import all_presets, stock_personalities
from api.schemas import Agent
from models.agent import AgentConfig, AgentMode
from models.templates import mode_template
from models.tiers import TIERS, Tier

FREE = TIERS[Tier.free]
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def agents(*configs: AgentConfig) -> list[Agent]:
    """The owner's agents, oldest first."""
    owner_id = uuid4()
    return [
        Agent(
            agent_id=uuid4(),
            owner_id=owner_id,
            name=config.name,
            config=config,
            created_at=_EPOCH + timedelta(minutes=index),
            updated_at=_EPOCH + timedelta(minutes=index),
        )
        for index, config in enumerate(configs)
    ]


def bare(**changes: Any) -> AgentConfig:
    return AgentConfig.model_validate({**mode_template(AgentMode.bare).model_dump(mode="json"), **changes})


def test_agents_within_the_slots_and_tools_are_covered() -> None:
    assert beyond_tier(FREE, agents(*(bare() for _ in range(5))), stock_personalities()) == []
    assert beyond_tier(FREE, [], stock_personalities()) == []


def test_the_newest_agents_past_the_slots_are_not_covered() -> None:
    owned = agents(*(bare(name=f"agent {index}") for index in range(7)))
    assert beyond_tier(FREE, owned, stock_personalities()) == [owned[5].agent_id, owned[6].agent_id]


def test_an_agent_with_a_tool_the_tier_lacks_is_not_covered_and_still_takes_its_slot() -> None:
    # Only a tool without behaviour is beyond the free tier: a configuration stored before such tools were
    # refused can still carry one.
    announcer = bare(name="announcer", enabled_tools=["music", "announcements"])
    owned = agents(bare(), announcer, bare(), bare(), bare(), bare())
    # The announcer is the second agent: it is not covered, and the sixth is past the five slots anyway.
    assert beyond_tier(FREE, owned, stock_personalities()) == [owned[1].agent_id, owned[5].agent_id]


def test_a_custom_personality_needs_a_tier_with_it_but_a_stock_character_does_not() -> None:
    luna = all_presets()["luna"].config.character
    assert luna is not None
    stock = bare(name="Luna", character=luna.model_dump(mode="json"))
    custom = bare(
        name="Luna", character={**luna.model_dump(mode="json"), "backstory": "Someone else entirely."}
    )
    owned = agents(stock, custom)
    assert beyond_tier(FREE, owned, stock_personalities()) == [owned[1].agent_id]
    assert beyond_tier(TIERS[Tier.pro], owned, stock_personalities()) == []


def test_an_unlimited_tier_covers_any_number_of_agents() -> None:
    owned = agents(*(bare() for _ in range(150)))
    assert beyond_tier(TIERS[Tier.enterprise], owned, stock_personalities()) == []


def test_presets_enable_only_tools_that_act() -> None:
    for preset in all_presets().values():
        check_implemented(preset.config)
