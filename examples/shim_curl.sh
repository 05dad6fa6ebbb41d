#!/usr/bin/env bash
# The HTTP shim (`celestial-ssh serve`) driven with nothing but curl, against the local lab.
#
#     make lab                      # once: lab-a, lab-b and lab-c on loopback
#     bash examples/shim_curl.sh
#
# It starts a shim on 127.0.0.1:8089 (PORT=... to change) with a fresh random token, starts
# a memtick workload named shim-demo on lab-a, shows /health, a call refused for want of the
# token, then moves shim-demo to lab-b with one POST /start_migration, and removes it again.
# The shim is stopped by its PID when the script exits, whatever happens.
set -euo pipefail

cd "$(dirname "$0")/.."
SSH_CONFIG=.lab/ssh_config
PORT=${PORT:-8089}
BASE=http://127.0.0.1:$PORT
NAME=shim-demo
IMAGE=localhost/memtick:latest
if [ -x .venv/bin/celestial-ssh ]; then CELESTIAL=.venv/bin/celestial-ssh; else CELESTIAL=celestial-ssh; fi

[ -f "$SSH_CONFIG" ] || { echo "no $SSH_CONFIG: bring the lab up with 'make lab'" >&2; exit 1; }
lab() { ssh -F "$SSH_CONFIG" "$@"; }
step() { printf '\n== %s\n' "$*"; }

# shim-demo is this script's own container: never touch one that was there before
for host in lab-a lab-b; do
    if lab "$host" podman container exists "$NAME"; then
        echo "$host already has a container $NAME; remove it first:" >&2
        echo "  ssh -F $SSH_CONFIG $host podman rm -f $NAME" >&2
        exit 1
    fi
done
if curl -s -o /dev/null "$BASE/health"; then
    echo "something already answers on $BASE; choose another PORT=..." >&2
    exit 1
fi

# 1. A random token in a private temporary file: the shim reads it with --token-file.
workdir=$(mktemp -d)
TOKEN_FILE=$workdir/token
TOKEN=$(openssl rand -hex 16)
(umask 077 && printf '%s\n' "$TOKEN" > "$TOKEN_FILE")

server_pid=""
created=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ -n "$created" ]; then  # only if this script made it (e.g. it failed half-way)
        for host in lab-a lab-b; do
            lab "$host" podman rm --force --time 0 "$NAME" >/dev/null 2>&1 || true
        done
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

# 2. The shim, in the background; it migrates over SSH with the lab's ssh_config.
step "starting: celestial-ssh serve --port $PORT --token-file $TOKEN_FILE --ssh-config $SSH_CONFIG"
"$CELESTIAL" serve --port "$PORT" --token-file "$TOKEN_FILE" --ssh-config "$SSH_CONFIG" \
    2>"$workdir/server.log" &
server_pid=$!

# 3. Wait until it answers /health (at most 30 s).
for _ in $(seq 150); do
    if curl -s -o /dev/null "$BASE/health"; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the shim exited:" >&2
        cat "$workdir/server.log" >&2
        exit 1
    fi
    sleep 0.2
done
curl -s -o /dev/null "$BASE/health" || { echo "the shim did not answer /health" >&2; exit 1; }

# 4. A workload on lab-a: memtick keeps 16 MB of memory and prints a tick every 100 ms.
step "starting $NAME on lab-a"
created=yes
lab lab-a podman run -d --name "$NAME" "$IMAGE" 16 100 10
sleep 2
lab lab-a podman logs --tail 1 "$NAME"

# 5. /health needs no token.
step "curl -s $BASE/health"
curl -s "$BASE/health"
echo

# 6. Everything else does: without it, 401 and nothing happens.
step "the same migration without the token"
curl -s -w ' (HTTP %{http_code})\n' -H 'Content-Type: application/json' \
    -d "{\"source\":\"lab-a\",\"target\":\"lab-b\",\"container\":\"$NAME\"}" \
    "$BASE/start_migration"

# 7. With the token: the answer (when the migration is over) is the `migrate --json` report.
step "curl -s -H 'Authorization: Bearer \$TOKEN' ... $BASE/start_migration"
report=$(curl -s -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d "{\"source\":\"lab-a\",\"target\":\"lab-b\",\"container\":\"$NAME\"}" \
    "$BASE/start_migration")
echo "$report"
outcome=$(printf '%s' "$report" | python3 -c 'import json, sys; print(json.load(sys.stdin).get("outcome"))')
if [ "$outcome" != migrated ]; then
    echo "the migration did not succeed (outcome: $outcome)" >&2
    exit 1
fi

step "$NAME now runs on lab-b, its counter going on from where it stopped"
sleep 1
lab lab-b "podman ps --filter name=^$NAME\$ --format '{{.Names}}: {{.Status}}'"
lab lab-b podman logs --tail 2 "$NAME"
if lab lab-a podman container exists "$NAME"; then
    echo "lab-a still has $NAME" >&2
    exit 1
fi

# 8. Remove the demo container from lab-b.
step "removing $NAME from lab-b"
lab lab-b podman rm --force --time 0 "$NAME"
created=""
echo "done"
