"""Remote commands for fleet moves (batches, evacuations), as argument lists.

Like :mod:`celestial_ssh.commands`, every builder here is pure: it returns the argv that a
session quotes with ``shlex.join``; nothing runs and nothing is interpolated into a shell.
"""

from __future__ import annotations

# one sample of every running container's resource use: the same command doctor/ps use
from .doctor_commands import container_stats as container_stats


def running_containers() -> list[str]:
    """The running containers on a host, as podman's JSON list (``Id``, ``Names``, ``State``)."""
    return ["podman", "container", "ls", "--no-trunc", "--format", "json"]


def read_meminfo() -> list[str]:
    """The host's memory figures; ``MemAvailable`` is what a new container can use."""
    return ["cat", "/proc/meminfo"]
