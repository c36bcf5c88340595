#!/usr/bin/env bash
# Make this clone runnable: Debian's Python 3.11 (from apt when missing), then .venv with the project installed.
# Quick when nothing changed: pip runs only when pyproject.toml differs from the last successful install.
# The services' own packages (Java, Maven, PostgreSQL, Redis) are installed by `deep stack up` on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.pyproject.sha256"
# Debian's own interpreter, whatever comes first in PATH: Debian builds it with profile-guided and link-time
# optimization and links it statically. A Python built from source without those (pyenv's default: no
# --enable-optimizations, a shared libpython) spends more CPU on the same code: the decision engine 15-32 %
# more an event, a processors worker 9-14 % more.
PYTHON=/usr/bin/python3.11

missing=()
[ -x "$PYTHON" ] || missing+=(python3.11)
# Debian splits ensurepip (needed by `python -m venv`) into its own package.
if [ ! -x "$PYTHON" ] || ! "$PYTHON" -c 'import ensurepip' 2>/dev/null; then
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

# A venv made by another interpreter is made again (its packages reinstall from pip's cache).
if [ -x "$VENV/bin/python" ] && [ "$(readlink -f "$VENV/bin/python")" != "$(readlink -f "$PYTHON")" ]; then
    echo "bootstrap: $VENV runs $(readlink -f "$VENV/bin/python"), not $PYTHON: making it again"
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi

wanted="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]; then
    echo "bootstrap: pyproject.toml changed since the last install: pip install -e '.[dev]'"
    "$VENV/bin/pip" install -q -e '.[dev]'
    echo "$wanted" > "$STAMP"
else
    echo "bootstrap: $VENV is up to date with pyproject.toml"
fi

# The owner console's browser libraries (uPlot) from npm, copied into the folder the API serves: nothing is
# fetched by a browser from anywhere else. Skipped when package-lock.json is unchanged since the last copy.
CONSOLE=api/console
CONSOLE_STAMP="$CONSOLE/static/vendor/.package-lock.sha256"
console_wanted="$(sha256sum "$CONSOLE/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$CONSOLE_STAMP" 2>/dev/null)" != "$console_wanted" ]; then
    if ! command -v npm >/dev/null; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "bootstrap: npm missing (for the console's chart library): install it with apt-get, or run as root" >&2
            exit 1
        fi
        echo "bootstrap: apt-get install npm"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends npm
    fi
    echo "bootstrap: $CONSOLE/package-lock.json changed since the last copy: npm ci"
    npm ci --prefix "$CONSOLE" --ignore-scripts --no-audit --no-fund --loglevel=error
    mkdir -p "$CONSOLE/static/vendor"
    cp "$CONSOLE/node_modules/uplot/dist/uPlot.esm.js" "$CONSOLE/node_modules/uplot/dist/uPlot.min.css" \
        "$CONSOLE/static/vendor/"
    echo "$console_wanted" > "$CONSOLE_STAMP"
else
    echo "bootstrap: the console's libraries are up to date with $CONSOLE/package-lock.json"
fi
