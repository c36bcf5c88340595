"""Routing of events to deployments, and the guild directory that resolves channel names."""

from __future__ import annotations

from models.agent import AgentMode
from models.deployments import DeploymentStatus
from processors.directory import apply_directory_event
from processors.event_routing import context_window, newer, routes_for
from tests.processors.factories import agent_with, deployed, envelope, guild_create, luna, routing, snowflake

GUILD, BOT, OTHER_BOT = snowflake(), snowflake(), snowflake()
GENERAL, ANIME, OFFTOPIC, OWNER = snowflake(), snowflake(), snowflake(), snowflake()
CHANNELS = {GENERAL: "general", ANIME: "anime", OFFTOPIC: "off-topic"}


def directory():
    return apply_directory_event(
        None, GUILD, "GUILD_CREATE", guild_create(GUILD, owner_id=OWNER, channels=CHANNELS)
    )


def message_envelope(channel: str, bot: str = BOT, guild: str | None = GUILD):
    return envelope("MESSAGE_CREATE", {}, bot_id=bot, guild_id=guild, channel_id=channel)


def test_directory_follows_guild_and_channel_events() -> None:
    d = directory()
    assert (
        d is not None
        and d.owner_id == OWNER
        and d.channel_names[ANIME] == "anime"
        and d.name == "Anime Hangout"
    )
    renamed = apply_directory_event(
        d, GUILD, "CHANNEL_UPDATE", {"id": ANIME, "name": "anime-talk", "type": 0}
    )
    assert renamed is not None and renamed.channel_names[ANIME] == "anime-talk"
    assert (
        apply_directory_event(renamed, GUILD, "CHANNEL_UPDATE", {"id": ANIME, "name": "anime-talk"}) is None
    )
    deleted = apply_directory_event(renamed, GUILD, "CHANNEL_DELETE", {"id": ANIME, "name": "anime-talk"})
    assert deleted is not None and ANIME not in deleted.channel_names
    role = snowflake()
    with_role = apply_directory_event(
        deleted, GUILD, "GUILD_ROLE_CREATE", {"guild_id": GUILD, "role": {"id": role, "permissions": "4"}}
    )
    assert with_role is not None and with_role.role_permissions[role] == 4
    user = snowflake()
    joined = apply_directory_event(
        with_role, GUILD, "VOICE_STATE_UPDATE", {"user_id": user, "channel_id": GENERAL}
    )
    assert joined is not None and joined.voice_channel_of == {user: GENERAL}
    left = apply_directory_event(joined, GUILD, "VOICE_STATE_UPDATE", {"user_id": user, "channel_id": None})
    assert left is not None and left.voice_channel_of == {}
    assert apply_directory_event(None, GUILD, "GUILD_CREATE", {"id": GUILD, "unavailable": True}) is None


def test_directory_learns_who_is_in_voice_from_guild_create() -> None:
    listener, lounge = snowflake(), snowflake()
    states = [{"user_id": listener, "channel_id": lounge}, {"user_id": snowflake(), "channel_id": None}]
    created = apply_directory_event(None, GUILD, "GUILD_CREATE", {"id": GUILD, "voice_states": states})
    assert created is not None and created.voice_channel_of == {listener: lounge}


def test_directory_knows_role_positions_and_the_bots_roles() -> None:
    everyone, mods, bots = GUILD, snowflake(), snowflake()
    created = {
        "id": GUILD,
        "roles": [
            {"id": everyone, "permissions": "0", "position": 0},
            {"id": bots, "permissions": "8", "position": 1},
            {"id": mods, "permissions": "4", "position": 2},
        ],
        "members": [
            {"user": {"id": BOT, "bot": True}, "roles": [bots]},
            {"user": {"id": OWNER}, "roles": [mods]},
        ],
    }
    d = apply_directory_event(None, GUILD, "GUILD_CREATE", created)
    assert d is not None and d.role_positions == {everyone: 0, bots: 1, mods: 2}
    assert d.bot_roles == {BOT: [bots]}  # members' roles come with the events that name them
    moved = apply_directory_event(
        d, GUILD, "GUILD_ROLE_UPDATE", {"guild_id": GUILD, "role": {"id": bots, "position": 3}}
    )
    assert moved is not None and moved.role_positions[bots] == 3
    promoted = apply_directory_event(
        moved, GUILD, "GUILD_MEMBER_UPDATE", {"user": {"id": BOT, "bot": True}, "roles": [bots, mods]}
    )
    assert promoted is not None and promoted.bot_roles == {BOT: [bots, mods]}
    human = {"user": {"id": OWNER}, "roles": []}
    assert apply_directory_event(promoted, GUILD, "GUILD_MEMBER_UPDATE", human) is None
    removed = apply_directory_event(promoted, GUILD, "GUILD_ROLE_DELETE", {"role_id": mods})
    assert removed is not None and mods not in removed.role_positions


def test_channels_by_name_need_the_directory() -> None:
    luna_here = deployed(luna(), guild_id=GUILD, bot_id=BOT)  # #general, #anime, #gaming
    record = routing(GUILD, luna_here)
    d = directory()
    assert [r.in_channel for r in routes_for(record, message_envelope(ANIME), d)] == [True]
    assert [r.in_channel for r in routes_for(record, message_envelope(OFFTOPIC), d)] == [False]
    # Unknown names are not guessed.
    assert [r.in_channel for r in routes_for(record, message_envelope(ANIME), None)] == [False]


def test_deployment_channel_ids_narrow_the_agent() -> None:
    music = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=BOT, text_channels=[GENERAL])
    record = routing(GUILD, music)
    assert [r.in_channel for r in routes_for(record, message_envelope(GENERAL), None)] == [True]
    assert [r.in_channel for r in routes_for(record, message_envelope(ANIME), None)] == [False]


def test_only_the_receiving_bot_active_deployments() -> None:
    mine = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=BOT)
    theirs = deployed(agent_with(AgentMode.utility), guild_id=GUILD, bot_id=OTHER_BOT)
    paused = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=BOT, status=DeploymentStatus.paused)
    record = routing(GUILD, mine, theirs, paused)
    assert [r.deployed for r in routes_for(record, message_envelope(GENERAL), None)] == [mine]
    assert routes_for(None, message_envelope(GENERAL), None) == []


def test_direct_messages_follow_the_dm_policy() -> None:
    key = f"dm:{BOT}"
    dm_luna = deployed(luna(), guild_id=GUILD, bot_id=BOT)  # luna: channels.dm_enabled
    closed = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=BOT)
    opened = deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=BOT, dm_enabled=True)
    record = routing(key, dm_luna, closed, opened)
    dm = message_envelope(snowflake(), guild=None)
    assert dm.key == key
    assert [r.deployed for r in routes_for(record, dm, None)] == [dm_luna, opened]


def test_context_window_and_versions() -> None:
    big = agent_with(AgentMode.human_like, ai_config={"text_model": "gpt-4o", "context_window": 80})
    record = routing(GUILD, deployed(big, guild_id=GUILD, bot_id=BOT), version=3)
    assert context_window(record) == 80
    assert (
        context_window(routing(GUILD, deployed(agent_with(AgentMode.bare), guild_id=GUILD, bot_id=BOT))) == 50
    )
    assert newer(None, record) and newer(routing(GUILD, version=2), record)
    assert not newer(record, routing(GUILD, version=3)) and not newer(record, routing(GUILD, version=1))
