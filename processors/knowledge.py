"""The knowledge tool's decisions: which messages are factual questions, in which language to look them up,
and what the reply adds from the lookup (the article's link, or that the agent does not know).

A message is a factual question when, mentions aside, it is one of these question forms about a topic:

    who|what|where|when  is|was|are|were  TOPIC  (also "who's", "what's")
    tell me about TOPIC  ·  what do you know about TOPIC

and the topic looks like something an encyclopedia has: not about the people talking or the moment
("what is your name", "what is up", "who is this"), at most six words, and a named entity (a capitalised
word, as in "who was Ada Lovelace"), a person ("who ..."), or a short term of up to three words ("what is
photosynthesis"). Leading articles are dropped from the topic; everything else is the search.
"""

from __future__ import annotations

import re

from models.agent import AgentConfig
from models.knowledge import DEFAULT_LANGUAGE, KnowledgeFinding, KnowledgeQuery
from models.processor_state import GuildDirectory
from models.tools import Tool

_MARKUP = re.compile(r"<(?:@[!&]?|#)\d+>")
_QUESTION = re.compile(
    r"^(?:(?P<wh>who|what|where|when)(?:['\u2019]s|\s+(?:is|was|are|were))|tell\s+me\s+about"
    r"|what\s+do\s+you\s+know\s+about)\s+(?P<topic>.+?)[\s?!.]*$",
    re.IGNORECASE,
)
_ARTICLES = ("the ", "a ", "an ")
# Words (in lower case, as typed) that make a topic about the conversation rather than the world.
_PERSONAL = frozenset(
    {
        "I", "me", "my", "mine", "you", "your", "yours", "yourself", "we", "us", "our", "it", "its", "this",
        "that", "these", "those", "he", "she", "they", "him", "her", "his", "them", "their", "there", "here",
        "up", "wrong", "going", "happening", "new", "next", "today", "tonight", "tomorrow", "now", "time",
    }
)  # fmt: skip
MAX_TOPIC_WORDS = 6
MAX_TERM_WORDS = 3
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")


def question_topic(text: str) -> str | None:
    """The topic of a factual question (rules in the module docstring); None for any other message."""
    match = _QUESTION.match(" ".join(_MARKUP.sub(" ", text).split()))
    if match is None:
        return None
    topic = match["topic"].strip(" \"',\u201c\u201d\u2018\u2019")
    while topic.lower().startswith(_ARTICLES):
        topic = topic.split(" ", 1)[1]
    words = topic.split()
    if not words or len(words) > MAX_TOPIC_WORDS:
        return None
    # As typed: a capitalised "It" or "Time" may well be a title.
    if any(word.strip("?!.,'\"\u2019") in _PERSONAL for word in words):
        return None
    named = any(word[:1].isupper() for word in words)
    person = (match["wh"] or "").lower() == "who"
    return topic if named or person or len(words) <= MAX_TERM_WORDS else None


def knowledge_language(agent: AgentConfig, directory: GuildDirectory | None) -> str:
    """The agent's configured language, else the guild's (its Discord locale: "de" of "de-AT"), else
    English."""
    if agent.knowledge is not None and agent.knowledge.language is not None:
        return agent.knowledge.language
    locale = directory.preferred_locale.split("-")[0].lower() if directory is not None else ""
    return locale if _LANGUAGE.match(locale) else DEFAULT_LANGUAGE


def knowledge_query(agent: AgentConfig, text: str, directory: GuildDirectory | None) -> KnowledgeQuery | None:
    """What the inference worker looks up for this message: its factual question, for an agent with the
    tool."""
    if Tool.knowledge not in agent.enabled_tools:
        return None
    topic = question_topic(text)
    if topic is None:
        return None
    return KnowledgeQuery(topic=topic, language=knowledge_language(agent, directory))


def not_known(finding: KnowledgeFinding) -> str:
    return f"I don't know anything about {finding.query.topic}, and I'd rather not guess."


def knowledge_fallback(finding: KnowledgeFinding) -> str:
    """The reply without a model: the article's first sentence, or that the agent does not know."""
    if finding.article is None:
        return not_known(finding)
    first, _, _ = finding.article.extract.partition(". ")
    return f"From the encyclopedia: {first.rstrip('.')}."


def with_source(text: str, finding: KnowledgeFinding | None) -> str:
    """The reply with its article's link, added by code so that it is always the real one."""
    if finding is None or finding.article is None or finding.article.url in text:
        return text
    return f"{text}\nSource: {finding.article.url}"
