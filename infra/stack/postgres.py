"""PostgreSQL from the Debian packages, one cluster under state_dir/postgres run as the postgres OS user."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path
from typing import ClassVar

import asyncpg

from infra.stack.process import run_step
from infra.stack.service import Launch, NativeService
from settings import Settings

PACKAGE_ROOT = Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
INCLUDE_LINE = "include 'deep.conf'\n"

# psql variables come from the environment, so the password never appears on a command line.
ENSURE_ROLE_AND_DATABASE = r"""
\set ON_ERROR_STOP on
\getenv deep_user DEEP_PG_USER
\getenv deep_password DEEP_PG_PASSWORD
\getenv deep_db DEEP_PG_DB
SELECT format('CREATE ROLE %I LOGIN', :'deep_user')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'deep_user') \gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'deep_user', :'deep_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'deep_db', :'deep_user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'deep_db') \gexec
"""


def version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in path.name.split(".") if part.isdigit())


def find_bindir(root: Path = PACKAGE_ROOT) -> Path | None:
    """The newest installed server's bin folder (Debian keeps them per major version)."""
    candidates = [path for path in root.glob("*") if (path / "bin" / "postgres").exists()]
    return max(candidates, key=version_key) / "bin" if candidates else None


def render_postgresql_conf(settings: Settings, socket_dir: Path) -> str:
    return f"""# Rendered from settings by infra/stack/postgres.py on every start.
listen_addresses = '{settings.postgres_host}'
port = {settings.postgres_port}
unix_socket_directories = '{socket_dir}'
max_connections = 200
shared_buffers = 128MB
# A lost last commit on power loss is acceptable for a dev stack; corruption is not, so fsync stays on.
synchronous_commit = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
"""


def render_pg_hba() -> str:
    return f"""# Rendered by infra/stack/postgres.py: superuser over the socket, others by password over TCP.
local all {SUPERUSER} peer
host all all 127.0.0.1/32 scram-sha-256
"""


class Postgres(NativeService):
    name = "postgres"
    # SIGINT is the fast shutdown; SIGTERM ("smart") would wait for every client to disconnect.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    @property
    def address(self) -> str:
        return f"{self.settings.postgres_host}:{self.settings.postgres_port}/{self.settings.postgres_db}"

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [(self.settings.postgres_host, self.settings.postgres_port)]

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir / "run"

    @property
    def os_user(self) -> str | None:
        """PostgreSQL refuses to run as root; as anyone else it runs as the caller."""
        return SUPERUSER if os.geteuid() == 0 else None

    def _bin(self, program: str) -> str:
        bindir = find_bindir()
        if bindir is None:
            raise FileNotFoundError(f"no PostgreSQL server under {PACKAGE_ROOT}")
        return str(bindir / program)

    def missing_packages(self) -> list[str]:
        return ["postgresql"] if find_bindir() is None else []

    def prepare(self) -> None:
        # The postgres user must be able to reach its folders below a root-owned state dir.
        self.dir.chmod(0o755)
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(mode=0o700, exist_ok=True)
            self._own(folder)
        if not (self.data_dir / "PG_VERSION").exists():
            run_step(
                self.name,
                f"initialising a cluster in {self.data_dir}",
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--auth-local=peer",
                    "--auth-host=scram-sha-256",
                    "--no-instructions",
                ],
                log_file=self.install_log,
                cwd=self.dir,
                user=self.os_user,
            )
            with (self.data_dir / "postgresql.conf").open("a") as conf:
                conf.write(INCLUDE_LINE)
        for name, text in (
            ("deep.conf", render_postgresql_conf(self.settings, self.socket_dir)),
            ("pg_hba.conf", render_pg_hba()),
        ):
            (self.data_dir / name).write_text(text)
            self._own(self.data_dir / name)

    def _own(self, path: Path) -> None:
        if self.os_user is not None:
            shutil.chown(path, self.os_user, self.os_user)

    def launch(self) -> Launch:
        return Launch(argv=[self._bin("postgres"), "-D", str(self.data_dir)], cwd=self.dir, user=self.os_user)

    async def ready(self) -> None:
        """Accepting connections; the application role may not exist yet."""
        host, port = self.settings.postgres_host, str(self.settings.postgres_port)
        proc = await asyncio.create_subprocess_exec(self._bin("pg_isready"), "-q", "-h", host, "-p", port)
        if await proc.wait() != 0:
            raise ConnectionError("pg_isready: not accepting connections")

    async def after_start(self) -> None:
        env = {
            **os.environ,
            "DEEP_PG_USER": self.settings.postgres_user,
            "DEEP_PG_PASSWORD": self.settings.postgres_password,
            "DEEP_PG_DB": self.settings.postgres_db,
        }
        await asyncio.to_thread(
            run_step,
            self.name,
            f"ensuring role {self.settings.postgres_user} and database {self.settings.postgres_db}",
            [
                self._bin("psql"),
                "-X",
                "-q",
                "-h",
                str(self.socket_dir),
                "-p",
                str(self.settings.postgres_port),
                "-U",
                SUPERUSER,
                "-d",
                "postgres",
            ],
            log_file=self.install_log,
            cwd=self.dir,
            env=env,
            user=self.os_user,
            stdin=ENSURE_ROLE_AND_DATABASE,
        )

    async def check(self) -> None:
        conn = await asyncpg.connect(self.settings.postgres_dsn, timeout=5)
        try:
            await conn.fetchval("SELECT 1")
        finally:
            await conn.close()
