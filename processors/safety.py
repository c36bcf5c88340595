"""Safety both ways: the content-rating gate, the harm classifier for what people ask and what models
answer, and the output filter that checks generated text before anything is sent.

Two kinds of output rules. Platform rules always apply: text that looks like a credential is blocked, text in
a harm category (below) is replaced by that category's safe reply, and mass mentions (@everyone, @here) are
defused. The owner's rules (`AgentConfig.safety`) block or mask their word list. Words match
case-insensitively on whole words after Unicode compatibility folding, so fullwidth or ligature spellings and
zero-width characters do not slip through.

Harm categories, each a documented pattern list matched on folded text (`classify`):
- `minor_sexual`: sexual content involving minors. A sexual term and a minor term within one sentence
  (a minor: child, kid, minor, underage, preteen, an age under 18 ...), or a term that means it alone
  (loli, shota, child porn). "Sex ed for kids" is not sexual content.
- `self_harm`: encouragement of self-harm or suicide ("kill yourself", "kys", "you should hurt yourself") and
  a person's own intent ("I want to kill myself", "end my life", "cutting myself"). Figures of speech
  ("this game is killing me", "dying of laughter", "kill the boss") name no person harming themselves.
A message in a category gets the category's safe reply instead of the model's answer (self-harm: a
supportive reply with a pointer to help), and a model's answer in a category is replaced the same way.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from models.agent import AgentConfig, ContentRating, SafetyConfig
from models.decisions import DecisionReason

# Discord bot tokens (base64 user id . timestamp . hmac) and OpenAI-style secret keys.
_SECRET = re.compile(
    r"[A-Za-z0-9_-]{23,28}\.[A-Za-z0-9_-]{6,7}\.[A-Za-z0-9_-]{27,40}|\bsk-[A-Za-z0-9_-]{20,}"
)
_MASS_MENTION = re.compile(r"@(everyone|here)\b")
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
# Inserted after "@" so Discord shows the text without pinging anyone.
_DEFUSE = "\u200b"


_MINOR_AGE = r"(?:[1-9]|1[0-7])"
# Terms that name sexual content involving minors by themselves.
_MINOR_SEXUAL_ALONE = re.compile(
    r"\b(?:lolis?|lolicon|shota(?:con)?|child\s*porn\w*|cp\s+(?:pics?|videos?|links?)|csam|jailbait|"
    r"pedo(?:phile|philia)?\s+(?:content|pics?|videos?))\b"
)
_MINOR = (
    r"(?:child(?:ren)?|kids?|minors?|underage|under-age|preteens?|pre-teens?|little\s+(?:girls?|boys?)|"
    r"toddlers?|infants?|babies|schoolgirls?|schoolboys?|"
    rf"{_MINOR_AGE}\s*(?:-|\s)?\s*(?:yo|y/o|years?(?:\s*|-)old|yrs?(?:\s*|-)old)|aged\s+{_MINOR_AGE}\b)"
)
# Words with an everyday sense next to a child ("naked" after a bath, "explicit" instructions, "undress" for
# bed, "fucking" as an intensifier) are left out.
_SEXUAL = (
    r"(?:sex|sexual(?:ly)?|sexy|nudes?|nudity|porn\w*|erotic\w*|lewd|nsfw|sexting|sext|intercourse|"
    r"orgasm\w*|genitals?|horny|molest\w*|seduc\w*|rape\w*)"
)
# Both within one sentence (no . ! ? or newline between), in either order; "sex ed" is not sexual content.
_MINOR_SEXUAL_NEAR = re.compile(
    rf"\b{_MINOR}\b[^.!?\n]{{0,80}}?\b(?!sex\s+ed){_SEXUAL}\b"
    rf"|\b(?!sex\s+ed){_SEXUAL}\b[^.!?\n]{{0,80}}?\b{_MINOR}\b"
)
_SELF_HARM = re.compile(
    r"\b(?:kys|kill\s+(?:yo)?urself|kill\s+ur\s*self|hang\s+yourself|"
    r"(?:you\s+should|go|just)\s+(?:die|hurt\s+yourself|cut\s+yourself|end\s+it|end\s+your\s+life|"
    r"jump\s+off\s+a\s+(?:bridge|building|roof))|"
    r"(?:do|commit)\s+suicide|suicidal|"
    r"(?:kill|hurt|harm|cut|cutting|starve|starving)\s+myself|(?:kill|hurt|harm)ing\s+myself|"
    r"end\s+(?:my|your)\s+(?:own\s+)?life|take\s+my\s+(?:own\s+)?life|self[-\s]?harm\w*|"
    r"want\s+to\s+die|wanna\s+die|better\s+off\s+dead|not\s+worth\s+living)\b"
)

# Said instead of sexual content involving minors, asked or generated.
MINOR_SEXUAL_REPLY = "I won't take part in anything sexual involving minors. Let's talk about something else."
# Said when someone speaks of harming themselves or a reply would encourage it: support, where to find help.
SELF_HARM_REPLY = (
    "I'm really sorry you're dealing with this, and you don't have to face it alone. If you might hurt "
    "yourself, please reach out now: call or text 988 (US), 116 123 (UK & Ireland), or find a free, "
    "confidential helpline near you at https://findahelpline.com. Talking to someone you trust helps too."
)
SAFE_REPLIES = {"minor_sexual": MINOR_SEXUAL_REPLY, "self_harm": SELF_HARM_REPLY}


def classify(text: str) -> tuple[str, ...]:
    """The harm categories `text` falls in (keys of SAFE_REPLIES), most severe first; none for ordinary
    chat."""
    folded = _fold(text)[0]
    categories = []
    if _MINOR_SEXUAL_ALONE.search(folded) or _MINOR_SEXUAL_NEAR.search(folded):
        categories.append("minor_sexual")
    if _SELF_HARM.search(folded):
        categories.append("self_harm")
    return tuple(categories)


def safe_reply(categories: tuple[str, ...]) -> str | None:
    """What to say instead of a message or answer in these harm categories; None when it is in none."""
    return SAFE_REPLIES[categories[0]] if categories else None


def rating_gate(agent: AgentConfig, is_dm: bool, age_restricted: bool) -> DecisionReason | None:
    """Why the agent's content rating keeps it silent here, or None when it may speak."""
    rating = agent.character.content_rating if agent.character is not None else ContentRating.general
    if rating is ContentRating.general:
        return None
    if is_dm:
        return DecisionReason.nsfw_dm
    return None if age_restricted else DecisionReason.nsfw_channel_not_age_restricted


@dataclass(frozen=True)
class SafetyVerdict:
    text: str
    blocked: bool
    # Which rules fired ("secret", "blocked_word", a harm category), for logs and analytics; never the
    # matched text.
    reasons: tuple[str, ...] = ()
    # Said instead when blocked: the harm category's safe reply, else none of the model's words.
    replacement: str | None = None


def check_output(text: str, config: SafetyConfig) -> SafetyVerdict:
    """The text to send, masked where the rules say rewrite; blocked=True means send none of it."""
    if _SECRET.search(text):
        return SafetyVerdict(text="", blocked=True, reasons=("secret",))
    harms = classify(text)
    if harms:
        return SafetyVerdict(text="", blocked=True, reasons=harms, replacement=safe_reply(harms))
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
