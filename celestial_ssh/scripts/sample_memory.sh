#!/bin/sh
# Write chunks of a process's memory to stdout: the pages CRIU would dump, from its
# private writable anonymous mappings, up to a byte budget. Always exits 0: a vanished
# process, an unreadable file or page is skipped, and only means less (or no) sample.
#
# sample_memory.sh PROC_DIR CANDIDATES CHUNK_BLOCKS BUDGET_BLOCKS BLOCK SELECT_CHUNKS PRESENT_RUNS
#   PROC_DIR       /proc/PID of the process
#   CANDIDATES     how many candidate chunks select_chunks.awk may pick
#   CHUNK_BLOCKS   a chunk's size, in BLOCK-byte blocks
#   BUDGET_BLOCKS  how many blocks to write at most
#   SELECT_CHUNKS  the text of select_chunks.awk
#   PRESENT_RUNS   the text of present_runs.awk

proc_dir=$1 candidates=$2 chunk_blocks=$3 budget_blocks=$4 block=$5
select_chunks=$6 present_runs=$7

maps=$proc_dir/smaps; [ -r "$maps" ] || maps=$proc_dir/maps
awk -v candidates="$candidates" -v chunk="$chunk_blocks" "$select_chunks" "$maps" 2>/dev/null |
while read -r first count; do
  echo "@ $first $count"
  [ -r "$proc_dir/pagemap" ] &&
    dd if="$proc_dir/pagemap" bs=8 skip="$first" count="$count" 2>/dev/null | od -An -v -tx8
done |
awk "$present_runs" | {
  got=0
  while read -r first count; do
    left=$((budget_blocks - got))
    [ "$count" -gt "$left" ] && count=$left
    dd if="$proc_dir/mem" bs="$block" skip="$first" count="$count" 2>/dev/null
    got=$((got + count))
    [ "$got" -ge "$budget_blocks" ] && break
  done
}
exit 0
