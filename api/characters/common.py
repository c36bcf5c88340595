"""What every character format shares: the fields that map onto AgentConfig, and the round trip.

A format maps some of its fields onto the configuration (`project` names them by dotted path). Import
keeps the original document and the projection of the configuration it produced (the baseline).
Export starts from the original and writes back only the mapped fields whose projection changed since
(the owner edited the agent), so every field we have no place for, and every mapped field the owner
did not touch, comes back byte for byte. Platform fields travel as a whole AgentConfig under a
namespaced extension (`deep_system`), so an export imported again restores the agent exactly.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from api.schemas import CharacterFormat
from models.agent import AgentConfig, AgentMode
from models.common import MAX_LIST, error_paths
from models.templates import mode_template

PLATFORM_EXTENSION = "deep_system"
# An imported character becomes a full AI character on the human_like template's model.
DEFAULT_TEXT_MODEL = mode_template(AgentMode.human_like).ai_config.text_model  # type: ignore[union-attr]
MAX_NAME, MAX_DESCRIPTION, MAX_BACKSTORY, MAX_PROMPT, MAX_WORD = 100, 1000, 4000, 8000, 100

Json = dict[str, Any]


class CharacterError(ValueError):
    """A character document we cannot read; `paths` name the fields at fault, in the document's terms."""

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(f"{', '.join(paths)}: {message}" if paths else message)
        self.message = message
        self.paths = paths


@dataclass(frozen=True)
class StoredImport:
    """What import keeps beside the agent (agent_configurations.import_*)."""

    format: CharacterFormat
    original: Json
    baseline: Json
    image: bytes | None = None

    def extensions(self) -> Json:
        return {"original": self.original, "baseline": self.baseline}


@dataclass
class CharacterFields:
    """The format-neutral content of a character, before it becomes a configuration."""

    name: str
    backstory: str = ""
    description: str | None = None
    system_prompt: str = ""
    # Used as the system prompt when the document has none and the platform extension gives none.
    composed_prompt: str = ""
    interests: list[str] = field(default_factory=list)
    speech_style: Json = field(default_factory=dict)
    text_model: str | None = None


def get_path(document: Json, path: str) -> Any:
    node: Any = document
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def put_path(document: Json, path: str, value: Any) -> None:
    """Set a dotted path (None removes it), creating objects on the way."""
    *parents, last = path.split(".")
    node = document
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            if value is None:
                return
            child = node[part] = {}
        node = child
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value


def text_at(document: Json, path: str, *, required: bool = False) -> str:
    value = get_path(document, path)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise CharacterError("must be a non-empty string" if required else "must be a string", [path])
    return value


def strings_at(document: Json, path: str) -> list[str]:
    """A list of strings (a single string counts as one)."""
    value = get_path(document, path)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CharacterError("must be a list of strings", [path])
    return value


def object_at(document: Json, path: str) -> Json | None:
    value = get_path(document, path)
    if value is not None and not isinstance(value, dict):
        raise CharacterError("must be an object", [path])
    return value


def clip(text: str, limit: int) -> str:
    return text.strip()[:limit]


def words(items: list[str]) -> list[str]:
    """Usable as interests: non-empty, short enough, unique, at most MAX_LIST."""
    cleaned = [item.strip() for item in items if item.strip() and len(item.strip()) <= MAX_WORD]
    return list(dict.fromkeys(cleaned))[:MAX_LIST]


def build_config(fields: CharacterFields, platform: Json | None, platform_path: str) -> AgentConfig:
    """The document's mapped fields over the platform extension (or a fresh AI character)."""
    base: Json = copy.deepcopy(platform) if platform is not None else {"mode": AgentMode.human_like.value}
    name = clip(fields.name, MAX_NAME)
    base["name"] = name
    character = dict(base.get("character") or {})
    character.update(
        name=name, backstory=clip(fields.backstory, MAX_BACKSTORY), interests=words(fields.interests)
    )
    if fields.speech_style:
        character["speech_style"] = {**(character.get("speech_style") or {}), **fields.speech_style}
    base["character"] = character
    if fields.description is not None:
        base["description"] = clip(fields.description, MAX_DESCRIPTION)
    mode = base.get("mode")
    if mode in (AgentMode.human_like.value, AgentMode.semi_autonomous.value):
        ai = dict(base.get("ai_config") or {"text_model": DEFAULT_TEXT_MODEL})
        if fields.text_model:
            ai["text_model"] = clip(fields.text_model, 200)
        if fields.system_prompt.strip():
            ai["system_prompt"] = clip(fields.system_prompt, MAX_PROMPT)
        elif not ai.get("system_prompt"):
            ai["system_prompt"] = clip(fields.composed_prompt, MAX_PROMPT)
        base["ai_config"] = ai
    try:
        return AgentConfig.model_validate(base)
    except ValidationError as exc:
        paths = [f"{platform_path}.{path}" if platform is not None else path for path in error_paths(exc)]
        raise CharacterError(f"does not make a valid agent: {exc.errors()[0]['msg']}", paths) from None


def platform_fields(config: AgentConfig) -> Json:
    return config.model_dump(mode="json")


class CharacterMapping(ABC):
    format: CharacterFormat
    # Where the whole AgentConfig travels; always written, so platform fields survive any export.
    platform_path: str

    @abstractmethod
    def matches(self, document: Json) -> bool: ...

    @abstractmethod
    def to_config(self, document: Json) -> AgentConfig: ...

    @abstractmethod
    def project(self, config: AgentConfig) -> Json:
        """The mapped fields of `config`, by dotted path in this format (None: absent)."""

    @abstractmethod
    def skeleton(self) -> Json:
        """A fresh document with every required field, before the mapped ones are written."""

    def adopt(self, stored: StoredImport) -> Json | None:
        """The stored original as a starting document in this format, or None if it cannot be one."""
        return copy.deepcopy(stored.original) if stored.format is self.format else None

    def read(self, document: Json) -> tuple[AgentConfig, StoredImport]:
        config = self.to_config(document)
        return config, StoredImport(self.format, copy.deepcopy(document), self.project(config))

    def render(self, config: AgentConfig, stored: StoredImport | None) -> Json:
        current = self.project(config)
        document = self.adopt(stored) if stored is not None else None
        if document is None or stored is None:
            document = self.skeleton()
            changed = current
        else:
            changed = {path: value for path, value in current.items() if value != stored.baseline.get(path)}
        for path, value in changed.items():
            put_path(document, path, value)
        put_path(document, self.platform_path, platform_fields(config))
        return document
