"""A MediaWiki-compatible stand-in for Wikipedia's Action API: real HTTP on 127.0.0.1.

Each edition lives under a path of its own, `/{lang}/w/api.php` (the real ones are hosts,
`https://{lang}.wikipedia.org/w/api.php`), and serves the fixture pages of `fixtures/{lang}.json`. It speaks
the part of `action=query` that knowledge lookups use, in both JSON format versions:

- `list=search` (srsearch, srlimit) and `generator=search` (gsrsearch, gsrlimit): a page matches when every
  word of the search is among its title's and text's words; title matches rank first;
- `titles=A|B` for pages by title (a missing one is marked `missing`);
- `prop=extracts` (exintro, explaintext, exsentences, exchars) and `prop=info` (inprop=url).

As Wikimedia does, a request without a User-Agent, or with only an HTTP library's default one, gets 403 and
the robot-policy text; an unknown action or a missing search gets the API's `error` object (HTTP 200, with the
`MediaWiki-API-Error` header). Every request is recorded, so tests can count the requests for one search.

Control over HTTP, for a server in another process: GET /_emulator/requests, POST /_emulator/reset.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from emulator.http import LocalHttpServer

FIXTURES = Path(__file__).with_name("fixtures")
ROBOT_POLICY = "Please set a user-agent and respect our robot policy https://w.wiki/4wJS. See also T400119.\n"
# User-Agents that name only an HTTP library: Wikimedia blocks them like a missing one.
_LIBRARY_AGENT = re.compile(r"(python-httpx|python-requests|Python-urllib|aiohttp|curl|Wget)/[\d.]+", re.I)
_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
SERVED_BY = "mw-api-ext.emulator"


@dataclass(frozen=True)
class WikiPage:
    pageid: int
    title: str
    extract: str

    @property
    def words(self) -> set[str]:
        return _words(f"{self.title} {self.extract}")


@dataclass
class WikiRequest:
    """One request as the server saw it."""

    language: str
    params: dict[str, str]
    user_agent: str
    status: int

    @property
    def search(self) -> str:
        """What it asked for: the search, or the titles."""
        return self.params.get("srsearch") or self.params.get("gsrsearch") or self.params.get("titles", "")


def load_fixtures(directory: Path = FIXTURES) -> dict[str, list[WikiPage]]:
    """Language -> its pages, from `{lang}.json` files (lists of {pageid, title, extract})."""
    return {
        path.stem: [WikiPage(**page) for page in json.loads(path.read_text(encoding="utf-8"))]
        for path in sorted(directory.glob("*.json"))
    }


class MediaWikiServer(LocalHttpServer):
    """`async with MediaWikiServer() as wiki:` then use `wiki.url_template` as the wiki URL setting."""

    def __init__(self, pages: dict[str, list[WikiPage]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pages = pages if pages is not None else load_fixtures()
        self.requests: list[WikiRequest] = []

    @property
    def url_template(self) -> str:
        """The base URL of every edition, `{lang}` standing for the language."""
        return f"{self.root_url}/{{lang}}"

    def count(self, search: str) -> int:
        """Requests that searched for (or asked for the titles) `search`, case and spacing aside."""
        wanted = " ".join(search.casefold().split())
        return sum(1 for r in self.requests if " ".join(r.search.casefold().split()) == wanted)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/{lang}/w/api.php", self._api)
        app.router.add_get("/_emulator/requests", self._control_requests)
        app.router.add_post("/_emulator/reset", self._control_reset)

    async def _api(self, request: web.Request) -> web.Response:
        language = request.match_info["lang"]
        params = dict(request.query)
        user_agent = request.headers.get("User-Agent", "")
        response = self._answer(language, params, user_agent)
        self.requests.append(WikiRequest(language, params, user_agent, response.status))
        return response

    def _answer(self, language: str, params: dict[str, str], user_agent: str) -> web.Response:
        if not user_agent.strip() or _LIBRARY_AGENT.fullmatch(user_agent.strip()):
            return web.Response(status=403, text=ROBOT_POLICY, content_type="text/plain")
        pages = self.pages.get(language)
        if pages is None:
            return web.Response(
                status=404, text=f"No wiki found for {language!r}.\n", content_type="text/plain"
            )
        action = params.get("action", "")
        if action != "query":
            return _api_error("badvalue", f'Unrecognized value for parameter "action": {action}.')
        version = 2 if params.get("formatversion") == "2" else 1
        body: dict[str, Any] = {"batchcomplete": True if version == 2 else ""}
        query: dict[str, Any] = {}
        if params.get("list") == "search":
            if not params.get("srsearch"):
                return _api_error("missingparam", 'The "srsearch" parameter must be set.')
            found = _search(pages, params["srsearch"])
            query["searchinfo"] = {"totalhits": len(found)}
            query["search"] = [_search_hit(page) for page in found[: _limit(params.get("srlimit"))]]
        chosen: list[tuple[WikiPage | str, int | None]] = []
        if params.get("generator") == "search":
            if not params.get("gsrsearch"):
                return _api_error("missingparam", 'The "gsrsearch" parameter must be set.')
            found = _search(pages, params["gsrsearch"])[: _limit(params.get("gsrlimit"))]
            chosen = [(page, index) for index, page in enumerate(found, start=1)]
        elif params.get("titles"):
            by_title = {page.title.casefold(): page for page in pages}
            titles = params["titles"].split("|")
            chosen = [(by_title.get(title.replace("_", " ").casefold(), title), None) for title in titles]
        if chosen:
            props = set(params.get("prop", "").split("|"))
            described = [_page(language, page, index, props, params) for page, index in chosen]
            query["pages"] = described if version == 2 else _by_pageid(described)
        if query:
            body["query"] = query
        return _json(body)

    async def _control_requests(self, request: web.Request) -> web.Response:
        return _json({"requests": [asdict(r) for r in self.requests]})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.requests.clear()
        return _json({"ok": True})


def _by_pageid(pages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Format version 1: pages keyed by id, missing ones by -1, -2, ..., flags as empty strings."""
    keyed: dict[str, dict[str, Any]] = {}
    for page in pages:
        if page.get("missing"):
            keyed[str(-1 - sum(1 for p in keyed.values() if "missing" in p))] = {**page, "missing": ""}
        else:
            keyed[str(page["pageid"])] = page
    return keyed


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def _search(pages: list[WikiPage], search: str) -> list[WikiPage]:
    terms = _words(search)
    if not terms:
        return []
    matching = [page for page in pages if terms <= page.words]
    # Title matches first, then the shorter title (the closer match); stable for equal ones.
    return sorted(matching, key=lambda page: (not terms <= _words(page.title), len(page.title)))


