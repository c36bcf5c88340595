"""The five configuration modes (`AgentMode`) as ready templates. Each call returns a fresh, editable copy."""

from __future__ import annotations

from typing import Any

from models.agent import AgentConfig, AgentMode

_MUSIC = ["play", "queue", "skip", "stop", "pause", "resume", "nowplaying", "volume"]
_MODERATION = ["ban", "kick", "timeout", "warn"]

_TEMPLATES: dict[AgentMode, dict[str, Any]] = {
    AgentMode.bare: {
        "name": "Music Bot",
        "mode": "bare",
        "description": "Just plays music.",
        "enabled_tools": ["music"],
        "enabled_commands": ["play", "queue", "skip", "stop"],
        "response_style": {"format": "plain"},
    },
    AgentMode.utility: {
        "name": "Mod Bot",
        "mode": "utility",
        "description": "Moderation only.",
        "enabled_tools": ["moderation"],
        "enabled_commands": _MODERATION,
        "response_style": {"format": "embed"},
    },
    AgentMode.enhanced: {
        "name": "Guardian",
        "mode": "enhanced",
        "description": "Music and moderation with rule-based auto-moderation.",
        "enabled_tools": ["music", "moderation", "automod"],
        "enabled_commands": _MUSIC + _MODERATION,
        "automod": {
            "spam": {"max_messages": 5, "window_s": 5, "actions": ["timeout"], "timeout_s": 300},
            "links": {"enabled": True, "allow_domains": ["youtube.com", "discord.com"]},
        },
        "response_style": {"format": "embed"},
    },
    AgentMode.semi_autonomous: {
        "name": "Helper",
        "mode": "semi_autonomous",
        "description": "Music bot that answers questions addressed to it.",
        "character": {
            "name": "Helper",
            "personality": {"agreeableness": 70, "extraversion": 40},
            "speech_style": {"formality": "neutral"},
        },
        "ai_config": {
            "text_model": "gpt-3.5-turbo",
            "usage": "questions_only",
            "temperature": 0.3,
            "response_length": "short",
            "cacheable": True,
        },
        "enabled_tools": ["music", "utility"],
        "enabled_commands": [*_MUSIC, "remind", "poll"],
        "behavior": {"response_triggers": {"keyword_match": {"enabled": False}}},
    },
    AgentMode.human_like: {
        "name": "Companion",
        "mode": "human_like",
        "description": "A full AI character who lives in the server.",
        "character": {
            "name": "Companion",
            "personality": {
                "openness": 80,
                "conscientiousness": 55,
                "extraversion": 75,
                "agreeableness": 75,
                "neuroticism": 30,
            },
            "interests": ["games", "music", "movies"],
            "speech_style": {"formality": "casual", "emoji_usage": "medium", "sentence_enders": ["!", "~"]},
        },
        "ai_config": {"text_model": "gpt-4-turbo", "temperature": 0.8, "context_window": 50},
        "behavior": {
            "response_triggers": {
                "mentioned": {"probability": 1.0},
                "replied_to": {"probability": 1.0},
                "keyword_match": {"probability": 0.7},
                "conversation_flow": {"probability": 0.3},
                "random": {"probability": 0.05},
                "bored": {"probability": 0.2},
            }
        },
        "enabled_tools": ["music", "games", "leveling", "utility"],
        "enabled_commands": [*_MUSIC, "rank", "leaderboard", "remind", "poll", "roll"],
        "channels": {"dm_enabled": True},
    },
}


def mode_template(mode: AgentMode) -> AgentConfig:
    return AgentConfig.model_validate(_TEMPLATES[mode])


def all_mode_templates() -> dict[AgentMode, AgentConfig]:
    return {mode: mode_template(mode) for mode in AgentMode}
