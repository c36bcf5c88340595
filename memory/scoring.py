"""Pure decisions of long-term memory: recall scoring, the importance heuristic and reflection.

Recall follows Generative Agents (Park et al., 2023): each candidate's recency, importance and relevance
are min-max normalised over the candidates and summed with the agent's weights; the best go into the
prompt until top_k or the token budget is reached.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from models.agent import MemoryConfig
from models.inference import ChatMessage
from models.memory import Candidate, MemoryKind, MemoryRecord, RecalledMemory, Reflection, StoredMemory

# The prompt builder's estimate: about four characters a token, plus the bullet and date around each line.
CHARS_PER_TOKEN = 4
LINE_OVERHEAD_TOKENS = 6
# Among candidates, memories involving the people present get this much extra relevance (before
# normalisation), so a tie on similarity goes to what concerns the people in the conversation.
PEOPLE_BONUS = 0.05


def _normalised(values: Sequence[float]) -> list[float]:
    """Min-max to 0..1; when all are equal none of them tells candidates apart, so each counts fully."""
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return [1.0 for _ in values]
    return [(value - low) / (high - low) for value in values]


def memory_tokens(record: MemoryRecord) -> int:
    return len(record.text) // CHARS_PER_TOKEN + 1 + LINE_OVERHEAD_TOKENS


def rank_memories(
    candidates: Sequence[Candidate], *, now: datetime, people: Sequence[str], config: MemoryConfig
) -> list[RecalledMemory]:
    """The candidates worth putting into the prompt, best first: at most top_k, within the token budget."""
    if not candidates:
        return []
    present = set(people)
    hours = [max(0.0, (now - c.record.at).total_seconds() / 3600) for c in candidates]
    recency = _normalised([config.decay_per_hour**h for h in hours])
    importance = _normalised([float(c.record.importance) for c in candidates])
    relevance = _normalised(
        [c.similarity + (PEOPLE_BONUS if present & set(c.record.people) else 0.0) for c in candidates]
    )
    scored = [
        RecalledMemory(
            id=c.id,
            record=c.record,
            recency=r,
            importance=i,
            relevance=v,
            score=config.recency_weight * r + config.importance_weight * i + config.relevance_weight * v,
        )
        for c, r, i, v in zip(candidates, recency, importance, relevance, strict=True)
    ]
    scored.sort(key=lambda m: (m.score, m.record.at), reverse=True)
    chosen: list[RecalledMemory] = []
    budget = config.token_budget
    for memory in scored:
        cost = memory_tokens(memory.record)
        if cost > budget:
            continue
        chosen.append(memory)
        budget -= cost
        if len(chosen) == config.top_k:
            break
    return chosen


# The importance heuristic, used when no model rates memories. A plain remark is 2; each sign that the
# line matters to the people in it adds points, up to 10:
#   addressed to the agent (+2): it was said to the agent, which is expected to remember it;
#   a personal fact or plan (+3): "I am / my / I have / I'm going to / next week ..." statements;
#   a feeling (+2): love, hate, worried, excited, sad ...;
#   a question (+1): something the asker may come back to;
#   length (+1 over 80 characters, +1 more over 200): more said, more to remember.
_PERSONAL = re.compile(
    r"\b(i am|i'm|im|my|i have|i've|i will|i'll|i'm going to|i plan|i work|i live|i study|"
    r"tomorrow|next (week|month|year|monday|tuesday|wednesday|thursday|friday|saturday|sunday)|"
    r"birthday|exam|interview|wedding|moving|job)\b",
    re.IGNORECASE,
)
_FEELING = re.compile(
    r"\b(love|hate|like|enjoy|afraid|scared|worried|nervous|excited|happy|sad|angry|upset|"
    r"lonely|stressed|proud|miss)\b",
    re.IGNORECASE,
)


def heuristic_importance(text: str, *, addressed_to_agent: bool) -> int:
    score = 2
    if addressed_to_agent:
        score += 2
    if _PERSONAL.search(text):
        score += 3
    if _FEELING.search(text):
        score += 2
    if "?" in text:
        score += 1
    if len(text) > 80:
        score += 1
    if len(text) > 200:
        score += 1
    return min(score, 10)


# Importance rated by a model, as in Generative Agents: one prompt rates a batch of memories. Only the
# memories the heuristic leaves in its middle band are asked about: a plain remark (below the band) and
# a personal, felt, addressed statement (above it) are rated clearly enough without a model call.
RATED_BAND = range(4, 8)
RATED_PER_PROMPT = 20
RATED_TEXT_CHARS = 300
_RATING_INSTRUCTIONS = (
    "On the scale of 1 to 10, where 1 is purely mundane (small talk, a greeting, a joke) and 10 is extremely "
    "poignant (a break-up, an exam result, a new job, a loss), rate how worth remembering each of these chat "
    "messages is for the people who wrote them.\n"
)
_RATING_FORMAT = 'Answer with one line per message, as "<number>: <rating>", and nothing else.'
# "3: 7", "3. 7/10", "Message 3 - rating 7": the message's number, a separator, then the rating ending the
# line (a small model often echoes the messages instead: "3. my 2 cats" is not a rating).
_RATING_LINE = re.compile(
    r"^\W*(?:message\s*)?(\d{1,3})\s*[:.)=-]\s*[^\d\n]{0,12}?(\d{1,2})\s*(?:/\s*10)?\W*$", re.I | re.M
)
_BARE_RATING = re.compile(r"^\D{0,20}?\b(\d{1,2})\s*(?:/\s*10)?\W*$")


def needs_rating(heuristic: int) -> bool:
    return heuristic in RATED_BAND


def rating_messages(texts: Sequence[str]) -> list[ChatMessage]:
    """The rating prompt for up to RATED_PER_PROMPT memories, numbered from 1."""
    lines = "\n".join(
        f"{number}. {' '.join(text.split())[:RATED_TEXT_CHARS]}" for number, text in enumerate(texts, 1)
    )
    return [
        ChatMessage(role="system", content="You rate memories. You answer only in the format asked for."),
        ChatMessage(role="user", content=f"{_RATING_INSTRUCTIONS}\n{lines}\n\n{_RATING_FORMAT}"),
    ]


def parse_ratings(answer: str, count: int) -> dict[int, int]:
    """The usable ratings in a model's answer, by index (0-based) of the memory rated: numbers outside
    1..count and ratings outside 1..10 are ignored, and the first rating of a memory counts. A lone memory
    may be rated by a bare number."""
    ratings: dict[int, int] = {}
    for number, rating in _RATING_LINE.findall(answer):
        index, value = int(number) - 1, int(rating)
        if 0 <= index < count and 1 <= value <= 10:
            ratings.setdefault(index, value)
    if count == 1 and not ratings:
        bare = _BARE_RATING.match(answer.strip())
        if bare is not None and 1 <= int(bare.group(1)) <= 10:
            ratings[0] = int(bare.group(1))
    return ratings


def should_reflect(importance_since_reflection: int, threshold: int) -> bool:
    """The agent's memory.reflection_threshold, passed."""
    return importance_since_reflection > threshold


