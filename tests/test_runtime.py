"""The runtime helpers shared by the long-running services."""

from __future__ import annotations

import asyncio

from settings.runtime import cancel_until_done


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again() -> None:
    steps: list[str] = []

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            steps.append("went on")  # as a library's wait_for can, on Python 3.11
        await asyncio.sleep(60)
        steps.append("finished")

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_until_done([task], every_s=0.01), 10)
    assert task.cancelled() and steps == ["went on"]


async def test_tasks_already_done_are_left_alone() -> None:
    task = asyncio.create_task(asyncio.sleep(0, result="done"))
    await task
    await cancel_until_done([task])
    assert task.result() == "done"
