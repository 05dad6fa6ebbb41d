"""The decision behind ``--compress auto``: none, zstd or gzip for the checkpoint archive.

Compression only pays when the link, not the CPU, is the bottleneck: on a fast link the
freeze lasts longer with compression (podman compresses on the source's few cores while the
container is frozen), on a slow one a compressible memory image crosses it several times
faster. So the choice is made from two measurements taken before the freeze:

- the link's throughput, by streaming zeros from source to target through the data plane
  (:meth:`celestial_ssh.data_plane.DataPlane.measure`), and
- how well the container's memory compresses, from a few chunks of its private anonymous
  memory read on the source (:func:`sample_memory_command`) and compressed here
  (:func:`compressibility`).

:func:`choose_compression` turns them into a prediction per option. :func:`parse_rate`
reads ``--bwlimit RATE``. Everything here is pure: builders return argument lists (``sh -c``
scripts made only of quoted or validated values), nothing runs anything on a host.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass, field

from .commands import COMPRESSIONS
from .shell import quote, sh_script, validate_remote_path

# What compressing costs the freeze, as a rate of archive bytes, measured on our 2-core
# machines (bench/README.md): podman exported 256 MB of compressible memory to tmpfs in
# 0.92 s uncompressed, 1.55 s with zstd, 1.59 s with gzip; under the load of a live
# migration (ssh encrypting on the same two cores) a 64 MB zstd move lost 0.3 s of downtime
# to none on a 1 Gbit/s link and won 9 s on 50 Mbit/s. 80 MB/s reproduces both, and puts
# the crossover for well-compressible memory near 540 Mbit/s.
ZSTD_BYTES_PER_S = 80e6
GZIP_BYTES_PER_S = 70e6

COMPRESSION_OPTIONS = COMPRESSIONS  # what podman accepts, from the one list of it

# the sampler reads whole 4 KiB blocks: every Linux page size is a multiple of it, so
# mapping boundaries are always aligned to it
_BLOCK = 4096
# below this a compression ratio says more about zlib's header than about the memory
_MIN_SAMPLE_BYTES = _BLOCK
# a ratio above this is not a measurement of incompressible data (which zlib grows by a
# fraction of a percent) but a mistake
_MAX_RATIO = 1.1

# -- sampling the container's memory on the source -------------------------------------

# Candidate chunks per sample: adjacent anonymous mmaps merge into one mapping and heaps
# reserve far more than they touch, so a chunk placed by position alone often holds few
# resident pages; trying 8 candidates per wanted sample, in spread order, until the byte
# budget is met, still finds resident memory when an eighth of a mapping is touched.
_CANDIDATES_PER_SAMPLE = 8

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
_SELECT_CHUNKS_AWK = r"""
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
"""

# Reads, per candidate, a line "@ FIRST_BLOCK COUNT" followed by its pagemap entries (od
# -tx8 output, one 16-digit hex word per page) and prints the runs of pages present (bit
# 63) or swapped (bit 62): the pages CRIU dumps. Untouched pages read as zeros from
# /proc/PID/mem but are never dumped, so they would make memory look more compressible
# than the archive is. A candidate without entries (no pagemap) is printed whole.
_PRESENT_RUNS_AWK = r"""
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
"""


def sample_memory_command(
    pid: int, *, samples: int = 16, sample_bytes: int = 256 * 1024, proc: str = "/proc"
) -> list[str]:
    """Write up to ``samples`` chunks of ``sample_bytes`` of process ``pid``'s memory to stdout.

    Runs as root on the source host with POSIX tools and coreutils only (``sh``, ``awk``,
    ``dd``, ``od``): hosts have no python and no zstd binary, so the bytes are compressed
    on the coordinator by :func:`compressibility`. At most ``samples * sample_bytes`` bytes
    cross the link (4 MiB by default), while the container keeps running.

    Candidate chunks come from the private writable anonymous mappings, weighted by
    resident size (see the awk programs above); within a chunk only the pages present or
    swapped per ``/proc/PID/pagemap`` are read, because CRIU dumps only those; reading
    stops at the byte budget. A vanished process, an unreadable file or page is skipped
    silently: the script then writes less, possibly nothing, and always exits 0, so a
    failed sample only means "no estimate".

    ``pid`` is the container's main process (``State.Pid`` in podman's inspect output);
    other processes in the container are not sampled. ``proc`` lets tests point the script
    at a fake proc directory.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"pid must be a positive integer, not {pid!r}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples <= 0:
        raise ValueError(f"samples must be a positive integer, not {samples!r}")
    if (
        isinstance(sample_bytes, bool)
        or not isinstance(sample_bytes, int)
        or sample_bytes <= 0
        or sample_bytes % _BLOCK
    ):
        raise ValueError(f"sample_bytes must be a positive multiple of {_BLOCK}")
    validate_remote_path(proc)
    base = f"{proc.rstrip('/')}/{pid}"
    smaps, maps = quote(f"{base}/smaps"), quote(f"{base}/maps")
    pagemap, mem = quote(f"{base}/pagemap"), quote(f"{base}/mem")
    chunk_blocks = sample_bytes // _BLOCK
    budget_blocks = samples * chunk_blocks
    candidates = samples * _CANDIDATES_PER_SAMPLE
    script = "\n".join(
        [
            f'maps={smaps}; [ -r "$maps" ] || maps={maps}',
            f"awk -v candidates={candidates} -v chunk={chunk_blocks}"
            f' {quote(_SELECT_CHUNKS_AWK)} "$maps" 2>/dev/null |',
            "while read -r first count; do",
            '  echo "@ $first $count"',
            f"  [ -r {pagemap} ] &&",
            f'    dd if={pagemap} bs=8 skip="$first" count="$count" 2>/dev/null | od -An -v -tx8',
            "done |",
            f"awk {quote(_PRESENT_RUNS_AWK)} | {{",
            "  got=0",
            "  while read -r first count; do",
            f"    left=$(({budget_blocks} - got))",
            '    [ "$count" -gt "$left" ] && count=$left',
            f'    dd if={mem} bs={_BLOCK} skip="$first" count="$count" 2>/dev/null',
            "    got=$((got + count))",
            f'    [ "$got" -ge {budget_blocks} ] && break',
            "  done",
            "}",
            "exit 0",
        ]
    )
    return sh_script(script)


