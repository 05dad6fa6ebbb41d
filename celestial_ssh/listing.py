"""``ps``: the containers of a host and whether each one can be live-migrated.

The rule for ``checkpointable`` is deliberately simple, and only says what we know fails:

* the container must be **running** (only a running container has memory state to move);
* it must not share a namespace with the host (``--network host``, ``--pid host``,
  ``--ipc host``): CRIU would have to checkpoint the host's own sockets, processes or IPC
  objects, which neither podman nor the target can restore;
* it must not be ``--privileged`` (it may hold host devices that do not exist, or differ,
  on the target);
* it must not be a pod's infra container, nor a member of a pod (celestial-ssh moves single
  containers, and a pod member cannot be restored without its pod).

Everything else is ``checkpointable`` here; ``migrate`` still runs its own preflight.
Memory usage comes from one ``podman stats --no-stream`` sample; when that fails (cgroup
setups where podman cannot read stats) the column stays empty and nothing else changes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from . import commands, doctor_commands
from .connection import ConnectionSettings, connection_settings
from .errors import PreflightFailed
from .podman_json import OutputError, parse_container_list, parse_size, parse_stats_list
from .ssh import SSHSession


@dataclass(frozen=True)
class ContainerRow:
    host: str
    name: str
    id: str  # the first 12 hex digits
    image: str
    state: str
    memory_usage: str | None  # as podman prints it, e.g. "17.06MB"
    memory_bytes: int | None
    checkpointable: bool
    reason: str  # why not checkpointable ("" when it is)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_inspect_list(text: str) -> dict[str, dict[str, Any]]:
    """{full ID: inspect document}; whatever podman printed, even when it also failed."""
    try:
        documents = json.loads(text) if text.strip() else []
    except json.JSONDecodeError:
        return {}
    if not isinstance(documents, list):
        return {}
    return {
        str(item["Id"]): item for item in documents if isinstance(item, dict) and item.get("Id")
    }


def checkpoint_blocker(
    state: str, inspect: dict[str, Any] | None, listing: dict[str, Any] | None = None
) -> str:
    """Why the container cannot be live-migrated, or "" when it can (the module's rule)."""
    if state != "running":
        return f"not running ({state or 'unknown state'})"
    listing = listing or {}
    if listing.get("IsInfra"):
        return "a pod's infra container"
    if inspect is None:
        return "could not inspect it (it may have just gone away)"
    host_config = inspect.get("HostConfig") or {}
    if host_config.get("Privileged"):
        return "runs --privileged: it may hold host devices the target does not have"
    for mode, option, what in (
        ("NetworkMode", "--network host", "the host network"),
        ("PidMode", "--pid host", "the host PID namespace"),
        ("IpcMode", "--ipc host", "the host IPC namespace"),
    ):
        if str(host_config.get(mode) or "") == "host":
            return f"uses {what} ({option}): CRIU cannot checkpoint the host's own state"
    pod = inspect.get("Pod") or listing.get("Pod")
    if pod:
        return "belongs to a pod: celestial-ssh moves single containers"
    return ""


def containers_on(session: SSHSession, *, timeout: float = 60.0) -> list[ContainerRow]:
    """The rows for a session connected by :meth:`ConnectionSettings.connect` (its
    privileged commands work)."""
    name = session.host.name
    listing_result = session.run(
        commands.container_list_all(),
        timeout=timeout,
        check=True,
        what="listing containers (podman container ls)",
    )
    try:
        listings = parse_container_list(listing_result.stdout)
        raw_listing = json.loads(listing_result.stdout) if listing_result.stdout.strip() else []
    except (OutputError, KeyError, json.JSONDecodeError) as error:
        raise PreflightFailed(f"{name}: cannot read 'podman container ls': {error}") from error
    raw_by_id = {
        str(item.get("Id")): item
        for item in (raw_listing if isinstance(raw_listing, list) else [])
        if isinstance(item, dict)
    }
    if not listings:
        return []
    inspected: dict[str, dict[str, Any]] = {}
    inspect_result = session.run(
        doctor_commands.container_inspect_many([item.id for item in listings]), timeout=timeout
    )
    inspected = parse_inspect_list(inspect_result.stdout)
    usage: dict[str, str] = {}
    if any(item.state == "running" for item in listings):
        stats = session.run(doctor_commands.container_stats(), timeout=timeout)
        if stats.ok:
            usage = parse_stats_list(stats.stdout)
    rows = []
    for item in listings:
        raw = raw_by_id.get(item.id, {})
        inspect = inspected.get(item.id)
        container_name = item.names[0] if item.names else item.id[:12]
        memory = usage.get(item.id[:12]) or usage.get(item.id) or usage.get(container_name)
        if item.state != "running":
            memory = None
        reason = checkpoint_blocker(item.state, inspect, raw)
        image = str(raw.get("Image") or (inspect or {}).get("ImageName") or "")
        rows.append(
            ContainerRow(
                host=name,
                name=container_name,
                id=item.id[:12],
                image=image,
                state=item.state,
                memory_usage=memory,
                memory_bytes=parse_size(memory) if memory else None,
                checkpointable=not reason,
                reason=reason,
            )
        )
    return rows


def list_containers(
    host: str,
    ssh_config: str | None = None,
    accept_new_host_keys: bool = False,
    *,
    connection: ConnectionSettings | None = None,
    timeout: float = 60.0,
) -> list[ContainerRow]:
    """Every container on ``host`` (running or not) with its checkpointability.

    ``connection`` says how the host is reached (``ssh_config`` and
    ``accept_new_host_keys`` are its older spelling and, given, replace its fields).
    Raises :class:`~celestial_ssh.errors.ConnectionFailed` (and subclasses) when the host
    cannot be reached, :class:`~celestial_ssh.errors.PreflightFailed` without root access.
    """
    settings = connection_settings(
        connection, ssh_config=ssh_config, accept_new_host_keys=accept_new_host_keys
    )
    session = settings.connect(host, timeout=timeout)
    try:
        return containers_on(session, timeout=timeout)
    finally:
        session.close()
