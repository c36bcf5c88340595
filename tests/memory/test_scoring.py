"""Recall scoring, the importance heuristic and extractive reflection: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from memory.recall import recalled_notes, with_memories
from memory.scoring import (
    extractive_reflection,
    heuristic_importance,
    memory_tokens,
    rank_memories,
    should_reflect,
)
from models.agent import MemoryConfig
from models.common import error_paths
from models.decisions import Priority
from models.inference import ChatMessage, InferenceRequest, InferenceResult, ReplyTarget
from models.memory import Candidate, MemoryKind, MemoryRecord, RecalledNote, StoredMemory, memory_id
from models.tiers import InferenceLane, Tier
from streams.catalog import INFERENCE_RESULTS

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
DEPLOYMENT = uuid4()


def record(
    text: str,
    *,
    hours_ago: float = 0.0,
    importance: int = 5,
    author: str = "100",
    people: list[str] | None = None,
    kind: MemoryKind = MemoryKind.observation,
    event: str | None = None,
) -> MemoryRecord:
    return MemoryRecord(
        deployment_id=DEPLOYMENT,
        guild_id="1",
        channel_id="2",
        author_id=author,
        author_name=f"user{author}",
        people=people or [author],
        text=text,
        at=NOW - timedelta(hours=hours_ago),
        kind=kind,
        importance=importance,
        source_event_id=event or str(uuid4()),
    )


def candidate(similarity: float, **fields: object) -> Candidate:
    r = record(str(fields.pop("text", "a memory")), **fields)  # type: ignore[arg-type]
    return Candidate(id=r.id, record=r, similarity=similarity)


def test_relevance_alone_orders_by_similarity() -> None:
    config = MemoryConfig(recency_weight=0, importance_weight=0, relevance_weight=1, top_k=2)
    near, far, mid = candidate(0.9, text="near"), candidate(0.1, text="far"), candidate(0.5, text="mid")
    chosen = rank_memories([far, near, mid], now=NOW, people=[], config=config)
    assert [m.record.text for m in chosen] == ["near", "mid"]
    assert chosen[0].relevance == 1.0 and chosen[1].relevance == pytest.approx(0.5)


def test_recency_decays_per_hour() -> None:
    config = MemoryConfig(recency_weight=1, importance_weight=0, relevance_weight=0, top_k=3)
    old, new, mid = (candidate(0.5, text=t, hours_ago=h) for t, h in (("old", 500), ("new", 1), ("mid", 100)))
    chosen = rank_memories([old, new, mid], now=NOW, people=[], config=config)
    assert [m.record.text for m in chosen] == ["new", "mid", "old"]
    # Min-max over 0.995**1, 0.995**100, 0.995**500.
    low, high = 0.995**500, 0.995**1
    assert chosen[1].recency == pytest.approx((0.995**100 - low) / (high - low))


def test_an_important_old_memory_beats_a_trivial_recent_one() -> None:
    config = MemoryConfig()
    trivial = candidate(0.6, text="trivial", hours_ago=1, importance=1)
    exam = candidate(0.7, text="exam", hours_ago=200, importance=9)
    filler = candidate(0.2, text="filler", hours_ago=100, importance=3)
    assert rank_memories([trivial, exam, filler], now=NOW, people=[], config=config)[0].record.text == "exam"


def test_people_present_break_ties() -> None:
    config = MemoryConfig(recency_weight=0, importance_weight=0, top_k=1)
    theirs = candidate(0.5, text="theirs", author="7", people=["7"])
    others = candidate(0.5, text="others", author="8", people=["8"])
    assert rank_memories([others, theirs], now=NOW, people=["7"], config=config)[0].record.text == "theirs"


def test_top_k_and_token_budget_both_bound_the_choice() -> None:
    many = [candidate(0.9 - i / 100, text=f"memory {i}") for i in range(10)]
    assert len(rank_memories(many, now=NOW, people=[], config=MemoryConfig(top_k=3))) == 3
    long = [candidate(0.9 - i / 100, text="x" * 400) for i in range(5)]
    budget = memory_tokens(long[0].record) * 2 + 5
    chosen = rank_memories(long, now=NOW, people=[], config=MemoryConfig(token_budget=budget))
    assert len(chosen) == 2


def test_no_candidates_no_memories() -> None:
    assert rank_memories([], now=NOW, people=[], config=MemoryConfig()) == []


def test_memory_config_is_validated_with_field_names() -> None:
    with pytest.raises(ValidationError) as zero:
        MemoryConfig(recency_weight=0, importance_weight=0, relevance_weight=0)
    assert "relevance_weight" in str(zero.value)
    with pytest.raises(ValidationError) as few:
        MemoryConfig(top_k=10, candidates=5)
    assert "candidates" in str(few.value)
    with pytest.raises(ValidationError) as decay:
        MemoryConfig(decay_per_hour=1.5)
    assert error_paths(decay.value) == ["decay_per_hour"]


def test_importance_heuristic() -> None:
    assert heuristic_importance("lol", addressed_to_agent=False) == 2
    exam = heuristic_importance(
        "I have my chemistry exam next tuesday and I'm nervous", addressed_to_agent=True
    )
    assert exam == 9
    assert heuristic_importance("what time is it?", addressed_to_agent=False) == 3
    assert heuristic_importance("x" * 300, addressed_to_agent=False) == 4
    assert 1 <= heuristic_importance("I love my job " * 50 + "?", addressed_to_agent=True) <= 10


def test_reflection_triggers_past_the_threshold() -> None:
    assert not should_reflect(150, MemoryConfig().reflection_threshold)
    assert should_reflect(151, 150)


def test_memory_ids_are_deterministic_per_event_and_kind() -> None:
    assert memory_id("ev1", MemoryKind.observation) == memory_id("ev1", MemoryKind.observation)
    assert memory_id("ev1", MemoryKind.observation) != memory_id("ev1", MemoryKind.user_fact)
    assert record("a", event="ev1").id == record("b", event="ev1").id


def test_extractive_reflection_cites_the_memories_it_rests_on() -> None:
    said = [
        record("I really love hiking in the mountains", author="7"),
        record("hiking again this weekend, can't wait", author="7"),
        record("I'm going to Japan next month", author="7"),
        record("the mountains are beautiful", author="8"),
        record("ok", author="9"),
    ]
    stored = [StoredMemory(id=r.id, record=r) for r in said]
    reflections = extractive_reflection(stored)
    topics, regular = reflections
    assert topics.text.startswith("Recurring topics lately:")
    assert "hiking" in topics.text and "mountains" in topics.text
    assert set(topics.cites) <= {m.id for m in stored}
    assert said[0].id in topics.cites and said[4].id not in topics.cites
    assert regular.text.startswith("user7 said:")
    assert (
        "I really love hiking in the mountains" in regular.text
        and "I'm going to Japan next month" in regular.text
    )
    assert set(regular.cites) == {said[0].id, said[2].id}


def test_reflections_are_not_reflected_upon() -> None:
    thought = record("Recurring topics lately: hiking, hiking.", kind=MemoryKind.reflection)
    assert extractive_reflection([StoredMemory(id=thought.id, record=thought)]) == []


def test_the_memory_note_goes_just_before_the_message_answered() -> None:
    fact = record("My exam is on Tuesday", hours_ago=300)
    best = Candidate(id=fact.id, record=fact, similarity=0.8)
    recalled = rank_memories([best], now=NOW, people=[], config=MemoryConfig())
    system = ChatMessage(role="system", content="You are Luna.")
    current = ChatMessage(role="user", content="when is my exam?")
    request = InferenceRequest(
        request_id="r1",
        event_id="e1",
        deployment_id=DEPLOYMENT,
        agent_id=uuid4(),
        owner_id=uuid4(),
        tier=Tier.pro,
        lane=InferenceLane.standard,
        priority=Priority.high,
        model="gpt-4o-mini",
        messages=[system, current],
        target=ReplyTarget(bot_id="5", guild_id="1", channel_id="2"),
    )
    answered = with_memories(request, recalled)
    assert answered.messages[0] == system and answered.messages[2] == current
    note = answered.messages[1]
    assert note.role == "user" and note.name == "memories"
    assert "user100: My exam is on Tuesday" in note.content
    assert with_memories(request, []) == request


def ai_result(
    deployment_id: UUID, *, fallback: bool = False, recalled: list[RecalledNote] | None = None
) -> InferenceResult:
    """An AI reply's result: the answer to message 2 in channel 1, by bot 13."""
    return InferenceResult(
        request_id="r",
        event_id="e",
        deployment_id=deployment_id,
        agent_id=uuid4(),
        owner_id=uuid4(),
        tier=Tier.business,
        lane=InferenceLane.premium,
        target=ReplyTarget(bot_id="13", channel_id="1", message_id="2"),
        text="",
        model="m",
        endpoint="" if fallback else "local",
        prompt_tokens=1,
        completion_tokens=1,
        latency_ms=1.0,
        cost_usd=0.0,
        fallback=fallback,
        recalled=recalled or [],
    )


class StoreUUID(UUID):
    """A UUID subclass, as the Weaviate client returns object ids."""


def test_recalled_notes_encode_on_the_results_topic() -> None:
    fact = record("my secret code word is Quibblefrost")
    found = Candidate(id=StoreUUID(int=fact.id.int), record=fact, similarity=0.7)
    recalled = rank_memories([found], now=NOW, people=[], config=MemoryConfig())
    (note,) = recalled_notes(recalled)
    assert type(note.id) is UUID and note.id == fact.id and note.text == fact.text
    result = ai_result(DEPLOYMENT, recalled=[note])
    assert INFERENCE_RESULTS.codec.decode(INFERENCE_RESULTS.codec.encode(result)).recalled == [note]
