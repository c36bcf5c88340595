"""Application commands: each bot's slash commands, registered globally or in each guild it is deployed to.

What a bot wants in a guild is derived from its active deployments there (models/commands.py). When its
deployments in two or more guilds all want the same set, that set is registered once, globally (Discord
offers it in every guild of the bot), and the guild sets are emptied; otherwise each guild gets its own
set and the global one is emptied. A set goes through the bulk-overwrite route only when its digest
differs from the one last registered (kept in Redis, so a restarted or new owner of the bot does not
register again); a guild whose deployments went away, or lost every command, is overwritten with the empty
set. discord.py's client keeps each route's bucket; registration counts against the token's global rate
like any request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import asyncpg
import discord
import redis.asyncio as aioredis
from pydantic import ValidationError

from gateways.actions import RestCall
from gateways.rest import RestClients
from gateways.shard import BotCredentials
from models.agent import AgentConfig
from models.commands import ApplicationCommand, commands_digest, guild_commands

log = logging.getLogger(__name__)

# The deployments whose commands a bot registers: active ones of active agents, through a usable token.
DEPLOYED_CONFIGS_SQL = """
SELECT t.bot_user_id, d.guild_id, c.config::text AS config
FROM agent_deployments d
JOIN agent_configurations c ON c.config_id = d.config_id
JOIN bot_tokens t ON t.token_id = d.token_id
WHERE d.status = 'active' AND c.status = 'active' AND t.status IN ('active', 'degraded')
  AND t.bot_user_id = ANY($1::text[])
