"""The guild directory: channel names, roles, bots' roles and voice states learned from guild dispatches.

Agents name channels ("#general"); messages carry only channel ids. GUILD_CREATE lists a guild's channels,
roles and (at least) the bot's own member when a bot connects; the CHANNEL_*, GUILD_ROLE_*,
GUILD_MEMBER_UPDATE (of bots) and VOICE_STATE_UPDATE dispatches keep it current.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.agent import channel_label
from models.common import Snowflake
from models.processor_state import GuildDirectory
from processors.permissions import parse_permissions

DIRECTORY_EVENTS = frozenset(
    {
        "GUILD_CREATE",
        "GUILD_UPDATE",
        "CHANNEL_CREATE",
        "CHANNEL_UPDATE",
        "CHANNEL_DELETE",
        "GUILD_ROLE_CREATE",
        "GUILD_ROLE_UPDATE",
        "GUILD_ROLE_DELETE",
        "GUILD_MEMBER_UPDATE",
        "VOICE_STATE_UPDATE",
    }
)


class _View(BaseModel):
    model_config = ConfigDict(extra="ignore")


# Text and announcement channels: where a bot posts messages.
TEXT_CHANNEL_TYPES = frozenset({0, 5})


class _Channel(_View):
    id: Snowflake
    name: str | None = None
    type: int = 0
    position: int = 0
    # Discord's age-restricted flag.
    nsfw: bool = False


class _Role(_View):
    id: Snowflake
    permissions: str | int | None = None
    position: int = 0


class _User(_View):
    id: Snowflake
    bot: bool = False


class _Member(_View):
    user: _User
    roles: list[Snowflake] = Field(default_factory=list)


class _VoiceState(_View):
    user_id: Snowflake
    channel_id: Snowflake | None = None


class _Guild(_View):
    id: Snowflake
    name: str | None = None
    owner_id: Snowflake | None = None
    system_channel_id: Snowflake | None = None
    preferred_locale: str | None = None
    unavailable: bool = False
    channels: list[_Channel] = Field(default_factory=list)
    roles: list[_Role] = Field(default_factory=list)
    members: list[_Member] = Field(default_factory=list)
    voice_states: list[_VoiceState] = Field(default_factory=list)


def age_restricted(directory: GuildDirectory | None, channel_id: str | None) -> bool:
    """Discord marks the channel age-restricted (`nsfw`); a DM or an unknown channel is not."""
    return directory is not None and channel_id is not None and channel_id in directory.age_restricted


class _RoleEvent(_View):
    role: _Role


class _RoleDelete(_View):
    role_id: Snowflake


def apply_directory_event(
    directory: GuildDirectory | None, guild_id: str, event_type: str, data: dict[str, Any]
) -> GuildDirectory | None:
    """The directory after one dispatch, or None when the dispatch changes nothing.

    Raises pydantic.ValidationError for dispatch data missing what the event type needs."""
    current = directory or GuildDirectory(guild_id=guild_id)
    if event_type in ("GUILD_CREATE", "GUILD_UPDATE"):
        guild = _Guild.model_validate(data)
        if guild.unavailable:
            return None
        update: dict[str, Any] = {
            "name": guild.name if guild.name is not None else current.name,
            "owner_id": guild.owner_id or current.owner_id,
            "preferred_locale": guild.preferred_locale or current.preferred_locale,
        }
        if guild.roles:
            update["role_permissions"] = {r.id: parse_permissions(r.permissions) for r in guild.roles}
            update["role_positions"] = {r.id: r.position for r in guild.roles}
        if event_type == "GUILD_CREATE":
            bots = {m.user.id: m.roles for m in guild.members if m.user.bot}
            update["bot_roles"] = {**current.bot_roles, **bots}
            update["channel_names"] = {c.id: c.name for c in guild.channels if c.name is not None}
            update["channel_types"] = {c.id: c.type for c in guild.channels}
            update["age_restricted"] = sorted(c.id for c in guild.channels if c.nsfw)
            texts = sorted((c.position, c.id) for c in guild.channels if c.type in TEXT_CHANNEL_TYPES)
            update["home_channel"] = guild.system_channel_id or (texts[0][1] if texts else None)
            # Who is in voice when the bot connects; VOICE_STATE_UPDATE keeps it current.
            update["voice_channel_of"] = {
                v.user_id: v.channel_id for v in guild.voice_states if v.channel_id is not None
            }
        elif guild.system_channel_id is not None:
            update["home_channel"] = guild.system_channel_id
        return current.model_copy(update=update)
    if event_type in ("CHANNEL_CREATE", "CHANNEL_UPDATE"):
        channel = _Channel.model_validate(data)
        known = (
            current.channel_names.get(channel.id),
            current.channel_types.get(channel.id),
            channel.id in current.age_restricted,
        )
        if channel.name is None or known == (channel.name, channel.type, channel.nsfw):
            return None
        others = [c for c in current.age_restricted if c != channel.id]
        return current.model_copy(
            update={
                "channel_names": {**current.channel_names, channel.id: channel.name},
                "channel_types": {**current.channel_types, channel.id: channel.type},
                "age_restricted": sorted([*others, channel.id]) if channel.nsfw else others,
            }
        )
    if event_type == "CHANNEL_DELETE":
        channel = _Channel.model_validate(data)
        names = {k: v for k, v in current.channel_names.items() if k != channel.id}
        types = {k: v for k, v in current.channel_types.items() if k != channel.id}
        home = None if current.home_channel == channel.id else current.home_channel
        age_restricted = [c for c in current.age_restricted if c != channel.id]
        return current.model_copy(
            update={
                "channel_names": names,
                "channel_types": types,
                "home_channel": home,
                "age_restricted": age_restricted,
            }
        )
    if event_type in ("GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE"):
        role = _RoleEvent.model_validate(data).role
        roles = {**current.role_permissions, role.id: parse_permissions(role.permissions)}
        positions = {**current.role_positions, role.id: role.position}
        return current.model_copy(update={"role_permissions": roles, "role_positions": positions})
    if event_type == "GUILD_ROLE_DELETE":
        role_id = _RoleDelete.model_validate(data).role_id
        roles = {k: v for k, v in current.role_permissions.items() if k != role_id}
        positions = {k: v for k, v in current.role_positions.items() if k != role_id}
        return current.model_copy(update={"role_permissions": roles, "role_positions": positions})
    if event_type == "GUILD_MEMBER_UPDATE":
        member = _Member.model_validate(data)
        if not member.user.bot or current.bot_roles.get(member.user.id) == member.roles:
            return None
        return current.model_copy(update={"bot_roles": {**current.bot_roles, member.user.id: member.roles}})
    if event_type == "VOICE_STATE_UPDATE":
        state = _VoiceState.model_validate(data)
        if current.voice_channel_of.get(state.user_id) == state.channel_id:
            return None
        voice = {k: v for k, v in current.voice_channel_of.items() if k != state.user_id}
        if state.channel_id is not None:
            voice[state.user_id] = state.channel_id
        return current.model_copy(update={"voice_channel_of": voice})
    return None


def channel_by_ref(directory: GuildDirectory | None, ref: str) -> str | None:
    """The id of the channel a configuration names: an id as is, a name ("#general" or "general") through
    the directory; None while the guild is not known or has no such channel."""
    if ref.isdigit():
        return ref
    wanted = channel_label(ref)
    names = directory.channel_names if directory is not None else {}
    return next((channel_id for channel_id, name in names.items() if channel_label(name) == wanted), None)
