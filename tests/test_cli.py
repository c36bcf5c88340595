"""The `deep` front door: its groups are wired, each part loaded only when its command runs, and `deep schema`
writes every model's schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deep.cli import PARTS, app
from models.schemas import SCHEMA_MODELS


def test_every_part_mounts_with_its_help() -> None:
    runner = CliRunner()
    listing = runner.invoke(app, ["--help"])
    for name, (_, _, help_text) in PARTS.items():
        assert name in listing.output
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        assert help_text.split()[0] in result.output


def test_a_command_loads_its_part_alone() -> None:
    # In a fresh interpreter: this one has imported every part already.
    probe = (
        "import sys; from deep.cli import app\n"
        "try: app(['emulator', '--help'])\n"
        "except SystemExit: pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'api', 'gateways', 'memory', 'processors'}))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_schema_writes_every_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {path.stem: json.loads(path.read_text()) for path in tmp_path.glob("*.json")}
    assert set(written) == set(SCHEMA_MODELS)
    agent = written["AgentConfig"]
    assert {"name", "mode", "character", "ai_config", "behavior"} <= set(agent["properties"])
    # The action union is one schema with every kind.
    assert len(written["Action"]["oneOf"]) >= 15


@pytest.mark.stack
def test_topics_apply_reports_nothing_changed_on_a_matching_broker(stack_up: object) -> None:
    runner = CliRunner()
    runner.invoke(app, ["topics", "apply"])
    result = runner.invoke(app, ["topics", "apply"])
    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output
