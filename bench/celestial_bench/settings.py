"""Where the lab, the CLI and the workload are, the modes the benchmark measures, and its log."""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"
LAB_CONFIG = REPO / ".lab" / "ssh_config"
CLI = REPO / ".venv" / "bin" / "celestial-ssh"
MEMTICK_SOURCE = REPO / "lab" / "workload" / "memtick.c"
SOURCE, TARGET = "lab-a", "lab-b"
SLOW_TARGET = "lab-b-slow"
# a distant coordinator: both hosts behind a delaying proxy each
FAR_SOURCE, FAR_TARGET = "lab-a-far", "lab-b-far"
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()

# memtick arguments: a tick every 10 ms (the downtime's resolution); the checksum only at
# tick 0, because recomputing it over 1 GB would pause the workload and look like downtime
INTERVAL_MS = 10
CHECK_EVERY = 1_000_000_000
FIRST_TICK_TIMEOUT_S = 180.0
# how long an interrupted run may take to stop safely (a rollback restores the source)
INTERRUPT_GRACE_S = 300.0
MB = 1_000_000  # rates and archive sizes are in MB = 10^6 bytes; workloads in MiB (memtick)


@dataclass(frozen=True)
class Mode:
    """One way of moving the workload. ``kind`` is ``floor``, ``hand-made`` or ``tool``."""

    label: str
    kind: str
    args: tuple[str, ...] = ()
    note: str = ""

    @property
    def text(self) -> str:
        if self.kind != "tool":
            return self.label
        return " ".join(("celestial-ssh migrate", *self.args))


# The modes of the main matrix. Add or remove tool rows freely: ``args`` are extra
# `celestial-ssh migrate` options; a row whose options the installed CLI does not accept is
# skipped with a note. ``--modes`` picks rows by label.
MODES: tuple[Mode, ...] = (
    Mode(
        "floor",
        "floor",
        note="one shell: checkpoint to tmpfs, restore from it; no transfer, no SSH between",
    ),
    Mode("hand-made", "hand-made", note="checkpoint (zstd) to disk, scp via here, restore"),
    Mode("tool", "tool", note="the defaults: OpenSSH data plane, --compress auto"),
    Mode("tool-none", "tool", ("--compress", "none"), note="OpenSSH relayed through here"),
    Mode("tool-zstd", "tool", ("--compress", "zstd")),
    Mode("tool-paramiko", "tool", ("--transport", "paramiko", "--compress", "none")),
    Mode("tool-direct", "tool", ("--direct", "--compress", "none"), note="source -> target"),
    Mode("tool-tls", "tool", ("--tls", "--compress", "none"), note="source -> target, TLS"),
)

# `celestial-ssh probe` rows for the data-plane measurement (same rules as MODES)
PROBES: tuple[Mode, ...] = (
    Mode("probe", "probe"),
    Mode("probe-paramiko", "probe", ("--transport", "paramiko")),
    Mode("probe-openssh", "probe", ("--transport", "openssh")),
    Mode("probe-openssh-direct", "probe", ("--transport", "openssh", "--direct")),
    Mode("probe-tls", "probe", ("--tls",)),
)

SLOW_COMPRESSIONS: tuple[str, ...] = ("none", "zstd", "auto")
# the distant-coordinator section: what a round trip more or less costs
DISTANT_MODES: tuple[Mode, ...] = (
    Mode("far-relayed", "tool", ("--compress", "none"), note="relayed through here"),
    Mode("far-tls", "tool", ("--tls", "--compress", "none"), note="source -> target, TLS"),
)
# the timings the distant table shows (medians), besides total and downtime
DISTANT_STEPS: tuple[str, ...] = ("connect", "preflight", "tls_setup", "cleanup")
SLOW_FILLS: tuple[str, ...] = ("random", "compressible")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