@dataclass(frozen=True)
class CompressibilityEstimate:
    """How well a memory sample compresses: compressed size / original size.

    ``ratio`` uses zlib level 1 as a stand-in for podman's zstd: zstd at its default level
    compresses at least as well, so the estimate errs towards "compression pays less".
    ``gzip_ratio`` uses zlib level 6, gzip's default.
    """

    sample_bytes: int
    ratio: float
    gzip_ratio: float
    # share of the sample's 4 KiB blocks that are all zeros: a high share with a small
    # sample hints at memory that was touched but never written
    zero_block_fraction: float
    note: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "sample_bytes": self.sample_bytes,
            "ratio": self.ratio,
            "gzip_ratio": self.gzip_ratio,
            "zero_block_fraction": self.zero_block_fraction,
            "note": self.note,
        }


def compressibility(sample: bytes) -> CompressibilityEstimate:
    """Compress the memory sample here, on the coordinator, to estimate the archive's ratio.

    An empty or tiny sample (the process vanished, nothing was readable) gives ratio 1.0,
    "incompressible", with a note: without evidence, compression is not worth its CPU.
    """
    size = len(sample)
    if size < _MIN_SAMPLE_BYTES:
        note = "no memory could be sampled" if size == 0 else f"sample of {size} bytes too small"
        return CompressibilityEstimate(
            sample_bytes=size, ratio=1.0, gzip_ratio=1.0, zero_block_fraction=0.0, note=note
        )
    view = memoryview(sample)
    zero = bytes(_BLOCK)
    blocks = size // _BLOCK
    zero_blocks = sum(1 for i in range(blocks) if view[i * _BLOCK : (i + 1) * _BLOCK] == zero)
    return CompressibilityEstimate(
        sample_bytes=size,
        ratio=min(len(zlib.compress(sample, 1)) / size, _MAX_RATIO),
        gzip_ratio=min(len(zlib.compress(sample, 6)) / size, _MAX_RATIO),
        zero_block_fraction=zero_blocks / blocks,
    )


# -- the decision ----------------------------------------------------------------------


@dataclass(frozen=True)
class CompressionChoice:
    """The chosen ``--compress`` value, why, and the predicted transfer time of each option."""

    compression: str
    reason: str
    predicted_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "compression": self.compression,
            "reason": self.reason,
            "predicted_s": dict(self.predicted_s),
        }


def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, not {value!r}")
    return float(value)


def _ratio(name: str, value: float) -> float:
    _positive(name, value)
    if value > _MAX_RATIO:
        raise ValueError(
            f"{name} must be at most {_MAX_RATIO} (compressed / original), not {value!r}"
        )
    return float(value)


def _mb(bytes_per_s: float) -> str:
    return f"{bytes_per_s / 1e6:.1f} MB/s"