# Words that say nothing about a topic; everything else of four letters or more may be one.
_STOPWORDS = frozenset(
    re.findall(
        r"\w+",
        "that this with have from they them what when where which would could should there their about "
        "been were will your just like really know think going want yeah okay well also some more very "
        "much than then into over only even because does doing dont cant wont youre thats",
    )
)
_WORD = re.compile(r"[a-z][a-z']{3,}")
_STATED = re.compile(
    r"\b(i (?:really )?(?:love|like|enjoy|hate|prefer)|my favou?rite|i'm going to|i am going to|"
    r"i will|i plan to|i want to|next (?:week|month|year)|tomorrow)\b[^.!?\n]*",
    re.IGNORECASE,
)
TOPICS_PER_REFLECTION = 5
RECURRING = 2


def extractive_reflection(
    memories: Sequence[StoredMemory], *, regular_min_messages: int = 3
) -> list[Reflection]:
    """Reflections without a model: the recurring topics, and what each regular (the author of at least
    regular_min_messages memories) said they like or plan; each cites the memories it rests on."""
    observations = [(m.id, m.record) for m in memories if m.record.kind is not MemoryKind.reflection]
    counts: Counter[str] = Counter()
    cited_by_word: dict[str, list[UUID]] = {}
    for memory_id_, record in observations:
        for word in sorted(set(_WORD.findall(record.text.lower())) - _STOPWORDS):
            counts[word] += 1
            cited_by_word.setdefault(word, []).append(memory_id_)
    reflections: list[Reflection] = []
    topics = [word for word, n in counts.most_common(TOPICS_PER_REFLECTION) if n >= RECURRING]
    if topics:
        cites = sorted({i for word in topics for i in cited_by_word[word]})[:100]
        text = "Recurring topics lately: " + ", ".join(topics) + "."
        reflections.append(Reflection(text=text, cites=cites))
    by_author: dict[str, list[tuple[UUID, MemoryRecord]]] = {}
    for memory_id_, record in observations:
        by_author.setdefault(record.author_id, []).append((memory_id_, record))
    for author_id in sorted(by_author):
        said = by_author[author_id]
        if len(said) < regular_min_messages:
            continue
        statements = [(i, m.group(0).strip()) for i, r in said for m in _STATED.finditer(r.text)]
        if not statements:
            continue
        name = said[-1][1].author_name or f"user {author_id}"
        text = f"{name} said: " + "; ".join(dict.fromkeys(s for _, s in statements)) + "."
        cites = sorted({i for i, _ in statements})[:100]
        reflections.append(Reflection(text=text[:4000], cites=cites))
    return reflections


