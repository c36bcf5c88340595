"""Gateway intents: which dispatches a session may receive, and what message content it may see."""

from __future__ import annotations

from enum import IntFlag
from typing import Any


class Intent(IntFlag):
    GUILDS = 1 << 0
    GUILD_MEMBERS = 1 << 1
    GUILD_MODERATION = 1 << 2
    GUILD_EXPRESSIONS = 1 << 3
    GUILD_INTEGRATIONS = 1 << 4
    GUILD_WEBHOOKS = 1 << 5
    GUILD_INVITES = 1 << 6
    GUILD_VOICE_STATES = 1 << 7
    GUILD_PRESENCES = 1 << 8
    GUILD_MESSAGES = 1 << 9
    GUILD_MESSAGE_REACTIONS = 1 << 10
    GUILD_MESSAGE_TYPING = 1 << 11
    DIRECT_MESSAGES = 1 << 12
    DIRECT_MESSAGE_REACTIONS = 1 << 13
    DIRECT_MESSAGE_TYPING = 1 << 14
    MESSAGE_CONTENT = 1 << 15
    GUILD_SCHEDULED_EVENTS = 1 << 16
    AUTO_MODERATION_CONFIGURATION = 1 << 20
    AUTO_MODERATION_EXECUTION = 1 << 21
    GUILD_MESSAGE_POLLS = 1 << 24
    DIRECT_MESSAGE_POLLS = 1 << 25


PRIVILEGED = int(Intent.GUILD_MEMBERS | Intent.GUILD_PRESENCES | Intent.MESSAGE_CONTENT)
ALL_INTENTS = int(sum(Intent))

# Close codes chosen by check_intents, as Discord documents them.
CLOSE_INVALID_INTENTS = 4013
CLOSE_DISALLOWED_INTENTS = 4014

# event -> (intent needed in a guild, intent needed in a DM); 0 means always delivered.
_EVENT_INTENTS: dict[str, tuple[int, int]] = {
    "GUILD_CREATE": (Intent.GUILDS, 0),
    "GUILD_UPDATE": (Intent.GUILDS, 0),
    "GUILD_DELETE": (Intent.GUILDS, 0),
    "CHANNEL_CREATE": (Intent.GUILDS, 0),
    "CHANNEL_UPDATE": (Intent.GUILDS, 0),
    "CHANNEL_DELETE": (Intent.GUILDS, 0),
    "GUILD_MEMBER_ADD": (Intent.GUILD_MEMBERS, 0),
    "GUILD_MEMBER_UPDATE": (Intent.GUILD_MEMBERS, 0),
    "GUILD_MEMBER_REMOVE": (Intent.GUILD_MEMBERS, 0),
    "GUILD_BAN_ADD": (Intent.GUILD_MODERATION, 0),
    "GUILD_BAN_REMOVE": (Intent.GUILD_MODERATION, 0),
    "VOICE_STATE_UPDATE": (Intent.GUILD_VOICE_STATES, 0),
    "PRESENCE_UPDATE": (Intent.GUILD_PRESENCES, 0),
    "MESSAGE_CREATE": (Intent.GUILD_MESSAGES, Intent.DIRECT_MESSAGES),
    "MESSAGE_UPDATE": (Intent.GUILD_MESSAGES, Intent.DIRECT_MESSAGES),
    "MESSAGE_DELETE": (Intent.GUILD_MESSAGES, Intent.DIRECT_MESSAGES),
    "MESSAGE_REACTION_ADD": (Intent.GUILD_MESSAGE_REACTIONS, Intent.DIRECT_MESSAGE_REACTIONS),
    "MESSAGE_REACTION_REMOVE": (Intent.GUILD_MESSAGE_REACTIONS, Intent.DIRECT_MESSAGE_REACTIONS),
    "TYPING_START": (Intent.GUILD_MESSAGE_TYPING, Intent.DIRECT_MESSAGE_TYPING),
    **{
        f"GUILD_SCHEDULED_EVENT_{change}": (Intent.GUILD_SCHEDULED_EVENTS, 0)
        for change in ("CREATE", "UPDATE", "DELETE", "USER_ADD", "USER_REMOVE")
    },
}


# Privileged intent -> application flags (full, LIMITED) that say the developer portal granted it.
_GRANT_FLAGS: dict[int, tuple[int, int]] = {
    Intent.GUILD_PRESENCES: (1 << 12, 1 << 13),
    Intent.GUILD_MEMBERS: (1 << 14, 1 << 15),
    Intent.MESSAGE_CONTENT: (1 << 18, 1 << 19),
}
# Discord grants privileged intents to bots in under 100 guilds by a switch (the LIMITED flag); larger
# bots need verification (the full flag).
LIMITED_BELOW_GUILDS = 100


def application_flags(privileged_intents: int, guild_count: int) -> int:
    """The application's flags as GET /applications/@me reports the privileged intents it holds."""
    which = 1 if guild_count < LIMITED_BELOW_GUILDS else 0
    return sum(flags[which] for intent, flags in _GRANT_FLAGS.items() if privileged_intents & intent)


def check_intents(requested: int, enabled_privileged: int) -> int | None:
    """The close code an IDENTIFY with these intents earns, or None when it is acceptable."""
    if requested < 0 or requested & ~ALL_INTENTS:
        return CLOSE_INVALID_INTENTS
    if requested & PRIVILEGED & ~enabled_privileged:
        return CLOSE_DISALLOWED_INTENTS
    return None


def event_intent(event: str, *, dm: bool) -> int:
    """Intent bit a session needs for this event (0: not gated, e.g. INTERACTION_CREATE, READY)."""
    pair = _EVENT_INTENTS.get(event)
    if pair is None:
        return 0
    return int(pair[1] if dm else pair[0])


def content_visible(
    intents: int, bot_user_id: str, author_id: str, mentioned_ids: frozenset[str], *, dm: bool
) -> bool:
    """Discord's MESSAGE_CONTENT rule: without it a bot still sees DMs, its own messages and mentions."""
    return (
        bool(intents & Intent.MESSAGE_CONTENT)
        or dm
        or author_id == bot_user_id
        or (bot_user_id in mentioned_ids)
    )


def strip_content(message: dict[str, Any]) -> dict[str, Any]:
    """A copy of a message payload as a bot without MESSAGE_CONTENT receives it."""
    stripped = {**message, "content": ""}
    for key in ("embeds", "attachments", "components"):
        if key in message:
            stripped[key] = []
    stripped.pop("poll", None)
    referenced = message.get("referenced_message")
    if isinstance(referenced, dict):
        stripped["referenced_message"] = strip_content(referenced)
    return stripped
