"""The knowledge tool: a factual question the processors recognised, and what the encyclopedia says on it.

The processors put a `KnowledgeQuery` on the inference request; the inference worker looks it up (Wikipedia's
MediaWiki API), puts the facts into the prompt and returns the `KnowledgeFinding` with the result, so that the
reply links the article, or says it does not know when there is none.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from models.common import Strict

# A Wikipedia edition's language code, the host's first label: "en", "de", "simple", "zh-min-nan".
WikiLanguage = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,12}(-[a-z]{2,8})*$")]
DEFAULT_LANGUAGE = "en"


class KnowledgeConfig(Strict):
    """Settings of the knowledge tool."""

    # The Wikipedia edition that answers; None: the guild's language (its Discord locale), else English.
    language: WikiLanguage | None = None


class KnowledgeQuery(Strict):
    topic: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    language: WikiLanguage

    @property
    def cache_key(self) -> str:
        """Questions differing only in case or spacing share one lookup."""
        return f"{self.language}:{' '.join(self.topic.casefold().split())}"


class WikiArticle(Strict):
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2000)]
    # The plain-text introduction, cut to what a prompt can hold.
    extract: Annotated[str, StringConstraints(min_length=1, max_length=4000)]


class KnowledgeFinding(Strict):
    """The lookup of one query; `article` None: the encyclopedia has nothing on the topic."""

    query: KnowledgeQuery
    article: WikiArticle | None = None
