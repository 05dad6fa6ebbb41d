#!/bin/sh
# Checkpoint a container and write its archive to stdout while podman produces it.
#
# checkpoint_stream.sh WORKDIR GATED HASHED ANNOUNCE PODMAN_CHECKPOINT...
#   WORKDIR   the migration's work directory on this host
#   GATED     "gated": say "ready" and wait for "go" on stdin before anything else
#   HASHED    "hashed": also take the SHA-256 of what is sent, as it is sent
#   ANNOUNCE  "announce": say "celestial-ssh-exported SIZE" (with SHA256 when hashed) on
#             descriptor 5 as soon as podman says its export succeeded and the whole
#             archive has been copied (and hashed) (podman then runs at debug level, and
#             still tidies up for a while); "announce-on-stderr": the same on stderr (a
#             relayed stream: its stdout is the archive, and nobody opens descriptor 5)
#   PODMAN_CHECKPOINT...  the podman command, exporting into WORKDIR/checkpoint.fifo
#
# podman cannot export to stdout (it prints the container's name there), so it exports
# into a FIFO and dd copies the FIFO to stdout, counting the bytes. Pitfalls avoided:
# - podman opens the export read-write, so it never notices that the FIFO's reader died:
#   if stdout breaks, cat drains the rest so podman can finish (it holds the lock);
# - a reader still waiting for a writer (podman failed before exporting) is released by
#   opening the FIFO once more after podman has exited;
# - podman's stdout and stderr go to files, never to the SSH channel: a Go program that
#   writes to a broken pipe on descriptor 1 or 2 is killed, perhaps holding the lock.
#
# When announcing, stdout ends with the archive's last byte, before podman has ended (only
# the reader holds it; sshd, though, passes that end on only once stderr has ended too).
#
# Exit status: podman's; 94 when gated and never told to go; 96 when the start marker or
# a FIFO cannot be made. The last stderr line is "celestial-ssh-source-bytes SIZE"
# (and the SHA-256 when hashed). checkpoint.started is written first and
# checkpoint.status (podman's status) last, for a rollback that lost this stream.

workdir=$1 gated=$2 hashed=$3 announce=$4
shift 4
if [ "$announce" = announce-on-stderr ]; then
  exec 5>&2
  announce=announce
fi

fifo=$workdir/checkpoint.fifo
stats=$workdir/checkpoint-stats.json
started=$workdir/checkpoint.started
status_file=$workdir/checkpoint.status
errors=$workdir/checkpoint.err
count=$workdir/dd.count
hash_fifo=$workdir/hash.fifo
source_sum=$workdir/source.sha256
# the hasher has written source.sha256
hashed_all=$workdir/source.sha256.done
# the reader has ended; ... and dd copied everything
copied=$workdir/dd.done
copied_whole=$workdir/dd.ok
podman_stderr=$workdir/podman-stderr.fifo

# hash_stdin: the SHA-256 of stdin (openssl, else sha256sum)
# include: lib_hash_stdin.sh

# dd's last stderr line is "<bytes> bytes (...) copied"
copy_archive() {
  if [ "$hashed" = hashed ]; then
    dd if="$fifo" bs=1M 2> "$count" | tee "$hash_fifo"
  else
    dd if="$fifo" bs=1M 2> "$count"
  fi
}

if [ "$gated" = gated ]; then
  echo ready
  IFS= read -r go && [ "$go" = go ] || exit 94
fi

# 'true', not ':': a failed redirection of a special builtin ends the shell with its own
# status before '|| exit 96' could run
true > "$started" || exit 96
mkfifo -m 600 "$fifo" || exit 96
if [ "$announce" = announce ]; then
  mkfifo -m 600 "$podman_stderr" || exit 96
fi
if [ "$hashed" = hashed ]; then
  mkfifo -m 600 "$hash_fifo" || exit 96
  # if no hasher runs, the FIFO is still drained so tee never dies of SIGPIPE
  { { hash_stdin || cat > /dev/null; } < "$hash_fifo" > "$source_sum"; : > "$hashed_all"; } 5>&- &
  hasher=$!
