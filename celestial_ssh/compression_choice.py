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

:func:`choose_compression` turns them into a prediction per option. (:func:`parse_rate`,
for ``--bwlimit RATE``, lives in :mod:`celestial_ssh.bandwidth`.) Everything here is pure:
the sampler is a script from ``celestial_ssh/scripts/`` with its parameters, and nothing
runs anything on a host.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

from .bandwidth import parse_rate as parse_rate
from .host_scripts import run_script, script_text
from .shell import validate_remote_path
from .units import megabytes_per_s as _mb

# What compressing costs the freeze, as a rate of archive bytes, measured on our 2-core
# machines (bench/README.md): podman exported 256 MB of compressible memory to tmpfs in
# 0.92 s uncompressed, 1.55 s with zstd, 1.59 s with gzip; under the load of a live
# migration (ssh encrypting on the same two cores) a 64 MB zstd move lost 0.3 s of downtime
# to none on a 1 Gbit/s link and won 9 s on 50 Mbit/s. 80 MB/s reproduces both, and puts
# the crossover for well-compressible memory near 540 Mbit/s.
ZSTD_BYTES_PER_S = 80e6
GZIP_BYTES_PER_S = 70e6

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


def sample_memory_command(
    pid: int, *, samples: int = 16, sample_bytes: int = 256 * 1024, proc: str = "/proc"
) -> list[str]:
    """Write up to ``samples`` chunks of ``sample_bytes`` of process ``pid``'s memory to stdout.

    Runs as root on the source host with POSIX tools and coreutils only (``sh``, ``awk``,
    ``dd``, ``od``): hosts have no python and no zstd binary, so the bytes are compressed
    on the coordinator by :func:`compressibility`. At most ``samples * sample_bytes`` bytes
    cross the link (4 MiB by default), while the container keeps running.

    Candidate chunks come from the private writable anonymous mappings, weighted by
    resident size (``scripts/select_chunks.awk``); within a chunk only the pages present
    or swapped per ``/proc/PID/pagemap`` are read (``scripts/present_runs.awk``), because
    CRIU dumps only those; reading
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
    chunk_blocks = sample_bytes // _BLOCK
    return run_script(
        "sample_memory.sh",
        f"{proc.rstrip('/')}/{pid}",
        str(samples * _CANDIDATES_PER_SAMPLE),
        str(chunk_blocks),
        str(samples * chunk_blocks),
        str(_BLOCK),
        script_text("select_chunks.awk"),
        script_text("present_runs.awk"),
    )


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
