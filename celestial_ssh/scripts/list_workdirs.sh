#!/bin/sh
# List the work directories whose names match PATTERN, under TMPDIR and on the tmpfs
# (where an archive may have landed), one per line.
#
# list_workdirs.sh PATTERN SHOW
#   PATTERN  a glob of names, without spaces (e.g. celestial-ssh.3f1c2a9b8d7e.*)
#   SHOW     "names": the paths; "sizes": as du -sk prints them (KiB, a tab, the path)

pattern=$1 what=$2

show() {
  if [ "$what" = sizes ]; then du -sk "$1"; else echo "$1"; fi
}

disk="${TMPDIR:-/var/tmp}"; tmpfs="${CELESTIAL_SSH_TMPFS:-/dev/shm}"
# (PATTERN unquoted: it is a glob)
# shellcheck disable=SC2086
for d in "$disk"/$pattern; do [ -d "$d" ] && show "$d"; done
# shellcheck disable=SC2086
[ "$tmpfs" = "$disk" ] || for d in "$tmpfs"/$pattern; do [ -d "$d" ] && show "$d"; done
true
