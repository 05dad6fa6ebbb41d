# select_chunks.awk (awk -v candidates=N -v chunk=BLOCKS, on /proc/PID/smaps or maps)
#
# Reads /proc/PID/smaps (or /proc/PID/maps where smaps is missing) and prints one line
# "FIRST_BLOCK COUNT" per candidate chunk, FIRST_BLOCK being the address / 4096.
#
# - only private writable anonymous mappings (rw-p, inode 0, no file; [heap], [stack] and
#   prctl-named [anon:...] ones count): that is what CRIU's image is mostly made of, while
#   file-backed pages are largely shared libraries that compress differently;
# - candidates are spread over the mappings in proportion to their resident (plus
#   swapped) size from smaps, so a reserved-but-untouched mapping draws none; with plain
#   maps the virtual size is used;
# - positions are evenly spaced in that weighted space, never overlap within a mapping,
#   and are printed in bit-reversed order, so that any first few of them are spread over
#   all the memory (the reader stops once it has enough);
# - hex is converted by hand and numbers printed with %.0f: mawk has no strtonum and its
#   %d clamps at 2^31, while addresses / 4096 stay far below 2^53, exact in a double.
function hex(s,    i, n) {
  n = 0
  for (i = 1; i <= length(s); i++) n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
  return n
}
/^[0-9a-f]+-[0-9a-f]+ / {
  sel = 0
  if ($2 == "rw-p" && $5 == "0" && (NF == 5 || $6 ~ /^\[(heap|stack|anon:)/)) {
    split($1, range, "-")
    n++; first[n] = hex(range[1]) / 4096; blocks[n] = (hex(range[2]) - hex(range[1])) / 4096
    weight[n] = blocks[n] * 4; sel = 1
  }
  next
}
sel && $1 == "Rss:" { weight[n] = $2 + 0; next }
sel && $1 == "Swap:" { weight[n] += $2; next }
END {
  total = 0
  for (j = 1; j <= n; j++) total += weight[j]
  if (total <= 0) exit 0
  j = 1; before = 0; m = 0
  for (i = 0; i < candidates; i++) {
    t = (i + 0.5) * total / candidates
    while (j < n && before + weight[j] <= t) { before += weight[j]; j++ }
    if (weight[j] <= 0) continue
    frac = (t - before) / weight[j]
    if (frac > 1) frac = 1
    if (blocks[j] <= chunk) { b = first[j]; c = blocks[j] }
    else { b = first[j] + int(frac * (blocks[j] - chunk)); c = chunk }
    if ((j in next_free) && b < next_free[j]) b = next_free[j]
    end_block = first[j] + blocks[j]
    if (b >= end_block) continue
    if (b + c > end_block) c = end_block - b
    next_free[j] = b + c
    cand_first[m] = b; cand_count[m] = c; m++
  }
  bits = 0; size = 1
  while (size < m) { size *= 2; bits++ }
  for (q = 0; q < size; q++) {
    v = q; rev = 0
    for (k = 0; k < bits; k++) { rev = rev * 2 + v % 2; v = int(v / 2) }
    if (rev < m) printf "%.0f %.0f\n", cand_first[rev], cand_count[rev]
  }
}
