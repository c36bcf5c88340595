"""Character Card V2 and V3 (SillyTavern and friends), in JSON and in PNG tEXt chunks.

Mapped: name, description (backstory), creator_notes (the agent's description), system_prompt, tags
(interests) and data.extensions.deep_system (the whole AgentConfig). Everything else (personality,
scenario, first_mes, mes_example, greetings, character_book, V3's assets, nickname, dates...) has no
place in the configuration and round-trips unchanged; the prompt-shaping fields are composed into the
system prompt when the card has none.
"""

from __future__ import annotations

import base64
import binascii
import copy

import orjson

from api.characters.common import (
    PLATFORM_EXTENSION,
    CharacterError,
    CharacterFields,
    CharacterMapping,
    Json,
    StoredImport,
    build_config,
    object_at,
    strings_at,
    text_at,
)
from api.characters.png import PngError, blank_png, text_chunks, with_text_chunks
from api.schemas import CharacterFormat
from models.agent import AgentConfig

SPECS = {
    CharacterFormat.chara_card_v2: ("chara_card_v2", "2.0"),
    CharacterFormat.chara_card_v3: ("chara_card_v3", "3.0"),
}
PNG_KEYWORDS = {CharacterFormat.chara_card_v2: "chara", CharacterFormat.chara_card_v3: "ccv3"}
V3_ONLY = (
    "assets",
    "nickname",
    "creator_notes_multilingual",
    "source",
    "group_only_greetings",
    "creation_date",
    "modification_date",
)


def _macros(text: str, name: str) -> str:
    return text.replace("{{char}}", name).replace("<BOT>", name).replace("{{user}}", "the user")


class CardMapping(CharacterMapping):
    def __init__(self, card_format: CharacterFormat) -> None:
        self.format = card_format
        self.platform_path = f"data.extensions.{PLATFORM_EXTENSION}"
        self.spec, self.spec_version = SPECS[card_format]

    def matches(self, document: Json) -> bool:
        return document.get("spec") == self.spec

    def to_config(self, document: Json) -> AgentConfig:
        if not isinstance(document.get("data"), dict):
            raise CharacterError("must be an object", ["data"])
        name = text_at(document, "data.name", required=True)
        description = _macros(text_at(document, "data.description"), name)
        personality = _macros(text_at(document, "data.personality"), name)
        scenario = _macros(text_at(document, "data.scenario"), name)
        composed = "\n\n".join(
            part
            for part in (
                f"You are {name}.",
                description,
                f"{name}'s personality: {personality}" if personality else "",
                f"Scenario: {scenario}" if scenario else "",
            )
            if part
        )
        object_at(document, "data.extensions")  # type check: the platform extension is read inside it
        fields = CharacterFields(
            name=name,
            backstory=description,
            description=text_at(document, "data.creator_notes"),
            system_prompt=_macros(text_at(document, "data.system_prompt"), name),
            composed_prompt=composed,
            interests=strings_at(document, "data.tags"),
        )
        return build_config(fields, object_at(document, self.platform_path), self.platform_path)

    def project(self, config: AgentConfig) -> Json:
        character = config.character
        return {
            "data.name": config.name,
            "data.description": character.backstory if character else "",
            "data.creator_notes": config.description,
            "data.system_prompt": config.ai_config.system_prompt if config.ai_config else "",
            "data.tags": list(character.interests) if character else [],
        }

    def skeleton(self) -> Json:
        data: Json = {
            "name": "",
            "description": "",
            "personality": "",
            "scenario": "",
            "first_mes": "",
            "mes_example": "",
            "creator_notes": "",
            "system_prompt": "",
            "post_history_instructions": "",
            "alternate_greetings": [],
            "tags": [],
            "creator": "",
            "character_version": "",
            "extensions": {},
        }
        if self.format is CharacterFormat.chara_card_v3:
            data["group_only_greetings"] = []
        return {"spec": self.spec, "spec_version": self.spec_version, "data": data}

    def adopt(self, stored: StoredImport) -> Json | None:
        """V2 and V3 are one family: a card imported as one exports as the other with its fields kept."""
        if stored.format not in SPECS:
            return None
        document = copy.deepcopy(stored.original)
        document["spec"], document["spec_version"] = self.spec, self.spec_version
        if self.format is CharacterFormat.chara_card_v3:
            document["data"].setdefault("group_only_greetings", [])
        elif stored.format is CharacterFormat.chara_card_v3:
            for key in V3_ONLY:
                document["data"].pop(key, None)
        return document


CARD_MAPPINGS = {card_format: CardMapping(card_format) for card_format in SPECS}


def _encode(document: Json) -> str:
    return base64.b64encode(orjson.dumps(document)).decode("ascii")


def card_from_png(png: bytes) -> Json:
    """The card JSON inside a PNG: the V3 `ccv3` chunk if present, else the V2 `chara` chunk."""
    try:
        texts = text_chunks(png)
    except PngError as exc:
        raise CharacterError(str(exc), ["png"]) from None
    keyword = next((key for key in ("ccv3", "chara") if key in texts), None)
    if keyword is None:
        raise CharacterError("the PNG has no 'ccv3' or 'chara' tEXt chunk", ["png"])
    try:
        document = orjson.loads(base64.b64decode(texts[keyword], validate=True))
    except (binascii.Error, orjson.JSONDecodeError):
        raise CharacterError("is not base64-encoded JSON", [f"png.{keyword}"]) from None
    if not isinstance(document, dict):
        raise CharacterError("must hold a JSON object", [f"png.{keyword}"])
    return document


def card_to_png(document: Json, card_format: CharacterFormat, image: bytes | None) -> bytes:
    """The card in the image (its own, or a blank one). A V3 card also writes a V2 `chara` chunk, as the V3
    spec recommends for older readers."""
    texts = {PNG_KEYWORDS[card_format]: _encode(document)}
    if card_format is CharacterFormat.chara_card_v3:
        v2 = CARD_MAPPINGS[CharacterFormat.chara_card_v2].adopt(StoredImport(card_format, document, {}))
        texts["chara"] = _encode(v2 or {})
    return with_text_chunks(image or blank_png(), texts, drop=frozenset(PNG_KEYWORDS.values()))
