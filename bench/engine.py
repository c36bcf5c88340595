"""Benchmark of the decision engine alone, in this process: what a processors worker spends deciding one
chatter event besides Kafka and Faust, on Mode 1 agents and on the Mode 1/3/5 mix of `bench.pipeline`'s
processors stage (its 24 guilds, the same events).

Figures (final JSON line), for each of `mode1` and `mix`:
- cpu_us_per_event: CPU time an event, the best of --repeats passes over the same --events with a fresh
  engine each time (the collector settled as the services settle it);
- instructions_per_event (with --instructions, where valgrind is installed): instructions an event counted
  by callgrind, the difference between a run over INSTRUCTION_EVENTS[1] events and one over
  INSTRUCTION_EVENTS[0], divided by the difference in events. Unlike CPU time, it does not move with the
  machine's load: two versions of the engine compare on it within a fraction of a percent.

The CPU time of one /give in a guild where n members hold coins (`give_us_at_<n>`: the engine's handling
and the changed values encoded as their changelog records) and those records' bytes
(`give_changelog_bytes_at_<n>`): what the guild's economy writes for each command as it grows.

And the CPU time of storing a relationship with n users tracked (the default max_tracked_users, and the most
it may be), the tracked users' value encoded as its changelog record when written (a worker's batch sends it
once): `track_us_at_<n>` for a user tracked already, which every message addressed to an AI agent costs,
and `newcomer_us_at_<n>` for someone met for the first time, whom the least recently met makes room for.

Run: .venv/bin/python -m bench.engine [--events 10000] [--repeats 5] [--instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import fields
from datetime import UTC, datetime, timedelta

from bench.chatter import MIX, chatter, slash_envelope, stage_world
from models.agent import MAX_TRACKED_USERS, AgentConfig, AgentMode
from models.deployments import RoutingRecord
from models.events import EventEnvelope
from models.processor_state import TrackedUsers
from models.state import Relationship
from models.table_keys import RelationshipKey, TrackedKey
from models.tools import COMMANDS_BY_TOOL, Tool
from processors.engine import Engine, Tables
from processors.table_catalog import TABLE_MODELS
from processors.tables import ModelCodec
from settings.runtime import settle_garbage_collector

GUILDS = 24
MODES = {"mode1": (AgentMode.bare,), "mix": MIX}
INSTRUCTION_EVENTS = (200, 1200)
TRACKED = (1000, MAX_TRACKED_USERS)
GIVE_MEMBERS = (1000, 10_000)
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def engine_run(mode: str, count: int) -> tuple[Engine, list[EventEnvelope]]:
    """A fresh engine with the mode's world deployed, and the world's first `count` chatter events."""
    world = stage_world(GUILDS, MODES[mode])
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    for record, *_ in world:
        engine.deploy(record)
    return engine, [chatter(world, n) for n in range(count)]


def cpu_us_per_event(mode: str, count: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        engine, events = engine_run(mode, count)
        settle_garbage_collector()
        began = time.process_time()
        for event in events:
            engine.handle_event(event)
        best = min(best, time.process_time() - began)
    return round(best * 1e6 / count, 1)


def tracking_us(tracked: int, newcomers: bool, repeats: int = 200) -> float:
    """Storing a relationship with `tracked` users tracked, at the limit: met before, or newcomers."""
    [(record, _, _, _)] = stage_world(1, (AgentMode.human_like,))
    [deployed] = record.deployments
    settings = deployed.agent.behavior.relationships.model_copy(update={"max_tracked_users": tracked})
    behavior = deployed.agent.behavior.model_copy(update={"relationships": settings})
    deployed = deployed.model_copy(update={"agent": deployed.agent.model_copy(update={"behavior": behavior})})
    deployment_id = deployed.deployment.deployment_id
    tables = Tables(*({} for _ in fields(Tables)))
    engine = Engine(tables)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    users = [str(9 * 10**17 + n) for n in range(tracked)]
    for n, user in enumerate(users):
        met = start + timedelta(seconds=n)
        key = RelationshipKey(record.key, deployment_id, user).encode()
        tables.relationships[key] = Relationship(user_id=user, last_interaction=met, last_met=met)
    tracked_key = TrackedKey(record.key, deployment_id).encode()
    tables.tracked[tracked_key] = TrackedUsers(users=users)
    codec = ModelCodec(TrackedUsers)
    at = start + timedelta(seconds=tracked)

    def store(n: int) -> None:
        user = str(8 * 10**17 + n) if newcomers else users[n % tracked]
        before = tables.tracked[tracked_key]
        engine.store_relationship(record.key, deployed, Relationship(user_id=user, last_met=at), at)
        if tables.tracked[tracked_key] is not before:
            codec.dumps(tables.tracked[tracked_key])

    # Once before timing: the engine ranks the tracked users when it first has to forget one.
    store(repeats)
    began = time.process_time()
    for n in range(repeats):
        store(n)
        at += timedelta(seconds=1)
    return round((time.process_time() - began) * 1e6 / repeats, 1)


def give_cost(members: int, gives: int = 50) -> tuple[float, int]:
    """CPU µs of one /give, with the values it changed encoded as changelog records, and their bytes, in a
    guild where `members` members claimed /daily (through the engine: whatever layout the wallets have)."""
    [(record, bot_id, channel_id, _)] = stage_world(1, (AgentMode.bare,))
    [deployed] = record.deployments
    economy = {"enabled_tools": [Tool.economy], "enabled_commands": list(COMMANDS_BY_TOOL[Tool.economy])}
    agent = AgentConfig.model_validate({**deployed.agent.model_dump(), **economy})
    record = RoutingRecord(
        key=record.key, deployments=[deployed.model_copy(update={"agent": agent})], version=record.version
    )
    engine = Engine(Tables(*({} for _ in fields(Tables))))
    engine.deploy(record)
    users = [str(9 * 10**17 + n) for n in range(members + 1)]
    guild = (record, bot_id, channel_id, users)
    for n, user in enumerate(users):
        engine.handle_event(slash_envelope(n, guild, user, "daily"))
    tables = {name: getattr(engine.tables, name) for name in TABLE_MODELS if hasattr(engine.tables, name)}
    codecs = {name: ModelCodec(TABLE_MODELS[name]) for name in tables}
    spent, written = 0.0, 0
    for n in range(gives):
        held = {name: dict(table) for name, table in tables.items()}
        give = slash_envelope(len(users) + n, guild, users[n], "give", {"user": users[n + 1], "amount": "1"})
        began = time.process_time()
        engine.handle_event(give)
        spent += time.process_time() - began
        changed = [
            (name, value)
            for name, table in tables.items()
            for key, value in table.items()
            if held[name].get(key) is not value
        ]
        began = time.process_time()
        written += sum(len(codecs[name].dumps(value)) for name, value in changed)
        spent += time.process_time() - began
    return round(spent * 1e6 / gives, 1), written // gives


def instructions(mode: str, count: int) -> int:
    """Instructions of a whole run of this module over `count` events, counted by callgrind."""
    callgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    run = subprocess.run(
        [*callgrind, sys.executable, "-m", "bench.engine", "--run-once", mode, "--events", str(count)],
        env={**os.environ, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    collected = _COLLECTED.search(run.stderr)
    if collected is None:
        raise RuntimeError(f"callgrind printed no instruction count:\n{run.stderr[-2000:]}")
    return int(collected.group(1))


def instructions_per_event(mode: str) -> int:
    short, long = INSTRUCTION_EVENTS
    return round((instructions(mode, long) - instructions(mode, short)) / (long - short))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind too")
    # One pass and nothing else: what callgrind runs.
    parser.add_argument("--run-once", choices=sorted(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_once is not None:
        engine, events = engine_run(args.run_once, args.events)
        settle_garbage_collector()
        for event in events:
            engine.handle_event(event)
        return
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions: valgrind is not installed")
    figures: dict[str, object] = {"bench": "engine", "events": args.events, "repeats": args.repeats}
    for mode in MODES:
        figures[f"{mode}_cpu_us_per_event"] = cpu_us_per_event(mode, args.events, args.repeats)
        if args.instructions:
            figures[f"{mode}_instructions_per_event"] = instructions_per_event(mode)
    for members in GIVE_MEMBERS:
        figures[f"give_us_at_{members}"], figures[f"give_changelog_bytes_at_{members}"] = give_cost(members)
    for tracked in TRACKED:
        figures[f"track_us_at_{tracked}"] = tracking_us(tracked, newcomers=False)
        figures[f"newcomer_us_at_{tracked}"] = tracking_us(tracked, newcomers=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
