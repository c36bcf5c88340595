"""Character import and export: every field without a place in AgentConfig comes back unchanged."""

from __future__ import annotations

import base64
import copy
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from api.characters import MAX_IMPORT_BYTES, CharacterError, export_character, import_character
from api.characters.cards import card_from_png
from api.characters.png import Chunk, blank_png, read_chunks, text_chunks, with_text_chunks
from api.presets import all_presets
from api.schemas import CharacterFormat, Container
from models.agent import AgentConfig, Level
from models.tiers import Tier
from tests.api.conftest import NewOwner

pytestmark = pytest.mark.stack

PLATFORM = "deep_system"


def v2_card() -> dict[str, Any]:
    return {
        "spec": "chara_card_v2",
        "spec_version": "2.0",
        "x_top_level": {"kept": True},
        "data": {
            "name": "Seraphina",
            "description": "{{char}} is a guardian of an enchanted forest.\n" + "Long lore. " * 500,
            "personality": "caring, protective, gentle",
            "scenario": "{{user}} wakes up in a glade.",
            "first_mes": "*{{char}} kneels beside you* Are you hurt?",
            "mes_example": "<START>\n{{user}}: Who are you?\n{{char}}: A friend.",
            "creator_notes": "A gentle fantasy companion.",
            "system_prompt": "",
            "post_history_instructions": "Stay in character.",
            "alternate_greetings": ["*a breeze stirs*", "Welcome back."],
            "character_book": {
                "name": "Forest",
                "entries": [{"keys": ["glade"], "content": "A clearing.", "id": 0}],
            },
            "tags": ["fantasy", "female", "  ", "x" * 300],
            "creator": "someone",
            "character_version": "1.2",
            "extensions": {
                "talkativeness": "0.5",
                "fav": False,
                "depth_prompt": {"depth": 4, "prompt": "..."},
            },
            "x_unknown_in_data": [1, {"deep": None}],
        },
    }


def v3_card() -> dict[str, Any]:
    card = v2_card()
    card["spec"], card["spec_version"] = "chara_card_v3", "3.0"
    card["data"].update(
        nickname="Sera",
        creator_notes_multilingual={"fr": "Une compagne."},
        source=["https://example.invalid/sera"],
        group_only_greetings=["Hello, all of you."],
        creation_date=1_700_000_000,
        modification_date=1_700_000_100,
        assets=[{"type": "icon", "uri": "ccdefault:", "name": "main", "ext": "png"}],
    )
    return card


def eliza_character() -> dict[str, Any]:
    return {
        "name": "Trader Joe",
        "username": "traderjoe",
        "modelProvider": "openai",
        "clients": ["discord"],
        "plugins": ["@elizaos/plugin-solana"],
        "settings": {"secrets": {}, "voice": {"model": "en_US-male-medium"}, "model": "gpt-4o"},
        "system": "Roleplay as Trader Joe, a cheerful market analyst.",
        "bio": ["Joe has traded since the 90s.", "He explains markets simply."],
        "lore": ["Once predicted a crash on a napkin."],
        "knowledge": ["Markets go up and down."],
        "messageExamples": [
            [
                {"user": "{{user1}}", "content": {"text": "Buy?"}},
                {"user": "Trader Joe", "content": {"text": "Depends!"}},
            ]
        ],
        "postExamples": ["Markets are people."],
        "topics": ["markets", "economics", "history"],
        "adjectives": ["cheerful", "patient"],
        "style": {
            "all": ["never use emojis", "be casual"],
            "chat": ["short answers"],
            "post": ["no hashtags"],
        },
        "x_custom": {"anything": 1},
    }


def without_platform(document: dict[str, Any], *path: str) -> tuple[dict[str, Any], Any]:
    document = copy.deepcopy(document)
    node = document
    for part in path[:-1]:
        node = node[part]
    return document, node.pop(path[-1])


def png_with(card: dict[str, Any], keyword: str) -> bytes:
    # An image that already carries another text chunk, which must survive too.
    image = with_text_chunks(blank_png(), {"Comment": "made by hand"})
    return with_text_chunks(image, {keyword: base64.b64encode(orjson.dumps(card)).decode()})


