"""Speech style and mood indicators applied to generated text, deterministically.

The model is told the style in its prompt; styling makes sure the reply carries it: formality by
contractions, the persona's sentence enders, slang, emoji and emoticons at the configured density, and the
mood's emoji. The same text, style and seed always give the same result (the seed is the request id), so a
replayed result is styled the same way. Code blocks are left untouched.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from models.agent import Level, MoodName, SpeechStyle

# Expected emoji (or emoticons) per sentence for each configured level.
DENSITY = {Level.none: 0.0, Level.low: 0.15, Level.medium: 0.35, Level.high: 0.7}
# Share of plain full stops that become one of the persona's sentence enders.
ENDER_SHARE = 0.5
# Chance that a casual or neutral reply carries one slang interjection.
SLANG_CHANCE = 0.3

TYPING_BASE_MS = 400
TYPING_MS_PER_CHAR = 20
# Discord shows "typing" for about 10 s per trigger; a reply should follow well within it.
TYPING_MAX_MS = 8_000

EMOJI_BY_MOOD: dict[MoodName, tuple[str, ...]] = {
    MoodName.excited: ("🤩", "🎉", "✨", "🔥"),
    MoodName.happy: ("😊", "😄", "✨", "💖"),
    MoodName.neutral: ("🙂", "👍", "✨"),
    MoodName.sad: ("😢", "🥺", "💧"),
    MoodName.bored: ("😴", "🥱", "💤"),
}
EMOTICONS_BY_MOOD: dict[MoodName, tuple[str, ...]] = {
    MoodName.excited: (":D", "^o^", "\\o/"),
    MoodName.happy: (":)", "^_^", ":3"),
    MoodName.neutral: (":)", ":P"),
    MoodName.sad: (":(", "T_T", ";-;"),
    MoodName.bored: ("-_-", "._."),
}
_ALL_EMOTICONS = tuple({e for pool in EMOTICONS_BY_MOOD.values() for e in pool})

# Formal -> casual; formal style expands them back.
CONTRACTIONS = {
    "do not": "don't",
    "does not": "doesn't",
    "did not": "didn't",
    "is not": "isn't",
    "are not": "aren't",
    "cannot": "can't",
    "will not": "won't",
    "would not": "wouldn't",
    "I am": "I'm",
    "you are": "you're",
    "we are": "we're",
    "they are": "they're",
    "I will": "I'll",
    "I have": "I've",
    "let us": "let's",
}

_CODE_FENCE = re.compile(r"(```.*?```|`[^`\n]*`)", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?~…])\s+")
_PLAIN_STOP = re.compile(r"(?<![.\d])\.$")
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf]")
_LONG_WORD = re.compile(r"\b[A-Za-z]{4,}\b")


def typing_delay_ms(text: str) -> int:
    """How long the agent "types" before a reply of this length appears."""
    return min(TYPING_MAX_MS, TYPING_BASE_MS + TYPING_MS_PER_CHAR * len(text))


@dataclass(frozen=True)
class Manner:
    """How warm (0-1, 0.5 neutral: emoji density scales from x0.5 to x1.5) and how careless (typos per
    word) this reply is; processors/traits.py derives both from the character and the affinity."""

    warmth: float = 0.5
    typo_rate: float = 0.0


def style_text(
    text: str, style: SpeechStyle, mood: MoodName, mood_emoji: str, seed: str, manner: Manner = Manner()
) -> str:
    """`text` in the persona's speech style, ending with the mood's emoji when there is one to show."""
    rng = random.Random(seed)
    indicator = mood_emoji if style.emoji_usage is not Level.none else ""
    parts = _CODE_FENCE.split(text)
    # Odd indices are code spans and blocks.
    styled = [
        part if index % 2 else _style_prose(part, style, mood, indicator, manner, rng)
        for index, part in enumerate(parts)
    ]
    result = "".join(styled).strip()
    if indicator and result and not result.endswith(indicator):
        result = f"{result} {indicator}"
    return result


def apply_formality(text: str, formality: str) -> str:
    if formality == "casual":
        pairs = list(CONTRACTIONS.items())
    elif formality == "formal":
        pairs = [(short, full) for full, short in CONTRACTIONS.items()]
    else:
        return text
    for source, target in pairs:
        text = re.sub(rf"\b{re.escape(source)}\b", _case_keeping(target), text, flags=re.IGNORECASE)
    return text


def _case_keeping(replacement: str) -> Callable[[re.Match[str]], str]:
    def replace(match: re.Match[str]) -> str:
        if match.group(0)[:1].isupper() and replacement[:1].islower():
            return replacement[:1].upper() + replacement[1:]
        return replacement

    return replace


def _style_prose(
    text: str, style: SpeechStyle, mood: MoodName, indicator: str, manner: Manner, rng: random.Random
) -> str:
    if not text.strip():
        return text
    text = apply_formality(text, style.formality)
    sentences = _SENTENCE_END.split(text.strip())
    if style.sentence_enders:
        sentences = [_with_ender(s, style.sentence_enders, rng) for s in sentences]
    if style.slang and style.formality != "formal" and rng.random() < SLANG_CHANCE:
        sentences.append(rng.choice(style.slang))
    # The mood indicator counts toward the emoji density and is not repeated inside the text.
    emoji_pool = [e for e in EMOJI_BY_MOOD[mood] if e != indicator]
    emoji_present = len(_EMOJI.findall(text)) + (1 if indicator else 0)
    emoticons_present = sum(text.count(e) for e in _ALL_EMOTICONS)
    for level, pool, present in (
        (style.emoji_usage, emoji_pool, emoji_present),
        (style.emoticon_usage, list(EMOTICONS_BY_MOOD[mood]), emoticons_present),
    ):
        wanted = min(_count_for(level, len(sentences), manner.warmth, rng) - present, len(sentences))
        for index in sorted(rng.sample(range(len(sentences)), max(wanted, 0))):
            sentences[index] = f"{sentences[index]} {rng.choice(pool)}"
    if manner.typo_rate > 0:
        sentences = [_with_typos(sentence, manner.typo_rate, rng) for sentence in sentences]
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()) :]
    return lead + " ".join(sentences) + trail


def _with_typos(sentence: str, rate: float, rng: random.Random) -> str:
    """Two neighbouring letters swapped inside some longer words, as a hurried typist does."""

    def slip(match: re.Match[str]) -> str:
        word = match.group(0)
        if rng.random() >= rate:
            return word
        at = rng.randrange(1, len(word) - 2)
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]

    return _LONG_WORD.sub(slip, sentence)


def _with_ender(sentence: str, enders: list[str], rng: random.Random) -> str:
    if _PLAIN_STOP.search(sentence) and rng.random() < ENDER_SHARE:
        return sentence[:-1] + rng.choice(enders)
    return sentence


def _count_for(level: Level, sentences: int, warmth: float, rng: random.Random) -> int:
    expected = DENSITY[level] * sentences * (0.5 + warmth)
    whole = int(expected)
    count = whole + (1 if rng.random() < expected - whole else 0)
    # A high level always shows at least one.
    return max(count, 1) if level is Level.high else count
