#!/bin/sh
# Print where a migration's archive lands and the room there (doctor reads them): the
# directory, for the tmpfs its file system type, then df -Pk for it.
#
# landing_space.sh WHERE
#   WHERE  "disk": the directory work directories are made in (under TMPDIR);
#          "tmpfs": the tmpfs an archive that fits in memory lands on
#          (the same expressions as make_landing_workdir.sh's)

if [ "$1" = tmpfs ]; then
  d="${CELESTIAL_SSH_TMPFS:-/dev/shm}"
  printf '%s\n' "$d"; stat -f -c %T "$d"
else
  d="${TMPDIR:-/var/tmp}"
  printf '%s\n' "$d"
fi
df -Pk "$d"
