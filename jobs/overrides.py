"""What-if configuration for a replay: dotted overrides of agent configurations, and whole configurations
for single deployments, applied to the routing records as they are read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from models.agent import AgentConfig
from models.common import error_paths
from models.deployments import DeployedAgent, RoutingRecord

# `trigger.random.probability` is short for the full path of a response trigger.
SHORTHANDS = {"trigger": ("behavior", "response_triggers"), "triggers": ("behavior", "response_triggers")}


@dataclass(frozen=True)
class Override:
    """A value set at a dotted path of the agent configuration's JSON, for one deployment or all (None)."""

    path: tuple[str, ...]
    value: Any
    deployment_id: UUID | None = None

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


def parse_override(text: str) -> Override:
    """`[DEPLOYMENT_ID:]path=value`; the value is read as JSON, or taken as a string when it is not JSON."""
    target, equals, raw = text.partition("=")
    target = target.strip()
    if not equals or not target:
        raise ValueError(f"override {text!r}: expected [deployment_id:]path=value")
    deployment_id = None
    if ":" in target:
        prefix, target = target.split(":", 1)
        try:
            deployment_id = UUID(prefix.strip())
        except ValueError:
            raise ValueError(f"override {text!r}: {prefix!r} is not a deployment id") from None
    path = tuple(part for part in target.strip().split(".") if part)
    if not path:
        raise ValueError(f"override {text!r}: empty path")
    path = (*SHORTHANDS.get(path[0], (path[0],)), *path[1:])
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return Override(path, value, deployment_id)


def _set(document: dict[str, Any], override: Override, deployment_id: UUID) -> None:
    node: Any = document
    for depth, part in enumerate(override.path[:-1]):
        node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            where = ".".join(override.path[: depth + 1])
            raise ValueError(
                f"override {override.dotted}: {where} is not an object in deployment {deployment_id}"
            )
    node[override.path[-1]] = override.value


@dataclass(frozen=True)
class ConfigChanges:
    overrides: tuple[Override, ...] = ()
    # Whole agent configurations replacing a deployment's, by deployment id (applied before overrides).
    agents: Mapping[UUID, AgentConfig] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.overrides or self.agents)

    def agent_for(self, deployed: DeployedAgent) -> AgentConfig:
        deployment_id = deployed.deployment.deployment_id
        agent = self.agents.get(deployment_id, deployed.agent)
        overrides = [o for o in self.overrides if o.deployment_id in (None, deployment_id)]
        if not overrides:
            return agent
        document = agent.model_dump(mode="json")
        for override in overrides:
            _set(document, override, deployment_id)
        try:
            return AgentConfig.model_validate(document)
        except ValidationError as exc:
            fields = ", ".join(error_paths(exc))
            raise ValueError(
                f"overrides make deployment {deployment_id}'s configuration invalid at {fields}: "
                f"{exc.errors()[0]['msg']}"
            ) from None

    def apply(self, record: RoutingRecord) -> RoutingRecord:
        if not self:
            return record
        deployments = [d.model_copy(update={"agent": self.agent_for(d)}) for d in record.deployments]
        return record.model_copy(update={"deployments": deployments})
