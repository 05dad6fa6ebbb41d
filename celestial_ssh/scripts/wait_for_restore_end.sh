#!/bin/sh
# Wait until no restore started from WORKDIR is running any more (exit 1 after TIMEOUT_S).
#
# wait_for_restore_end.sh WORKDIR TIMEOUT_S
#
# A restore whose reply was lost may still be running on the target; deciding what to
# roll back before it ends could leave two running copies.

pid_file=$1/restore.pid timeout_s=$2

[ -e "$pid_file" ] || exit 0
pid=$(cat "$pid_file")
i=0; while kill -0 "$pid" 2>/dev/null && [ "$i" -lt $((timeout_s * 5)) ]; do
  sleep 0.2; i=$((i + 1))
done
! kill -0 "$pid" 2>/dev/null
