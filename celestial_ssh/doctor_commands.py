"""Pure builders for the commands ``doctor`` and ``ps`` run on a host.

Like :mod:`celestial_ssh.commands`, each function returns an argument list (or runs a
script from ``celestial_ssh/scripts/``), so tests pin the exact commands and no user input
reaches a shell unquoted. Nothing here runs anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .commands import container_stats as container_stats
from .errors import InvalidInput
from .host_scripts import run_script
from .shell import validate_container_name

# CRIU's feature names: lower-case words joined by '-' or '_' (mem_dirty_track, uffd-noncoop)
_CRIU_FEATURE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

# the features doctor asks CRIU about
FEATURE_MEM_DIRTY_TRACK = "mem_dirty_track"  # soft-dirty tracking: iterative pre-copy
FEATURE_UFFD_NONCOOP = "uffd-noncoop"  # non-cooperative userfaultfd: lazy-pages restore


def podman_version() -> list[str]:
    return ["podman", "version", "--format", "json"]


def criu_feature(feature: str) -> list[str]:
    """``criu check --feature FEATURE``: exit 0 when the kernel supports it."""
    if not _CRIU_FEATURE.fullmatch(feature):
        raise InvalidInput(f"{feature!r} is not a CRIU feature name")
    return ["criu", "check", "--feature", feature]


def kernel_release() -> list[str]:
    return ["uname", "-r"]


def cpu_summary() -> list[str]:
    """The number of CPUs, then the first model-name and flags lines of /proc/cpuinfo
    (``cpu_summary.sh``, which says which lines each architecture has)."""
    return run_script("cpu_summary.sh")


def memory_info() -> list[str]:
    return ["grep", "-E", "^(MemTotal|MemAvailable):", "/proc/meminfo"]


def landing_disk() -> list[str]:
    """The landing directory on the first line, then ``df -Pk`` for it."""
    return run_script("landing_space.sh", "disk")


def landing_tmpfs() -> list[str]:
    """The tmpfs an archive that fits in memory lands on: its path, its file system type
    (``stat -f``), then ``df -Pk`` for it."""
    return run_script("landing_space.sh", "tmpfs")


def container_inspect_many(containers: Sequence[str]) -> list[str]:
    """``podman container inspect`` of several containers at once (full IDs or names)."""
    if not containers:
        raise ValueError("container_inspect_many needs at least one container")
    for container in containers:
        validate_container_name(container)
    return ["podman", "container", "inspect", "--format", "json", "--", *containers]
