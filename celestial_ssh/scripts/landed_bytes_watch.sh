#!/bin/sh
# Say "ready", then print the size of ARCHIVE every INTERVAL_S seconds (0 while missing).
#
# landed_bytes_watch.sh ARCHIVE INTERVAL_S LIMIT_S
#
# Started before the freeze, so no new SSH command competes with the stream for the
# target's CPU. It ends by SIGPIPE once its reader has gone, and after LIMIT_S anyway.

archive=$1 interval_s=$2 limit_s=$3

echo ready
end=$(( $(date +%s) + limit_s ))
while [ "$(date +%s)" -lt "$end" ]; do
  stat -c %s "$archive" 2>/dev/null || echo 0
  sleep "$interval_s"
done
