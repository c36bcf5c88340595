"""Rule-based auto-moderation: message-rate spam, repeated messages, links, mass mentions, blocked words.

The windowed rules read the author's recent messages in the channel (one window per deployment, user and
channel). After a windowed rule fires its window is cleared, so one burst is punished once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.agent import AutomodAction, AutomodConfig, AutomodRule
from models.discord import DiscordMessage
from models.processor_state import AutomodWindow, WindowEntry

# Rules without a duration of their own time out for the spam rule's duration.
_URL = re.compile(r"(?:https?://|\bwww\.)([^\s/?#:<>]+)", re.IGNORECASE)
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Violation:
    rule: str
    actions: tuple[AutomodAction, ...]
    reason: str


def fingerprint(content: str) -> str:
    normal = _SPACE.sub(" ", content.strip().lower())
    return hashlib.blake2b(normal.encode(), digest_size=8).hexdigest()


def link_domains(content: str) -> list[str]:
    return [match.lower().rstrip(".") for match in _URL.findall(content)]


def domain_allowed(domain: str, allowed: list[str]) -> bool:
    return any(domain == a.lower() or domain.endswith("." + a.lower()) for a in allowed)


def _window_span(config: AutomodConfig) -> timedelta:
    return timedelta(seconds=max(config.spam.window_s, config.repeats.window_s))


def _fires(rule: AutomodRule, broken: bool, name: str, reason: str) -> list[Violation]:
    return [Violation(name, tuple(rule.actions), reason)] if rule.enabled and broken else []


def check_message(
    config: AutomodConfig, message: DiscordMessage, window: AutomodWindow | None, at: datetime
) -> tuple[list[Violation], AutomodWindow | None]:
    """The rules the message breaks and the author's window afterwards (None: unchanged, e.g. the same
    message redelivered)."""
    entries = window.entries if window is not None else []
    if any(entry.message_id == message.id for entry in entries):
        return [], None
    mark = fingerprint(message.content)
    horizon = at - _window_span(config)
    keep = max(config.spam.max_messages, config.repeats.max_repeats) + 1
    entries = [e for e in entries if e.at > horizon][-keep + 1 :]
    entries.append(WindowEntry(message_id=message.id, at=at, fingerprint=mark))

    spam, repeats = config.spam, config.repeats
    recent = sum(1 for e in entries if e.at > at - timedelta(seconds=spam.window_s))
    copies = sum(
        1 for e in entries if e.fingerprint == mark and e.at > at - timedelta(seconds=repeats.window_s)
    )
    foreign = [d for d in link_domains(message.content) if not domain_allowed(d, config.links.allow_domains)]
    mentioned = len({user.id for user in message.mentions}) + int(message.mention_everyone)
    words = config.blocked_words.words
    blocked = [w for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", message.content, re.IGNORECASE)]

    violations = [
        *_fires(
            spam,
            recent > spam.max_messages,
            "spam",
            f"more than {spam.max_messages} messages in {spam.window_s}s",
        ),
        *_fires(
            repeats,
            bool(message.content.strip()) and copies >= repeats.max_repeats,
            "repeats",
            f"the same message {copies} times",
        ),
        *_fires(config.links, bool(foreign), "links", f"link to {foreign[0] if foreign else ''}"),
        *_fires(
            config.mentions, mentioned > config.mentions.max_mentions, "mentions", f"{mentioned} mentions"
        ),
        *_fires(config.blocked_words, bool(blocked), "blocked_words", "blocked word"),
    ]
    rules = {v.rule for v in violations}
    if "spam" in rules:
        entries = []
    elif "repeats" in rules:
        entries = [e for e in entries if e.fingerprint != mark]
    return violations, AutomodWindow(entries=entries)


def combined_actions(violations: list[Violation]) -> list[AutomodAction]:
    """Each action once, in a fixed order: delete, then warn, then timeout."""
    wanted = {action for v in violations for action in v.actions}
    return [action for action in AutomodAction if action in wanted]
