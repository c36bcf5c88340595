"""The `deep` front door: its groups are wired and `deep schema` writes every model's schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deep.cli import app
from models.schemas import SCHEMA_MODELS


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
