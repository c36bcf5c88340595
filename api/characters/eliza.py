"""ElizaOS character JSON.

Mapped: name, bio (backstory), system (system prompt), topics (interests), style.all (speech style),
settings.model (text model) and settings.deep_system (the whole AgentConfig). username, lore,
messageExamples, postExamples, adjectives, style.chat/post, plugins, clients, modelProvider,
knowledge and the rest of settings round-trip unchanged; lore, adjectives and style shape the
composed system prompt when the character has no `system`.
"""

from __future__ import annotations

from api.characters.common import (
    PLATFORM_EXTENSION,
    CharacterError,
    CharacterFields,
    CharacterMapping,
    Json,
    build_config,
    object_at,
    strings_at,
    text_at,
)
from api.schemas import CharacterFormat
from models.agent import AgentConfig, Level, SpeechStyle

_ELIZA_KEYS = {
    "bio",
    "lore",
    "messageExamples",
    "postExamples",
    "modelProvider",
    "plugins",
    "clients",
    "adjectives",
}
_LEVELS = [level.value for level in Level]
_FORMALITY = ("casual", "neutral", "formal")


def style_rules(style: SpeechStyle) -> list[str]:
    """The speech style as Eliza style lines; `speech_style_of` reads them back exactly."""
    rules = [
        f"formality: {style.formality}",
        f"emoji usage: {style.emoji_usage.value}",
        f"emoticon usage: {style.emoticon_usage.value}",
    ]
    if style.slang:
        rules.append("slang: " + ", ".join(style.slang))
    if style.sentence_enders:
        rules.append("sentence enders: " + " ".join(style.sentence_enders))
    return rules


def speech_style_of(rules: list[str]) -> Json:
    """Speech style fields from style lines: our own `key: value` lines exactly, free text by keywords."""
    style: Json = {}
    for rule in rules:
        key, _, value = (part.strip() for part in rule.lower().partition(":"))
        original_value = rule.partition(":")[2].strip()
        if key == "formality" and value in _FORMALITY:
            style["formality"] = value
        elif key in ("emoji usage", "emoticon usage") and value in _LEVELS:
            style[key.replace(" ", "_")] = value
        elif key == "slang":
            style["slang"] = [word.strip() for word in original_value.split(",") if word.strip()][:100]
        elif key == "sentence enders":
            style["sentence_enders"] = [ender for ender in original_value.split() if len(ender) <= 10][:20]
        else:
            text = rule.lower()
            if any(
                marker in text for marker in ("no emoji", "never use emoji", "don't use emoji", "avoid emoji")
            ):
                style["emoji_usage"] = Level.none.value
            elif "emoji" in text:
                style.setdefault("emoji_usage", Level.medium.value)
            if "informal" in text or "casual" in text or "lowercase" in text:
                style["formality"] = "casual"
            elif "formal" in text or "professional" in text:
                style["formality"] = "formal"
    return style


class ElizaMapping(CharacterMapping):
    format = CharacterFormat.eliza
    platform_path = f"settings.{PLATFORM_EXTENSION}"

    def matches(self, document: Json) -> bool:
        return "spec" not in document and bool(_ELIZA_KEYS & document.keys())

    def to_config(self, document: Json) -> AgentConfig:
        name = text_at(document, "name", required=True)
        bio = "\n".join(strings_at(document, "bio"))
        lore = strings_at(document, "lore")
        adjectives = strings_at(document, "adjectives")
        object_at(document, "style")  # type check: style lines below read inside it
        style_lines = strings_at(document, "style.all") + strings_at(document, "style.chat")
        settings = object_at(document, "settings") or {}
        model = settings.get("model")
        if model is not None and not isinstance(model, str):
            raise CharacterError("must be a string", ["settings.model"])
        composed = "\n\n".join(
            part
            for part in (
                f"You are {name}.",
                bio,
                "Background:\n" + "\n".join(lore) if lore else "",
                f"You are {', '.join(adjectives)}." if adjectives else "",
                "Style:\n" + "\n".join(style_lines) if style_lines else "",
            )
            if part
        )
        fields = CharacterFields(
            name=name,
            backstory=bio,
            system_prompt=text_at(document, "system"),
            composed_prompt=composed,
            interests=strings_at(document, "topics"),
            speech_style=speech_style_of(strings_at(document, "style.all")),
            text_model=model,
        )
        return build_config(fields, object_at(document, self.platform_path), self.platform_path)

    def project(self, config: AgentConfig) -> Json:
        character = config.character
        return {
            "name": config.name,
            "bio": character.backstory if character else "",
            "system": config.ai_config.system_prompt if config.ai_config else None,
            "topics": list(character.interests) if character else [],
            "style.all": style_rules(character.speech_style) if character else [],
            "settings.model": config.ai_config.text_model if config.ai_config else None,
        }

    def skeleton(self) -> Json:
        return {
            "name": "",
            "bio": "",
            "lore": [],
            "messageExamples": [],
            "postExamples": [],
            "topics": [],
            "adjectives": [],
            "style": {"all": [], "chat": [], "post": []},
            "plugins": [],
            "settings": {},
        }


ELIZA_MAPPING = ElizaMapping()
