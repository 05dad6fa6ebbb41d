# present_runs.awk (on the candidates and their pagemap words, from sample_memory.sh)
#
# Reads, per candidate, a line "@ FIRST_BLOCK COUNT" followed by its pagemap entries (od
# -tx8 output, one 16-digit hex word per page) and prints the runs of pages present (bit
# 63) or swapped (bit 62): the pages CRIU dumps. Untouched pages read as zeros from
# /proc/PID/mem but are never dumped, so they would make memory look more compressible
# than the archive is. A candidate without entries (no pagemap) is printed whole.
function flush_run() {
  if (len > 0) { printf "%.0f %.0f\n", first + start, len; fflush() }
  len = 0
}
function end_candidate() {
  flush_run()
  if (have && words == 0) { printf "%.0f %.0f\n", first, count; fflush() }
}
$1 == "@" { end_candidate(); first = $2; count = $3; have = 1; words = 0; k = 0; next }
{
  for (i = 1; i <= NF; i++) {
    words++
    if ($i ~ /^[4-9a-f]/) { if (len == 0) start = k; len++ }
    else flush_run()
    k++
  }
}
END { end_candidate() }
