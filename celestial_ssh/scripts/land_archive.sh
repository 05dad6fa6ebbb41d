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

# hash_stdin: the SHA-256 of stdin (openssl, else sha256sum)
# include: lib_hash_stdin.sh

if [ "$announce" = announce ]; then
  echo ready
fi
# sh has no pipefail: tee's own status is kept in a file, so a short write (disk full)
# fails the landing with tee's message instead of passing silently
{ tee "$archive"; echo $? > "$tee_status"; } | hash_stdin > "$digest"
[ "$(cat "$tee_status")" = 0 ]
