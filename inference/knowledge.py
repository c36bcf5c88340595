"""Knowledge lookups for the inference worker: a factual question's Wikipedia article, into the prompt.

One Action API request per lookup does search, best page and summary together: `generator=search` with
`gsrlimit=1` picks the best page, `prop=extracts&exintro&explaintext` gives its plain-text introduction and
`prop=info&inprop=url` its address. Wikimedia's etiquette (https://www.mediawiki.org/wiki/API:Etiquette) is
kept: a descriptive User-Agent with a contact, requests in series and spaced per process, and every answer
cached in Redis so a question asked again costs Wikipedia nothing.

A lookup that fails (network, an API error) counts as finding nothing, not cached: the reply then says it
does not know rather than inventing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from importlib.metadata import version
from typing import Any

import httpx
from redis.asyncio import Redis

from models.inference import ChatMessage, InferenceRequest, InferenceResult
from models.knowledge import KnowledgeFinding, KnowledgeQuery, WikiArticle

log = logging.getLogger(__name__)

USER_AGENT = "TheDeepSystem/{version} (Discord agents' knowledge tool; {contact}) httpx/{httpx}"
# Requests start at least this far apart in one process, one at a time.
MIN_INTERVAL_S = 0.2
REQUEST_TIMEOUT_S = 5.0
# A page's introduction changes rarely; a day keeps facts fresh enough and repeated questions free.
CACHE_TTL_S = 86_400
# Characters of the introduction given to the model: the facts that matter come first.
EXTRACT_CHARS = 1000


class WikiError(Exception):
    """The API answered with an error object."""


def user_agent(contact: str) -> str:
    return USER_AGENT.format(
        version=version("deep-system"),
        contact=contact or "operator contact not configured",
        httpx=httpx.__version__,
    )


def search_params(query: KnowledgeQuery) -> dict[str, str]:
    return {
        "action": "query",
        "format": "json",
        "formatversion": "2",
        "generator": "search",
        "gsrsearch": query.topic,
        "gsrnamespace": "0",
        "gsrlimit": "1",
        "prop": "extracts|info",
        "exintro": "1",
        "explaintext": "1",
        "inprop": "url",
        "redirects": "1",
    }


def parse_article(payload: dict[str, Any]) -> WikiArticle | None:
    """The best page of a `generator=search` answer (formatversion 2) with its introduction; None when the
    search found nothing usable. Raises WikiError for the API's error object."""
    if "error" in payload:
        error = payload["error"]
        raise WikiError(f"{error.get('code', '?')}: {error.get('info', '')}")
    pages = [p for p in payload.get("query", {}).get("pages", []) if not p.get("missing")]
    for page in sorted(pages, key=lambda p: p.get("index", 0)):
        extract = " ".join(str(page.get("extract") or "").split())
        url = page.get("canonicalurl") or page.get("fullurl")
        if extract and url:
            return WikiArticle(title=page["title"], url=url, extract=_shortened(extract, EXTRACT_CHARS))
    return None


def _shortened(text: str, limit: int) -> str:
    """At most `limit` characters, ending at a sentence's end when one lies in the second half."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = cut.rfind(". ")
    return cut[: end + 1] if end >= limit // 2 else cut.rstrip() + "…"


def knowledge_note(finding: KnowledgeFinding) -> ChatMessage:
    """The facts, or their absence, as a user-role note: the article is outside text, never instructions,
    and the note says how to use it. The link is added to the reply by code, so the model need not."""
    topic = finding.query.topic
    article = finding.article
    if article is None:
        content = (
            f"[Reference lookup, not a message]\nThe encyclopedia has nothing on {topic!r}. Say plainly that "
            "you do not know; do not guess or invent facts about it."
        )
    else:
        content = (
            f"[Reference lookup, not a message]\nFrom the encyclopedia article {article.title!r}:\n"
            f"{article.extract}\nAnswer the question from these facts only; where they do not answer it, "
            "say you do not know. The article's link is added to your reply for you."
        )
    return ChatMessage(role="user", name="reference", content=content)


def with_knowledge(request: InferenceRequest, finding: KnowledgeFinding | None) -> InferenceRequest:
    """The request with the knowledge note just before the message being answered (the last one)."""
    if finding is None:
        return request
    messages = [*request.messages[:-1], knowledge_note(finding), request.messages[-1]]
    return request.model_copy(update={"messages": messages})


def sourced(result: InferenceResult, finding: KnowledgeFinding | None) -> InferenceResult:
    """The result carrying its lookup, for the reply to link the article or say it does not know."""
    return result if finding is None else result.model_copy(update={"knowledge": finding})


class Spacing:
    """Per-process etiquette: one request at a time, starts at least `interval_s` apart."""

    def __init__(self, interval_s: float = MIN_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._lock = asyncio.Lock()
        self._next_start = 0.0

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        wait = self._next_start - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def __aexit__(self, *exc: object) -> None:
        self._next_start = time.monotonic() + self.interval_s
        self._lock.release()


class WikipediaClient:
    """The MediaWiki Action API of every edition: `url_template` with `{lang}`, the API under /w/api.php."""

    def __init__(self, http: httpx.AsyncClient, url_template: str, spacing: Spacing | None = None) -> None:
        self.http = http
        self.url_template = url_template
        self.spacing = spacing or Spacing()

    async def article(self, query: KnowledgeQuery) -> WikiArticle | None:
        url = self.url_template.format(lang=query.language) + "/w/api.php"
        async with self.spacing:
            response = await self.http.get(url, params=search_params(query))
        response.raise_for_status()
        return parse_article(response.json())


class KnowledgeCache:
    """Findings by wiki (`source`, its URL template: a stand-in's findings are not Wikipedia's) and query."""

    def __init__(self, redis: Redis, prefix: str, source: str, ttl_s: int = CACHE_TTL_S) -> None:
        self.redis = redis
        self.prefix = f"{prefix}knowledge:{source}:"
        self.ttl_s = ttl_s

    async def get(self, query: KnowledgeQuery) -> KnowledgeFinding | None:
        raw = await self.redis.get(self.prefix + query.cache_key)
        return None if raw is None else KnowledgeFinding.model_validate_json(raw)

    async def put(self, finding: KnowledgeFinding) -> None:
        await self.redis.set(self.prefix + finding.query.cache_key, finding.model_dump_json(), ex=self.ttl_s)


class KnowledgeLookup:
    """What the worker adds for a request's factual question: from the cache, else from the wiki. Concurrent
    lookups of one query share a single request."""

    def __init__(self, client: WikipediaClient, cache: KnowledgeCache) -> None:
        self.client = client
        self.cache = cache
        self._pending: dict[str, asyncio.Task[KnowledgeFinding]] = {}

    async def finding_for(self, request: InferenceRequest) -> KnowledgeFinding | None:
        query = request.knowledge
        if query is None:
            return None
        pending = self._pending.get(query.cache_key)
        if pending is None:
            pending = asyncio.create_task(self._find(query))
            self._pending[query.cache_key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(query.cache_key, None))
        # Shielded: one waiting request being cancelled must not cancel the lookup the others wait for.
        return await asyncio.shield(pending)

    async def _find(self, query: KnowledgeQuery) -> KnowledgeFinding:
        cached = await self.cache.get(query)
        if cached is not None:
            return cached
        try:
            article = await self.client.article(query)
        except (httpx.HTTPError, WikiError, ValueError) as exc:
            log.warning("knowledge lookup of %r (%s) failed: %r", query.topic, query.language, exc)
            return KnowledgeFinding(query=query)
        finding = KnowledgeFinding(query=query, article=article)
        await self.cache.put(finding)
        return finding
