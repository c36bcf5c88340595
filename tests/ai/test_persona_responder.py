"""The offline persona responder answers in character without a model."""

from __future__ import annotations

from models.actions import Reply
from models.agent import AgentMode, MoodName
from models.state import MoodState
from models.templates import mode_template
from processors.persona import OPENERS, PLAIN_LINE, persona_reply
from processors.replies import compose_reply
from tests.ai.factories import inference_result, luna


def test_reply_is_deterministic_and_in_character() -> None:
    agent = luna()
    mood = MoodState(mood=MoodName.sad)
    replies = {persona_reply(agent, mood, seed=f"r{i}") for i in range(30)}
    assert persona_reply(agent, mood, seed="r1") == persona_reply(agent, mood, seed="r1")
    assert len(replies) > 5
    assert all(reply.startswith(OPENERS[MoodName.sad]) for reply in replies)
    assert all(any(interest in reply for interest in agent.character.interests) for reply in replies)  # type: ignore[union-attr]
    assert any(any(phrase in reply for phrase in agent.character.catchphrases) for reply in replies)  # type: ignore[union-attr]


def test_agent_without_character_gets_a_plain_line() -> None:
    agent = mode_template(AgentMode.semi_autonomous).model_copy(update={"character": None})
    assert persona_reply(agent, MoodState(), seed="x") == PLAIN_LINE


def test_fallback_result_is_answered_by_the_persona_and_styled() -> None:
    result = inference_result("").model_copy(update={"fallback": True, "error": "ai_quota_exceeded"})
    actions = compose_reply(result, luna(), MoodState(mood=MoodName.happy))
    reply = actions[1]
    assert isinstance(reply, Reply)
    assert reply.content.startswith(OPENERS[MoodName.happy])
    assert reply.content.endswith("😊")  # styled: Luna's happy mood indicator
