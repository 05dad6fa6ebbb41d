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
    """One way of moving the workload. ``kind`` is ``floor``, ``hand-made`` or ``tool``.

    ``needs``: options the installed CLI must have for the row to mean what it says, not
    passed (``fallback`` means nothing on a CLI without an automatic data path).
    ``older_args``: what to run instead on a CLI that lacks one of ``args`` but says the
    same thing another way (``--data-path relay`` is no flag at all on a CLI that always
    relays by default); None skips the row there.
    """

    label: str
    kind: str
    args: tuple[str, ...] = ()
    note: str = ""
    needs: tuple[str, ...] = ()
    older_args: tuple[str, ...] | None = None

    @property
    def text(self) -> str:
        if self.kind != "tool":
            return self.label
        return " ".join(("celestial-ssh migrate", *self.args))


# relayed through this machine, spelt out; a CLI without --data-path relays by default
RELAY = ("--data-path", "relay")
# An address no lab host has: the target cannot listen there, so the default (automatic)
# data path cannot prove a host-to-host link and must fall back to relaying. Not 127.0.0.x:
# all of 127/8 is this machine's, so the target would listen there and the source reach it.
# 192.0.2.1 is TEST-NET-1 (RFC 5737), never assigned to a host. `--fallback-address` changes it.
FALLBACK_ADDRESS = "192.0.2.1"


def fallback_mode(address: str = FALLBACK_ADDRESS) -> Mode:
    """The default data path where host to host cannot work: it must relay, and the failed
    attempt may cost time before the freeze only."""
    return Mode(
        "fallback",
        "tool",
        ("--tls-address", address),
        note=f"the default data path, host to host impossible (the target cannot listen on "
        f"{address}): relays after a failed attempt",
        needs=("--data-path",),
    )


# The modes of the main matrix. Add or remove tool rows freely: ``args`` are extra
# `celestial-ssh migrate` options; a row whose options the installed CLI does not accept is
# skipped with a note (or runs its ``older_args``). ``--modes`` picks rows by label.
MODES: tuple[Mode, ...] = (
    Mode(
        "floor",
        "floor",
        note="one shell: checkpoint to tmpfs, restore from it; no transfer, no SSH between",
    ),
    Mode("hand-made", "hand-made", note="checkpoint (zstd) to disk, scp via here, restore"),
    Mode("default", "tool", note="no flags: the tool picks the data path and compression"),
    fallback_mode(),
    # `tool` was the no-flag default until the data path became automatic: relayed, auto
    Mode("tool", "tool", RELAY, note="relayed through here, --compress auto", older_args=()),
    Mode(
        "tool-none",
        "tool",
        (*RELAY, "--compress", "none"),
        note="OpenSSH relayed through here",
        older_args=("--compress", "none"),
    ),
    Mode("tool-zstd", "tool", (*RELAY, "--compress", "zstd"), older_args=("--compress", "zstd")),
    Mode(
        "tool-paramiko",
        "tool",
        (*RELAY, "--transport", "paramiko", "--compress", "none"),
        older_args=("--transport", "paramiko", "--compress", "none"),
    ),
    Mode("tool-direct", "tool", ("--direct", "--compress", "none"), note="source -> target"),
    Mode("tool-tls", "tool", ("--tls", "--compress", "none"), note="source -> target, TLS"),
)

# `celestial-ssh probe` rows for the data-plane measurement (same rules as MODES)
PROBES: tuple[Mode, ...] = (
    Mode("probe", "probe", RELAY, older_args=()),
    Mode(
        "probe-paramiko",
        "probe",
        (*RELAY, "--transport", "paramiko"),
        older_args=("--transport", "paramiko"),
    ),
    Mode(
        "probe-openssh",
        "probe",
        (*RELAY, "--transport", "openssh"),
        older_args=("--transport", "openssh"),
    ),
    Mode("probe-openssh-direct", "probe", ("--transport", "openssh", "--direct")),
    Mode("probe-tls", "probe", ("--tls",)),
)

SLOW_COMPRESSIONS: tuple[str, ...] = ("none", "zstd", "auto")
# The data-path table of the main matrix: these rows (those measured), with what they cost
# before the freeze and their downtime next to the relayed reference (same compression).
DECISION_MODES: tuple[str, ...] = ("default", "fallback", "tool", "tool-tls")
RELAYED_REFERENCE = "tool"
# the report's step for the automatic data path's host-to-host attempt, where it has one
# (else the steps the relayed reference lacks stand for it)
PROBE_STEP = "host_to_host_probe"
# The distant-coordinator section: the coordinator reaches both hosts through a slow, delayed
# link, the hosts reach each other directly. The floor does not use the coordinator's link
# (one shell on lab-a), so it is the same floor as the matrix's, measured alongside.
DISTANT_MODES: tuple[Mode, ...] = (
    Mode("far-floor", "floor", note="the floor, measured alongside"),
    Mode("far-default", "tool", note="no flags: the tool picks the data path"),
    Mode(
        "far-relayed",
        "tool",
        (*RELAY, "--compress", "none"),
        note="relayed through here",
        older_args=("--compress", "none"),
    ),
    Mode("far-tls", "tool", ("--tls", "--compress", "none"), note="source -> target, TLS"),
)
# defaults of the distant section: the coordinator's link, each way, to each host
DISTANT_RATE, DISTANT_DELAY = "20mbit", "20ms"
# Timings that are the freeze or come after it (the report's phases and steps); every other
# key of a report's timings happened before the freeze and is shown where steps are shown,
# whatever its name (a new step appears without a change here). cleanup, though after the
# freeze, is round-trip bound and shown last.
FREEZE_AND_AFTER: frozenset[str] = frozenset(
    {"checkpoint", "transfer", "source_tidy_up", "restore", "verify", "rollback"}
)
AFTER_STEPS: tuple[str, ...] = ("cleanup",)
# what the distant table showed before its steps were read from the reports (old results)
OLD_DISTANT_STEPS: tuple[str, ...] = ("connect", "preflight", "tls_setup", "cleanup")
SLOW_FILLS: tuple[str, ...] = ("random", "compressible")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)
