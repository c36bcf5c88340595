"""Waiting in tests: poll a condition until it holds, with a deadline, never a fixed sleep. A fixed sleep is
too short on a busy machine and too long on an idle one; a poll ends as soon as the condition holds."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def wait_until(
    check: Callable[[], Awaitable[T]], what: str, timeout_s: float = ..., every_s: float = ...
) -> T: ...


@overload
async def wait_until(
    check: Callable[[], T], what: str, timeout_s: float = ..., every_s: float = ...
) -> T: ...


async def wait_until(
    check: Callable[[], T | Awaitable[T]], what: str, timeout_s: float = 30.0, every_s: float = 0.05
) -> T:
    """The first truthy value `check` (plain or async) returns, polled every `every_s`; past `timeout_s` the
    test fails saying it waited for `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        value: T = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"waited {timeout_s:g} s for {what}")
        await asyncio.sleep(every_s)
