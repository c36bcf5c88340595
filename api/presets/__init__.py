"""Presets: five ready-made premium agents (JSON files beside this module) and the five mode templates.

Each is a complete AgentConfig; deploying one copies it into the owner's agents, where it is theirs to edit.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from api.policy import personality_of
from api.schemas import Preset, PresetKind
from models.agent import AgentConfig
from models.templates import all_mode_templates

PRESET_DIR = Path(__file__).resolve().parent
PREMIUM = ("nova", "luna", "kai", "sage", "echo")


@cache
def _premium(name: str) -> Preset:
    config = AgentConfig.model_validate_json((PRESET_DIR / f"{name}.json").read_text())
    return Preset(name=name, kind=PresetKind.premium, description=config.description, config=config)


def all_presets() -> dict[str, Preset]:
    """Fresh copies, by name: the premium agents first, then the mode templates named by their mode."""
    presets = {name: _premium(name).model_copy(deep=True) for name in PREMIUM}
    for mode, config in all_mode_templates().items():
        presets[mode.value] = Preset(
            name=mode.value, kind=PresetKind.mode, description=config.description, config=config
        )
    return presets


@cache
def stock_personalities() -> tuple[dict[str, object], ...]:
    """The characters every tier may use unchanged (the free tier has no custom personality)."""
    return tuple(
        personality_of(preset.config.character)
        for preset in all_presets().values()
        if preset.config.character is not None
    )
