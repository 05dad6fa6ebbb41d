#!/bin/sh
# --tls, the target's end: accept one TLS connection, write what it carries to OUTPUT
# (hashing it on the way when asked), then exit with socat's status.
#
# tls_listen.sh LOG OUTPUT DIGEST BUFFER_BYTES IDLE_TIMEOUT_S LISTEN_ADDRESS
#   LOG             socat's log (-d -d): this script reads there when socat has bound
#   OUTPUT          where what arrives goes (the work directory's archive, or /dev/null)
#   DIGEST          where the SHA-256 of what arrived goes, taken as it arrives (as
#                   land_archive.sh does; restore_import.sh checks it), or "-": none
#   BUFFER_BYTES    socat's buffer (-b)
#   IDLE_TIMEOUT_S  socat gives up when nothing has moved for this long (-T)
#   LISTEN_ADDRESS  socat's OPENSSL-LISTEN address: port, bind address, this end's key
#                   and certificate, the one certificate it accepts, accept-timeout
#
# Prints "celestial-ssh-listening PORT" once bound. Ends with stdin, the coordinator's
# channel. Exit status: socat's; 93 when socat ended before it listened (or the hashing
# FIFO cannot be made); tee's when the archive could not be written. On a failure the
# tail of socat's log goes to stderr.

log=$1 output=$2 digest=$3 buffer_bytes=$4 idle_timeout_s=$5 listen_address=$6

umask 077
# whoever connects speaks TLS to socat before any certificate is checked: that part runs
# as nobody where the host has that user (socat drops root right after the accept, with
# its key already loaded and its output already opened by this shell as root)
unprivileged=,su=nobody
id -u nobody >/dev/null 2>&1 || unprivileged=
# emptied here, not by socat's redirection, which may come after the first look (a
# probe's listener wrote this log before)
: > "$log"
# hash_stdin: the SHA-256 of stdin (openssl, else sha256sum)
# include: lib_hash_stdin.sh

if [ "$digest" = - ]; then
  landing=$output
else
  # socat writes into a FIFO; tee copies it into the archive and on to the hasher, so the
  # digest is ready with the last byte (no second read of the archive in the downtime)
  landing=$digest.fifo
  tee_status=$digest.tee-status
  mkfifo -m 600 "$landing" || exit 93
  # sh has no pipefail: tee's own status is kept in a file (a full disk fails the landing)
  { { tee "$output"; echo $? > "$tee_status"; } < "$landing" | hash_stdin > "$digest"; } &
  lander=$!
fi
socat -d -d -u -b "$buffer_bytes" -T "$idle_timeout_s" "$listen_address$unprivileged" - > "$landing" 2> "$log" &
listener=$!
# stdin is the coordinator's channel: when it closes (the coordinator gave up or died), a
# socat still waiting goes too; a silent peer could otherwise hold it in the handshake
# past every timeout socat has
exec 3<&0
{ cat <&3 > /dev/null; kill "$listener" 2>/dev/null; } > /dev/null 2>&1 &
watchdog=$!
exec 3<&-
# the landing's end: a socat killed before it opened the FIFO leaves tee waiting for a
# writer, released by opening the FIFO once more; then tee and the hasher are waited for
finish_landing() {
  [ "$digest" = - ] && return 0
  while kill -0 "$lander" 2>/dev/null; do
    exec 3<> "$landing"; exec 3>&-; sleep 0.01
  done
  wait "$lander"
  teed=$(cat "$tee_status" 2>/dev/null || echo 1)
  rm -f "$landing" "$tee_status"
  [ "$teed" = 0 ] || echo "writing the archive failed (tee exit $teed)" >&2
  return "$teed"
}
until grep -q 'listening on' "$log" 2>/dev/null; do
  if ! kill -0 "$listener" 2>/dev/null; then
    tail -n 5 "$log" >&2; kill "$watchdog"; finish_landing; exit 93
  fi
  sleep 0.01
done
# "... listening on AF=2 127.0.0.12:40123": the digits after the last colon
port=$(sed -n 's/.*listening on .*:\([0-9][0-9]*\)$/\1/p' "$log" | head -n 1)
echo "celestial-ssh-listening $port"
wait "$listener"
status=$?
kill "$watchdog" 2>/dev/null
[ "$status" = 0 ] || tail -n 5 "$log" >&2
finish_landing; landed=$?
[ "$status" != 0 ] || status=$landed
exit "$status"
