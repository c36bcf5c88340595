"""JSON Schema of every model, for `deep schema` and for people integrating with the topics."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from models.actions import Action
from models.agent import AgentConfig
from models.decisions import Decision
from models.deployments import Deployment, RoutingRecord
from models.events import EventEnvelope
from models.inference import InferenceRequest, InferenceResult
from models.operations import DeadLetter, ModerationAudit, OwnerNotification
from models.tiers import TierLimits
from models.tokens import BotTokenState, TokenHealthEvent

SCHEMA_MODELS: dict[str, Any] = {
    "AgentConfig": AgentConfig,
    "Deployment": Deployment,
    "RoutingRecord": RoutingRecord,
    "BotTokenState": BotTokenState,
    "TierLimits": TierLimits,
    "EventEnvelope": EventEnvelope,
    "Action": Action,
    "Decision": Decision,
    "InferenceRequest": InferenceRequest,
    "InferenceResult": InferenceResult,
    "TokenHealthEvent": TokenHealthEvent,
    "ModerationAudit": ModerationAudit,
    "OwnerNotification": OwnerNotification,
    "DeadLetter": DeadLetter,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    return {name: TypeAdapter(model).json_schema() for name, model in SCHEMA_MODELS.items()}