def _limit(raw: str | None, default: int = 10) -> int:
    return max(1, min(500, int(raw))) if raw is not None and raw.isdigit() else default


def _search_hit(page: WikiPage) -> dict[str, Any]:
    return {
        "ns": 0,
        "title": page.title,
        "pageid": page.pageid,
        "size": len(page.extract.encode()),
        "wordcount": len(page.extract.split()),
        "snippet": page.extract[:150],
        "timestamp": "2026-01-01T00:00:00Z",
    }


def _page(
    language: str, page: WikiPage | str, index: int | None, props: set[str], params: dict[str, str]
) -> dict[str, Any]:
    if isinstance(page, str):
        return {"ns": 0, "title": page, "missing": True}
    described: dict[str, Any] = {"pageid": page.pageid, "ns": 0, "title": page.title}
    if index is not None:
        described["index"] = index
    if "extracts" in props:
        described["extract"] = _extract(page.extract, params)
    if "info" in props:
        described.update(contentmodel="wikitext", pagelanguage=language, length=len(page.extract.encode()))
        if "url" in params.get("inprop", "").split("|"):
            url = f"https://{language}.wikipedia.org/wiki/{quote(page.title.replace(' ', '_'))}"
            described.update(fullurl=url, editurl=f"{url}?action=edit", canonicalurl=url)
    return described


def _extract(text: str, params: dict[str, str]) -> str:
    """The fixture holds a page's introduction: exintro and explaintext change nothing; exsentences and
    exchars shorten it as TextExtracts does."""
    if (sentences := params.get("exsentences", "")).isdigit():
        text = " ".join(_SENTENCE_END.split(text)[: int(sentences)])
    if (chars := params.get("exchars", "")).isdigit() and len(text) > int(chars):
        text = text[: int(chars)].rstrip() + "…"
    return text


def _api_error(code: str, info: str) -> web.Response:
    error = {
        "code": code,
        "info": info,
        "docref": "See /w/api.php for API usage. Subscribe to the mediawiki-api-announce mailing list at "
        "<https://lists.wikimedia.org/postorius/lists/mediawiki-api-announce.lists.wikimedia.org/> "
        "for notice of API deprecations and breaking changes.",
    }
    response = _json({"error": error, "servedby": SERVED_BY})
    response.headers["MediaWiki-API-Error"] = code
    return response


def _json(payload: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")
