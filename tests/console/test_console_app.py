"""The console's files as the API serves them, nothing fetched from elsewhere, and the Big Five preview."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from api.console import STATIC_DIR
from api.traits import preview
from models.agent import PersonalityTraits

# Anything a browser would fetch from another origin: absolute URLs in src/href/import/url(), @import.
REMOTE = re.compile(
    r"""(?:src|href)\s*=\s*["']?(?:https?:)?//"""
    r"""|from\s+["'](?:https?:)?//"""
    r"""|url\(\s*["']?(?:https?:)?//"""
    r"""|@import"""
)


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    # No lifespan: these routes read no database.
    transport = httpx.ASGITransport(app=create_app(background=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as served:
        yield served


async def test_the_console_and_its_chart_library_are_served_from_the_api(api: httpx.AsyncClient) -> None:
    page = await api.get("/console/")
    assert page.status_code == 200
    assert 'src="app.js"' in page.text
    for path in ("app.js", "editor.js", "vendor/uPlot.esm.js", "vendor/uPlot.min.css"):
        served = await api.get(f"/console/{path}")
        assert served.status_code == 200, f"{path}: run infra/bootstrap.sh for the vendor files"


def test_no_console_file_loads_anything_from_another_origin() -> None:
    files = [path for path in STATIC_DIR.rglob("*") if path.suffix in {".html", ".js", ".css"}]
    assert len(files) > 5
    own = [path for path in files if "vendor" not in path.parts]
    offenders = [str(path) for path in own if REMOTE.search(path.read_text())]
    assert offenders == []


async def test_the_preview_is_neutral_at_50_and_moves_with_each_trait(api: httpx.AsyncClient) -> None:
    neutral = (await api.get("/traits/preview")).json()
    assert all(effect["value"] == effect["neutral"] for effect in neutral["effects"])
    bold = (await api.get("/traits/preview", params={"extraversion": 100, "openness": 0})).json()
    by_name = {effect["behaviour"]: effect for effect in bold["effects"]}
    assert by_name["odds of speaking unprompted"]["shown"] == "x 4.00"
    assert by_name["temperature offset"]["shown"] == "-0.30"
    # At openness 0 only the literal interest matches; at 100 every related word does.
    assert bold["interest_matches"] == [bold["example_interest"]]
    assert len(preview(PersonalityTraits(openness=100)).interest_matches) > 1


def test_every_trait_has_an_effect_that_moves_from_neutral_to_each_extreme() -> None:
    for trait in ("openness", "conscientiousness", "extraversion", "agreeableness", "neuroticism"):
        for extreme in (0, 100):
            effects = preview(PersonalityTraits.model_validate({trait: extreme})).effects
            assert any(e.trait == trait and e.value != e.neutral for e in effects), (trait, extreme)


async def test_a_trait_out_of_range_is_refused_naming_it(api: httpx.AsyncClient) -> None:
    refused = await api.get("/traits/preview", params={"neuroticism": 101})
    assert refused.status_code == 422
    assert [error["path"] for error in refused.json()["errors"]] == ["neuroticism (query)"]