fi

# The reader copies the archive to stdout; if stdout breaks, the rest is drained so podman
# can finish. Neither the reader nor podman keeps descriptor 5 (the announcement's).
if [ "$announce" = announce ]; then
  # stdout moves to descriptor 6, which only the reader keeps: whoever reads stdout sees
  # its end with the last byte, while podman still tidies up
  exec 6>&1 > /dev/null
  # (A && B || C on purpose: drain whenever dd.ok was not written, so podman finishes)
  # shellcheck disable=SC2015
  { copy_archive && : > "$copied_whole" || cat "$fifo" > /dev/null; : > "$copied"; } >&6 6>&- 5>&- &
  reader=$!
  exec 6>&-
  # podman's stderr, read by a loop that never dies of a broken channel (podman must not
  # write into a broken pipe) and keeps only its warnings and errors for checkpoint.err.
  # podman says "Checkpointed container <id>" at debug level once its export succeeded
  # (the same words in every release since 1.0); a podman that never says it is waited for.
  {
    trap '' PIPE
    while IFS= read -r line || [ -n "$line" ]; do
      case "$line" in
        *'level=debug msg="Checkpointed container '*)
          # in the background: this loop goes on reading podman's stderr meanwhile
          { while [ ! -e "$copied" ] && kill -0 "$reader" 2>/dev/null; do
              sleep 0.005
            done
            if [ -e "$copied_whole" ]; then
              sum=
              if [ "$hashed" = hashed ]; then
                # the hasher ends just after the last byte went through tee
                while [ ! -e "$hashed_all" ] && kill -0 "$hasher" 2>/dev/null; do
                  sleep 0.005
                done
                sum=$(cut -d " " -f 1 < "$source_sum")
              fi
              echo "celestial-ssh-exported $(tail -n 1 "$count" | cut -d " " -f 1)${sum:+ $sum}" >&5
            fi
          } &
          ;;
        *level=debug*|*level=info*) ;;
        *) printf '%s\n' "$line" ;;
      esac
    done < "$podman_stderr" > "$errors"
  } &
  announcer=$!
  podman_errors=$podman_stderr
else
  { copy_archive || cat "$fifo" > /dev/null; } 5>&- &
  reader=$!
  podman_errors=$errors
fi

"$@" > "$stats" 2> "$podman_errors" 5>&-
status=$?

# a reader may still wait for a writer: open the FIFO until it has gone (short sleeps: in
# the usual case the reader is just writing its last chunk, and all of this is downtime)
while kill -0 "$reader" 2>/dev/null; do
  exec 3<> "$fifo"; exec 3>&-; sleep 0.02
done
wait "$reader"

if [ "$announce" = announce ]; then
  # let the loop reading podman's stderr finish (it ends with that stderr), but within
  # 2 s: a process podman left holding it must not keep this script (and the status a
  # rollback waits for) from ending
  i=0
  while kill -0 "$announcer" 2>/dev/null && [ "$i" -lt 200 ]; do
    sleep 0.01; i=$((i + 1))
  done
  kill "$announcer" 2>/dev/null
  wait "$announcer"
  rm -f "$podman_stderr"
fi
rm -f "$fifo"
if [ "$hashed" = hashed ]; then
  wait
  rm -f "$hash_fifo" "$hashed_all"
fi

echo "$status" > "$status_file"
cat "$errors" >&2
if [ "$hashed" = hashed ]; then
  echo "celestial-ssh-source-bytes $(tail -n 1 "$count" | cut -d " " -f 1) $(cut -d " " -f 1 < "$source_sum")" >&2
else
  echo "celestial-ssh-source-bytes $(tail -n 1 "$count" | cut -d " " -f 1)" >&2
fi
exit "$status"
