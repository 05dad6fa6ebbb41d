#!/usr/bin/env bash
# `make demo`: start a stateful workload on lab-a and live-migrate it to lab-b.
# memtick holds MEMORY_MB of random memory and prints a rising counter with the checksum of
# that memory; after the move the same counter goes on, on lab-b, with the same checksum.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
LAB=$REPO/.lab
CLI=$REPO/.venv/bin/celestial-ssh
NAME=${DEMO_NAME:-celestial-demo}
MEMORY_MB=${DEMO_MEMORY_MB:-256}
ssh_lab() { ssh -F "$LAB/ssh_config" "$@"; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting the demo workload '$NAME' ($MEMORY_MB MB of random memory) on lab-a"
for host in lab-a lab-b; do
	ssh_lab "$host" podman rm --force --time 0 "$NAME" >/dev/null 2>&1 || true
done
# lab-b starts without the image, so the migration shows image staging too
ssh_lab lab-b podman image rm localhost/memtick:latest >/dev/null 2>&1 || true
ssh_lab lab-a podman run --detach --name "$NAME" localhost/memtick:latest "$MEMORY_MB" 100 10 >/dev/null
sleep 3
ssh_lab lab-a podman logs --tail 3 "$NAME"

say "Live-migrating it: celestial-ssh migrate -F .lab/ssh_config lab-a lab-b $NAME"
"$CLI" migrate -F "$LAB/ssh_config" lab-a lab-b "$NAME"

sleep 2
say "On lab-b the counter goes on (same checksum: the memory moved intact)"
ssh_lab lab-b podman logs "$NAME" | awk '
	/^tick/ { if (last != "" && $3 - last > gap) { gap = $3 - last; before = prev; after = $0 }
	          last = $3; prev = $0 }
	END { print "last line before the freeze: " before; print "first line after restore:   " after;
	      printf "downtime seen by the workload: %.2f s\n", gap / 1000 }'
ssh_lab lab-b podman logs --tail 3 "$NAME"
say "podman ps on lab-a, then lab-b"
for host in lab-a lab-b; do
	found=$(ssh_lab "$host" "podman ps --all --filter name=$NAME --format '{{.Names}}: {{.Status}}'")
	echo "$host: ${found:-no container named $NAME}"
done
printf '\nThe demo container stays on lab-b; "make lab-down" removes the whole lab.\n'
