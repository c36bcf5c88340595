"""The embedded model server that `deep stack up` starts, through the inference pool: real generated text."""

from __future__ import annotations

import pytest

from inference.config import LOCAL_ENDPOINT_NAME, inference_config
from inference.pool import EndpointPool
from models.inference import LOCAL_MODEL_NAME
from models.state import MoodState, Relationship
from processors.prompt import PromptFit, build_prompt, max_tokens_for
from settings import Settings
from tests.ai.factories import BOT_ID, channel, discord_message, inference_request, luna

pytestmark = pytest.mark.stack


async def test_the_pool_without_endpoints_gets_text_generated_by_the_local_model(stack_up: Settings) -> None:
    if not stack_up.local_model:
        pytest.skip("DEEP_LOCAL_MODEL is off: the stack runs no model server")
    # No endpoint configured: the pool is the local model server alone, serving the name the agent asks for.
    config = inference_config(stack_up)
    assert [e.name for e in config.endpoints] == [LOCAL_ENDPOINT_NAME]
    agent = luna()
    messages = build_prompt(
        agent,
        discord_message("what game are you playing tonight?"),
        channel(),
        Relationship(user_id="500"),
        MoodState(mood="happy"),
        bot_id=BOT_ID,
        fit=PromptFit.small,
    )
    request = inference_request(model=agent.ai_config.text_model).model_copy(  # type: ignore[union-attr]
        update={"messages": messages, "max_tokens": max_tokens_for(agent, PromptFit.small)}
    )
    pool = EndpointPool(list(config.endpoints), config)
    try:
        completion = await pool.complete(request, rank=0)
    finally:
        await pool.close()
    assert (completion.endpoint, completion.model) == (LOCAL_ENDPOINT_NAME, LOCAL_MODEL_NAME)
    assert 0 < completion.completion_tokens <= request.max_tokens
    # Generated: the text is the model's own, neither empty nor a copy of anything in the prompt.
    assert completion.text.strip()
    assert all(completion.text.strip() != m.content for m in messages)
