#!/usr/bin/env bash
# Installs what Custody needs on a fresh Debian machine, and nothing that is already there:
# uv (from PyPI), the locked Python environment (.venv, from uv.lock), and nats-server
# (Debian's package) when none is installed.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$HOME/.local/bin:$PATH"
if ! command -v uv >/dev/null 2>&1; then
    echo "bootstrap: installing uv" >&2
    python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv \
        || { apt-get update -qq && apt-get install -y -qq python3-pip && python3 -m pip install --quiet --break-system-packages uv; }
fi
uv sync --frozen --quiet

if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    echo "bootstrap: installing nats-server from Debian's packages" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nats-server
    else sudo apt-get update -qq && sudo apt-get install -y -qq nats-server; fi
fi

# `make test` also checks docker-compose.yml with the Compose tool that runs without an engine.
if [ "${1:-}" = "--test" ] && ! command -v docker-compose >/dev/null 2>&1; then
    echo "bootstrap: installing docker-compose (to check docker-compose.yml)" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq docker-compose >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq docker-compose >/dev/null; fi
fi

# The web app intake serves at /: its locked npm packages (web/package-lock.json) and its build
# into services/intake/custody_intake/web/static/, redone only when missing or older than web/.
web_build=services/intake/custody_intake/web/static/assets/app.js
web_lock=web/node_modules/.package-lock.json
if [ ! -f "$web_lock" ] || [ web/package-lock.json -nt "$web_lock" ] || [ ! -f "$web_build" ] \
    || [ -n "$(find web/src web/build.mjs web/package.json -newer "$web_build" -print -quit 2>/dev/null)" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "bootstrap: installing Node.js and npm from Debian's packages" >&2
        if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
        else sudo apt-get update -qq && sudo apt-get install -y -qq nodejs npm >/dev/null; fi
    fi
    echo "bootstrap: building the web app (web/)" >&2
    if [ ! -f "$web_lock" ] || [ web/package-lock.json -nt "$web_lock" ]; then
        (cd web && npm ci --silent --no-audit --no-fund)
    fi
    (cd web && npm run --silent build)
fi

# `make test` drives the web app in Debian's headless Chromium (Playwright launches it; it
# downloads no browser of its own).
if [ "${1:-}" = "--test" ] && [ ! -x /usr/bin/chromium ]; then
    echo "bootstrap: installing chromium (for the browser tests)" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi
