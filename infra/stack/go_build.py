"""Servers the stack builds from their Go modules (`go install`), once per version, into the cache."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from infra.stack.process import run_step, say
from settings import Settings


def go_install(
    settings: Settings, service: str, package: str, binary: Path, *, took: str, log_file: Path
) -> None:
    """`go install package@version` into binary's folder unless the binary is there; `took` says how long
    it takes the first time."""
    if binary.exists():
        return
    go_root = settings.cache_dir / "go"
    # Built into a scratch folder and renamed, so an interrupted build never passes for a complete one.
    staging = binary.parent.with_name(binary.parent.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    env = {
        **os.environ,
        "GOPATH": str(go_root),
        "GOCACHE": str(go_root / "cache"),
        "GOBIN": str(staging),
        # Module files writable, so the cache can be deleted like any other folder.
        "GOFLAGS": "-modcacherw",
    }
    run_step(
        service,
        f"building {package} from its Go module ({took})",
        ["go", "install", package],
        log_file=log_file,
        env=env,
    )
    shutil.rmtree(binary.parent, ignore_errors=True)
    staging.rename(binary.parent)
    say(service, f"server binary ready at {binary}")
