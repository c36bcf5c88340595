#!/usr/bin/env bash
# Make this clone runnable: Python 3.11 from apt when missing, then .venv with the project installed.
# Quick when nothing changed: pip runs only when pyproject.toml differs from the last successful install.
# The services' own packages (Java, Maven, PostgreSQL, Redis) are installed by `deep stack up` on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.pyproject.sha256"

missing=()
command -v python3.11 >/dev/null || missing+=(python3.11)
# Debian splits ensurepip (needed by `python -m venv`) into its own package.
if ! command -v python3.11 >/dev/null || ! python3.11 -c 'import ensurepip' 2>/dev/null; then
    missing+=(python3.11-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "bootstrap: missing ${missing[*]}: install them with apt-get, or run as root" >&2
        exit 1
    fi
    echo "bootstrap: apt-get install ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV with python3.11"
    python3.11 -m venv "$VENV"
fi

wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]; then
    echo "bootstrap: pyproject.toml changed since the last install: pip install -e '.[dev]'"
    "$VENV/bin/pip" install -q -e '.[dev]'
    echo "$wanted" > "$STAMP"
else
    echo "bootstrap: $VENV is up to date with pyproject.toml"
fi
