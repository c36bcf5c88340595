"""Mention parsing as Discord does it when it builds a message's mentions arrays."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_USER = re.compile(r"<@!?(\d+)>")
_ROLE = re.compile(r"<@&(\d+)>")
_EVERYONE = re.compile(r"@(everyone|here)\b")


@dataclass(frozen=True, slots=True)
class Mentions:
    user_ids: tuple[str, ...]
    role_ids: tuple[str, ...]
    everyone: bool


def _unique(values: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def parse_mentions(content: str) -> Mentions:
    """User, role and @everyone/@here mentions in the order written, each once."""
    return Mentions(
        user_ids=_unique(_USER.findall(content)),
        role_ids=_unique(_ROLE.findall(content)),
        everyone=_EVERYONE.search(content) is not None,
    )


def resolve_mentions(
    content: str,
    allowed: dict[str, Any] | None,
    replied_user_id: str | None,
    known_user_ids: frozenset[str] | set[str] | dict[str, Any],
) -> Mentions:
    """Apply allowed_mentions and the reply rule to what the content mentions.

    Without an allowed_mentions object everything parses and a reply mentions the replied-to author;
    with one, only the listed kinds/ids count and replied_user defaults to false.
    """
    parsed = parse_mentions(content)
    users = [u for u in parsed.user_ids if u in known_user_ids]
    roles = list(parsed.role_ids)
    everyone = parsed.everyone
    replied = replied_user_id is not None
    if allowed is not None:
        parse = set(allowed.get("parse") or ())
        explicit_users = {str(u) for u in allowed.get("users") or ()}
        explicit_roles = {str(r) for r in allowed.get("roles") or ()}
        users = [u for u in users if "users" in parse or u in explicit_users]
        roles = [r for r in roles if "roles" in parse or r in explicit_roles]
        everyone = everyone and "everyone" in parse
        replied = replied and bool(allowed.get("replied_user", False))
    if replied and replied_user_id is not None and replied_user_id not in users:
        users.append(replied_user_id)
    return Mentions(tuple(users), tuple(roles), everyone)
