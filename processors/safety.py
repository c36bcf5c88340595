"""The output safety filter: generated text is checked before anything is sent.

Two kinds of rules. Platform rules always apply: text that looks like a credential is blocked, and mass
mentions (@everyone, @here) are defused. The owner's rules (`AgentConfig.safety`) block or mask their
word list. Words match case-insensitively on whole words after Unicode compatibility folding, so
fullwidth or ligature spellings and zero-width characters do not slip through.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from models.agent import SafetyConfig

# Discord bot tokens (base64 user id . timestamp . hmac) and OpenAI-style secret keys.
_SECRET = re.compile(
    r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}|\bsk-[A-Za-z0-9_-]{20,}"
)
_MASS_MENTION = re.compile(r"@(everyone|here)\b")
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
# Inserted after "@" so Discord shows the text without pinging anyone.
_DEFUSE = "\u200b"


@dataclass(frozen=True)
class SafetyVerdict:
    text: str
    blocked: bool
    # Which rules fired ("secret", "blocked_word"), for logs and analytics; never the matched text.
    reasons: tuple[str, ...] = ()


def check_output(text: str, config: SafetyConfig) -> SafetyVerdict:
    """The text to send, masked where the rules say rewrite; blocked=True means send none of it."""
    if _SECRET.search(text):
        return SafetyVerdict(text="", blocked=True, reasons=("secret",))
    reasons: list[str] = []
    if config.enabled and config.blocked_words:
        spans = blocked_spans(text, config.blocked_words)
        if spans:
            if config.mode == "block":
                return SafetyVerdict(text="", blocked=True, reasons=("blocked_word",))
            text = _mask(text, spans)
            reasons.append("blocked_word")
    defused = _MASS_MENTION.sub(lambda m: "@" + _DEFUSE + m.group(1), text)
    if defused != text:
        reasons.append("mass_mention")
    return SafetyVerdict(text=defused, blocked=False, reasons=tuple(reasons))


def blocked_spans(text: str, words: list[str]) -> list[tuple[int, int]]:
    """Spans of `text` (original indices) where a blocked word or phrase occurs as a whole word."""
    folded, origin = _fold(text)
    pattern = _word_pattern(tuple(words))
    spans = []
    for match in pattern.finditer(folded):
        start, end = match.span()
        spans.append((origin[start], origin[end - 1] + 1))
    return spans


@lru_cache(maxsize=1024)
def _word_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    folded = sorted({_fold(word)[0] for word in words if word.strip()}, key=len, reverse=True)
    alternatives = "|".join(re.escape(word) for word in folded)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")


def _fold(text: str) -> tuple[str, list[int]]:
    """NFKC-casefolded text without zero-width characters, and for each of its characters the index of the
    original character it came from."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if char in _ZERO_WIDTH:
            continue
        for folded in unicodedata.normalize("NFKC", char).casefold():
            out.append(folded)
            origin.append(index)
    return "".join(out), origin


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        for index in range(start, end):
            if not chars[index].isspace():
                chars[index] = "*"
    return "".join(chars)
