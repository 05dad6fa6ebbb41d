#!/bin/sh
# Verify the landed archive (size, SHA-256), then restore it with podman's --import.
#
# restore_import.sh WORKDIR GATE WANT_SIZE WANT_SUM PODMAN_RESTORE...
#   GATE       "now": check against WANT_SIZE and WANT_SUM ("-": no digest to check);
#              "gated": say "ready", then read "go SIZE SUM" from stdin and check those
#              (started before the freeze, so no new SSH command falls into the downtime)
#   PODMAN_RESTORE...  the podman command restoring WORKDIR/checkpoint.tar
#
# podman runs in the background with its output in files (a broken connection must not
# kill it mid-restore); its PID goes to WORKDIR/restore.pid, so a rollback can wait for it.
# Exit status: podman's; 98 on a size mismatch; 97 on a digest mismatch; 94 when a gated
# restore gets no valid go line.

workdir=$1 gate=$2 want_size=$3 want_sum=$4
shift 4
archive=$workdir/checkpoint.tar
digest=$workdir/checkpoint.sha256
output=$workdir/restore.out
errors=$workdir/restore.err

if [ "$gate" = gated ]; then
  echo ready
  IFS=' ' read -r go want_size want_sum || exit 94
  [ "$go" = go ] || exit 94
  case "$want_size" in ""|*[!0-9]*) exit 94;; esac
  case "$want_sum" in -) ;; *[!0-9a-f]*|"") exit 94;; esac
fi

size=$(wc -c < "$archive") || exit 98
if [ "$size" -ne "$want_size" ]; then
  echo "archive on this host has $size bytes, $want_size were sent" >&2
  exit 98
fi
if [ "$want_sum" != - ]; then
  sum=$(cut -d ' ' -f 1 < "$digest")
  if [ "$sum" != "$want_sum" ]; then
    echo "archive SHA-256 on this host is $sum, the sent one was $want_sum" >&2
    exit 97
  fi
fi

"$@" > "$output" 2> "$errors" &
echo $! > "$workdir/restore.pid"
wait "$!"
status=$?
cat "$output"
cat "$errors" >&2
exit "$status"
