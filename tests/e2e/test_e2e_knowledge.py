"""Sage's knowledge tool through every service of the demo: a factual question goes from the Discord emulator
through the gateway, Kafka and the processors to the inference worker, which looks it up on the MediaWiki
stand-in and sends the facts to the OpenAI-compatible server; the reply links the article, or says Sage does
not know, and a question asked again costs the wiki nothing (the cache)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import fields
from typing import Any

import pytest
from redis.asyncio import Redis

from emulator.mediawiki import MediaWikiServer
from emulator.openai import OpenAICompatibleServer
from emulator.openai.server import Behaviour, RecordedCall
from inference.config import InferenceConfig
from inference.knowledge import KnowledgeCache
from settings import Settings, get_settings
from tests.e2e.conftest import Demo, demo_env, demo_world, message_text

pytestmark = pytest.mark.stack

ADA_URL = "https://en.wikipedia.org/wiki/Ada_Lovelace"
FACTS_HEADER = "From the encyclopedia article"
NOTHING_HEADER = "The encyclopedia has nothing on"


def follows_the_reference(call: RecordedCall) -> str:
    """A model that does what the reference note tells it: it answers from the article's first sentence, or
    says it does not know; anything else gets small talk."""
    for message in call.messages:
        content = str(message.get("content", ""))
        if FACTS_HEADER in content:
            facts = content.split(":\n", 1)[1]
            return f"Let us look closer. {facts.split('. ')[0]}."
        if NOTHING_HEADER in content:
            return "I do not know; I would rather not guess."
    return "the nebula glows softly tonight"


async def forget_findings(wiki: MediaWikiServer) -> None:
    """The inference worker's cached findings of this stand-in, dropped: a port reused from an earlier run
    must not answer from that run's cache."""
    redis = Redis.from_url(get_settings().redis_url)
    cache = KnowledgeCache(redis, InferenceConfig(endpoints=()).key_prefix, wiki.url_template)
    keys = [key async for key in redis.scan_iter(match=f"{cache.prefix}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture(scope="module")
async def wiki() -> AsyncIterator[MediaWikiServer]:
    async with MediaWikiServer() as server:
        await forget_findings(server)
        yield server
        await forget_findings(server)


@pytest.fixture(scope="module")
async def demo(
    stack_up: Settings, tmp_path_factory: pytest.TempPathFactory, wiki: MediaWikiServer
) -> AsyncIterator[Demo]:
    async with OpenAICompatibleServer(Behaviour(models=[]), responder=follows_the_reference) as inference:
        env = demo_env(
            OPENAI_BASE_URL=inference.base_url, OPENAI_API_KEY="test-key", WIKIPEDIA_URL=wiki.url_template
        )
        async with demo_world(stack_up, tmp_path_factory.mktemp("e2e-knowledge"), env) as world:
            yield Demo(**{f.name: getattr(world, f.name) for f in fields(world)}, inference=inference)


async def ask_sage(demo: Demo, user: str, question: str) -> str:
    """The text of Sage's reply to `question`."""
    sage = demo.bots["Sage"]
    since = await demo.last_seq()
    posted = await demo.control.post_user_message(
        demo.users[user], f"<@{sage}> {question}", demo.channels["general"]
    )

    def answers(action: dict[str, Any]) -> bool:
        reference = (action["payload"] or {}).get("message_reference") or {}
        return action["bot_id"] == sage and reference.get("message_id") == posted["id"]

    return message_text((await demo.wait_action(since, answers))["payload"])


def prompts_with(demo: Demo, text: str) -> list[RecordedCall]:
    return [c for c in demo.inference.calls if any(text in str(m.get("content")) for m in c.messages)]


async def test_sage_answers_from_the_article_with_its_link(demo: Demo, wiki: MediaWikiServer) -> None:
    reply = await ask_sage(demo, "aiko", "who was Ada Lovelace?")
    assert "English mathematician and writer" in reply
    assert reply.rstrip().endswith(ADA_URL)
    (prompt,) = prompts_with(demo, "Charles Babbage's proposed mechanical general-purpose computer")
    assert "who was Ada Lovelace?" in prompt.last_user

    again = await ask_sage(demo, "ben", "Who was Ada Lovelace?")
    assert ADA_URL in again
    assert len(prompts_with(demo, "Charles Babbage's proposed mechanical general-purpose computer")) == 2
    # Two identical questions, one request to the wiki: the second came from the cache.
    assert wiki.count("Ada Lovelace") == 1


async def test_sage_says_it_does_not_know_an_unknown_topic(demo: Demo, wiki: MediaWikiServer) -> None:
    reply = await ask_sage(demo, "carmen", "who was Zorblax Quenterfield?")
    assert "do not know" in reply and "http" not in reply
    assert prompts_with(demo, f"{NOTHING_HEADER} 'Zorblax Quenterfield'")
    assert wiki.count("Zorblax Quenterfield") == 1
