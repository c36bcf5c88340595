"""The demo world: one server, the people in it, what they chat about, and the agents deployed there.

Pure data and pure functions. demo/seed.py turns them into an emulated Discord and configuration API calls.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from emulator.discord import BotSpec, ChannelSpec, GuildSpec, UserSpec, WorldSpec
from emulator.discord.ids import SnowflakeGenerator
from emulator.discord.spec import CHANNEL_VOICE
from models.agent import AgentConfig
from models.tools import COMMANDS_BY_TOOL, Tool

GUILD_NAME = "Deep Demo"
# (name, topic); the first is where the playground opens.
TEXT_CHANNELS = (
    ("general", "Say hi to everyone, agents included"),
    ("anime", "Seasonal anime, manga, hot takes"),
    ("gaming", "JRPGs, tournaments, game nights"),
    ("music", "Queue tracks with /play"),
)
VOICE_CHANNEL = "Lounge"
# An announcement channel (Discord's type 5): Kai's /announce posts there are crossposted to its followers.
ANNOUNCEMENT_CHANNEL = ("announcements", "News from the server's hosts")
# The person at the keyboard of the playground.
YOU = "You"
# Simulated members: (username, display name).
MEMBERS = (
    ("aiko", "Aiko"),
    ("ben", "Ben"),
    ("carmen", "Carmen"),
    ("dev", "Dev"),
    ("elif", "Elif"),
    ("finn", "Finn"),
    ("gus", "Gus"),
    ("hana", "Hana"),
)
# Who hangs out in the voice channel from the start ("you" too: /play in the playground plays there).
IN_VOICE = ("you", "finn", "hana")
# Our own snowflake worker id, so ids made here never collide with the emulator's (worker 1).
SNOWFLAKE_WORKER = 7


@dataclass(frozen=True)
class AgentPlan:
    """One agent of the demo: which preset it starts from and what the demo changes so that several bots
    share one server without all answering the same prefix command."""

    key: str
    preset: str
    name: str
    command_prefix: str
    enabled_tools: tuple[Tool, ...] | None = None
    enabled_commands: tuple[str, ...] | None = None
    # Tools added to the preset's, with every command they provide.
    added_tools: tuple[Tool, ...] = ()
    description: str | None = None
    # The channels the agent keeps to (names); None: every channel its bot sees.
    text_channels: tuple[str, ...] | None = None
    # The voice channels it joins and speaks in (names); None: the preset's.
    voice_channels: tuple[str, ...] | None = None
    # Listens in its voice channel (speech to text; off unless an owner turns it on).
    listen: bool = False


AGENTS = (
    # Every music command, /pause and /volume included (the bare preset offers only the basics).
    AgentPlan("music", "bare", "Music Bot", "!", enabled_commands=COMMANDS_BY_TOOL[Tool.music]),
    AgentPlan("mod", "utility", "Mod Bot", "!"),
    AgentPlan(
        "guardian",
        "enhanced",
        "Guardian",
        "?",
        enabled_tools=(Tool.moderation, Tool.automod),
        enabled_commands=("warnings",),
        description="Auto-moderation: spam, repeated messages, links outside youtube.com and discord.com.",
    ),
    # Luna hangs out in the Lounge, says her replies there too and answers what is said to her there.
    AgentPlan("luna", "luna", "Luna", "~", voice_channels=(VOICE_CHANNEL,), listen=True),
    AgentPlan("nova", "nova", "Nova", "n!"),
    # Kai also keeps the server's coins (/daily, /balance ...).
    AgentPlan("kai", "kai", "Kai", "k!", added_tools=(Tool.economy,)),
    # Sage keeps to #general: a character that cannot see a channel never learns what is said there.
    AgentPlan("sage", "sage", "Sage", "s!", text_channels=("#general",)),
)


def agent_config(plan: AgentPlan, preset: AgentConfig) -> AgentConfig:
    """The preset's configuration with the demo's changes."""
    changes: dict[str, object] = {"name": plan.name, "command_prefix": plan.command_prefix}
    if plan.enabled_tools is not None:
        changes["enabled_tools"] = list(plan.enabled_tools)
    if plan.enabled_commands is not None:
        changes["enabled_commands"] = list(plan.enabled_commands)
    if plan.added_tools:
        tools = list(plan.enabled_tools if plan.enabled_tools is not None else preset.enabled_tools)
        commands = list(
            plan.enabled_commands if plan.enabled_commands is not None else preset.enabled_commands
        )
        changes["enabled_tools"] = tools + [t for t in plan.added_tools if t not in tools]
        added = [c for t in plan.added_tools for c in COMMANDS_BY_TOOL[t] if c not in commands]
        changes["enabled_commands"] = commands + added
    if plan.description is not None:
        changes["description"] = plan.description
    channels = preset.channels.model_dump()
    if plan.text_channels is not None:
        channels["text_channels"] = list(plan.text_channels)
    if plan.voice_channels is not None:
        channels["voice_channels"] = list(plan.voice_channels)
    if channels != preset.channels.model_dump():
        changes["channels"] = channels
    if plan.listen and preset.ai_config is not None:
        changes["ai_config"] = {**preset.ai_config.model_dump(), "listen": True}
    # Validated again: a change that breaks the configuration's own rules fails here, not at the API.
    return AgentConfig.model_validate({**preset.model_dump(), **changes})


@dataclass(frozen=True)
class Person:
    user_id: str
    username: str
    display_name: str


@dataclass(frozen=True)
class Channel:
    channel_id: str
    name: str
    voice: bool = False
    topic: str = ""
    announcement: bool = False


@dataclass(frozen=True)
class WorldIds:
    """The ids the world is built with; bots get theirs (and their tokens) from the emulator."""

    guild_id: str
    channels: tuple[Channel, ...]
    you: Person
    members: tuple[Person, ...]
    bot_ids: dict[str, str]

    @property
    def text_channels(self) -> tuple[Channel, ...]:
        """The channels members chat in (not the voice nor the announcement channel)."""
        return tuple(c for c in self.channels if not (c.voice or c.announcement))

    @property
    def voice_channel(self) -> Channel:
        return next(c for c in self.channels if c.voice)

    def channel_named(self, name: str) -> Channel:
        return next(c for c in self.channels if c.name == name)


def allocate_ids(agents: tuple[AgentPlan, ...] = AGENTS) -> WorldIds:
    ids = SnowflakeGenerator(SNOWFLAKE_WORKER)
    channels = [Channel(ids.next(), name, topic=topic) for name, topic in TEXT_CHANNELS]
    channels.append(Channel(ids.next(), VOICE_CHANNEL, voice=True))
    name, topic = ANNOUNCEMENT_CHANNEL
    channels.append(Channel(ids.next(), name, topic=topic, announcement=True))
    return WorldIds(
        guild_id=ids.next(),
        channels=tuple(channels),
        you=Person(ids.next(), YOU.lower(), YOU),
        members=tuple(Person(ids.next(), username, name) for username, name in MEMBERS),
        bot_ids={plan.key: ids.next() for plan in agents},
    )


def world_spec(ids: WorldIds, agents: tuple[AgentPlan, ...] = AGENTS) -> WorldSpec:
    people = (ids.you, *ids.members)
    return WorldSpec(
        users=[UserSpec(id=p.user_id, username=p.username, global_name=p.display_name) for p in people],
        guilds=[
            GuildSpec(
                id=ids.guild_id,
                name=GUILD_NAME,
                channels=[
                    ChannelSpec(
                        id=c.channel_id,
                        name=c.name,
                        type=CHANNEL_VOICE if c.voice else "announcement" if c.announcement else "text",
                        topic=c.topic or None,
                    )
                    for c in ids.channels
                ],
                members=[p.user_id for p in people],
            )
        ],
        bots=[
            BotSpec(id=ids.bot_ids[plan.key], username=plan.name, guild_ids=[ids.guild_id]) for plan in agents
        ],
    )


# What the simulated members say, by channel. {agent:<key>} becomes a mention of that agent's bot.
CHATTER: dict[str, tuple[str, ...]] = {
    "general": (
        "morning all, coffee is brewing",
        "anyone up for a game night this weekend?",
        "just got back from a run, legs are jelly",
        "what's everyone having for lunch?",
        "{agent:luna} how's your day going?",
        "{agent:nova} what can you help with around here?",
        "the new server emojis are great",
        "brb, cat is knocking things off the desk",
        "{agent:kai} are we doing a tournament soon?",
        "happy friday people",
    ),
    "anime": (
        "Frieren's latest episode was so good",
        "hot take: the manga is better than the anime",
        "who else is watching the new season of Spy x Family?",
        "{agent:luna} favourite anime of all time, go",
        "rewatching Cowboy Bebop, still holds up",
        "the opening song this season is stuck in my head",
    ),
    "gaming": (
        "finally beat the last boss in that JRPG, 60 hours well spent",
        "anyone want to queue ranked later?",
        "{agent:kai} what's the next esports event?",
        "the speedrun community is wild",
        "thinking of picking up Final Fantasy again",
        "lag was terrible last night",
    ),
    "music": (
        "lofi beats for studying, anyone?",
        "!queue",
        "this vinyl I found at the flea market is amazing",
        "who made the playlist yesterday? it slapped",
        "indie concert next week, who's in",
    ),
}


@dataclass(frozen=True)
class ChatLine:
    author: Person
    channel: Channel
    content: str


_AGENT_FIELD = re.compile(r"\{agent:(\w+)\}")


def chat_line(ids: WorldIds, n: int, seed: int = 0) -> ChatLine:
    """The n-th simulated message: a member, a channel and a line, the same for the same (n, seed). Lines
    that mention an agent the world does not have are left out."""
    rng = random.Random(f"{seed}:{n}")
    channel = rng.choice(ids.text_channels)
    usable = [t for t in CHATTER[channel.name] if set(_AGENT_FIELD.findall(t)) <= set(ids.bot_ids)]
    content = _AGENT_FIELD.sub(lambda m: f"<@{ids.bot_ids[m.group(1)]}>", rng.choice(usable))
    return ChatLine(rng.choice(ids.members), channel, content)
