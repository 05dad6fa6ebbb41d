#!/bin/sh
# --direct: stream from this host into a link to the target, never through the
# coordinator. The link connects first; the payload runs once the coordinator says "go".
#
# direct_stream.sh MODE WORKDIR LINK_PROGRAM READY_LOG READY_PATTERN LINK PAYLOAD...
#   MODE           "checkpoint": PAYLOAD is a checkpoint stream (see checkpoint_stream.sh),
#                  given this script's stdout as descriptor 5 for its announcement;
#                  "probe": PAYLOAD writes zeros into the FIFO (dd, its count on stderr),
#                  and this script ends with "celestial-ssh-probe BYTES MICROSECONDS"
#   WORKDIR        the work directory; the payload writes into WORKDIR/link.fifo
#                  (checkpoint) or WORKDIR/probe.fifo (probe)
#   LINK_PROGRAM   the link's program, named when it fails
#   READY_LOG      empty over SSH: LINK reads the FIFO from cat, and its remote command
#                  says "ready", which comes back through it; over TLS, LINK reads the
#                  FIFO itself, and it is ready once READY_LOG (its stderr) shows
#                  READY_PATTERN (its handshake is done)
#   LINK           the link's command line, quoted for sh by the coordinator
#
# sh has no pipefail, so each side's status is kept in a file. Exit status: the
# checkpoint's when it failed; 95 when the link failed; 94 when never told to go (the
# link is let end first); 96 when the FIFO cannot be made; a probe's link's status.

mode=$1 workdir=$2 link_program=$3 ready_log=$4 ready_pattern=$5 link_command=$6
shift 6

if [ "$mode" = checkpoint ]; then
  fifo=$workdir/link.fifo
  link_status=$workdir/direct.link-status
else
  fifo=$workdir/probe.fifo
  link_status=
fi

# a checkpoint's link keeps its status in a file; a probe's ends with it
keep_link_status() {
  if [ -n "$link_status" ]; then echo "$1" > "$link_status"; else return "$1"; fi
}

# while the link runs, open the FIFO once more, so a link still blocked in open() for a
# writer that never came gets its end of file
release_link() {
  while kill -0 "$link" 2>/dev/null; do
    exec 3<> "$fifo"; exec 3>&-; sleep 0.05
  done
}

mkfifo -m 600 "$fifo" || exit 96
if [ -z "$ready_log" ]; then
  # cat, not a redirection: cat blocks opening the FIFO while the link connects
  # shellcheck disable=SC2002
  { cat "$fifo" | eval "$link_command"; keep_link_status $?; } &
  link=$!
else
  # emptied here: a probe's link wrote this log before, and the redirection below may
  # come after the first look
  : > "$ready_log"
  { eval "$link_command" 2> "$ready_log"; keep_link_status $?; } &
  link=$!
  until grep -q "$ready_pattern" "$ready_log" 2>/dev/null; do
    if ! kill -0 "$link" 2>/dev/null; then
      tail -n 5 "$ready_log" >&2; rm -f "$fifo"; exit 95
    fi
    sleep 0.01
  done
  # if nobody reads any more, go on to the end below (which releases the link) instead
  # of dying of SIGPIPE with the link waiting on the FIFO forever
  trap '' PIPE; echo ready; trap - PIPE
fi

IFS= read -r go; if [ "$go" != go ]; then
  release_link
  rm -f "$fifo"; exit 94
fi

if [ "$mode" = probe ]; then
  log=$workdir/probe.dd
  began=$(date +%s%N)
  "$@" 2> "$log"
  wait "$link"; linked=$?
  ended=$(date +%s%N)
  rm -f "$fifo"
  [ "$linked" = 0 ] || exit "$linked"
  echo "celestial-ssh-probe $(tail -n 1 "$log" | cut -d " " -f 1) $(( (ended - began) / 1000 ))"
  exit 0
fi

checkpoint_exit=$workdir/direct.checkpoint-exit
# The link opened the FIFO (it is ready), so it sees the end of it. Started in the
# background, so that the checkpoint alone opens the FIFO (sh keeps a foreground
# command's redirections open itself until the command has ended; an announcing
# checkpoint lets go of it with its last byte); it says here when the archive is complete.
"$@" 5>&1 > "$fifo" &
checkpoint=$!
# the link ends with the archive landed (or broken): say so at once, as an announcing
# checkpoint may still be tidying up; a broken channel must not end this script before
# it has kept the checkpoint's status
wait "$link"
trap '' PIPE; echo "celestial-ssh-link-ended $(cat "$link_status" 2>/dev/null || echo 1)"; trap - PIPE
wait "$checkpoint"
echo $? > "$checkpoint_exit"
rm -f "$fifo"
status=$(cat "$checkpoint_exit" 2>/dev/null || echo 1)
[ "$status" = 0 ] || exit "$status"
link_exit=$(cat "$link_status" 2>/dev/null || echo 1)
if [ "$link_exit" != 0 ]; then
  if [ -n "$ready_log" ]; then
    tail -n 5 "$ready_log" >&2
  fi
  echo "the direct stream from this host to the target failed ($link_program exit $link_exit)" >&2
  exit 95
fi
