"""Discord permission bits and a member's guild-level permissions."""

from __future__ import annotations

from collections.abc import Iterable

from models.permissions import ADMINISTRATOR, ALL_PERMISSIONS
from models.processor_state import GuildDirectory


def granted(permissions: int, needed: int) -> bool:
    """Administrator implies every permission."""
    return bool(permissions & ADMINISTRATOR) or permissions & needed == needed


def parse_permissions(raw: str | int | None) -> int:
    """Discord sends permission bitfields as decimal strings; anything unreadable grants nothing."""
    if raw is None:
        return 0
    try:
        return max(int(raw), 0)
    except ValueError:
        return 0


def top_role_position(directory: GuildDirectory, role_ids: Iterable[str]) -> int:
    """The position of a member's highest role; 0, the position of @everyone, for a member without roles."""
    return max((directory.role_positions.get(role_id, 0) for role_id in role_ids), default=0)


def member_permissions(directory: GuildDirectory | None, user_id: str, role_ids: Iterable[str]) -> int:
    """Guild-level permissions as Discord computes them before channel overwrites: the owner has all, everyone
    else the union of @everyone (the role whose id is the guild's) and their roles."""
    if directory is None:
        return 0
    if directory.owner_id == user_id:
        return ALL_PERMISSIONS
    roles = directory.role_permissions
    permissions = roles.get(directory.guild_id, 0)
    for role_id in role_ids:
        permissions |= roles.get(role_id, 0)
    return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions
