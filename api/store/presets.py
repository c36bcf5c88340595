"""Deploying a preset: it becomes the owner's own agent and is deployed, in one transaction."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from api.db import in_transaction
from api.schemas import DeploymentCreate, Preset, PresetDeploy, PresetDeployed
from api.store.agents import insert_agent, lock_agent
from api.store.deployments import insert_deployment
from api.store.shared import Staging


class PresetDeployments(Staging):
    async def deploy(self, owner_id: UUID, preset: Preset, body: PresetDeploy) -> PresetDeployed:
        config = preset.config
        if body.name is not None:
            config = config.model_copy(update={"name": body.name})

        async def work(conn: asyncpg.Connection) -> PresetDeployed:
            created = await insert_agent(conn, owner_id, config, None)
            agent, tier = await lock_agent(conn, created.agent_id, owner_id)
            deployment = await insert_deployment(
                conn,
                agent,
                tier,
                DeploymentCreate(
                    guild_id=body.guild_id,
                    token_id=body.token_id,
                    text_channels=body.text_channels,
                    voice_channels=body.voice_channels,
                    dm_enabled=body.dm_enabled,
                ),
                self.namespace,
            )
            return PresetDeployed(agent=created, deployment=deployment)

        return await in_transaction(self.pool, work)