ORDER BY d.deployed_at, d.deployment_id
"""
# Bots whose commands are synchronised at once; the rest wait their turn.
SYNC_CONCURRENCY = 8

# bot id -> guild id -> the commands it should have there
WantedCommands = dict[str, dict[str, list[ApplicationCommand]]]
# Where a set is registered: a guild id, or GLOBAL (no snowflake spells it).
GLOBAL = "global"


def placement(wanted: dict[str, list[ApplicationCommand]]) -> dict[str, list[ApplicationCommand]]:
    """Each scope's set (a guild id, or GLOBAL): one global set when the deployments in two or more guilds
    agree on a non-empty set (one request, and a guild the bot joins needs none), else a set per guild.
    A single guild keeps its own set: global commands would also show in the bot's guilds without a
    deployment."""
    sets = list(wanted.values())
    digests = {commands_digest(commands) for commands in sets}
    if len(sets) >= 2 and len(digests) == 1 and sets[0]:
        return {GLOBAL: sets[0], **{guild_id: [] for guild_id in wanted}}
    return {GLOBAL: [], **wanted}


class DeployedConfigs:
    """The agents deployed per bot and guild, each configuration parsed once while its text is unchanged."""

    def __init__(self) -> None:
        self._parsed: dict[str, AgentConfig | None] = {}

    def _agent(self, text: str) -> AgentConfig | None:
        if text not in self._parsed:
            try:
                self._parsed[text] = AgentConfig.model_validate_json(text)
            except ValidationError as exc:  # written before a validation rule existed: no commands from it
                log.warning("an active agent configuration does not validate: %s", exc)
                self._parsed[text] = None
        return self._parsed[text]

    async def wanted(self, pool: asyncpg.Pool, bot_ids: Iterable[str]) -> WantedCommands:
        agents: dict[str, dict[str, list[AgentConfig]]] = {}
        seen: set[str] = set()
        for row in await pool.fetch(DEPLOYED_CONFIGS_SQL, list(bot_ids)):
            seen.add(row["config"])
            agent = self._agent(row["config"])
            if agent is not None:
                agents.setdefault(row["bot_user_id"], {}).setdefault(row["guild_id"], []).append(agent)
        for stale in self._parsed.keys() - seen:
            del self._parsed[stale]
        return {
            bot_id: {guild_id: guild_commands(configs) for guild_id, configs in guilds.items()}
            for bot_id, guilds in agents.items()
        }


class CommandRegistry:
    """Registers each owned bot's commands; remembers per bot and scope the digest of what Discord has."""

    def __init__(self, redis: aioredis.Redis, prefix: str, rest: RestClients) -> None:
        self._redis = redis
        self._prefix = f"{prefix}gw:commands:"
        self._rest = rest
        # bot id -> scope -> digest, loaded from Redis the first time a bot is seen here
        self._registered: dict[str, dict[str, str]] = {}
        # (bot id, scope) -> digest of a set Discord refused: not sent again until the set changes.
        self._refused: dict[tuple[str, str], str] = {}

    def forget(self, bot_id: str) -> None:
        """The bot moved elsewhere: its next owner reads what was registered from Redis."""
        self._registered.pop(bot_id, None)
        self._refused = {key: digest for key, digest in self._refused.items() if key[0] != bot_id}

    async def sync_all(self, bots: list[BotCredentials], wanted: WantedCommands) -> None:
        slots = asyncio.Semaphore(SYNC_CONCURRENCY)

        async def sync(bot: BotCredentials) -> None:
            async with slots:
                await self.sync(bot, wanted.get(bot.bot_id, {}))

        await asyncio.gather(*(sync(bot) for bot in bots))

    async def sync(self, bot: BotCredentials, wanted: dict[str, list[ApplicationCommand]]) -> int:
        """Overwrite the scopes (guilds, global) whose set changed; returns how many were written."""
        registered = await self._load(bot.bot_id)
        targets = placement(wanted)
        empty = commands_digest([])
        changes: dict[str, list[ApplicationCommand]] = {
            scope: commands
            for scope, commands in targets.items()
            if registered.get(scope, empty) != commands_digest(commands)
        }
        # Registered guilds with no deployment left lose their commands.
        changes |= {scope: [] for scope in registered.keys() - targets.keys()}
        written = 0
        # Sets are written before others are emptied, so moving between global and per guild never leaves
        # a guild without its commands.
        for scope, commands in sorted(changes.items(), key=lambda change: not change[1]):
            digest = commands_digest(commands)
            if self._refused.get((bot.bot_id, scope)) == digest:
                continue
            try:
                await self._overwrite(bot, scope, commands)
            except discord.HTTPException as exc:
                if 400 <= exc.status < 500 and exc.status != 429:  # the same set would be refused again
                    self._refused[bot.bot_id, scope] = digest
                log.warning("bot %s: registering commands (%s) failed: %s", bot.bot_id, scope, exc)
                continue
            except discord.RateLimited as exc:  # a wait too long to hold the roster loop: next round
                log.warning("bot %s: registering commands (%s): %s", bot.bot_id, scope, exc)
                continue
            await self._remember(bot.bot_id, scope, digest if commands else None)
            written += 1
        return written

    async def _overwrite(self, bot: BotCredentials, scope: str, commands: list[ApplicationCommand]) -> None:
        application_id = await self._rest.application_id(bot.bot_id, bot.token)
        body = [command.model_dump(mode="json") for command in commands]
        if scope == GLOBAL:
            route = RestCall(
                "PUT", "/applications/{application_id}/commands", {"application_id": application_id}
            )
        else:
            params = {"application_id": application_id, "guild_id": scope}
            route = RestCall("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", params)
        await self._rest.client(bot.bot_id, bot.token).request(route, body)
        log.info("bot %s: registered %d commands (%s)", bot.bot_id, len(commands), scope)

    def _key(self, bot_id: str) -> str:
        return f"{self._prefix}{bot_id}"

    async def _load(self, bot_id: str) -> dict[str, str]:
        registered = self._registered.get(bot_id)
        if registered is None:
            raw = await self._redis.hgetall(self._key(bot_id))
            registered = self._registered[bot_id] = {_text(k): _text(v) for k, v in raw.items()}
        return registered

    async def _remember(self, bot_id: str, scope: str, digest: str | None) -> None:
        registered = self._registered[bot_id]
        if digest is None:
            registered.pop(scope, None)
            await self._redis.hdel(self._key(bot_id), scope)
        else:
            registered[scope] = digest
            await self._redis.hset(self._key(bot_id), scope, digest)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
