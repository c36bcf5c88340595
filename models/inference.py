"""Inference requests on the priority lanes and their results on `inference.results`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from models.common import Payload, Snowflake, Strict, utc_now
from models.decisions import Priority
from models.events import SealedData
from models.knowledge import KnowledgeFinding, KnowledgeQuery
from models.memory import MemoryRequest, RecalledNote
from models.tiers import InferenceLane, Tier

# The embedded model server (infra/stack/model_server.py): the model name its completions carry, and the
# context it is started with, which prompts for it are fitted into (processors/prompt.py).
LOCAL_MODEL_NAME = "SmolLM2-135M-Instruct"
LOCAL_MODEL_CONTEXT_TOKENS = 2048


class ModelBootstrapCost(Strict):
    """What making the embedded model runnable cost on this machine, in seconds, kept beside the cached
    wheel: the one-time wheel build (shared by every clone) and the last install into a virtualenv."""

    build_s: float | None = Field(default=None, ge=0)
    install_s: float | None = Field(default=None, ge=0)


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, StringConstraints(max_length=32_000)]
    name: Annotated[str, StringConstraints(max_length=64)] | None = None
    # The member whose words the turn is (a channel message's author); None for the agent's own turns and the
    # platform's. A request seals each turn under its author's key (streams/catalog.py), and the model is
    # never sent it.
    author_id: Snowflake | None = None

    def for_model(self) -> dict[str, str]:
        """The message as an OpenAI-compatible chat API takes it."""
        return self.model_dump(exclude_none=True, exclude={"author_id"})


class ReplyTarget(Strict):
    """Where the answer goes once generated."""

    bot_id: Snowflake
    guild_id: Snowflake | None = None
    channel_id: Snowflake
    message_id: Snowflake | None = None
    author_id: Snowflake | None = None
    # The name the reply greets its author by, when the agent remembers them well enough to.
    greet_as: Annotated[str, StringConstraints(max_length=100)] | None = None


class InferenceRequest(Payload):
    request_id: str = Field(min_length=1, max_length=200)
    event_id: str
    deployment_id: UUID
    agent_id: UUID
    owner_id: UUID
    tier: Tier
    lane: InferenceLane
    priority: Priority
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    # Empty only while `sealed` holds them.
    messages: list[ChatMessage]
    temperature: float = Field(default=0.8, ge=0.0, le=2.0)
    max_tokens: int = Field(default=256, ge=1, le=32_000)
    cacheable: bool = False
    target: ReplyTarget
    created_at: datetime = Field(default_factory=utc_now)
    # Set for an agent with long-term memory: the worker recalls and adds the memories to the prompt.
    memory: MemoryRequest | None = None
    # Set for a factual question to an agent with the knowledge tool: the worker looks it up, adds the facts.
    knowledge: KnowledgeQuery | None = None
    # The prompt, the question and who is answered, under the answered user's data key
    # (streams/catalog.py: INFERENCE_REQUEST_SEALING).
    sealed: SealedData | None = None
    # The prompt's turns of other members, each under its author's data key.
    sealed_references: list[SealedData] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_messages(self) -> InferenceRequest:
        if not self.messages and self.sealed is None:
            raise ValueError("messages: at least one message")
        return self


class InferenceResult(Payload):
    request_id: str
    event_id: str
    deployment_id: UUID
    agent_id: UUID
    owner_id: UUID
    tier: Tier
    lane: InferenceLane
    target: ReplyTarget
    text: str
    model: str
    # The pool endpoint that generated the text ("local": the embedded model server); empty for a fallback.
    endpoint: str = ""
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    latency_ms: float = Field(ge=0)
    cost_usd: float = Field(ge=0)
    cached: bool = False
    # Answered by the offline persona responder instead of a model.
    fallback: bool = False
    error: str | None = None
    # The lookup of the request's factual question: the reply links its article, or says it does not know.
    knowledge: KnowledgeFinding | None = None
    completed_at: datetime = Field(default_factory=utc_now)
    # The long-term memories put into the prompt, best first.
    recalled: list[RecalledNote] = Field(default_factory=list, max_length=50)
    # The text, what it drew on and who is answered, under the answered user's data key
    # (streams/catalog.py: INFERENCE_RESULT_SEALING).
    sealed: SealedData | None = None
    # The recalled memories of other members, each under its author's data key.
    sealed_references: list[SealedData] = Field(default_factory=list)
