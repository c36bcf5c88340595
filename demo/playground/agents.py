"""The agents a playground shows, with their configurations: the demo's through the configuration API
(editable with the demo owner's key), a real deployment's from the `agent.deployments` topic (read-only)."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

import httpx
from pydantic import SecretStr

from demo.playground.views import AgentView
from models.agent import AgentConfig
from models.deployments import DeployedAgent
from models.operations import OwnerNotification
from streams.catalog import AGENT_DEPLOYMENTS
from streams.codec import CodecError
from streams.history import read_compacted

NOTIFICATIONS_SHOWN = 20


class AgentError(Exception):
    """A change was refused; `status` and `body` are the configuration API's (`detail`, `errors`)."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        super().__init__(f"{status}: {body.get('detail')}")
        self.status = status
        self.body = body


class AgentSource(Protocol):
    def agents(self) -> list[AgentView]: ...

    async def update(self, deployment_id: UUID, config: AgentConfig) -> AgentView: ...

    async def notifications(self) -> list[OwnerNotification]: ...


class ApiAgents:
    """The demo's agents, read and edited through the configuration API. Configurations are cached: the
    API's per-key rate limit is for people, not for a page that polls."""

    def __init__(
        self, http: httpx.AsyncClient, owner_id: UUID, api_key: SecretStr, views: list[AgentView]
    ) -> None:
        self._http = http
        self._owner_id = owner_id
        self._headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"}
        self._views = {view.deployment_id: view for view in views}

    def agents(self) -> list[AgentView]:
        return list(self._views.values())

    async def update(self, deployment_id: UUID, config: AgentConfig) -> AgentView:
        view = self._views.get(deployment_id)
        if view is None:
            raise AgentError(404, {"detail": f"no agent deployed as {deployment_id} here"})
        response = await self._http.put(
            f"/agents/{view.agent_id}", json=config.model_dump(mode="json"), headers=self._headers
        )
        body = response.json()
        if response.status_code >= 400:
            raise AgentError(response.status_code, body)
        updated = view.model_copy(update={"config": AgentConfig.model_validate(body["config"])})
        self._views[deployment_id] = updated
        return updated

    async def notifications(self) -> list[OwnerNotification]:
        """The demo owner's notifications (reported messages among them), newest first."""
        response = await self._http.get(
            f"/owners/{self._owner_id}/notifications",
            params={"limit": NOTIFICATIONS_SHOWN},
            headers=self._headers,
        )
        body = response.json()
        if response.status_code >= 400:
            raise AgentError(response.status_code, body)
        return [OwnerNotification.model_validate(item) for item in body]


class ReadOnlyAgents:
    """Deployments followed from outside: their configuration as the processors see it."""

    def __init__(self, views: list[AgentView]) -> None:
        self._views = views

    def agents(self) -> list[AgentView]:
        return list(self._views)

    async def update(self, deployment_id: UUID, config: AgentConfig) -> AgentView:
        raise AgentError(403, {"detail": "a followed deployment is read-only here; edit it through the API"})

    async def notifications(self) -> list[OwnerNotification]:
        return []  # a followed deployment's owner key is not the playground's to hold


def view_of(deployed: DeployedAgent, *, editable: bool) -> AgentView:
    deployment = deployed.deployment
    return AgentView(
        deployment_id=deployment.deployment_id,
        agent_id=deployment.agent_id,
        bot_id=deployment.bot_id,
        guild_id=deployment.guild_id,
        name=deployed.agent.name,
        config=deployed.agent,
        editable=editable,
    )


async def find_deployment(bootstrap: str, namespace: str, deployment_id: UUID) -> DeployedAgent:
    """The deployment's current routing entry on the compacted `agent.deployments` topic."""
    topic = AGENT_DEPLOYMENTS.name_in(namespace)
    latest = await read_compacted(bootstrap, topic, set(range(AGENT_DEPLOYMENTS.partitions)))
    for raw in latest.values():
        if raw is None:
            continue
        try:
            record = AGENT_DEPLOYMENTS.codec.decode(raw)
        except CodecError:
            continue  # the processors dead-letter it; it holds no deployment anyone can follow
        for deployed in record.deployments:
            if deployed.deployment.deployment_id == deployment_id:
                return deployed
    raise LookupError(f"deployment {deployment_id} is not on {topic} (undeployed, or another namespace?)")
