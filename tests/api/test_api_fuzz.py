"""A bounded schemathesis run over the whole OpenAPI document: no request makes the API fail (5xx)."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from api.app import create_app
from api.ratelimit import RateLimit
from emulator.discord.server import DiscordEmulator
from settings import Settings
from tests.api.conftest import auth

pytestmark = pytest.mark.stack

EXAMPLES = 10


@pytest.fixture
def threaded_emulator() -> Iterator[str]:
    """The emulator on a loop of its own: this test is synchronous, so the suite's loop is idle meanwhile."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emulator = DiscordEmulator()
    asyncio.run_coroutine_threadsafe(emulator.start(), loop).result(30)
    yield emulator.api_url
    asyncio.run_coroutine_threadsafe(emulator.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


def test_no_request_makes_the_api_fail(
    api_settings: Settings, pg_dsn: str, admin_key: str, threaded_emulator: str
) -> None:
    fuzz_settings = dataclasses.replace(api_settings, discord_api_base=threaded_emulator)
    app = create_app(
        fuzz_settings, postgres_dsn=pg_dsn, background=False, rate_limit=RateLimit(1_000_000, 60)
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = auth(admin_key)  # an operator reaches every route, so every route is exercised
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) > 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
            )
            def call(case: Any) -> None:
                response = case.call(headers=headers)
                case.validate_response(response, checks=[not_a_server_error])

            try:
                call()
            except Unsatisfiable:
                # Nothing to make invalid: the operation takes no input.
                assert mode is GenerationMode.NEGATIVE
