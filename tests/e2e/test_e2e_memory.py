"""Issue 14 end to end: a fact told to Luna is in the prompt that reaches the OpenAI-compatible server when
the user asks about it after more than a context window of other messages (emulator -> gateway -> Kafka ->
processors -> inference, with the memory writer and Weaviate)."""

from __future__ import annotations

import pytest

from memory.store import MemoryStore, connect
from tests.e2e.conftest import Demo
from tests.waiting import wait_until

pytestmark = pytest.mark.stack

# Luna's context window is 50 messages; the fact must be outside it when asked about.
CHATTER = 60


async def test_luna_recalls_a_fact_from_outside_her_context_window(demo: Demo) -> None:
    luna, you, elif_ = demo.bots["Luna"], demo.users["you"], demo.users["elif"]
    channel = demo.channels["general"]
    client = connect(demo.settings)
    await client.connect()
    try:
        store = MemoryStore(client)
        await demo.control.post_user_message(you, f"<@{luna}> my sister's name is Zoraida", channel)

        async def remembered() -> bool:
            memories = await store.listed(demo.deployments["Luna"], author_id=you)
            return any("Zoraida" in m.record.text for m in memories)

        await wait_until(remembered, "Luna's memory of the fact", 120)
        for i in range(CHATTER):
            await demo.control.post_user_message(elif_, f"random chatter {i} about the weather", channel)
        calls_before = len(demo.inference.calls)
        await demo.control.post_user_message(you, f"<@{luna}> what is my sister's name?", channel)

        def asked() -> list[str]:
            # Luna's call only: another AI character in the channel may answer too, from its own memory.
            calls = [
                [str(m.get("content")) for m in c.messages]
                for c in demo.inference.calls[calls_before:]
                if "what is my sister's name" in c.last_user
            ]
            return next((call for call in calls if "You are Luna" in call[0]), [])

        prompt = await wait_until(asked, "Luna's inference call for the question", 120)
        assert any("Zoraida" in content for content in prompt), prompt
        # The fact is no longer in the channel history the prompt carries: only the recalled note has it.
        assert sum("Zoraida" in content for content in prompt) == 1, prompt
    finally:
        await client.close()
