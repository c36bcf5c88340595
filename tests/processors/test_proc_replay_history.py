"""Replay of a history recorded with an earlier version of the processors (replay_history.py): this version
decides and outputs exactly what that one did, record by record."""

from __future__ import annotations

import asyncio

from tests.processors.replay_history import Replay, comparable, read_history


def test_a_recorded_history_replays_to_identical_outputs() -> None:
    history = read_history()
    assert sum(len(outputs.get("decisions", [])) for _, outputs in history) > 100
    with asyncio.Runner() as runner:
        replay = Replay(runner)
        for position, ((source, key, record), recorded) in enumerate(history):
            assert comparable(replay.feed(source, key, record)) == recorded, f"record {position}"
