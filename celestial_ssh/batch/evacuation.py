"""Evacuating a host: every running container off it, spread over the targets by their
free memory, moved as a batch."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Unpack

from .. import commands, fleet_commands
from ..connection import ConnectionSettings, HostResolver, connection_settings
from ..errors import InvalidInput, PreflightFailed
from ..hosts import HostSpec, resolve_host
from ..podman_json import OutputError, parse_container_list, parse_memory_usage
from ..readiness_parsers import parse_meminfo
from ..shell import validate_container_name
from .plan import Plan, PlanEntry, cached_resolver
from .runner import BatchReport, RunSettings, run_batch


def parse_mem_available(text: str) -> int:
    """``MemAvailable`` from /proc/meminfo, in bytes."""
    available_kib = parse_meminfo(text).get("MemAvailable")
    if available_kib is None:
        raise OutputError("no MemAvailable line in /proc/meminfo")
    return available_kib * 1024


@dataclass(frozen=True)
class Assignment:
    container: str
    target: str
    memory_bytes: int


def spread_by_memory(containers: dict[str, int], free: dict[str, int]) -> list[Assignment]:
    """Largest container first, each to the target with the most free memory left.

    ``containers`` maps names to memory in use, ``free`` targets (in preference order, for
    ties) to available bytes. The result is in the order the containers were placed.
    """
    if not free:
        raise InvalidInput("evacuation needs at least one target")
    remaining = dict(free)
    order = {target: position for position, target in enumerate(free)}
    placed = []
    for name, memory in sorted(containers.items(), key=lambda item: (-item[1], item[0])):
        target = max(remaining, key=lambda host: (remaining[host], -order[host]))
        remaining[target] -= memory
        placed.append(Assignment(container=name, target=target, memory_bytes=memory))
    return placed


def plan_evacuation(
    host: str,
    targets: Sequence[str],
    *,
    connection: ConnectionSettings | None = None,
    only: Iterable[str] | None = None,
    keep_source: bool = False,
    compression: str = "none",
    tcp_established: bool = False,
    timeout: float = 120.0,
    ssh_config: str | None = None,
    accept_new_host_keys: bool = False,
    host_resolver: HostResolver | None = None,
) -> Plan:
    """The plan that empties ``host``: its running containers spread over ``targets``.

    Reads the running containers (only those named in ``only``, if given) and their memory
    use on ``host``, and ``MemAvailable`` on every target; see :func:`spread_by_memory`.
    ``ssh_config``, ``accept_new_host_keys`` and ``host_resolver`` are the older spelling
    of ``connection`` (given, they replace its fields).
    """
    source_text = HostSpec.parse(host).text
    target_list = list(dict.fromkeys(HostSpec.parse(target).text for target in targets))
    if not target_list:
        raise InvalidInput("evacuation needs at least one target host (--to)")
    if source_text in target_list:
        raise InvalidInput(f"{source_text} cannot be both the host evacuated and a target")
    commands.validate_compression_setting(compression)
    wanted = None
    if only is not None:
        wanted = [validate_container_name(name) for name in only]

    settings = connection_settings(
        connection,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys,
        host_resolver=host_resolver,
    )
    # the plan keeps how its names were resolved: the batch resolves them the same way
    resolver = cached_resolver(
        settings.host_resolver or (lambda name: resolve_host(name, settings.ssh_config))
    )
    settings = settings.with_resolver(resolver)
    with contextlib.closing(settings.connect(source_text, timeout=timeout)) as session:
        listing = session.run(
            fleet_commands.running_containers(),
            timeout=timeout,
            check=True,
            what="listing the running containers",
        )
        running = [
            item.names[0]
            for item in parse_container_list(listing.stdout)
            if item.names and item.state.lower() == "running"
        ]
        if wanted is not None:
            missing = [name for name in wanted if name not in running]
            if missing:
                raise PreflightFailed(
                    f"{source_text}: no running container named {', '.join(missing)}",
                    host=source_text,
                )
            running = [name for name in running if name in wanted]
        stats = session.run(fleet_commands.container_stats(), timeout=timeout)
        usage = parse_memory_usage(stats.stdout) if stats.ok else {}
    free: dict[str, int] = {}
    for target in target_list:
        with contextlib.closing(settings.connect(target, timeout=timeout)) as target_session:
            meminfo = target_session.run(
                fleet_commands.read_meminfo(),
                privileged=False,
                timeout=timeout,
                check=True,
                what="reading /proc/meminfo",
            )
        try:
            free[target] = parse_mem_available(meminfo.stdout)
        except OutputError as error:
            raise PreflightFailed(f"{target}: {error}", host=target) from error
    assignments = spread_by_memory({name: usage.get(name, 0) for name in running}, free)
    entries = [
        PlanEntry(
            index=position,
            container=assignment.container,
            source=source_text,
            target=assignment.target,
            keep_source=keep_source,
            compression=compression,
            tcp_established=tcp_established,
        )
        for position, assignment in enumerate(assignments, start=1)
    ]
    return Plan(entries=entries, path=f"evacuation of {source_text}", resolver=resolver)


def evacuate(
    host: str,
    targets: Sequence[str],
    *,
    connection: ConnectionSettings | None = None,
    only: Iterable[str] | None = None,
    keep_source: bool = False,
    compression: str = "none",
    tcp_established: bool = False,
    ssh_config: str | None = None,
    accept_new_host_keys: bool = False,
    host_resolver: HostResolver | None = None,
    **running: Unpack[RunSettings],
) -> BatchReport:
    """Move every running container off ``host`` (or only those named in ``only``).

    Each container goes to the target with the most free memory left (``MemAvailable``),
    largest first by its memory use (``podman stats``); then they move as a batch
    (:func:`plan_evacuation`, then :func:`run_batch`, which ``running`` goes to:
    ``parallel``, ``continue_on_error``, ``dry_run``, ``on_event``, ``cancel``).
    """
    settings = connection_settings(
        connection,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys,
        host_resolver=host_resolver,
    )
    plan = plan_evacuation(
        host,
        targets,
        connection=settings,
        only=only,
        keep_source=keep_source,
        compression=compression,
        tcp_established=tcp_established,
    )
    return run_batch(
        plan,
        connection=settings.with_resolver(plan.resolver) if plan.resolver else settings,
        **running,
    )
