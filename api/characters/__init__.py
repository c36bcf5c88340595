"""Import and export of characters: Character Card V2/V3 (JSON or PNG), ElizaOS JSON, our AgentConfig JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from api.characters.cards import CARD_MAPPINGS, card_from_png, card_to_png
from api.characters.common import CharacterError, CharacterMapping, StoredImport
from api.characters.eliza import ELIZA_MAPPING
from api.characters.png import SIGNATURE
from api.schemas import CharacterFormat, Container
from models.agent import AgentConfig
from models.common import error_paths

__all__ = ["CharacterError", "Exported", "StoredImport", "export_character", "import_character"]

MAX_IMPORT_BYTES = 10 * 1024 * 1024

MAPPINGS: dict[CharacterFormat, CharacterMapping] = {**CARD_MAPPINGS, CharacterFormat.eliza: ELIZA_MAPPING}


@dataclass(frozen=True)
class Exported:
    body: bytes
    media_type: str
    extension: str


def _detect(document: dict[str, object]) -> CharacterFormat | None:
    if "mode" in document and "spec" not in document:
        return CharacterFormat.deep
    return next((fmt for fmt, mapping in MAPPINGS.items() if mapping.matches(document)), None)


def import_character(
    body: bytes, declared: CharacterFormat | None = None
) -> tuple[AgentConfig, StoredImport | None]:
    """The configuration a document maps to, and what to keep for its export (None for our own format)."""
    if len(body) > MAX_IMPORT_BYTES:
        raise CharacterError(f"is larger than {MAX_IMPORT_BYTES} bytes", ["body"])
    image = body if body.startswith(SIGNATURE) else None
    if image is not None:
        document = card_from_png(image)
    else:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise CharacterError("is neither JSON nor a PNG character card", ["body"]) from None
        if not isinstance(document, dict):
            raise CharacterError("must be a JSON object", ["body"])
    detected = _detect(document)
    fmt = declared or detected
    if fmt is None:
        raise CharacterError(
            "is not a Character Card V2/V3, an ElizaOS character or an AgentConfig (format= says which)",
            ["body"],
        )
    if fmt is CharacterFormat.deep:
        try:
            return AgentConfig.model_validate(document), None
        except ValidationError as exc:
            raise CharacterError(exc.errors()[0]["msg"], error_paths(exc)) from None
    mapping = MAPPINGS[fmt]
    if fmt in CARD_MAPPINGS and not mapping.matches(document):
        raise CharacterError(f"is {document.get('spec')!r}, not {fmt.value!r}", ["spec"])
    config, stored = mapping.read(document)
    return config, dataclasses.replace(stored, image=image)


def export_character(
    config: AgentConfig,
    stored: StoredImport | None,
    fmt: CharacterFormat | None = None,
    container: Container = Container.json,
) -> Exported:
    """The agent in `fmt` (default: the format it was imported from, else AgentConfig JSON)."""
    fmt = fmt or (stored.format if stored is not None else CharacterFormat.deep)
    if container is Container.png and fmt not in CARD_MAPPINGS:
        raise CharacterError(f"only character cards export as PNG, not {fmt.value}", ["container"])
    if fmt is CharacterFormat.deep:
        return Exported(config.model_dump_json(indent=2).encode(), "application/json", "json")
    document = MAPPINGS[fmt].render(config, stored)
    if container is Container.png:
        image = stored.image if stored is not None else None
        return Exported(card_to_png(document, fmt, image), "image/png", "png")
    return Exported(orjson.dumps(document, option=orjson.OPT_INDENT_2), "application/json", "json")
