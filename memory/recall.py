"""Recall for one reply: the nearest memories the channel may see, re-scored (memory/scoring.py)."""

from __future__ import annotations

import asyncio

from memory.embedding import Embedder
from memory.scoring import rank_memories
from memory.store import MemoryStore
from models.agent import MemoryConfig
from models.memory import RecalledMemory, RecallQuery


async def recall(
    store: MemoryStore, embedder: Embedder, query: RecallQuery, config: MemoryConfig
) -> list[RecalledMemory]:
    # Embedding is CPU work: off the event loop, so the worker's other requests keep moving.
    (vector,) = await asyncio.to_thread(embedder.embed, [query.text])
    candidates = await store.candidates(query, vector.tolist(), config.candidates)
    return rank_memories(candidates, now=query.at, people=query.people, config=config)
