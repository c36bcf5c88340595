"""stripe-mock, Stripe's own API mock, for billing on a development machine: built once from its Go module,
cached, run on 127.0.0.1 (STRIPE_MOCK_PORT). It checks requests against Stripe's OpenAPI document and
answers with fixtures; it keeps no state and sends no webhooks (tests sign the events Stripe would send)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx

from infra.stack.go_build import go_install
from infra.stack.service import Launch, NativeService
from settings import Settings

STRIPE_MOCK_VERSION = "0.203.0"
STRIPE_MOCK_MODULE = "github.com/stripe/stripe-mock"


def stripe_mock_binary(settings: Settings) -> Path:
    return settings.cache_dir / f"stripe-mock-{STRIPE_MOCK_VERSION}" / "stripe-mock"


def build_stripe_mock(settings: Settings, *, log_file: Path) -> Path:
    binary = stripe_mock_binary(settings)
    go_install(
        settings,
        "stripe-mock",
        f"{STRIPE_MOCK_MODULE}@v{STRIPE_MOCK_VERSION}",
        binary,
        took="about a minute the first time",
        log_file=log_file,
    )
    return binary


def stripe_mock_argv(binary: Path, port: int, https_socket: Path) -> list[str]:
    """HTTP on loopback for the API; its HTTPS listener (always on, by default on every interface) is put
    on a Unix socket nobody uses, so nothing listens beyond 127.0.0.1."""
    return [str(binary), "-http-addr", f"127.0.0.1:{port}", "-https-unix", str(https_socket)]


async def check_stripe_api(api_base: str, secret_key: str) -> None:
    """A real request: list one product."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        response = await client.get(f"{api_base}/v1/products", params={"limit": 1}, auth=(secret_key, ""))
    if response.status_code != 200:
        raise ConnectionError(f"{api_base} answered HTTP {response.status_code}")


class StripeMock(NativeService):
    name = "stripe-mock"

    @property
    def address(self) -> str:
        return self.settings.stripe_mock_url

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", self.settings.stripe_mock_port)]

    def missing_packages(self) -> list[str]:
        if stripe_mock_binary(self.settings).exists():
            return []
        return ["golang-go"] if shutil.which("go") is None else []

    def prepare(self) -> None:
        build_stripe_mock(self.settings, log_file=self.install_log)

    def launch(self) -> Launch:
        https_socket = self.dir / "https.sock"
        # A stripe-mock that was killed leaves its socket file behind, and binding that path again fails.
        https_socket.unlink(missing_ok=True)
        argv = stripe_mock_argv(
            stripe_mock_binary(self.settings), self.settings.stripe_mock_port, https_socket
        )
        return Launch(argv=argv, cwd=self.dir)

    async def check(self) -> None:
        await check_stripe_api(self.address, self.settings.stripe_secret_key)
