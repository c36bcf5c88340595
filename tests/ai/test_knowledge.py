"""The knowledge tool's pure parts: which messages are factual questions, the lookup's language, parsing the
MediaWiki answer, the cache key, the prompt note, and the reply's link or "does not know"."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inference.knowledge import WikiError, knowledge_note, parse_article, sourced, with_knowledge
from models.actions import Reply
from models.agent import AgentConfig, AgentMode
from models.inference import InferenceResult
from models.knowledge import KnowledgeFinding, KnowledgeQuery, WikiArticle
from models.processor_state import GuildDirectory
from models.state import MoodState
from processors.knowledge import knowledge_fallback, knowledge_language, knowledge_query, question_topic
from processors.replies import compose_reply
from tests.ai.factories import inference_request, inference_result
from tests.processors.factories import agent_with

ADA = WikiArticle(
    title="Ada Lovelace",
    url="https://en.wikipedia.org/wiki/Ada_Lovelace",
    extract="Ada Lovelace was an English mathematician. She wrote the first algorithm for a machine.",
)
QUERY = KnowledgeQuery(topic="Ada Lovelace", language="en")


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("who was Ada Lovelace?", "Ada Lovelace"),
        ("<@123456789012345678> Who is Marie Curie", "Marie Curie"),
        ("who's alan turing??", "alan turing"),
        ("what is photosynthesis?", "photosynthesis"),
        ("What was the Analytical Engine?", "Analytical Engine"),
        ("where is the Eiffel Tower", "Eiffel Tower"),
        ("tell me about Python", "Python"),
        ("what do you know about black holes?", "black holes"),
    ],
)
def test_factual_questions_name_their_topic(text: str, topic: str) -> None:
    assert question_topic(text) == topic


@pytest.mark.parametrize(
    "text",
    [
        "hello there",
        "Ada Lovelace was great",
        "what is your name?",
        "who is this?",
        "what's up",
        "what is going on with my code today",
        "what is the best way to learn to cook pasta at home",
        "why is the sky blue?",
    ],
)
def test_other_messages_are_not_factual_questions(text: str) -> None:
    assert question_topic(text) is None


def sage(**changes: object) -> AgentConfig:
    return agent_with(AgentMode.human_like, enabled_tools=["knowledge"], enabled_commands=[], **changes)


def test_the_language_is_the_agents_then_the_guilds_then_english() -> None:
    german_guild = GuildDirectory(guild_id="1", preferred_locale="de")
    assert knowledge_language(sage(), german_guild) == "de"
    assert knowledge_language(sage(), GuildDirectory(guild_id="1", preferred_locale="pt-BR")) == "pt"
    assert knowledge_language(sage(knowledge={"language": "fr"}), german_guild) == "fr"
    assert knowledge_language(sage(), None) == "en"


def test_only_an_agent_with_the_tool_looks_up() -> None:
    assert knowledge_query(sage(), "who was Ada Lovelace?", None) == QUERY
    plain = agent_with(AgentMode.human_like, enabled_commands=[])
    assert knowledge_query(plain, "who was Ada Lovelace?", None) is None
    assert knowledge_query(sage(), "good morning", None) is None


def test_the_tool_is_configured_only_where_it_can_act() -> None:
    with pytest.raises(ValidationError, match="knowledge: configured but the knowledge tool"):
        agent_with(AgentMode.human_like, enabled_commands=[], knowledge={"language": "de"})
    with pytest.raises(ValidationError, match="enabled_tools: the knowledge tool answers through the AI"):
        agent_with(AgentMode.utility, enabled_tools=["knowledge"], enabled_commands=[])
    with pytest.raises(ValidationError, match=r"knowledge\.language"):
        sage(knowledge={"language": "English"})


def test_questions_differing_in_case_and_spacing_share_a_cache_key() -> None:
    assert KnowledgeQuery(topic="ada  LOVELACE", language="en").cache_key == QUERY.cache_key
    assert KnowledgeQuery(topic="Ada Lovelace", language="de").cache_key != QUERY.cache_key


def test_the_best_page_of_a_search_is_parsed() -> None:
    payload = {
        "batchcomplete": True,
        "query": {
            "pages": [
                {"pageid": 2, "title": "Other", "index": 2, "extract": "x.", "fullurl": "https://x/2"},
                {
                    "pageid": 1,
                    "title": "Ada Lovelace",
                    "index": 1,
                    "extract": "Ada Lovelace was an English mathematician.\n\nShe  wrote.",
                    "canonicalurl": "https://en.wikipedia.org/wiki/Ada_Lovelace",
                },
            ]
        },
    }
    article = parse_article(payload)
    assert article is not None
    assert article.title == "Ada Lovelace"
    assert article.url == "https://en.wikipedia.org/wiki/Ada_Lovelace"
    assert article.extract == "Ada Lovelace was an English mathematician. She wrote."
    assert parse_article({"batchcomplete": True}) is None


def test_an_api_error_is_an_error() -> None:
    with pytest.raises(WikiError, match="badvalue"):
        parse_article({"error": {"code": "badvalue", "info": "nope"}})


def test_the_facts_go_just_before_the_question() -> None:
    asked = inference_request(text="who was Ada Lovelace?")
    grounded = with_knowledge(asked, KnowledgeFinding(query=QUERY, article=ADA))
    assert grounded.messages[:-2] == asked.messages[:-1]
    assert grounded.messages[-1] == asked.messages[-1]
    assert "English mathematician" in grounded.messages[-2].content
    assert grounded.messages[-2].role == "user"
    missing = knowledge_note(KnowledgeFinding(query=QUERY)).content
    assert "do not know" in missing and "invent" in missing
    assert with_knowledge(asked, None) == asked


def said(answer: InferenceResult) -> str:
    return "\n".join(a.content for a in compose_reply(answer, sage(), MoodState()) if isinstance(a, Reply))


def test_the_reply_links_the_article_by_code() -> None:
    found = sourced(inference_result("She was a mathematician."), KnowledgeFinding(query=QUERY, article=ADA))
    assert said(found).endswith(f"\nSource: {ADA.url}")
    assert sourced(inference_result("hi"), None).knowledge is None


def test_without_a_model_the_reply_never_invents() -> None:
    offline = inference_result("").model_copy(update={"fallback": True})
    reply = said(sourced(offline, KnowledgeFinding(query=QUERY)))
    assert "don't know anything about Ada Lovelace" in reply
    assert "http" not in reply
    assert knowledge_fallback(KnowledgeFinding(query=QUERY, article=ADA)) == (
        "From the encyclopedia: Ada Lovelace was an English mathematician."
    )