# Reflection with a model, as in Generative Agents: the salient questions about the latest memories, each
# answered from them, citing the numbered statements it rests on. Citations are checked against the
# memories shown; an answer citing none of them is not a reflection.
REFLECTED_MEMORIES = 40
REFLECTIONS_PER_PROMPT = 3
_REFLECTION_INSTRUCTIONS = (
    f"What are the {REFLECTIONS_PER_PROMPT} most salient high-level questions we can answer about the people "
    "in the statements above? Answer each from the statements only, and cite the numbers of the statements "
    "the answer rests on. Write each as three lines:\n"
    "Question: <question>\nAnswer: <answer>\nBecause of: <statement numbers, comma-separated>"
)
_QUESTION = re.compile(r"^\W*question\s*\d*\s*[:.]\s*", re.I | re.M)
_ANSWER = re.compile(r"^\W*answer\s*[:.]\s*(.+)$", re.I | re.M)
_BECAUSE = re.compile(r"^\W*(?:because of|cites?|citations?|sources?)\s*[:.]?\s*(.+)$", re.I | re.M)


def reflection_messages(memories: Sequence[StoredMemory]) -> list[ChatMessage]:
    """The reflection prompt over memories numbered from 1, oldest first."""
    lines = "\n".join(
        f"{number}. ({m.record.at:%Y-%m-%d}) {m.record.author_name or 'someone'}: "
        f"{' '.join(m.record.text.split())[:RATED_TEXT_CHARS]}"
        for number, m in enumerate(memories, 1)
    )
    return [
        ChatMessage(
            role="system", content="You reflect on memories. You answer only in the format asked for."
        ),
        ChatMessage(role="user", content=f"Statements:\n{lines}\n\n{_REFLECTION_INSTRUCTIONS}"),
    ]


def parse_reflections(answer: str, memories: Sequence[StoredMemory]) -> list[Reflection]:
    """The answered questions in a model's answer that cite at least one of the memories shown (by their
    number), at most REFLECTIONS_PER_PROMPT; citations of numbers not shown are dropped."""
    reflections: list[Reflection] = []
    # What precedes the first question is preamble; each block starts with its question.
    for block in _QUESTION.split(answer)[1:]:
        question = block.split("\n", 1)[0].strip()
        answered = _ANSWER.search(block)
        because = _BECAUSE.search(block)
        if not question or answered is None or because is None:
            continue
        numbers = {int(n) for n in re.findall(r"\d+", because.group(1))}
        cites = sorted({memories[n - 1].id for n in numbers if 1 <= n <= len(memories)})
        if not cites:
            continue
        text = f"{question} {answered.group(1).strip()}"[:4000]
        reflections.append(Reflection(text=text, cites=cites[:100]))
        if len(reflections) == REFLECTIONS_PER_PROMPT:
            break
    return reflections
