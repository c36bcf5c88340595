"""A chat model for memory's own thinking: rating the importance of new memories and reflecting.

The prompts and the parsing of answers are pure (memory/scoring.py); this is the thin client around them.
It talks to the platform's model endpoint with the openai SDK: OpenAI (or any OpenAI-compatible server)
when OPENAI_BASE_URL or OPENAI_API_KEY is set, else the embedded model server. A failed call or an
unusable answer is never an error: the memory keeps its heuristic importance, the scope its extractive
reflection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import cast
from uuid import UUID

import openai
from openai.types.chat import ChatCompletionMessageParam

from memory.scoring import (
    RATED_PER_PROMPT,
    REFLECTED_MEMORIES,
    needs_rating,
    parse_ratings,
    parse_reflections,
    rating_messages,
    reflection_messages,
)
from models.inference import LOCAL_MODEL_NAME, ChatMessage
from models.memory import MemoryRecord, Reflection, StoredMemory
from settings import Settings

log = logging.getLogger(__name__)

# Memory's calls are background work: a slow model delays a batch of memories by this much at most.
MODEL_TIMEOUT_S = 30.0
RATING_TOKENS_PER_MEMORY = 8
REFLECTION_TOKENS = 400


class MemoryModel:
    def __init__(self, client: openai.AsyncOpenAI, served_model: str = "") -> None:
        self.client = client
        # The one model a server serves (the embedded one), named in place of the model asked for.
        self.served_model = served_model

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryModel | None:
        """The platform's model endpoint, or None when there is none to reach."""
        if settings.openai_base_url or settings.openai_api_key:
            client = openai.AsyncOpenAI(
                base_url=settings.openai_base_url or None,
                api_key=settings.openai_api_key or "none",
                max_retries=0,
                timeout=MODEL_TIMEOUT_S,
            )
            return cls(client)
        if settings.local_model_serves:
            client = openai.AsyncOpenAI(
                base_url=settings.local_model_url, api_key="none", max_retries=0, timeout=MODEL_TIMEOUT_S
            )
            return cls(client, served_model=LOCAL_MODEL_NAME)
        return None

    async def close(self) -> None:
        await self.client.close()

    async def answer(self, model: str, messages: Sequence[ChatMessage], max_tokens: int) -> str | None:
        """The model's answer, or None when the call failed."""
        try:
            completion = await self.client.chat.completions.create(
                model=self.served_model or model,
                # ChatMessage.for_model is exactly the SDK's message shape (role, content, optional name).
                messages=cast(list[ChatCompletionMessageParam], [m.for_model() for m in messages]),
                temperature=0.2,
                max_tokens=max_tokens,
                # Never kept by the provider (inference/pool.py says why).
                store=False,
            )
        except openai.OpenAIError as exc:
            log.warning("memory's call to model %s failed: %s", model, exc)
            return None
        if not completion.choices:
            return None
        return completion.choices[0].message.content

    async def rated(
        self, records: Sequence[MemoryRecord], model_of: Mapping[UUID, str]
    ) -> list[MemoryRecord]:
        """The records with the importance the model gives them: one prompt per deployment that has a
        model, asking only about records the heuristic does not rate clearly (at most RATED_PER_PROMPT)."""
        asked: dict[UUID, list[int]] = {}
        for index, record in enumerate(records):
            if record.deployment_id in model_of and needs_rating(record.importance):
                asked.setdefault(record.deployment_id, []).append(index)
        batches = [(model_of[d], indices[:RATED_PER_PROMPT]) for d, indices in asked.items()]
        answers = await asyncio.gather(
            *(
                self.answer(
                    model,
                    rating_messages([records[i].text for i in indices]),
                    RATING_TOKENS_PER_MEMORY * len(indices) + 16,
                )
                for model, indices in batches
            )
        )
        rated = list(records)
        for (_, indices), answer in zip(batches, answers, strict=True):
            for position, importance in parse_ratings(answer or "", len(indices)).items():
                index = indices[position]
                rated[index] = rated[index].model_copy(update={"importance": importance})
        return rated

    async def reflections(self, memories: Sequence[StoredMemory], model: str) -> list[Reflection]:
        """The model's reflections on the latest memories, each citing some of them; empty when the call
        failed or the answer held no usable reflection."""
        shown = memories[-REFLECTED_MEMORIES:]
        answer = await self.answer(model, reflection_messages(shown), REFLECTION_TOKENS)
        return parse_reflections(answer or "", shown)
