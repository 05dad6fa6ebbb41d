"""What the benchmark ran on: the machine, the hosts' versions, the commit."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .lab import ssh_argv
from .settings import CLI, LAB_CONFIG, REPO, SOURCE, TARGET


def machine() -> dict[str, Any]:
    def first_line(argv: list[str], stderr: bool = False) -> str | None:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except OSError:
            return None
        text = (result.stderr if stderr else result.stdout).strip()
        return text.splitlines()[0] if text else None

    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    memory_kib = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    versions: dict[str, Any] = {}
    for host in (SOURCE, TARGET):
        versions[host] = {
            "podman": first_line(ssh_argv(host, ["podman", "--version"], LAB_CONFIG)),
            "criu": first_line(ssh_argv(host, ["criu", "--version"], LAB_CONFIG)),
            "ssh": first_line(ssh_argv(host, ["ssh", "-V"], LAB_CONFIG), stderr=True),
        }
    paramiko_version = None
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        paramiko_version = version("paramiko")
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "kernel": os.uname().release,
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1) if memory_kib else None,
        "os": first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "paramiko": paramiko_version,
        "openssh_client": first_line(["ssh", "-V"], stderr=True),
        "hosts": versions,
        "celestial_ssh": (first_line([str(CLI), "--version"]) or "?").rpartition(" ")[2],
        "git_commit": (commit or "?") + ("-dirty" if dirty else ""),
    }


def machine_line(info: dict[str, Any]) -> str:
    host = info["hosts"][SOURCE]
    criu = (host["criu"] or "?").removeprefix("Version: ")
    return (
        f"{info['date']}, {info['cpu_model']} ({info['cores']} cores), {info['memory_gib']} GiB, "
        f"kernel {info['kernel']}, {host['podman']}, CRIU {criu}, "
        f"{info['openssh_client']}, celestial-ssh {info['celestial_ssh']} ({info['git_commit']})"
    )
