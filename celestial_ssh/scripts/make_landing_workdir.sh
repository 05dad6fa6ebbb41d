#!/bin/sh
# Make the target's private work directory, where the archive lands; print it, then
# "tmpfs" or "disk".
#
# make_landing_workdir.sh TEMPLATE NEED_KIB MEMORY_KIB
#   TEMPLATE    mktemp's template for the directory's name
#   NEED_KIB    the room the archive needs on the tmpfs
#   MEMORY_KIB  the memory the host must have available for the archive on tmpfs and for
#               the restored container besides
#
# On the tmpfs the host names (CELESTIAL_SSH_TMPFS, else /dev/shm) when it is one with
# that room and memory, so podman untars from RAM; else under TMPDIR. A missing number
# fails its test quietly, which lands on disk.

template=$1 need_kib=$2 memory_kib=$3

umask 077
tmpfs="${CELESTIAL_SSH_TMPFS:-/dev/shm}"
if [ "$(stat -f -c %T "$tmpfs" 2>/dev/null)" = tmpfs ] &&
  [ "$(df -Pk "$tmpfs" 2>/dev/null | awk 'NR == 2 { print $4 }')" -ge "$need_kib" ] 2>/dev/null &&
  [ "$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)" -ge "$memory_kib" ] 2>/dev/null &&
  dir=$(mktemp -d "$tmpfs/$template" 2>/dev/null); then
  echo "$dir"; echo tmpfs
else
  dir=$(mktemp -d "${TMPDIR:-/var/tmp}/$template") || exit 1
  echo "$dir"; echo disk
fi
