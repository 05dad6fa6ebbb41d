#!/bin/sh
# Empty lab-a: move every running container to lab-b (with more targets, each container goes
# to the one with the most free memory, largest containers first).
#
# Run from the repository root after `make lab` (the lab's hosts are in .lab/ssh_config).
set -eu

SSH="ssh -F .lab/ssh_config"

# Two workloads on lab-a: memtick holds 16 MB of state and prints a tick every 100 ms.
$SSH lab-a podman run -d --name evac-one localhost/memtick:latest 16 100 10
$SSH lab-a podman run -d --name evac-two localhost/memtick:latest 16 100 10

# What would happen (connects and runs the preflight checks only; nothing is frozen):
celestial-ssh evacuate lab-a --to lab-b -F .lab/ssh_config --dry-run

# The evacuation itself, two migrations at a time. Add `--only evac-one,evac-two` to move
# just these two, `--report evacuation.csv` to keep the timings.
celestial-ssh evacuate lab-a --to lab-b -F .lab/ssh_config --parallel 2

# They now run on lab-b, their counters going on from where they were frozen:
$SSH lab-b podman logs --tail 3 evac-one
$SSH lab-b podman logs --tail 3 evac-two

# Clean up:
#   $SSH lab-b podman rm -f evac-one evac-two
