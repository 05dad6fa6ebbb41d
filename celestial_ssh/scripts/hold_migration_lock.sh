#!/bin/sh
# Hold an exclusive lock on a container's migration while stdin stays open.
#
# hold_migration_lock.sh LOCK_DIR LOCK_FILE
#
# Prints "locked" once the lock is held; exits 75 at once if another migration holds it.
# The lock lives as long as the SSH channel: if the coordinator dies, sshd closes the
# channel, cat sees end of file, and the lock is released (no stale locks). LOCK_DIR is
# made root-only: in a world-writable directory any local user could hold the lock.

# (-m for LOCK_DIR alone: its parent, /run, exists)
# shellcheck disable=SC2174
mkdir -p -m 0700 "$1" && exec flock -n -E 75 "$2" sh -c 'echo locked && exec cat > /dev/null'
