"""The gallery: a published card carries no token, owner or private field; search, preview, copies within
the copier's tier, unpublishing by the author only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from models.agent import AgentMode
from models.templates import mode_template
from models.tiers import Tier
from tests.api.conftest import NewOwner

pytestmark = pytest.mark.stack

LOG_CHANNEL = "987654321098765432"
SECRET_ROOM = "#owners-secret-room"
SLUG = "owner-private-slug-7"


def private_config(name: str) -> dict[str, Any]:
    """An agent with every field that belongs to its owner's servers set."""
    config = mode_template(AgentMode.bare).model_dump(mode="json")
    config.update(
        name=name,
        description=f"{name}, a friendly lighthouse keeper",
        agent_id=SLUG,
        channels={"text_channels": [SECRET_ROOM], "voice_channels": ["#owners-voice"], "dm_enabled": True},
        moderation={**config["moderation"], "log_channel": LOG_CHANNEL},
        announcements={"channel": "#owners-announcements", "templates": {}},
    )
    return config


async def test_a_published_card_has_no_token_owner_or_private_field(
    client: httpx.AsyncClient, new_owner: NewOwner, add_token: Callable[..., Awaitable[Any]]
) -> None:
    author = await new_owner(name="card author")
    token = await add_token(author)
    author_id = (await client.get("/me", headers=author)).json()["owner"]["owner_id"]
    agent = (await client.post("/agents", json=private_config("Keeper"), headers=author)).json()
    published = await client.post("/gallery", json={"agent_id": agent["agent_id"]}, headers=author)
    assert published.status_code == 201, published.text

    card = published.json()["card"]
    assert card["spec"] == "chara_card_v3" and card["data"]["name"] == "Keeper"
    text = published.text
    # The conftest's recorder separately proves no response ever held the bot token itself.
    for private in (
        author_id,
        agent["agent_id"],
        token["token_id"],
        token["bot_user_id"],
        SLUG,
        SECRET_ROOM,
        "#owners-voice",
        "#owners-announcements",
        LOG_CHANNEL,
        '"owner_id"',
        '"agent_id"',
        '"token"',
        '"token_id"',
        '"channels"',
        "card author",
    ):
        assert private not in text, private
    preview = await client.get(f"/gallery/{published.json()['gallery_id']}", headers=await new_owner())
    assert preview.status_code == 200 and preview.json()["card"] == card


async def test_search_preview_copy_and_unpublish(client: httpx.AsyncClient, new_owner: NewOwner) -> None:
    author, reader = await new_owner(name="author"), await new_owner(Tier.pro, name="reader")
    agent = (await client.post("/agents", json=private_config("Marigold 100%"), headers=author)).json()
    gallery_id = (await client.post("/gallery", json={"agent_id": agent["agent_id"]}, headers=author)).json()[
        "gallery_id"
    ]
    found = (await client.get("/gallery", params={"q": "marigold 100%"}, headers=reader)).json()
    assert [(item["gallery_id"], item["by_you"]) for item in found["items"]] == [(gallery_id, False)]
    assert found["total"] == 1 and found["page"] == 1
    # % is a literal in a query, not a wildcard.
    assert (await client.get("/gallery", params={"q": "marigold 1%0"}, headers=reader)).json()["total"] == 0
    mine = (await client.get("/gallery", params={"q": "Marigold"}, headers=author)).json()["items"]
    assert mine[0]["by_you"] is True

    copied = await client.post(f"/gallery/{gallery_id}/copies", headers=reader)
    assert copied.status_code == 201, copied.text
    copy = copied.json()
    reader_id = (await client.get("/me", headers=reader)).json()["owner"]["owner_id"]
    assert copy["owner_id"] == reader_id and copy["name"] == "Marigold 100%"
    assert copy["config"]["channels"]["text_channels"] == [] and copy["config"]["agent_id"] is None

    refused = await client.delete(f"/gallery/{gallery_id}", headers=reader)
    assert refused.status_code == 403
    assert (await client.delete(f"/gallery/{gallery_id}", headers=author)).status_code == 204
    assert (await client.get(f"/gallery/{gallery_id}", headers=reader)).status_code == 404
    # The copy is the reader's own agent and stays.
    assert (await client.get(f"/agents/{copy['agent_id']}", headers=reader)).status_code == 200


async def test_only_your_own_agents_can_be_published(client: httpx.AsyncClient, new_owner: NewOwner) -> None:
    owner_a, owner_b = await new_owner(), await new_owner()
    agent = (await client.post("/agents", json=private_config("Not yours"), headers=owner_a)).json()
    stolen = await client.post("/gallery", json={"agent_id": agent["agent_id"]}, headers=owner_b)
    assert stolen.status_code == 404
    bad_page = await client.get("/gallery", params={"page": 0}, headers=owner_b)
    assert bad_page.status_code == 422 and bad_page.json()["errors"][0]["path"] == "page (query)"
    missing = await client.post("/gallery", json={}, headers=owner_b)
    assert missing.status_code == 422 and missing.json()["errors"][0]["path"] == "agent_id"


async def test_a_copy_is_within_the_copiers_tier(client: httpx.AsyncClient, new_owner: NewOwner) -> None:
    author = await new_owner(Tier.pro)
    agent = (await client.post("/agents", json=private_config("Custom soul"), headers=author)).json()
    gallery_id = (await client.post("/gallery", json={"agent_id": agent["agent_id"]}, headers=author)).json()[
        "gallery_id"
    ]
    # A card is a custom personality, which the free tier lacks: the copy is refused like any creation.
    refused = await client.post(f"/gallery/{gallery_id}/copies", headers=await new_owner(Tier.free))
    assert refused.status_code == 403 and refused.json()["errors"][0]["path"] == "character"
    assert (
        await client.post(f"/gallery/{gallery_id}/copies", headers=await new_owner(Tier.pro))
    ).status_code == 201
