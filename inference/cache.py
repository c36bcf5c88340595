"""The response cache: completions of cacheable prompts in Redis, keyed by a normalised prompt hash."""

from __future__ import annotations

import hashlib

import orjson
from redis.asyncio import Redis

from inference.pool import Completion
from models.inference import InferenceRequest


def normalise(text: str) -> str:
    """Whitespace differences do not make a different prompt."""
    return " ".join(text.split())


def prompt_hash(request: InferenceRequest) -> str:
    """Model, completion budget and messages (role, speaker, normalised text); temperature is left out: an
    owner marking prompts cacheable accepts one sampled answer for all."""
    messages = [(m.role, m.name or "", normalise(m.content)) for m in request.messages]
    return hashlib.sha256(orjson.dumps([request.model, request.max_tokens, messages])).hexdigest()


class ResponseCache:
    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = f"{prefix}cache:"
        self.ttl_s = ttl_s

    async def get(self, request: InferenceRequest) -> Completion | None:
        raw = await self.redis.get(self.prefix + prompt_hash(request))
        if raw is None:
            return None
        return Completion(**orjson.loads(raw))

    async def put(self, request: InferenceRequest, completion: Completion) -> None:
        value = orjson.dumps(
            {
                "text": completion.text,
                "model": completion.model,
                "endpoint": completion.endpoint,
                "prompt_tokens": completion.prompt_tokens,
                "completion_tokens": completion.completion_tokens,
            }
        )
        await self.redis.set(self.prefix + prompt_hash(request), value, ex=self.ttl_s)
