"""Long-term memory: what one deployment remembers, how a recall asks for it, and what it returns."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID, uuid5

from pydantic import Field, StringConstraints

from models.agent import MemoryConfig
from models.common import LongText, Snowflake, Strict

# Object ids are uuid5 of the event a memory came from, in this namespace: the same event always maps to
# the same object, so a redelivered event overwrites its memory instead of adding a second one.
# The length of a memory's vector: what the embedding model makes and the memory collection holds.
EMBEDDING_DIMENSIONS = 384
MEMORY_NAMESPACE = UUID("4c1f5e0e-6a43-4a7b-9d0c-2f1d8e7b5a10")

Importance = Annotated[int, Field(ge=1, le=10)]
PersonName = Annotated[str, StringConstraints(max_length=100)]


class MemoryKind(StrEnum):
    observation = "observation"  # something said in a channel the agent can see, its own replies included
    reflection = "reflection"  # a conclusion drawn from other memories, citing them
    user_fact = "user_fact"  # a stated fact about one user (a like, a plan)


def memory_id(source_event_id: str, kind: MemoryKind) -> UUID:
    return uuid5(MEMORY_NAMESPACE, f"{kind.value}:{source_event_id}")


class MemoryRecord(Strict):
    """One stored memory of one deployment (its Weaviate tenant)."""

    deployment_id: UUID
    # None for a direct message: such memories are recalled only in that same DM channel.
    guild_id: Snowflake | None
    channel_id: Snowflake
    author_id: Snowflake
    author_name: PersonName = ""
    # The people taking part in the conversation when it was said, the author included.
    people: list[Snowflake] = Field(default_factory=list, max_length=100)
    text: LongText = Field(min_length=1)
    at: datetime
    kind: MemoryKind
    importance: Importance
    source_event_id: str = Field(min_length=1, max_length=200)
    # The memories a reflection rests on.
    cites: list[UUID] = Field(default_factory=list, max_length=100)

    @property
    def id(self) -> UUID:
        return memory_id(self.source_event_id, self.kind)


class RecallQuery(Strict):
    """What the agent is answering, and where: recall sees only what that channel may see."""

    deployment_id: UUID
    guild_id: Snowflake | None
    channel_id: Snowflake
    text: LongText = Field(min_length=1)
    # Memories involving these people are preferred among candidates of equal similarity.
    people: list[Snowflake] = Field(default_factory=list, max_length=100)
    at: datetime


class MemoryRequest(Strict):
    """On an inference request of an agent with memory: what the worker recalls for, and how."""

    query: RecallQuery
    config: MemoryConfig


class StoredMemory(Strict):
    id: UUID
    record: MemoryRecord


class Candidate(StoredMemory):
    """A memory found by vector search, with its cosine similarity to the query (-1..1)."""

    similarity: float = Field(ge=-1.0, le=1.0)


class RecalledMemory(StoredMemory):
    """A memory chosen for the prompt, with the parts of the score that chose it (each 0..1)."""

    recency: float
    importance: float
    relevance: float
    score: float


class RecalledNote(Strict):
    """A memory recalled for a reply, as its result carries it (for the owner to see what was recalled)."""

    id: UUID
    kind: MemoryKind
    # Whose memory it is: a result seals it under their key (streams/catalog.py: INFERENCE_RESULT_SEALING).
    author_id: Snowflake | None = None
    author_name: PersonName = ""
    text: LongText
    at: datetime
    score: float


class Reflection(Strict):
    """A conclusion drawn from memories, with the ids of those it rests on."""

    text: LongText = Field(min_length=1)
    cites: list[UUID] = Field(min_length=1, max_length=100)