def test_png_chunks_round_trip_and_reject_corruption() -> None:
    png = with_text_chunks(blank_png(), {"chara": "abc", "Comment": "x"})
    assert text_chunks(png) == {"chara": "abc", "Comment": "x"}
    assert [c.kind for c in read_chunks(png)][-1] == b"IEND"
    replaced = with_text_chunks(png, {"chara": "def"})
    assert text_chunks(replaced) == {"Comment": "x", "chara": "def"}
    corrupt = png[:-5] + bytes([png[-5] ^ 1]) + png[-4:]
    with pytest.raises(ValueError, match="CRC"):
        read_chunks(corrupt)
    assert Chunk(b"IEND", b"").encode() == b"\x00\x00\x00\x00IEND\xaeB`\x82"


def test_v2_json_round_trip_keeps_every_field() -> None:
    card = v2_card()
    config, stored = import_character(orjson.dumps(card))
    assert config.name == "Seraphina" and config.character is not None
    assert config.character.backstory.startswith("Seraphina is a guardian")  # {{char}} filled in
    assert config.character.interests == ["fantasy", "female"]  # blank and overlong tags have no place
    assert config.ai_config is not None and "caring, protective" in config.ai_config.system_prompt
    exported = orjson.loads(export_character(config, stored).body)
    rest, platform = without_platform(exported, "data", "extensions", PLATFORM)
    assert rest == card
    assert AgentConfig.model_validate(platform) == config


def test_v3_png_round_trip_keeps_every_field_and_chunk() -> None:
    card = v3_card()
    config, stored = import_character(png_with(card, "ccv3"))
    assert stored is not None and stored.format is CharacterFormat.chara_card_v3
    png = export_character(config, stored, container=Container.png).body
    assert text_chunks(png)["Comment"] == "made by hand"
    rest, _ = without_platform(card_from_png(png), "data", "extensions", PLATFORM)
    assert rest == card
    v2_fallback = orjson.loads(base64.b64decode(text_chunks(png)["chara"]))
    assert v2_fallback["spec"] == "chara_card_v2" and "nickname" not in v2_fallback["data"]
    assert v2_fallback["data"]["character_book"] == card["data"]["character_book"]


def test_eliza_round_trip_keeps_every_field() -> None:
    character = eliza_character()
    config, stored = import_character(orjson.dumps(character))
    assert config.character is not None and config.ai_config is not None
    assert config.character.backstory == "Joe has traded since the 90s.\nHe explains markets simply."
    assert config.character.interests == ["markets", "economics", "history"]
    assert (
        config.character.speech_style.emoji_usage == "none"
        and config.character.speech_style.formality == "casual"
    )
    assert config.ai_config.system_prompt == character["system"] and config.ai_config.text_model == "gpt-4o"
    exported = orjson.loads(export_character(config, stored).body)
    rest, _ = without_platform(exported, "settings", PLATFORM)
    assert rest == character


def test_edits_are_exported_and_untouched_fields_stay_original() -> None:
    character = eliza_character()
    config, stored = import_character(orjson.dumps(character))
    assert config.character is not None
    config.character.interests.append("cats")
    config.character.speech_style.emoji_usage = Level.high
    exported = orjson.loads(export_character(config, stored).body)
    assert exported["topics"] == ["markets", "economics", "history", "cats"]
    assert "emoji usage: high" in exported["style"]["all"]
    assert exported["bio"] == character["bio"]  # unchanged: the original list, not our joined text
    assert exported["style"]["chat"] == character["style"]["chat"]
    again, _ = import_character(orjson.dumps(exported))
    assert again == config


