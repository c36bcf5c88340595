"""Memory's model prompts and the parsing of their answers: pure functions."""

from __future__ import annotations

from memory.scoring import (
    REFLECTIONS_PER_PROMPT,
    heuristic_importance,
    needs_rating,
    parse_ratings,
    parse_reflections,
    rating_messages,
    reflection_messages,
)
from models.memory import StoredMemory
from tests.memory.test_scoring import record


def stored(*texts: str) -> list[StoredMemory]:
    records = [record(text) for text in texts]
    return [StoredMemory(id=r.id, record=r) for r in records]


def test_only_what_the_heuristic_leaves_unclear_is_rated() -> None:
    plain = heuristic_importance("lol", addressed_to_agent=False)
    personal = heuristic_importance("I have my exam tomorrow", addressed_to_agent=False)
    poignant = heuristic_importance(
        "@luna I'm so worried, my exam is tomorrow and I have not slept?", addressed_to_agent=True
    )
    assert not needs_rating(plain)
    assert needs_rating(personal)
    assert not needs_rating(poignant)


def test_rating_prompt_numbers_the_memories_from_one() -> None:
    (_, asked) = rating_messages(["first  line\nwrapped", "second"])
    assert "1. first line wrapped\n2. second" in asked.content
    assert '"<number>: <rating>"' in asked.content


def test_ratings_are_read_from_the_common_answer_shapes() -> None:
    answer = "Sure! Here are the ratings:\n1: 7\n2. 3/10\nMessage 3 - rating 9\n- 4) 2"
    assert parse_ratings(answer, 4) == {0: 7, 1: 3, 2: 9, 3: 2}


def test_unusable_ratings_are_ignored() -> None:
    # Out of range ratings, numbers of memories not asked about, and a second rating of the same memory.
    answer = "1: 11\n2: 0\n5: 4\n3: 6\n3: 2"
    assert parse_ratings(answer, 3) == {2: 6}
    assert parse_ratings("I cannot rate these.", 2) == {}
    # The messages echoed back, as a small model does.
    assert parse_ratings("1. I have my exam tomorrow\n2. my 2 cats are sick", 2) == {}
    assert parse_ratings("", 1) == {}


def test_a_lone_memory_may_be_rated_by_a_bare_number() -> None:
    assert parse_ratings("8", 1) == {0: 8}
    assert parse_ratings("Rating: 6/10", 1) == {0: 6}
    assert parse_ratings("8", 2) == {}
    assert parse_ratings("1. I have my exam tomorrow", 1) == {}


def test_reflection_prompt_shows_numbered_statements_with_authors() -> None:
    memories = stored("I have my chemistry exam next Tuesday", "my cat is called Miso")
    (_, asked) = reflection_messages(memories)
    assert "1. (2026-12-06) user100: I have my chemistry exam next Tuesday" in asked.content
    assert "2. (2026-12-06) user100: my cat is called Miso" in asked.content
    assert "Because of:" in asked.content


def test_reflections_cite_only_the_memories_shown() -> None:
    memories = stored("I have my chemistry exam next Tuesday", "I study every night", "my cat is Miso")
    answer = (
        "Here are the questions.\n"
        "Question: What worries user100?\nAnswer: The chemistry exam next Tuesday.\nBecause of: 1, 2, 9\n\n"
        "Question 2: Does user100 have pets?\nAnswer: A cat, Miso.\nBecause of: 7\n"
        "Question: What is user100 like?\nAnswer: Studious.\nCites: 2\n"
    )
    first, second = parse_reflections(answer, memories)
    assert first.text == "What worries user100? The chemistry exam next Tuesday."
    assert first.cites == sorted([memories[0].id, memories[1].id])
    # The pet question cited only a statement that was not shown: dropped.
    assert second.text == "What is user100 like? Studious." and second.cites == [memories[1].id]


def test_a_reflection_without_answer_or_citations_is_dropped() -> None:
    memories = stored("I love hiking")
    answer = "Question: Who hikes?\nBecause of: 1\nQuestion: What does user100 love?\nAnswer: Hiking.\n"
    assert parse_reflections(answer, memories) == []
    assert parse_reflections("1. hiking is fun", memories) == []


def test_reflections_stop_at_the_number_asked_for() -> None:
    memories = stored("I love hiking")
    block = "Question: Who hikes?\nAnswer: user100.\nBecause of: 1\n"
    assert len(parse_reflections(block * 5, memories)) == REFLECTIONS_PER_PROMPT
