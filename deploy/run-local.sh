#!/usr/bin/env bash
# `make run`: the whole stack on one machine — NATS with JetStream (started here unless one
# already listens on CUSTODY_NATS_URL), the deploy-time stream set-up, and the three services.
# Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$HOME/.local/bin:$PATH:/usr/sbin"

export CUSTODY_HOME="${CUSTODY_HOME:-$PWD/.custody}"
export CUSTODY_NATS_URL="${CUSTODY_NATS_URL:-nats://127.0.0.1:4222}"
mkdir -p "$CUSTODY_HOME/logs"
INTAKE_PORT="${INTAKE_PORT:-8001}"
EVIDENCE_PORT="${EVIDENCE_PORT:-8002}"
AUDIT_PORT="${AUDIT_PORT:-8003}"
export CUSTODY_INTAKE_URL="http://127.0.0.1:$INTAKE_PORT"
export CUSTODY_EVIDENCE_URL="http://127.0.0.1:$EVIDENCE_PORT"
export CUSTODY_AUDIT_URL="http://127.0.0.1:$AUDIT_PORT"

pids=()
stop() {
    trap - INT TERM EXIT
    echo; echo "stopping…"
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

hostport="${CUSTODY_NATS_URL#nats://}"; hostport="${hostport##*@}"
nats_host="${hostport%%:*}"; nats_port="${hostport##*:}"
if ! (exec 3<>"/dev/tcp/$nats_host/$nats_port") 2>/dev/null; then
    echo "starting nats-server with JetStream on $nats_host:$nats_port (data in $CUSTODY_HOME/nats)"
    nats-server -a "$nats_host" -p "$nats_port" -js -sd "$CUSTODY_HOME/nats" >"$CUSTODY_HOME/logs/nats.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do (exec 3<>"/dev/tcp/$nats_host/$nats_port") 2>/dev/null && break; sleep 0.2; done
fi

custody-provision

start() {  # service port
    "custody-$1" --port "$2" >>"$CUSTODY_HOME/logs/$1.log" 2>&1 &
    pids+=($!)
}
start audit "$AUDIT_PORT"
start evidence "$EVIDENCE_PORT"
start intake "$INTAKE_PORT"

for url in "$CUSTODY_AUDIT_URL" "$CUSTODY_EVIDENCE_URL" "$CUSTODY_INTAKE_URL"; do
    for i in $(seq 150); do
        curl -fsS "$url/readyz" >/dev/null 2>&1 && break
        [ "$i" = 150 ] && { echo "$url did not become ready; see $CUSTODY_HOME/logs/"; exit 1; }
        sleep 0.2
    done
done

cat <<MSG

Custody is running (data and keys in $CUSTODY_HOME, logs in $CUSTODY_HOME/logs):
  intake    $CUSTODY_INTAKE_URL    (tus uploads; OpenAPI at /docs)
  evidence  $CUSTODY_EVIDENCE_URL
  audit     $CUSTODY_AUDIT_URL    (public: /v1/log/checkpoint, /v1/log/key)

In another terminal, from this folder:
  export CUSTODY_HOME=$CUSTODY_HOME PATH=\$PWD/.venv/bin:\$PATH
  export CUSTODY_TOKEN=\$(custody token --sub alice --role investigator --case CASE-1)
  custody submit photo.jpg --case CASE-1

Ctrl-C stops everything.
MSG
wait -n "${pids[@]}" || true
echo "a process exited; see $CUSTODY_HOME/logs/"
