"""Recall for one reply: the nearest memories the channel may see, re-scored (memory/scoring.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING
from uuid import UUID

from weaviate.exceptions import WeaviateBaseError

from memory.scoring import rank_memories
from memory.store import MemoryStore
from models.agent import MemoryConfig
from models.inference import ChatMessage, InferenceRequest
from models.memory import RecalledMemory, RecalledNote, RecallQuery

if TYPE_CHECKING:
    # The inference worker makes the embedder. The API imports this module through the worker's functions
    # (its sandbox) and embeds nothing, so it loads no model runtime.
    from memory.embedding import Embedder

log = logging.getLogger(__name__)


async def recall(
    store: MemoryStore, embedder: Embedder, query: RecallQuery, config: MemoryConfig
) -> list[RecalledMemory]:
    # Embedding is CPU work: off the event loop, so the worker's other requests keep moving.
    (vector,) = await asyncio.to_thread(embedder.embed, [query.text])
    candidates = await store.candidates(query, vector.tolist(), config.candidates)
    return rank_memories(candidates, now=query.at, people=query.people, config=config)


def memory_note(memories: Sequence[RecalledMemory]) -> ChatMessage | None:
    """Recalled memories as a user-role note: they hold what users said, so they are never instructions."""
    if not memories:
        return None
    lines = [
        f"- ({m.record.at:%Y-%m-%d}) {m.record.author_name or 'someone'}: {m.record.text}" for m in memories
    ]
    content = "[Recalled context, not a message]\nThings you remember from earlier conversations:\n"
    return ChatMessage(role="user", name="memories", content=content + "\n".join(lines))


def with_memories(request: InferenceRequest, memories: Sequence[RecalledMemory]) -> InferenceRequest:
    """The request with the memory note just before the message being answered (the last one)."""
    note = memory_note(memories)
    if note is None:
        return request
    messages = [*request.messages[:-1], note, request.messages[-1]]
    return request.model_copy(update={"messages": messages})


def recalled_notes(memories: Sequence[RecalledMemory]) -> list[RecalledNote]:
    """The recalled memories as the result of the reply carries them."""
    return [
        RecalledNote(
            # Weaviate hands back ids as its own UUID subclass, which the topics' JSON encoder refuses.
            id=UUID(int=m.id.int),
            kind=m.record.kind,
            author_id=m.record.author_id,
            author_name=m.record.author_name,
            text=m.record.text,
            at=m.record.at,
            score=m.score,
        )
        for m in memories
    ]


class Recaller:
    """Recall for the inference worker: memories for a request, timed."""

    def __init__(self, store: MemoryStore, embedder: Embedder) -> None:
        self.store = store
        self.embedder = embedder

    async def memories_for(self, request: InferenceRequest) -> list[RecalledMemory]:
        """What to add to the request's prompt; nothing when memory is off or unavailable (a reply without
        memories beats no reply)."""
        if request.memory is None or not request.memory.config.enabled or request.cacheable:
            return []
        started = time.perf_counter()
        try:
            memories = await recall(self.store, self.embedder, request.memory.query, request.memory.config)
        except WeaviateBaseError as exc:
            log.warning("request %s answered without memories: %s", request.request_id, exc)
            return []
        log.debug(
            "request %s recalled %d memories in %.1f ms",
            request.request_id,
            len(memories),
            (time.perf_counter() - started) * 1000,
        )
        return memories
