"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from deep.settings import Settings, get_settings
from infra import stack


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()


@pytest.fixture(scope="session")
async def stack_up(settings: Settings) -> Settings:
    """The native stack, started if needed (`make test` has normally started it already)."""
    results = await stack.up(settings)
    failed = [f"{r.name}: {r.detail}" for r in results if r.outcome is stack.Outcome.FAILED]
    if failed:
        pytest.fail("stack did not come up:\n" + "\n".join(failed))
    return settings
