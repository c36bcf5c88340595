"""The owner console: the browser app the API serves at /console/ (static files, no build step of its own).
Its chart library comes from npm through infra/bootstrap.sh into static/vendor/."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
