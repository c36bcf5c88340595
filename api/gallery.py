"""Publishing an agent to the gallery: the card others see and copy. Pure: configuration in, card out.

A card is a Character Card V3 (the export of api/characters) of the agent without what belongs to its
owner's servers and bookkeeping: the owner's slug for the agent, the channels it serves and every
channel a routine, arc, event, log or announcement names. A copy gets the defaults and its new owner sets
their own. The bot token is never part of a configuration, so never of a card.
"""

from __future__ import annotations

from typing import Any

import orjson

from api.characters import StoredImport, export_character
from api.characters.common import PLATFORM_EXTENSION
from api.schemas import CharacterFormat
from models.agent import AgentConfig

# Configuration fields left out of a published card altogether (their defaults apply to a copy).
OMITTED_FIELDS = ("agent_id", "channels")
CARD_FORMAT = CharacterFormat.chara_card_v3


def public_config(config: AgentConfig) -> AgentConfig:
    """The configuration without its owner's servers: omitted fields at their defaults, channel names
    blank (each then means the deployment's own channel)."""
    data: dict[str, Any] = config.model_dump(mode="json", exclude=set(OMITTED_FIELDS))
    data["moderation"]["log_channel"] = ""
    data["announcements"]["channel"] = ""
    behavior = data["behavior"]
    for routine in behavior["proactive_actions"].values():
        routine["channel"] = ""
    for arc in behavior["story_arcs"]:
        arc["channel"] = ""
    for event in behavior["hosted_events"].values():
        event["channel"] = ""
    return AgentConfig.model_validate(data)


def published_card(config: AgentConfig, stored: StoredImport | None) -> dict[str, Any]:
    """The V3 card of the agent as the gallery shows it; the card it was imported from keeps its
    greetings and other fields without a place in the configuration."""
    exported = export_character(public_config(config), stored, CARD_FORMAT)
    card: dict[str, Any] = orjson.loads(exported.body)
    platform = card["data"]["extensions"][PLATFORM_EXTENSION]
    for name in OMITTED_FIELDS:
        platform.pop(name, None)
    return card
