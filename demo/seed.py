"""Seeding: the demo world into the emulated Discord, then an owner, bot tokens, agents and deployments
through the configuration API, the way a person would set them up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from pydantic import SecretStr

from api.db import create_pool
from api.schemas import OwnerCreate, Role
from api.store import create_owner
from demo.world import AGENTS, GUILD_NAME, IN_VOICE, AgentPlan, WorldIds, agent_config, world_spec
from emulator.discord import EmulatorControl
from models.agent import AgentConfig
from models.tiers import Tier

OPERATOR_NAME = "demo operator"


class SeedError(Exception):
    """A seeding step failed; the message says which and why (never with a token or an API key)."""


@dataclass(frozen=True)
class DemoAgent:
    plan: AgentPlan
    bot_id: str
    agent_id: UUID
    deployment_id: UUID
    config: AgentConfig


@dataclass(frozen=True)
class DemoWorld:
    ids: WorldIds
    agents: tuple[DemoAgent, ...]
    owner_id: UUID
    # The demo owner's API key: the playground edits agents with it.
    owner_key: SecretStr = field(repr=False)


async def reset_schema(dsn: str, schema: str) -> None:
    """An empty PostgreSQL schema of the demo's own: every run starts from a fresh control plane, and the
    demo's gateway runner never sees a real deployment's bots (it would take their tokens to the emulator)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    finally:
        await conn.close()


async def create_operator(schema_dsn: str) -> SecretStr:
    """The operator bootstrap of `deep api create-admin`, in process: the key stays in memory."""
    pool = await create_pool(schema_dsn, max_size=1)
    try:
        created = await create_owner(
            pool, OwnerCreate(name=OPERATOR_NAME, tier=Tier.enterprise, role=Role.admin)
        )
    finally:
        await pool.close()
    return SecretStr(created.key.api_key)


async def seed_emulator(control: EmulatorControl, ids: WorldIds) -> dict[str, SecretStr]:
    """Load the world; returns each agent's bot token by agent key. IN_VOICE members join voice."""
    created = await control.load_world(world_spec(ids).model_dump(mode="json", exclude_none=True))
    tokens = {bot["id"]: SecretStr(bot["token"]) for bot in created["bots"]}
    voice = ids.voice_channel.channel_id
    for person in (ids.you, *ids.members):
        if person.username in IN_VOICE:
            await control.user_voice(ids.guild_id, person.user_id, voice)
    return {key: tokens[bot_id] for key, bot_id in ids.bot_ids.items()}


class ApiClient:
    """The configuration API over HTTP with one API key; an error names the call and the API's detail."""

    def __init__(self, http: httpx.AsyncClient, api_key: SecretStr) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        response = await self._http.request(method, path, json=body, headers=self._headers)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise SeedError(f"{method} {path}: {response.status_code} {detail}")
        return response.json() if response.content else None


async def deploy_agent(
    api: ApiClient, plan: AgentPlan, bot_id: str, token: SecretStr, guild_id: str
) -> DemoAgent:
    # The token travels in this request body only; the vault validates it against the emulator.
    state = await api.call("POST", "/tokens", {"token": token.get_secret_value()})
    if state["bot_user_id"] != bot_id:
        raise SeedError(f"token of {plan.name}: the emulator says it belongs to bot {state['bot_user_id']}")
    preset = await api.call("GET", f"/presets/{plan.preset}")
    config = agent_config(plan, AgentConfig.model_validate(preset["config"]))
    agent = await api.call("POST", "/agents", config.model_dump(mode="json"))
    deployment = await api.call(
        "POST",
        f"/agents/{agent['agent_id']}/deployments",
        {"guild_id": guild_id, "token_id": state["token_id"]},
    )
    return DemoAgent(
        plan,
        bot_id,
        UUID(agent["agent_id"]),
        UUID(deployment["deployment_id"]),
        AgentConfig.model_validate(agent["config"]),
    )


async def seed_platform(
    http: httpx.AsyncClient,
    operator_key: SecretStr,
    ids: WorldIds,
    tokens: dict[str, SecretStr],
    agents: tuple[AgentPlan, ...] = AGENTS,
) -> DemoWorld:
    """A business-tier owner with one bot token per agent, each agent created from its preset and deployed."""
    operator = ApiClient(http, operator_key)
    created = await operator.call("POST", "/owners", {"name": GUILD_NAME, "tier": Tier.business.value})
    owner_key = SecretStr(created["key"]["api_key"])
    owner = ApiClient(http, owner_key)
    deployed = await asyncio.gather(
        *(deploy_agent(owner, plan, ids.bot_ids[plan.key], tokens[plan.key], ids.guild_id) for plan in agents)
    )
    return DemoWorld(ids, tuple(deployed), UUID(created["owner"]["owner_id"]), owner_key)
