"""Readers of what the ``doctor`` commands print on a host (podman, the kernel, /proc, df).

Each takes the text a command of :mod:`celestial_ssh.doctor_commands` (or
:mod:`celestial_ssh.commands`) printed and returns plain values; none of them raises on
unexpected text (an empty answer, or None, is what ``doctor`` reports as unreadable).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .podman_json import version_tuple
from .ssh import CommandResult


def tail_of(result: CommandResult, lines: int = 3) -> str:
    text = (result.stderr + "\n" + result.stdout).strip()
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


def _json_object(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def parse_podman_version(text: str) -> str | None:
    """The podman version from ``podman version --format json`` (the server's if remote)."""
    document = _json_object(text)
    for section in ("Server", "Client"):
        part = document.get(section)
        if isinstance(part, dict) and part.get("Version"):
            return str(part["Version"])
    return None


def parse_oci_runtime(text: str) -> tuple[str, str] | None:
    """(name, version) of the OCI runtime from ``podman info --format json``."""
    host = _json_object(text).get("host")
    if not isinstance(host, dict):
        return None
    runtime = host.get("ociRuntime")
    if not isinstance(runtime, dict) or not runtime.get("name"):
        return None
    version_text = str(runtime.get("version") or "").strip()
    first_line = version_text.splitlines()[0] if version_text else ""
    match = re.search(r"\d+\.\d+(?:\.\d+)?[^\s]*", first_line)
    return str(runtime["name"]), match.group(0) if match else first_line


def parse_kernel_version(release: str) -> tuple[int, ...]:
    return version_tuple(release.strip())


def parse_cpuinfo_summary(text: str) -> dict[str, Any]:
    """processors, model and flags from the output of :func:`doctor_commands.cpu_summary`."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values.setdefault(key.strip(), value.strip())
    model = next(
        (values[key] for key in ("model name", "cpu model", "Hardware", "cpu") if values.get(key)),
        "",
    )
    flags = (values.get("flags") or values.get("Features") or "").split()
    processors = int(values["processors"]) if values.get("processors", "").isdigit() else 0
    return {"model": model, "flags": flags, "processors": processors}


def parse_meminfo(text: str) -> dict[str, int]:
    """{"MemTotal": kib, "MemAvailable": kib}."""
    values = {}
    for line in text.splitlines():
        match = re.match(r"^(\w+):\s+(\d+)", line)
        if match:
            values[match.group(1)] = int(match.group(2))
    return values


def parse_df(text: str) -> tuple[str, int, str] | None:
    """(landing dir, available KiB, mount point) from :func:`doctor_commands.landing_disk`."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 3:
        return None
    fields = lines[-1].split()
    if len(fields) < 6 or not fields[3].isdigit():
        return None
    return lines[0].strip(), int(fields[3]), fields[-1]
