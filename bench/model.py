"""Benchmark of the embedded model server (`deep stack up` starts it) on this machine.

Every request is Luna answering a chat message, with the prompt the processors build for the small model.

Figures (final JSON line):
- ttft_s: time to the first streamed token of one reply (median of --streams replies, one at a time).
- tokens_per_s: generated tokens per second of decoding, from first to last token of those replies.
- reply_s p50/p99 at 1, 4 and 16 concurrent conversations: each conversation sends its next message as
  soon as its last one was answered, through the inference pool (EndpointPool, the worker's path: the local
  endpoint takes one reply at a time, the rest wait in the pool's queue), so the time includes that wait.
- bootstrap_s: the first-time cost of making the model runnable: the wheel build (once per machine, cached)
  and the install into a virtualenv, as `deep stack up` measured them.
- the machine's load average before and after: other load on a shared machine slows every figure.

Run from the repository root: .venv/bin/python -m bench.model [--replies 24] [--streams 5]
(as a module: run as a script, bench/inference.py would shadow the inference package)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import cast
from uuid import uuid4

import openai
import orjson
from openai.types.chat import ChatCompletionMessageParam

from api.presets import all_presets
from inference.config import LOCAL_ENDPOINT_NAME, inference_config
from inference.pool import EndpointPool
from infra.stack.model_server import read_cost
from models.agent import AgentConfig
from models.decisions import Priority
from models.discord import DiscordMessage
from models.inference import LOCAL_MODEL_NAME, ChatMessage, InferenceRequest, ReplyTarget
from models.state import ChannelContext, MoodState, Relationship
from models.tiers import TIERS, Tier
from processors.prompt import PromptFit, build_prompt, max_tokens_for
from settings import Settings, get_settings

CONCURRENCY = (1, 4, 16)
QUESTIONS = (
    "what are you playing tonight?",
    "any anime you'd recommend?",
    "how is Boba doing?",
    "do you stream this weekend?",
)


LUNA: AgentConfig = all_presets()["luna"].config


def luna_prompt(index: int) -> tuple[list[ChatMessage], int]:
    message = DiscordMessage.model_validate(
        {
            "id": str(1000 + index),
            "channel_id": "200",
            "author": {"id": "500", "username": "bob", "global_name": "Bob"},
            "content": QUESTIONS[index % len(QUESTIONS)],
        }
    )
    context = ChannelContext(channel_id=message.channel_id)
    prompt = build_prompt(
        LUNA, message, context, Relationship(user_id="500"), MoodState(mood="happy"), fit=PromptFit.small
    )
    return prompt, max_tokens_for(LUNA, PromptFit.small)


def request(index: int) -> InferenceRequest:
    messages, max_tokens = luna_prompt(index)
    return InferenceRequest(
        request_id=f"bench-{uuid4().hex}",
        event_id=f"event-{index}",
        deployment_id=uuid4(),
        agent_id=uuid4(),
        owner_id=uuid4(),
        tier=Tier.free,
        lane=TIERS[Tier.free].lane,
        priority=Priority.medium,
        model=LUNA.ai_config.text_model,  # type: ignore[union-attr]
        messages=messages,
        max_tokens=max_tokens,
        target=ReplyTarget(bot_id="900", channel_id="200", message_id=str(index + 1)),
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def streamed(settings: Settings, streams: int) -> tuple[float, float]:
    """(median time to first token, tokens per second while decoding) over `streams` replies."""
    client = openai.AsyncOpenAI(base_url=settings.local_model_url, api_key="none", max_retries=0)
    firsts, rates = [], []
    try:
        for index in range(streams):
            messages, max_tokens = luna_prompt(index)
            params = [cast(ChatCompletionMessageParam, m.model_dump(exclude_none=True)) for m in messages]
            began = time.monotonic()
            first = last = 0.0
            chunks = 0
            stream = await client.chat.completions.create(
                model=LOCAL_MODEL_NAME,
                messages=params,
                max_tokens=max_tokens,
                stream=True,
            )
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    last = time.monotonic()
                    first = first or last
                    chunks += 1
            firsts.append(first - began)
            # The server streams one token per chunk.
            if chunks > 1:
                rates.append((chunks - 1) / (last - first))
    finally:
        await client.close()
    return statistics.median(firsts), statistics.median(rates)


async def conversations(pool: EndpointPool, concurrent: int, replies: int) -> list[float]:
    """Reply times of `concurrent` conversations sharing `replies` replies between them."""
    times: list[float] = []

    async def conversation(first: int) -> None:
        for index in range(first, replies, concurrent):
            began = time.monotonic()
            completion = await pool.complete(request(index), rank=0)
            if completion.endpoint != LOCAL_ENDPOINT_NAME or not completion.text.strip():
                raise RuntimeError(f"reply {index} did not come from the local model: {completion}")
            times.append(time.monotonic() - began)

    await asyncio.gather(*(conversation(first) for first in range(concurrent)))
    return times


async def main(args: argparse.Namespace) -> dict[str, object]:
    settings = get_settings()
    load_before = os.getloadavg()[0]
    ttft, rate = await streamed(settings, args.streams)
    # The pool exactly as the inference worker builds it without a configured endpoint.
    config = inference_config(settings, queue_timeout_s=600.0, request_timeout_s=120.0)
    pool = EndpointPool(list(config.endpoints), config)
    figures: dict[str, object] = {
        "model": LOCAL_MODEL_NAME,
        "ttft_s": round(ttft, 3),
        "tokens_per_s": round(rate, 1),
    }
    try:
        for concurrent in CONCURRENCY:
            times = await conversations(pool, concurrent, max(args.replies, concurrent))
            figures[f"reply_s_at_{concurrent}"] = {
                "p50": round(percentile(times, 0.5), 2),
                "p99": round(percentile(times, 0.99), 2),
                "replies": len(times),
            }
    finally:
        await pool.close()
    cost = read_cost(settings)
    figures["bootstrap_s"] = {"build": cost.build_s, "install": cost.install_s}
    figures["cores"] = len(os.sched_getaffinity(0))
    figures["load_avg_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--replies", type=int, default=24, help="replies per concurrency level")
    parser.add_argument("--streams", type=int, default=5, help="streamed replies for TTFT and tokens/s")
    print(orjson.dumps(asyncio.run(main(parser.parse_args()))).decode())
