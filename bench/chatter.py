"""The chatter world the processors benchmarks share: guilds with one agent each and members who chat in one
channel, and their MESSAGE_CREATE events. Every id is derived from the guild's index, so a world makes the
same decisions in every run (the engine's dice are seeded by event and deployment ids)."""

from __future__ import annotations

import uuid

from models.agent import AgentMode
from models.deployments import DeployedAgent, Deployment, RoutingRecord
from models.events import EventEnvelope
from models.templates import mode_template
from models.tiers import Tier

MIX = (AgentMode.bare, AgentMode.enhanced, AgentMode.human_like)
CHATTER = "anyone up for a game night this weekend? message {n}"
MEMBERS_PER_GUILD = 50
_IDS = uuid.UUID("5d1c0c3e-8f0b-4a51-9d7e-3f9b0c2a7e11")

# One guild of a world: its routing, its agent's bot, the channel it chats in, and its members.
Guild = tuple[RoutingRecord, str, str, list[str]]


def new_deployment(guild_id: str, bot_id: str, text_channels: list[str] | None = None) -> Deployment:
    deployment_id, agent_id, owner_id, token_id = (
        uuid.uuid5(_IDS, f"{guild_id}:{part}") for part in ("deployment", "agent", "owner", "token")
    )
    return Deployment(
        deployment_id=deployment_id,
        agent_id=agent_id,
        owner_id=owner_id,
        guild_id=guild_id,
        bot_id=bot_id,
        token_id=token_id,
        text_channels=text_channels or [],
    )


def stage_world(guilds: int, modes: tuple[AgentMode, ...]) -> list[Guild]:
    """`guilds` guilds, one agent each of `modes` in turn, and who chats there."""
    world = []
    for index in range(guilds):
        guild_id, bot_id, channel_id = (str(10**18 + index * 1000 + n) for n in range(3))
        deployment = new_deployment(guild_id, bot_id)
        agent = DeployedAgent(
            deployment=deployment, agent=mode_template(modes[index % len(modes)]), owner_tier=Tier.pro
        )
        users = [str(10**18 + index * 1000 + 100 + n) for n in range(MEMBERS_PER_GUILD)]
        world.append((RoutingRecord(key=guild_id, deployments=[agent], version=1), bot_id, channel_id, users))
    return world


def chatter_envelope(n: int, guild_id: str, bot_id: str, channel_id: str, author_id: str) -> EventEnvelope:
    data = {
        "id": str(2 * 10**18 + n),
        "type": 0,
        "guild_id": guild_id,
        "channel_id": channel_id,
        "author": {"id": author_id, "username": f"user{author_id[-3:]}", "discriminator": "0", "bot": False},
        "member": {"roles": [], "nick": None, "joined_at": "2025-01-01T00:00:00+00:00"},
        "content": CHATTER.format(n=n),
        "timestamp": "2026-03-02T15:00:00+00:00",
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
    }
    return EventEnvelope(
        event_id=f"stage-{n}",
        bot_id=bot_id,
        guild_id=guild_id,
        channel_id=channel_id,
        type="MESSAGE_CREATE",
        sequence=n,
        data=data,
    )


def chatter(world: list[Guild], n: int) -> EventEnvelope:
    """The world's n-th chatter event: the guilds in turn, and each guild's members in turn."""
    record, bot_id, channel_id, users = world[n % len(world)]
    return chatter_envelope(n, record.key, bot_id, channel_id, users[(n // len(world)) % len(users)])


def slash_envelope(
    n: int, guild: Guild, author_id: str, name: str, options: dict[str, str] | None = None
) -> EventEnvelope:
    """The n-th slash command of the guild's member `author_id` to its agent's bot (string options)."""
    record, bot_id, channel_id, _ = guild
    data = {
        "id": str(3 * 10**18 + n),
        "application_id": bot_id,
        "type": 2,
        "token": f"bench-interaction-{n}",
        "version": 1,
        "guild_id": record.key,
        "channel_id": channel_id,
        "member": {
            "user": {
                "id": author_id,
                "username": f"user{author_id[-3:]}",
                "discriminator": "0",
                "bot": False,
            },
            "roles": [],
            "permissions": "0",
            "nick": None,
            "joined_at": "2025-01-01T00:00:00+00:00",
        },
        "data": {
            "id": str(4 * 10**18),
            "name": name,
            "type": 1,
            "options": [{"name": key, "type": 3, "value": value} for key, value in (options or {}).items()],
        },
    }
    return EventEnvelope(
        event_id=f"slash-{n}",
        bot_id=bot_id,
        guild_id=record.key,
        channel_id=channel_id,
        type="INTERACTION_CREATE",
        sequence=n,
        data=data,
    )
