"""Long-term memory: write throughput, recall latency at scale, and recall@5 of planted facts.

    .venv/bin/python -m bench.memory    # a module: run as a script, bench/memory.py would shadow memory/

It needs `deep stack up` (Weaviate and the embedding model).

1. Writing: chatter and facts of one deployment embedded (int8 all-MiniLM-L6-v2 on onnxruntime) and
   batch-written to Weaviate the writer's way (embed_and_write per fetch of 500); memories per second,
   embedding included, by the clock and per CPU second of this process (Weaviate's own CPU not counted).
2. Recall latency at TOTAL memories across TENANTS tenants (a collection of its own, deleted afterwards).
   Embedding 100,000 texts on a small busy CPU would take several minutes, so the filler memories reuse the
   vectors of the embedded chatter (the index and the filters see the same shapes); each timed recall is the
   full path: embed the question, near-vector search with the channel filter, re-score, choose.
3. recall@5: facts told by users among chatter, asked about later (after more than a context window of
   other messages). A hit: the fact is among the 5 memories recalled for its question, with the default
   weights. The baseline is the context window alone: the fact is a hit only if it is among the last
   `context_window` (50) messages when the question comes.

The last line printed is the result as JSON, with the 1-minute load average at the start and the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import numpy as np

from memory.embedding import BATCH_THREADS, Embedder
from memory.recall import recall
from memory.scoring import heuristic_importance
from memory.store import MemoryStore, connect
from memory.writer import embed_and_write
from models.agent import MemoryConfig
from models.memory import MemoryKind, MemoryRecord, RecallQuery
from settings import get_settings

TOTAL = 100_000
TENANTS = 1_000
CHATTER = 1_000
RECALLS = 300
# The consumer skeleton's most records per fetch (streams/consumer.py Fetch.max_records).
FETCH = 500
CONTEXT_WINDOW = 50
GUILD, CHANNEL = "1000", "2000"
NOW = datetime.now(UTC)

# (fact, question) templates; each user fills them with their own details.
FACTS = [
    ("My sister's name is {name}", "What's my sister called?"),
    ("I work as a {job}", "What do I do for a living?"),
    ("I'm allergic to {food}", "What food am I allergic to?"),
    ("I live in {city}", "Which city do I live in?"),
    ("My favourite band is {band}", "Which band do I like the most?"),
    ("I have a {pet} called {petname}", "What is my pet's name?"),
    ("My birthday is on {date}", "When is my birthday?"),
    ("I'm learning to play the {instrument}", "Which instrument am I learning?"),
    ("My {subject} exam is next {day}", "When is my {subject} exam?"),
    ("I'm moving to {city2} next month", "Where am I moving to?"),
]
SLOTS = {
    "name": ["Ana", "Beatriz", "Chloe", "Dana", "Elif"],
    "job": ["nurse", "carpenter", "software engineer", "pilot", "teacher"],
    "food": ["peanuts", "shellfish", "strawberries", "gluten", "eggs"],
    "city": ["Lisbon", "Osaka", "Toronto", "Nairobi", "Krakow"],
    "band": ["Radiohead", "ABBA", "Metallica", "Daft Punk", "The Beatles"],
    "pet": ["cat", "dog", "parrot", "rabbit", "hamster"],
    "petname": ["Miso", "Biscuit", "Kiwi", "Pepper", "Nugget"],
    "date": ["March 3rd", "July 19th", "October 8th", "December 24th", "May 1st"],
    "instrument": ["cello", "guitar", "piano", "violin", "drums"],
    "subject": ["chemistry", "history", "calculus", "biology", "French"],
    "day": ["Tuesday", "Friday", "Monday", "Thursday", "Wednesday"],
    "city2": ["Berlin", "Seoul", "Melbourne", "Lima", "Oslo"],
}
CHATTER_PARTS = (
    ["lol", "haha", "ok so", "honestly", "wait", "bruh", "yeah", "nah", "omg", "hmm"],
    ["did anyone see", "who's up for", "I can't believe", "check out", "what do you think of", "so tired of"],
    [
        "the game last night",
        "this new meme",
        "the server event",
        "that movie trailer",
        "the patch notes",
        "the weather today",
        "pizza for dinner",
        "the new map",
        "the raid tonight",
        "this song",
    ],
    ["", "?", "!", " lmao", " tbh", " xD", " for real"],
)


def chatter_line(rng: random.Random) -> str:
    return " ".join(rng.choice(part) for part in CHATTER_PARTS[:3]) + rng.choice(CHATTER_PARTS[3])


def planted(rng: random.Random) -> list[tuple[str, str, str]]:
    """(author, fact, question): each of 5 users tells each kind of fact once, with their own details."""
    out = []
    for user in range(5):
        details = {slot: values[user] for slot, values in SLOTS.items()}
        for fact, question in FACTS:
            out.append((str(7000 + user), fact.format(**details), question.format(**details)))
    rng.shuffle(out)
    return out


def memory(deployment: UUID, author: str, text: str, at: datetime, event: str) -> MemoryRecord:
    return MemoryRecord(
        deployment_id=deployment,
        guild_id=GUILD,
        channel_id=CHANNEL,
        author_id=author,
        author_name=f"user{author}",
        people=[author],
        text=text,
        at=at,
        kind=MemoryKind.observation,
        importance=heuristic_importance(text, addressed_to_agent=False),
        source_event_id=event,
    )


async def main() -> None:
    # On a shared machine the figures mean little without the load they were taken under.
    load_at_start = os.getloadavg()[0]
    settings = get_settings()
    rng = random.Random(14)
    # Each as its service has it: the writer's for writing, the inference worker's for recall.
    writer_embedder = Embedder.from_settings(settings, threads=BATCH_THREADS)
    embedder = Embedder.from_settings(settings)
    client = connect(settings)
    await client.connect()
    store = MemoryStore(client, f"BenchMemory{uuid4().hex[:8]}")
    await store.ensure_collection()
    try:
        # 1. The conversation of one deployment: chatter with facts among it, questions after.
        deployment = uuid4()
        await store.add_tenant(deployment)
        facts = planted(rng)
        timeline: list[tuple[str, str, bool]] = [
            (str(8000 + rng.randrange(20)), chatter_line(rng), False) for _ in range(CHATTER)
        ]
        for author, fact, _ in facts:
            # Facts in the first three quarters, so more than a context window of chatter follows each.
            timeline.insert(rng.randrange(int(len(timeline) * 0.75)), (author, fact, True))
        start = NOW - timedelta(hours=300)
        step = timedelta(hours=299) / len(timeline)
        records = [
            memory(deployment, a, t, start + step * i, f"ev{i}") for i, (a, t, _) in enumerate(timeline)
        ]
        began, cpu_began = time.perf_counter(), time.process_time()
        # As the writer does: one call per fetch of up to FETCH records.
        for at in range(0, len(records), FETCH):
            await embed_and_write(store, writer_embedder, records[at : at + FETCH])
        written_per_s = len(records) / (time.perf_counter() - began)
        # What the load leaves out: this process's CPU time (embedding, the client's side of the inserts).
        written_per_cpu_s = len(records) / (time.process_time() - cpu_began)
        chatter_vectors = writer_embedder.embed([text for _, text, fact in timeline if not fact])

        # 3. recall@5 of the planted facts, against the context window alone.
        fact_index = {text: i for i, (_, text, _) in enumerate(timeline)}
        hits = baseline = 0
        for author, fact, question in facts:
            query = RecallQuery(
                deployment_id=deployment,
                guild_id=GUILD,
                channel_id=CHANNEL,
                text=question,
                people=[author],
                at=NOW,
            )
            chosen = await recall(store, embedder, query, MemoryConfig(top_k=5, token_budget=4000))
            hits += any(m.record.text == fact for m in chosen)
            baseline += len(timeline) - fact_index[fact] <= CONTEXT_WINDOW
        recall_at_5 = hits / len(facts)
        baseline_at_5 = baseline / len(facts)

        # 2. Recall latency with TOTAL memories across TENANTS tenants.
        tenants = [uuid4() for _ in range(TENANTS - 1)]
        for tenant in tenants:
            await store.add_tenant(tenant)
        per_tenant = (TOTAL - len(records)) // len(tenants)
        filled = len(records)
        for tenant in tenants:
            batch = [
                memory(tenant, str(8000 + j % 20), chatter_line(rng), start + step * j * 10, f"f{j}")
                for j in range(per_tenant)
            ]
            vectors = chatter_vectors[rng.sample(range(len(chatter_vectors)), per_tenant)]
            await store.write(batch, vectors.tolist())
            filled += len(batch)
        latencies: list[float] = []
        embedding: list[float] = []
        questions = [q for _, _, q in facts]
        for i in range(RECALLS):
            tenant = deployment if i % 2 == 0 else rng.choice(tenants)
            query = RecallQuery(
                deployment_id=tenant,
                guild_id=GUILD,
                channel_id=CHANNEL,
                text=questions[i % len(questions)],
                at=NOW,
            )
            began = time.perf_counter()
            await recall(store, embedder, query, MemoryConfig())
            latencies.append((time.perf_counter() - began) * 1000)
            # The share of embedding the question in that: the rest is Weaviate and the re-scoring.
            began = time.perf_counter()
            embedder.embed([query.text])
            embedding.append((time.perf_counter() - began) * 1000)
        result = {
            "memories_written_per_s": round(written_per_s, 1),
            "memories_written_per_cpu_s": round(written_per_cpu_s, 1),
            "written_memories": len(records),
            "recall_p50_ms": round(statistics.median(latencies), 2),
            "recall_p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "of_which_embedding_p50_ms": round(statistics.median(embedding), 2),
            "recall_memories": filled,
            "recall_tenants": TENANTS,
            "recall_at_5": round(recall_at_5, 3),
            "context_window_recall_at_5": round(baseline_at_5, 3),
            "planted_facts": len(facts),
            "load_1m_start_end": [round(load_at_start, 2), round(os.getloadavg()[0], 2)],
        }
        print(json.dumps(result))
    finally:
        await client.collections.delete(store.name)
        await client.close()


if __name__ == "__main__":
    asyncio.run(main())
