"""The demo's options, checked before anything starts (kept light: `deep` imports it for its help)."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = re.compile(r"[A-Za-z0-9_-]{1,40}\.")
SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class DemoError(Exception):
    """The demo cannot start; the message says what to do."""


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    playground_port: int = 7900
    emulator_port: int = 7990
    # Not the API's usual 8080: the demo's API serves the demo's schema beside any real one.
    api_port: int = 7991
    # The interactions receiver: Discord POSTs the bots' interactions there, so a runner crash loses none.
    interactions_port: int = 7992
    # False: interactions come over the bots' gateway sessions, acknowledged by the runner.
    interactions_endpoint: bool = True
    namespace: str = "demo."
    schema: str = "demo"
    clickhouse_database: str = "demo"
    # Simulated members' messages per second, across all channels.
    chat_rate_per_s: float = 0.2
    sinks: bool = True
    # False: no playground page and no live feed reading the topics (benchmarks: load that is not the
    # platform's).
    playground: bool = True
    # Logs and the processors' local data; default: <state dir>/demo.
    work_dir: Path | None = None

    def check(self) -> None:
        """Refuse what would let the demo touch the real platform: its topics or a real schema."""
        if not NAMESPACE.fullmatch(self.namespace):
            raise DemoError(
                f"namespace {self.namespace!r}: the demo needs a topic namespace of its own, like 'demo.' "
                "(letters, digits, '_', '-', ending with '.')"
            )
        if not SCHEMA.fullmatch(self.schema) or self.schema == "public":
            raise DemoError(
                f"schema {self.schema!r}: the demo empties its schema on every start; give it one of its own "
                "(lower-case letters, digits and '_', not 'public')"
            )
        ports = {
            "--port": self.playground_port,
            "--emulator-port": self.emulator_port,
            "--api-port": self.api_port,
        }
        if self.interactions_endpoint:
            ports["--interactions-port"] = self.interactions_port
        if len(set(ports.values())) < len(ports):
            raise DemoError(f"{', '.join(ports)} must differ")
        for option, port in ports.items():
            with socket.socket() as probe:
                # As the servers do: a port held only by connections closing (TIME_WAIT) is free.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((self.host, port))
                except OSError:
                    raise DemoError(f"port {port} is in use: choose another with {option}") from None
