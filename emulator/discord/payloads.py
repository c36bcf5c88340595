"""Discord JSON shapes for the world's objects (what discord.py's parsers read)."""

from __future__ import annotations

from typing import Any

from .intents import application_flags
from .spec import CHANNEL_DM, CHANNEL_VOICE
from .world import Bot, Channel, Guild, Json, Member, User, World


def user_payload(user: User) -> Json:
    payload: Json = {
        "id": user.id,
        "username": user.username,
        "discriminator": "0",
        "global_name": user.global_name,
        "avatar": user.avatar,
        "public_flags": 0,
    }
    if user.bot:
        payload["bot"] = True
    return payload


def member_payload(member: Member, user: User | None = None) -> Json:
    """A guild member; with `user` the full object, without it the partial one messages carry."""
    payload: Json = {
        "nick": member.nick,
        "avatar": member.avatar,
        "banner": member.banner,
        "roles": list(member.roles),
        "joined_at": member.joined_at,
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "communication_disabled_until": member.communication_disabled_until,
    }
    if user is not None:
        payload["user"] = user_payload(user)
    return payload


def channel_payload(channel: Channel, world: World) -> Json:
    if channel.type == CHANNEL_DM:
        return {
            "id": channel.id,
            "type": CHANNEL_DM,
            "last_message_id": channel.last_message_id,
            "recipients": [user_payload(world.users[u]) for u in channel.recipient_ids if u in world.users],
        }
    payload: Json = {
        "id": channel.id,
        "type": channel.type,
        "guild_id": channel.guild_id,
        "name": channel.name,
        "position": channel.position,
        "permission_overwrites": [],
        "nsfw": channel.nsfw,
        "parent_id": channel.parent_id,
        "last_message_id": channel.last_message_id,
        "rate_limit_per_user": 0,
    }
    if channel.type == CHANNEL_VOICE:
        payload.update(bitrate=64_000, user_limit=0, rtc_region=None)
    else:
        payload["topic"] = channel.topic
    return payload


def guild_base_payload(guild: Guild) -> Json:
    return {
        "id": guild.id,
        "name": guild.name,
        "icon": None,
        "splash": None,
        "discovery_splash": None,
        "banner": None,
        "description": None,
        "owner_id": guild.owner_id,
        "afk_channel_id": None,
        "afk_timeout": 300,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "roles": list(guild.roles.values()),
        "emojis": [],
        "stickers": [],
        "features": [],
        "mfa_level": 0,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "rules_channel_id": None,
        "vanity_url_code": None,
        "premium_tier": 0,
        "premium_subscription_count": 0,
        "preferred_locale": "en-US",
        "nsfw_level": 0,
        "premium_progress_bar_enabled": False,
    }


def guild_create_payload(guild: Guild, world: World, bot: Bot, *, all_members: bool, large: bool) -> Json:
    """GUILD_CREATE for one bot. Like Discord, full member lists only come with GUILD_PRESENCES in a
    guild below large_threshold; otherwise the bot itself and members in voice (clients chunk the rest).
    """
    if all_members:
        member_ids: Any = guild.members.keys()
    else:
        member_ids = dict.fromkeys([bot.id, *guild.voice_states]).keys()
    members = [member_payload(guild.members[u], world.users[u]) for u in member_ids if u in guild.members]
    payload = guild_base_payload(guild)
    payload.update(
        joined_at=guild.members[bot.id].joined_at if bot.id in guild.members else None,
        large=large,
        unavailable=False,
        member_count=len(guild.members),
        members=members,
        channels=[channel_payload(c, world) for c in guild.channels.values()],
        threads=[],
        voice_states=[{k: v for k, v in s.items() if k != "guild_id"} for s in guild.voice_states.values()],
        presences=[],
        stage_instances=[],
        guild_scheduled_events=[],
        soundboard_sounds=[],
    )
    return payload


def voice_state_payload(
    guild: Guild,
    world: World,
    user_id: str,
    channel_id: str | None,
    session_id: str,
    self_mute: bool,
    self_deaf: bool,
) -> Json:
    member = guild.members.get(user_id)
    payload: Json = {
        "guild_id": guild.id,
        "channel_id": channel_id,
        "user_id": user_id,
        "session_id": session_id,
        "deaf": False,
        "mute": False,
        "self_deaf": self_deaf,
        "self_mute": self_mute,
        "self_video": False,
        "suppress": False,
        "request_to_speak_timestamp": None,
    }
    if member is not None:
        payload["member"] = member_payload(member, world.users.get(user_id))
    return payload


def application_payload(bot: Bot, owner: User | None) -> Json:
    return {
        "id": bot.application_id,
        "name": bot.user.username,
        "icon": None,
        "description": "",
        "summary": "",
        "type": None,
        "bot_public": True,
        "bot_require_code_grant": False,
        "verify_key": "0" * 64,
        "flags": application_flags(bot.privileged_intents, len(bot.guild_ids)),
        "owner": user_payload(owner or bot.user),
        "team": None,
        "bot": user_payload(bot.user),
        "interactions_endpoint_url": None,
        "redirect_uris": [],
        "approximate_guild_count": len(bot.guild_ids),
    }
