"""Deterministic ids and randomness: reprocessing an event yields the same ids and the same dice rolls."""

from __future__ import annotations

import hashlib
import random

from models.common import part_text


def stable_id(*parts: object) -> str:
    """A 32-hex-digit id derived from its parts; the same parts always give the same id."""
    joined = "\x1f".join([part_text(part) for part in parts])
    return hashlib.blake2b(joined.encode(), digest_size=16).hexdigest()


def seeded_rng(*parts: object) -> random.Random:
    """A generator seeded by a stable hash of the parts (never Python's salted hash())."""
    return random.Random(int(stable_id(*parts), 16))
