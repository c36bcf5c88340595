"""What a command handler returns: an answer, actions, audit records and the new state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from models.actions import Action
from models.operations import ModerationAudit
from models.processor_state import APPLIED_MEMORY
from processors.emit import Say

StateT = TypeVar("StateT")


@dataclass(frozen=True)
class Outcome(Generic[StateT]):
    say: Say | None
    actions: list[Action] = field(default_factory=list)
    audits: list[ModerationAudit] = field(default_factory=list)
    # None: the state is unchanged and nothing is written.
    state: StateT | None = None


def remember_applied(applied: list[str], event_id: str) -> list[str]:
    """The ids of the latest events applied to a value, so that a redelivered event changes nothing."""
    return [*applied, event_id][-APPLIED_MEMORY:]
