"""Parsing of what podman and CRIU print: inspect and list JSON, info, stats, versions."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class OutputError(ValueError):
    """podman printed something we cannot read."""


@dataclass(frozen=True)
class ContainerInfo:
    id: str
    name: str
    status: str  # podman's State.Status: running, exited, paused, created, ...
    image_id: str
    image_name: str
    pid: int = 0

    @property
    def is_running(self) -> bool:
        return self.status == "running"


@dataclass(frozen=True)
class ContainerListing:
    id: str
    names: tuple[str, ...]
    state: str


@dataclass(frozen=True)
class PodmanInfo:
    version: str
    arch: str
    runtime: str
    cgroup_version: str
    graph_root: str


def _load(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise OutputError(f"cannot read {what}: {error}: {text[:200]!r}") from error


def parse_container_inspect(text: str) -> ContainerInfo:
    documents = _load(text, "podman container inspect output")
    if not isinstance(documents, list) or not documents:
        raise OutputError("podman container inspect returned no container")
    document = documents[0]
    state = document.get("State") or {}
    return ContainerInfo(
        id=document["Id"],
        name=document.get("Name", "").lstrip("/"),
        status=str(state.get("Status", "unknown")).lower(),
        image_id=document.get("Image", ""),
        image_name=document.get("ImageName", ""),
        pid=int(state.get("Pid") or 0),
    )


def parse_container_list(text: str) -> list[ContainerListing]:
    if not text.strip():
        return []
    documents = _load(text, "podman container ls output")
    if not isinstance(documents, list):
        raise OutputError("podman container ls did not return a list")
    return [
        ContainerListing(
            id=item["Id"], names=tuple(item.get("Names") or ()), state=str(item.get("State", ""))
        )
        for item in documents
    ]


def parse_image_id(text: str) -> str:
    documents = _load(text, "podman image inspect output")
    if not isinstance(documents, list) or not documents:
        raise OutputError("podman image inspect returned no image")
    return str(documents[0]["Id"])


def parse_podman_info(text: str) -> PodmanInfo:
    document = _load(text, "podman info output")
    host = document.get("host", {})
    runtime = host.get("ociRuntime", {})
    return PodmanInfo(
        version=str(document.get("version", {}).get("Version", "")),
        arch=str(host.get("arch", "")),
        runtime=str(runtime.get("name", "")),
        cgroup_version=str(host.get("cgroupVersion", "")),
        graph_root=str(document.get("store", {}).get("graphRoot", "")),
    )


def parse_stats(text: str) -> dict[str, Any]:
    """The JSON object ``--print-stats`` prints (podman may print other lines around it)."""
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end < start:
        return {}
    try:
        document = json.loads(text[start : end + 1])
    except json.JSONDecodeError:
        return {}
    return document if isinstance(document, dict) else {}


def flatten_stats(document: dict[str, Any]) -> dict[str, Any]:
    """podman's nested stats as one flat mapping of field -> number (microseconds, pages)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, (int, float)):
            flat[key] = value
    for container in document.get("container_statistics") or []:
        for key, value in container.items():
            if isinstance(value, (int, float)):
                flat[key] = value
        for key, value in (container.get("criu_statistics") or {}).items():
            if isinstance(value, (int, float)):
                flat[key] = value
    return flat


_CRIU_VERSION = re.compile(r"^Version:\s*(\S+)", re.MULTILINE)


def parse_criu_version(text: str) -> str | None:
    match = _CRIU_VERSION.search(text)
    return match.group(1) if match else None


def version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in re.split(r"[.\-+~]", version):
        if not part.isdigit():
            break
        parts.append(int(part))
    return tuple(parts)


_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([kKMGTP]?i?B?)\s*$")
_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "pb": 1000**5,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
    "pib": 1024**5,
}


def parse_size(text: str) -> int | None:
    """podman's human sizes ("17.33MB", "1.2GiB", "512kB") as bytes; None if unreadable."""
    match = _SIZE.match(text)
    if not match:
        return None
    unit = match.group(2).lower()
    if unit and not unit.endswith("b"):
        unit += "b"
    factor = _UNITS.get(unit)
    return int(float(match.group(1)) * factor) if factor else None


def parse_stats_list(text: str) -> dict[str, str]:
    """{short or full ID, and name: memory usage} from ``podman stats --format json``."""
    try:
        documents = json.loads(text) if text.strip() else []
    except json.JSONDecodeError:
        return {}
    usage: dict[str, str] = {}
    if not isinstance(documents, list):
        return usage
    for item in documents:
        if not isinstance(item, dict):
            continue
        memory = str(item.get("mem_usage") or item.get("MemUsage") or "").split("/")[0].strip()
        if not memory:
            continue
        for key in ("id", "ID", "name", "Name"):
            if item.get(key):
                usage[str(item[key])] = memory
    return usage


def parse_memory_usage(text: str) -> dict[str, int]:
    """:func:`parse_stats_list` in bytes (containers whose usage podman cannot say are left
    out)."""
    usage = {key: parse_size(memory) for key, memory in parse_stats_list(text).items()}
    return {key: size for key, size in usage.items() if size is not None}
