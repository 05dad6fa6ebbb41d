#!/bin/sh
# Wait until the checkpoint script in WORKDIR has finished, then print its status.
#
# wait_for_checkpoint_end.sh WORKDIR TIMEOUT_S START_GRACE_S
#
# Prints "never-started" when the script's start marker has not appeared within
# START_GRACE_S (sshd forks the command before it acknowledges the exec, but the script
# may not have written its marker yet when a rollback comes this fast); exits 1 if the
# script is still running after TIMEOUT_S.

started=$1/checkpoint.started status=$1/checkpoint.status timeout_s=$2 grace_s=$3

i=0; while [ ! -e "$started" ] && [ "$i" -lt $((grace_s * 5)) ]; do
  sleep 0.2; i=$((i + 1))
done
[ -e "$started" ] || { echo never-started; exit 0; }
i=0; while [ ! -e "$status" ] && [ "$i" -lt $((timeout_s * 5)) ]; do
  sleep 0.2; i=$((i + 1))
done
[ -e "$status" ] || exit 1
cat "$status"
