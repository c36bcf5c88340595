"""The models accept every example profile and template and reject bad input naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from pydantic import TypeAdapter, ValidationError

from models.actions import Action, Ban, SendMessage
from models.agent import AgentConfig, AgentMode, message_content_features
from models.common import error_paths
from models.deployments import DeployedAgent, Deployment, RoutingRecord
from models.events import EventEnvelope
from models.templates import all_mode_templates, mode_template
from models.tiers import TIERS, Tier, TokenTier

FIXTURES = Path(__file__).parent / "fixtures"


def luna() -> dict[str, Any]:
    return json.loads((FIXTURES / "luna_seed.json").read_text())


def rejected_paths(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        AgentConfig.model_validate(data)
    return error_paths(caught.value)


def test_luna_profile_validates() -> None:
    config = AgentConfig.model_validate(luna())
    assert config.name == "Luna"
    assert config.character is not None
    assert config.character.personality.extraversion == 90
    assert config.behavior.response_triggers.keyword_match.probability == 0.7
    assert config.ai_config is not None and config.ai_config.context_window == 50
    assert config.channels.dm_enabled


@pytest.mark.parametrize("mode", list(AgentMode))
def test_every_mode_template_validates_and_matches_its_mode(mode: AgentMode) -> None:
    config = mode_template(mode)
    assert config.mode is mode
    assert config.ai_enabled == mode.uses_ai
    # A template is data: it survives a JSON round trip unchanged.
    assert AgentConfig.model_validate_json(config.model_dump_json()) == config


def test_templates_are_fresh_copies() -> None:
    first = mode_template(AgentMode.bare)
    first.enabled_commands.append("pause")
    assert mode_template(AgentMode.bare).enabled_commands == ["play", "queue", "skip", "stop"]
    assert all_mode_templates()[AgentMode.bare] != first


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (
            lambda d: d["behavior"]["response_triggers"]["random"].update(probability=1.5),
            "behavior.response_triggers.random.probability",
        ),
        (
            lambda d: d["behavior"]["response_triggers"]["mentioned"].update(probability=-0.1),
            "behavior.response_triggers.mentioned.probability",
        ),
        (lambda d: d["character"]["personality"].update(openness=101), "character.personality.openness"),
        (lambda d: d["character"]["personality"].update(neuroticism=-1), "character.personality.neuroticism"),
        (lambda d: d.update(enabled_tools=["music", "teleport"]), "enabled_tools.1"),
        (lambda d: d["character"].update(name="   "), "character.name"),
        (lambda d: d.update(name=""), "name"),
        (lambda d: d["character"].update(backstory="x" * 5000), "character.backstory"),
        (lambda d: d["ai_config"].update(system_prompt="x" * 9000), "ai_config.system_prompt"),
        (
            lambda d: d["behavior"]["proactive_actions"]["morning_greeting"].update(time="25:00"),
            "behavior.proactive_actions.morning_greeting.time",
        ),
        (lambda d: d.update(surprise=True), "surprise"),
    ],
)
def test_invalid_field_is_rejected_with_its_path(mutate: Any, path: str) -> None:
    data = luna()
    mutate(data)
    assert path in rejected_paths(data)


def test_unknown_command_is_rejected_with_its_index() -> None:
    data = mode_template(AgentMode.bare).model_dump(mode="json")
    data["enabled_commands"] = ["play", "summon_dragon"]
    assert rejected_paths(data) == ["enabled_commands.1"]


def test_command_of_a_disabled_tool_is_rejected() -> None:
    data = mode_template(AgentMode.bare).model_dump(mode="json")
    data["enabled_commands"] = ["play", "ban"]
    assert rejected_paths(data) == ["enabled_commands.1"]


def test_mode1_template_with_ai_settings_is_rejected() -> None:
    data = mode_template(AgentMode.bare).model_dump(mode="json")
    data["ai_config"] = {"text_model": "gpt-4-turbo"}
    assert rejected_paths(data) == ["ai_config"]


def test_ai_mode_without_ai_settings_is_rejected() -> None:
    data = mode_template(AgentMode.human_like).model_dump(mode="json")
    data["ai_config"] = None
    assert rejected_paths(data) == ["ai_config"]


def test_semi_autonomous_agent_only_answers_questions() -> None:
    data = mode_template(AgentMode.semi_autonomous).model_dump(mode="json")
    data["ai_config"]["usage"] = "autonomous"
    assert rejected_paths(data) == ["ai_config.usage"]


def test_oversized_message_action_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        SendMessage(action_id="a1", bot_id="1", channel_id="2", content="x" * 2001)
    assert error_paths(caught.value) == ["content"]


def test_action_union_discriminates_by_kind() -> None:
    adapter: TypeAdapter[Action] = TypeAdapter(Action)  # type: ignore[arg-type, unused-ignore]  # an Annotated union
    action = adapter.validate_python({"kind": "ban", "action_id": "a", "bot_id": "1", "user_id": "2"})
    assert isinstance(action, Ban)
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "launch_rockets", "action_id": "a", "bot_id": "1"})


def test_envelope_key_is_guild_or_dm_bot() -> None:
    base = {"event_id": "e", "bot_id": "10", "type": "MESSAGE_CREATE", "sequence": 1, "data": {}}
    assert EventEnvelope.model_validate({**base, "guild_id": "99"}).key == "99"
    assert EventEnvelope.model_validate(base).key == "dm:10"
    with pytest.raises(ValidationError) as caught:
        EventEnvelope.model_validate({**base, "bot_id": "not-a-snowflake"})
    assert error_paths(caught.value) == ["bot_id"]


def test_tiers_have_their_limits() -> None:
    assert TIERS[Tier.free].agent_slots == 5 and TIERS[Tier.free].monthly_ai_calls == 1_000
    assert TIERS[Tier.pro].agent_slots == 25 and TIERS[Tier.pro].monthly_ai_calls == 10_000
    assert TIERS[Tier.business].agent_slots == 100 and TIERS[Tier.business].monthly_ai_calls == 100_000
    assert TIERS[Tier.enterprise].agent_slots is None and TIERS[Tier.enterprise].monthly_ai_calls is None
    assert TIERS[Tier.free].allows_token(TokenTier.lite)
    assert not TIERS[Tier.free].allows_token(TokenTier.standard)
    assert TIERS[Tier.business].allows_token(TokenTier.premium)


def test_routing_record_holds_every_deployment_of_a_guild() -> None:
    agents = [mode_template(AgentMode.bare), AgentConfig.model_validate(luna())]
    record = RoutingRecord(
        key="123",
        version=1,
        deployments=[
            DeployedAgent(
                deployment=Deployment(
                    deployment_id=uuid4(),
                    agent_id=uuid4(),
                    owner_id=uuid4(),
                    guild_id="123",
                    bot_id=str(100 + i),
                    token_id=uuid4(),
                ),
                agent=agent,
                owner_tier=Tier.pro,
            )
            for i, agent in enumerate(agents)
        ],
    )
    assert RoutingRecord.model_validate_json(record.model_dump_json()) == record


def test_the_features_needing_message_content_are_those_reading_unaddressed_messages() -> None:
    assert message_content_features(AgentConfig.model_validate(luna())) == [
        "unprompted AI replies (keyword, conversation, random)"
    ]
    assert message_content_features(mode_template(AgentMode.enhanced)) == [
        "prefix commands (!)",
        "automod repeats",
        "automod links",
    ]
    # Commands only through slash commands, no content rules, no unprompted replies: nothing needs it.
    assert message_content_features(AgentConfig(name="Quiet", mode=AgentMode.utility)) == []
