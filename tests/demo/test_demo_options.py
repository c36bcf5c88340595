"""The demo refuses options that would let it touch the real platform, or that cannot work, before it
starts anything."""

from __future__ import annotations

import socket

import pytest

from demo.options import DemoError, DemoOptions
from infra.stack.service import free_ports


def options(**changes: object) -> DemoOptions:
    playground, emulator, api, interactions = free_ports(4)
    defaults: dict[str, object] = {
        "playground_port": playground,
        "emulator_port": emulator,
        "api_port": api,
        "interactions_port": interactions,
    }
    return DemoOptions(**{**defaults, **changes})  # type: ignore[arg-type]


def test_free_ports_and_a_namespace_and_schema_of_its_own_pass() -> None:
    options().check()
    options(namespace="t1234abcd.", schema="test_demo_1").check()


@pytest.mark.parametrize("namespace", ["", "demo", "a.b.", "x" * 41 + "."])
def test_the_real_platforms_topics_are_refused(namespace: str) -> None:
    with pytest.raises(DemoError, match="namespace"):
        options(namespace=namespace).check()


@pytest.mark.parametrize("schema", ["public", "Demo", "demo; drop table owners", ""])
def test_a_schema_that_is_not_the_demos_own_is_refused(schema: str) -> None:
    with pytest.raises(DemoError, match="schema"):
        options(schema=schema).check()


def test_a_port_in_use_is_named_with_its_option() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DemoError, match=f"port {port} is in use: choose another with --emulator-port"):
            options(emulator_port=port).check()


def test_ports_must_differ() -> None:
    with pytest.raises(DemoError, match="must differ"):
        options(api_port=7000, emulator_port=7000).check()


def test_the_interactions_port_is_checked_only_while_the_receiver_runs() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(DemoError, match="choose another with --interactions-port"):
            options(interactions_port=port).check()
        options(interactions_port=port, interactions_endpoint=False).check()
