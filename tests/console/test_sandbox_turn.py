"""The sandbox's turn through the processors' Engine: the decision, commands and the prompt, from the saved
agent and the sandbox's history, with nothing deployed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from uuid import uuid4

from api.sandbox import SANDBOX_CHANNEL, said, sandbox_channel, sandbox_turn
from api.schemas import Agent, SandboxMessage
from models.agent import AgentMode, PersonalityTraits, ResponseTriggers, Trigger
from models.decisions import DecisionReason
from models.templates import mode_template
from models.tiers import Tier
from processors.prompt import PromptFit

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def agent(mode: AgentMode, **changes: object) -> Agent:
    config = mode_template(mode).model_copy(update={"name": "Nova", **changes})
    return Agent(
        agent_id=uuid4(), owner_id=uuid4(), name="Nova", config=config, created_at=NOW, updated_at=NOW
    )


def message(content: str, mention: bool = True, history: Sequence[tuple[str, str]] = ()) -> SandboxMessage:
    return SandboxMessage.model_validate(
        {
            "content": content,
            "mention": mention,
            "history": [{"author": author, "content": text} for author, text in history],
        }
    )


def test_an_ai_agent_addressed_decides_to_answer_with_a_prompt_holding_the_history() -> None:
    turn = sandbox_turn(
        agent(AgentMode.human_like),
        Tier.free,
        message(
            "and what do you like?", history=[("owner", "hello Nova"), ("agent", "Hi! Lovely to meet you.")]
        ),
        PromptFit.full,
        NOW,
    )
    [decision] = turn.outputs.decisions
    assert decision.respond and decision.reason is DecisionReason.mentioned
    [request] = turn.outputs.requests
    prompt = "\n".join(str(m.content) for m in request.messages)
    assert "hello Nova" in prompt and "Lovely to meet you" in prompt and "what do you like?" in prompt
    assert request.tier is Tier.free and request.deployment_id == turn.deployment_id


def test_unaddressed_the_agent_answers_only_when_a_trigger_of_its_own_fires() -> None:
    config = mode_template(AgentMode.human_like)
    # Certain to carry a conversation on, never to speak up otherwise: the dice cannot decide the test.
    triggers = ResponseTriggers(conversation_flow=Trigger(probability=1.0))
    assert config.character is not None
    character = config.character.model_copy(update={"personality": PersonalityTraits(extraversion=100)})
    behavior = config.behavior.model_copy(update={"response_triggers": triggers})
    quiet = agent(AgentMode.human_like, behavior=behavior, character=character)
    turn = sandbox_turn(quiet, Tier.free, message("nice weather", mention=False), PromptFit.full, NOW)
    [decision] = turn.outputs.decisions
    assert not decision.respond and decision.reason is DecisionReason.no_trigger
    assert turn.outputs.requests == []
    # Having just spoken in the channel, the conversation carries it on.
    talking = sandbox_turn(
        quiet,
        Tier.free,
        message("nice weather", mention=False, history=[("agent", "Anyone around?")]),
        PromptFit.full,
        NOW,
    )
    assert talking.outputs.decisions[0].reason is DecisionReason.conversation_flow


def test_an_agent_without_ai_answers_its_commands_and_says_why_it_is_silent_otherwise() -> None:
    bare = agent(AgentMode.bare)
    command = sandbox_turn(bare, Tier.free, message("!queue", mention=False), PromptFit.full, NOW)
    assert said(command.outputs.actions) == ["The queue is empty."]
    assert command.outputs.decisions == [] and command.outputs.requests == []
    talked_to = sandbox_turn(bare, Tier.free, message("hello?"), PromptFit.full, NOW)
    [decision] = talked_to.outputs.decisions
    assert decision.reason is DecisionReason.ai_disabled and said(talked_to.outputs.actions) == []


def test_the_sandbox_channel_is_one_the_agents_channel_settings_allow() -> None:
    assert sandbox_channel(agent(AgentMode.human_like)) == (SANDBOX_CHANNEL, "sandbox")
    config = mode_template(AgentMode.human_like)
    named = config.channels.model_copy(update={"text_channels": ["general"]})
    assert sandbox_channel(agent(AgentMode.human_like, channels=named)) == (SANDBOX_CHANNEL, "general")
    by_id = config.channels.model_copy(update={"text_channels": ["123456789012345678"]})
    assert sandbox_channel(agent(AgentMode.human_like, channels=by_id))[0] == "123456789012345678"
    # Restricted to #general, the agent still answers in the sandbox.
    turn = sandbox_turn(
        agent(AgentMode.human_like, channels=named), Tier.free, message("hi"), PromptFit.full, NOW
    )
    assert turn.outputs.decisions[0].respond


def test_a_message_in_a_harm_category_gets_the_safe_reply_and_no_prompt() -> None:
    turn = sandbox_turn(
        agent(AgentMode.human_like), Tier.free, message("I want to kill myself"), PromptFit.full, NOW
    )
    assert turn.outputs.requests == []
    assert turn.outputs.decisions[0].respond and said(turn.outputs.actions)
