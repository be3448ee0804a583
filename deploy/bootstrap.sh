#!/usr/bin/env bash
# Installs what Custody needs on a fresh Debian machine, and nothing that is already there:
# uv (from PyPI), the locked Python environment (.venv, from uv.lock), nats-server (Debian's
# package) and the web app's build. With --test, also what the tests use: docker-compose (to
# check docker-compose.yml), Debian's chromium (the browser tests), poppler (reading the export's
# PDF report) and the zip readers a court package is checked with besides Python's.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"

apt_updated=0
apt_install() {  # Debian packages, one `apt-get update` per run at most
    local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    if [ "$apt_updated" = 0 ]; then $sudo apt-get update -qq; apt_updated=1; fi
    echo "bootstrap: installing $* from Debian's packages" >&2
    $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v uv >/dev/null 2>&1; then
    echo "bootstrap: installing uv" >&2
    python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv \
        || { apt_install python3-pip && python3 -m pip install --quiet --break-system-packages uv; }
fi
# Bytecode compiled once here: otherwise every command and service compiles what it imports
# whenever bytecode is not written back (read-only installs, PYTHONDONTWRITEBYTECODE).
uv sync --frozen --quiet --compile-bytecode

command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || apt_install nats-server

# The web app intake serves at /: its locked npm packages (web/package-lock.json) and its build
# into services/intake/custody_intake/web/static/, redone only when missing or older than web/.
web_build=services/intake/custody_intake/web/static/assets/app.js
web_lock=web/node_modules/.package-lock.json
if [ ! -f "$web_lock" ] || [ web/package-lock.json -nt "$web_lock" ] || [ ! -f "$web_build" ] \
    || [ -n "$(find web/src web/build.mjs web/package.json -newer "$web_build" -print -quit 2>/dev/null)" ]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    echo "bootstrap: building the web app (web/)" >&2
    if [ ! -f "$web_lock" ] || [ web/package-lock.json -nt "$web_lock" ]; then
        (cd web && npm ci --silent --no-audit --no-fund)
    fi
    (cd web && npm run --silent build)
fi

if [ "${1:-}" = "--test" ]; then
    command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
    [ -x /usr/bin/chromium ] || apt_install chromium
    command -v pdftoppm >/dev/null 2>&1 || apt_install poppler-utils
    command -v unzip >/dev/null 2>&1 || apt_install unzip
    command -v 7zz >/dev/null 2>&1 || apt_install 7zip
    command -v bsdtar >/dev/null 2>&1 || apt_install libarchive-tools
    command -v jar >/dev/null 2>&1 || apt_install default-jdk-headless
fi
