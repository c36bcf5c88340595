"""The production knowledge client, unmodified, against the MediaWiki stand-in, with its cache in Redis."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from emulator.mediawiki import MediaWikiServer
from emulator.mediawiki.server import ROBOT_POLICY
from inference.knowledge import KnowledgeCache, KnowledgeLookup, Spacing, WikipediaClient, user_agent
from models.inference import InferenceRequest
from models.knowledge import KnowledgeQuery
from tests.ai.factories import inference_request

pytestmark = pytest.mark.stack


@pytest.fixture
async def wiki() -> AsyncIterator[MediaWikiServer]:
    async with MediaWikiServer() as server:
        yield server


@pytest.fixture
async def lookup(wiki: MediaWikiServer, redis: Redis, key_prefix: str) -> AsyncIterator[KnowledgeLookup]:
    async with httpx.AsyncClient(headers={"User-Agent": user_agent("ops@example.org")}) as http:
        client = WikipediaClient(http, wiki.url_template, Spacing(interval_s=0.0))
        yield KnowledgeLookup(client, KnowledgeCache(redis, key_prefix, wiki.url_template))


def asking(topic: str, language: str = "en") -> InferenceRequest:
    question = KnowledgeQuery(topic=topic, language=language)
    return inference_request().model_copy(update={"knowledge": question})


async def test_a_question_finds_its_article(lookup: KnowledgeLookup, wiki: MediaWikiServer) -> None:
    finding = await lookup.finding_for(asking("Ada Lovelace"))
    assert finding is not None and finding.article is not None
    assert finding.article.title == "Ada Lovelace"
    assert finding.article.url == "https://en.wikipedia.org/wiki/Ada_Lovelace"
    assert "Analytical Engine" in finding.article.extract
    (seen,) = wiki.requests
    assert seen.user_agent.startswith("TheDeepSystem/") and "ops@example.org" in seen.user_agent
    assert seen.params["generator"] == "search" and seen.params["prop"] == "extracts|info"


async def test_each_language_has_its_own_edition(lookup: KnowledgeLookup) -> None:
    finding = await lookup.finding_for(asking("Ada Lovelace", "de"))
    assert finding is not None and finding.article is not None
    assert finding.article.url == "https://de.wikipedia.org/wiki/Ada_Lovelace"
    assert "Mathematikerin" in finding.article.extract


async def test_an_unknown_topic_finds_nothing(lookup: KnowledgeLookup) -> None:
    finding = await lookup.finding_for(asking("Zorblax the Unknowable"))
    assert finding is not None and finding.article is None


async def test_a_question_asked_again_is_answered_from_the_cache(
    lookup: KnowledgeLookup, wiki: MediaWikiServer
) -> None:
    first = await lookup.finding_for(asking("Marie Curie"))
    again = await lookup.finding_for(asking("marie  curie"))
    assert first is not None and again is not None and again.article == first.article
    unknown = [await lookup.finding_for(asking("Zorblax")) for _ in range(2)]
    assert unknown[0] == unknown[1]
    assert (wiki.count("Marie Curie"), wiki.count("Zorblax")) == (1, 1)


async def test_questions_at_once_share_one_request(lookup: KnowledgeLookup, wiki: MediaWikiServer) -> None:
    findings = await asyncio.gather(*(lookup.finding_for(asking("Alan Turing")) for _ in range(5)))
    assert len({f.article.title for f in findings if f is not None and f.article is not None}) == 1
    assert wiki.count("Alan Turing") == 1


async def test_a_failed_lookup_knows_nothing_and_is_not_cached(
    wiki: MediaWikiServer, redis: Redis, key_prefix: str
) -> None:
    # An HTTP library's own User-Agent is refused as Wikimedia refuses it: the etiquette is enforced.
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{wiki.url_template.format(lang='en')}/w/api.php", params={"action": "query"}
        )
        assert (response.status_code, response.text) == (403, ROBOT_POLICY)
        cache = KnowledgeCache(redis, key_prefix, wiki.url_template)
        lookup = KnowledgeLookup(WikipediaClient(http, wiki.url_template), cache)
        finding = await lookup.finding_for(asking("Ada Lovelace"))
    assert finding is not None and finding.article is None
    assert [key async for key in redis.scan_iter(match=f"{key_prefix}knowledge:*")] == []


async def test_requests_are_spaced() -> None:
    spacing = Spacing(interval_s=0.05)
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def request() -> None:
        async with spacing:
            starts.append(loop.time())

    await asyncio.gather(*(request() for _ in range(3)))
    assert all(later - earlier >= 0.045 for earlier, later in itertools.pairwise(starts))


async def test_the_stand_in_speaks_the_action_api(wiki: MediaWikiServer) -> None:
    api = f"{wiki.url_template.format(lang='en')}/w/api.php"
    async with httpx.AsyncClient(headers={"User-Agent": user_agent("ops@example.org")}) as http:

        async def query(**params: str) -> httpx.Response:
            return await http.get(api, params={"action": "query", "format": "json", **params})

        found = (await query(list="search", srsearch="mathematician", srlimit="1", formatversion="2")).json()
        assert found["batchcomplete"] is True
        assert found["query"]["searchinfo"]["totalhits"] == 2
        # Neither title matches: the shorter one ranks first.
        assert [hit["title"] for hit in found["query"]["search"]] == ["Alan Turing"]
        pages = (await query(titles="Alan_Turing|Nobody", prop="info", inprop="url")).json()["query"]["pages"]
        assert pages["1208"]["fullurl"] == "https://en.wikipedia.org/wiki/Alan_Turing"
        assert pages["-1"] == {"ns": 0, "title": "Nobody", "missing": ""}
        short = await query(titles="Ada Lovelace", prop="extracts", exsentences="1", formatversion="2")
        assert short.json()["query"]["pages"][0]["extract"].endswith("writer.")
        refused = await http.get(api, params={"action": "edit"})
        assert refused.headers["MediaWiki-API-Error"] == "badvalue"
        assert refused.json()["error"]["info"] == 'Unrecognized value for parameter "action": edit.'
        missing = (await query(list="search")).json()["error"]
        assert missing["code"] == "missingparam"
        unknown_wiki = await http.get(f"{wiki.url_template.format(lang='xx')}/w/api.php")
        assert unknown_wiki.status_code == 404