def test_platform_fields_survive_a_trip_through_a_card() -> None:
    luna = all_presets()["luna"].config
    for fmt in (CharacterFormat.chara_card_v2, CharacterFormat.chara_card_v3, CharacterFormat.eliza):
        document = export_character(luna, None, fmt).body
        imported, stored = import_character(document)
        assert imported == luna and stored is not None and stored.format is fmt
    png = export_character(luna, None, CharacterFormat.chara_card_v2, Container.png).body
    assert import_character(png)[0] == luna


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"spec": "chara_card_v2", "spec_version": "2.0", "data": {"description": "no name"}}, "data.name"),
        ({"spec": "chara_card_v2", "data": []}, "data"),
        (
            {"spec": "chara_card_v3", "data": {"name": "x", "tags": "a" * 5, "extensions": 3}},
            "data.extensions",
        ),
        ({"name": "E", "bio": "b", "settings": {"model": 4}}, "settings.model"),
        (
            {
                "spec": "chara_card_v2",
                "data": {"name": "x", "extensions": {PLATFORM: {"mode": "bare", "leveling": {"xp_min": -1}}}},
            },
            f"data.extensions.{PLATFORM}.leveling.xp_min",
        ),
        ({"hello": "world"}, "body"),
    ],
)
def test_unreadable_documents_name_the_field(document: dict[str, Any], path: str) -> None:
    with pytest.raises(CharacterError) as caught:
        import_character(orjson.dumps(document))
    assert path in caught.value.paths


async def test_import_edit_export_over_http(client: httpx.AsyncClient, new_owner: NewOwner) -> None:
    owner = await new_owner(Tier.pro)
    v3_png = png_with(v3_card(), "ccv3")
    imported = await client.post(
        "/agents/import", content=v3_png, headers={**owner, "Content-Type": "image/png"}
    )
    assert imported.status_code == 201, imported.text
    agent = imported.json()
    assert agent["import_format"] == "chara_card_v3" and agent["name"] == "Seraphina"

    exported = await client.get(
        f"/agents/{agent['agent_id']}/export", params={"container": "png"}, headers=owner
    )
    assert exported.status_code == 200 and exported.headers["content-type"] == "image/png"
    rest, _ = without_platform(card_from_png(exported.content), "data", "extensions", PLATFORM)
    assert rest == v3_card()

    edited = {**agent["config"], "name": "Sera the Brave"}
    assert (await client.put(f"/agents/{agent['agent_id']}", json=edited, headers=owner)).status_code == 200
    as_v2 = (
        await client.get(
            f"/agents/{agent['agent_id']}/export", params={"format": "chara_card_v2"}, headers=owner
        )
    ).json()
    assert as_v2["spec"] == "chara_card_v2" and as_v2["data"]["name"] == "Sera the Brave"
    assert as_v2["data"]["character_book"] == v3_card()["data"]["character_book"]

    for original, platform_path in (
        (v2_card(), ("data", "extensions", PLATFORM)),
        (eliza_character(), ("settings", PLATFORM)),
    ):
        json_headers = {**owner, "Content-Type": "application/json"}
        created = await client.post("/agents/import", content=orjson.dumps(original), headers=json_headers)
        assert created.status_code == 201, created.text
        back = await client.get(f"/agents/{created.json()['agent_id']}/export", headers=owner)
        assert without_platform(back.json(), *platform_path)[0] == original

    bad = await client.post("/agents/import", content=b'{"spec": "chara_card_v2", "data": {}}', headers=owner)
    assert bad.status_code == 422 and bad.json()["errors"][0]["path"] == "data.name"
    eliza_png = await client.get(
        f"/agents/{agent['agent_id']}/export", params={"format": "eliza", "container": "png"}, headers=owner
    )
    assert eliza_png.status_code == 422 and eliza_png.json()["errors"][0]["path"] == "container"


async def test_a_body_over_the_limit_is_refused_before_it_is_read_naming_the_body(
    client: httpx.AsyncClient, new_owner: NewOwner
) -> None:
    """The largest body any route takes is a character card's image; a larger one is not read into memory."""
    owner = {**await new_owner(Tier.pro), "Content-Type": "image/png"}
    declared = await client.post("/agents/import", content=b"\0" * (MAX_IMPORT_BYTES + 1), headers=owner)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(MAX_IMPORT_BYTES // (1024 * 1024) + 1):
            yield b"\0" * (1024 * 1024)

    streamed = await client.post("/agents/import", content=chunks(), headers=owner)
    for refused in (declared, streamed):
        assert refused.status_code == 413, refused.text
        assert refused.json()["errors"] == [
            {"path": "body", "message": f"is larger than {MAX_IMPORT_BYTES} bytes"}
        ]