def choose_compression(
    *,
    link_bytes_per_s: float,
    ratio: float,
    archive_bytes_estimate: int,
    zstd_bytes_per_s: float = ZSTD_BYTES_PER_S,
    gzip_bytes_per_s: float = GZIP_BYTES_PER_S,
    margin: float = 0.85,
    gzip_ratio: float | None = None,
) -> CompressionChoice:
    """Pick none, zstd or gzip from the link speed and the memory's compressibility.

    The archive is compressed while it streams, so an option takes as long as its slower
    stage: ``max(archive / compress_speed, archive * ratio / link)``, and ``archive / link``
    without compression. The fastest prediction wins, with two biases: a compressed option
    must beat none by ``margin`` (predicted <= margin * none), because compressing burns
    the source's CPU during the freeze and the speeds are estimates; and gzip must beat
    zstd too. ``gzip_ratio`` defaults to ``ratio`` (see :class:`CompressibilityEstimate`).
    """
    link = _positive("link_bytes_per_s", link_bytes_per_s)
    zstd_ratio = _ratio("ratio", ratio)
    gz_ratio = zstd_ratio if gzip_ratio is None else _ratio("gzip_ratio", gzip_ratio)
    if isinstance(archive_bytes_estimate, bool) or not isinstance(archive_bytes_estimate, int):
        raise ValueError("archive_bytes_estimate must be an integer number of bytes")
    archive = _positive("archive_bytes_estimate", archive_bytes_estimate)
    zstd_speed = _positive("zstd_bytes_per_s", zstd_bytes_per_s)
    gzip_speed = _positive("gzip_bytes_per_s", gzip_bytes_per_s)
    if not (0 < margin <= 1):
        raise ValueError(f"margin must be in (0, 1], not {margin!r}")

    predicted = {
        "none": archive / link,
        "zstd": max(archive / zstd_speed, archive * zstd_ratio / link),
        "gzip": max(archive / gzip_speed, archive * gz_ratio / link),
    }
    best = "gzip" if predicted["gzip"] < predicted["zstd"] else "zstd"
    best_ratio = gz_ratio if best == "gzip" else zstd_ratio
    best_speed = gzip_speed if best == "gzip" else zstd_speed
    none_s, best_s = predicted["none"], predicted[best]
    numbers = (
        f"link {_mb(link)}, memory compresses to {best_ratio:.0%} with {best}: "
        f"{best} {best_s:.2f} s vs none {none_s:.2f} s"
    )
    if best_s <= margin * none_s:
        return CompressionChoice(best, f"{best}: {numbers}", predicted)
    if best_speed <= link:
        why = f"{best} compresses at {_mb(best_speed)}, no faster than the link"
    else:
        why = f"{best} would save less than {1 - margin:.0%} of the transfer time"
    return CompressionChoice("none", f"none: {why} ({numbers})", predicted)


# -- measuring the link ----------------------------------------------------------------


# -- --bwlimit RATE --------------------------------------------------------------------

_RATE = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?:(?P<prefix>[kmgt])(?P<binary>i)?)?(?P<unit>.*)",
    re.IGNORECASE,
)
_PREFIX_POWER = {"k": 1, "m": 2, "g": 3, "t": 4}
_BYTE_UNITS = ("", "/s", "B", "B/s", "Bps")
_BIT_UNITS = ("bit", "bits", "bit/s", "bits/s", "bps")


def parse_rate(text: str) -> float:
    """Bytes per second from a ``--bwlimit`` value such as ``50M``, ``50Mbit`` or ``10MiB/s``.

    The rule: a rate is a number, an optional prefix, an optional unit, an optional ``/s``.

    - Without a unit, or with ``B`` (``B/s``, ``Bps``), it counts **bytes** per second, like
      ``rsync --bwlimit`` and ``curl --limit-rate``: ``50M`` = ``50MB/s`` = 50,000,000 B/s.
    - With ``bit`` (``bits``, ``bit/s``, ``bps``) it counts **bits**: ``400Mbit`` = 50 MB/s.
    - Prefixes ``k``, ``M``, ``G``, ``T`` (any case) are powers of 1000; ``Ki``, ``Mi``,
      ``Gi``, ``Ti`` powers of 1024. (rsync and curl read ``K`` as 1024 and rsync reads a
      bare number as KiB; here a bare number is bytes and ``K`` is 1000, as written.)
    - A lone lowercase ``b`` (``50Mb``, ``50mb/s``) is refused: people mean bits as often as
      bytes by it, and a guess would be off eightfold.

    Raises :class:`ValueError` with the accepted forms on anything else, zero or negative.
    """
    stripped = text.strip()
    match = _RATE.fullmatch(stripped)
    if match is None:
        raise ValueError(
            f"invalid rate {text!r}: expected a positive number with an optional unit, "
            "e.g. 50M or 6.25MB/s (bytes per second), 50Mbit (bits), 10MiB/s"
        )
    number = float(match["number"])
    unit = match["unit"]
    multiplier = 1.0
    if match["prefix"]:
        base = 1024 if match["binary"] else 1000
        multiplier = float(base ** _PREFIX_POWER[match["prefix"].lower()])
    if unit in _BYTE_UNITS:
        pass
    elif unit.lower() in _BIT_UNITS:
        multiplier /= 8
    elif unit in ("b", "b/s"):
        raise ValueError(
            f"ambiguous rate {text!r}: write B for bytes (e.g. 50MB/s) or bit for bits "
            "(e.g. 50Mbit)"
        )
    else:
        raise ValueError(
            f"invalid rate {text!r}: unknown unit {unit!r}; use no unit or B for bytes per "
            "second (50M, 6.25MB/s, 10MiB/s) or bit for bits per second (50Mbit)"
        )
    rate = number * multiplier
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"invalid rate {text!r}: must be greater than zero")
    return rate
