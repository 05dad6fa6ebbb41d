#!/bin/sh
# Receive the checkpoint archive on stdin into WORKDIR/checkpoint.tar (mode 0600).
#
# land_archive.sh WORKDIR HASHED ANNOUNCE
#   HASHED    "hashed": hash the archive as it arrives into WORKDIR/checkpoint.sha256
#             (restore_import.sh checks it); otherwise only its size is checked later
#   ANNOUNCE  "announce": say "ready" on stdout once listening
#
# podman opens an import archive twice, so it must be a regular file, not a pipe.

workdir=$1 hashed=$2 announce=$3
archive=$workdir/checkpoint.tar
digest=$workdir/checkpoint.sha256
tee_status=$workdir/tee.status

umask 077
if [ "$hashed" != hashed ]; then
  if [ "$announce" = announce ]; then
    echo ready || exit
  fi
  exec cat > "$archive"
fi

# openssl uses the CPU's SHA instructions (5x coreutils' sha256sum here); both print the
# digest as the first field
hash_stdin() {
  if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r; else sha256sum; fi
}

if [ "$announce" = announce ]; then
  echo ready
fi
# sh has no pipefail: tee's own status is kept in a file, so a short write (disk full)
# fails the landing with tee's message instead of passing silently
{ tee "$archive"; echo $? > "$tee_status"; } | hash_stdin > "$digest"
[ "$(cat "$tee_status")" = 0 ]
