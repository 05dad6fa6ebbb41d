"""Preflight: before anything changes, make sure both hosts can take part and the container
can move (podman, CRIU, architecture, the container itself, the lock, a free target)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from .. import commands, tls_link
from ..connection import settle_privileges
from ..errors import PreflightFailed
from ..events import Phase
from ..locking import take_migration_lock
from ..parallel import run_together
from ..podman_json import (
    ContainerInfo,
    OutputError,
    PodmanInfo,
    parse_container_inspect,
    parse_container_list,
    parse_criu_version,
    parse_podman_info,
    version_tuple,
)
from ..precopy import PrecopySupport, combine_support, dirty_tracking_check, parse_dirty_tracking
from ..ssh import CommandResult, SSHSession
from .context import MigrationContext
from .state import State

MINIMUM_CRIU = (3, 11)
# keys of the host checks in host_facts (callers' own questions use other names)
_PODMAN_INFO = "podman info"
_CRIU_VERSION = "criu --version"
_CRIU_CHECK = "criu check"


@dataclass
class HostFacts:
    name: str
    is_root: bool
    podman: PodmanInfo
    criu_version: str


def preflight(ctx: MigrationContext) -> None:
    with ctx.phase(Phase.PREFLIGHT) as outcome:
        source, target = ctx.sessions()
        # what the checks below need from each host is asked in the same round as the
        # host's own facts: one round trip instead of one per question
        source_asks: dict[str, list[str]] = {
            "inspect": commands.container_inspect(ctx.container),
            "memory": commands.container_stats(ctx.container),
        }
        target_asks: dict[str, list[str]] = {"containers": commands.container_list_all()}
        # --data-path tls cannot do without; auto finds out while preparing, and relays
        insists_on_tls = ctx.options.chosen_data_path() == "tls"
        if insists_on_tls:
            source_asks["tls"] = target_asks["tls"] = tls_link.tls_tool()
        timeout = ctx.options.command_timeout_s
        (source_facts, source_answers), (target_facts, target_answers) = ctx.hosts.both(
            lambda session: host_facts(
                session, source_asks if session is source else target_asks, timeout
            )
        )
        if source_facts.podman.arch != target_facts.podman.arch:
            raise PreflightFailed(
                f"{ctx.source_text} is {source_facts.podman.arch} but "
                f"{ctx.target_text} is {target_facts.podman.arch}",
                hint="A checkpoint only restores on the same CPU architecture.",
            )
        if ctx.options.precopy:
            _check_precopy(ctx)
        if insists_on_tls:
            _check_tls_program(source, source_answers["tls"])
            _check_tls_program(target, target_answers["tls"])
        info = _inspect_source(ctx, source_answers["inspect"])
        ctx.lock = take_migration_lock(
            source, ctx.container, info.id, timeout_s=timeout, warn=ctx.warn
        )
        # another coordinator may have moved the container between the first look and
        # the lock: look again, holding it; at once, staging's first question and the
        # work directories an earlier, interrupted run may have left
        relooked, ctx.target_image, *leftovers = run_together(
            partial(source.run, commands.container_inspect(info.id), timeout=timeout),
            partial(
                target.run,
                commands.image_inspect(info.image_name or info.image_id),
                timeout=timeout,
            ),
            partial(source.run, commands.list_workdirs(info.id), timeout=timeout),
            partial(target.run, commands.list_workdirs(info.id), timeout=timeout),
        )
        info = _inspect_source(ctx, relooked)
        _check_target_is_free(ctx, target_answers["containers"], info)
        _warn_about_leftovers(ctx, info, dict(zip((source, target), leftovers, strict=True)))
        ctx.memory_in_use = source_answers["memory"]
        ctx.progress.source_info = info
        ctx.report.container_id = info.id
        ctx.report.image = info.image_name or info.image_id
        ctx.report.target_container = ctx.options.new_name or info.name
        ctx.progress.state = State.CHECKED
        outcome["detail"] = (
            f"{info.name} ({info.id[:12]}) running; podman {source_facts.podman.version}/"
            f"{target_facts.podman.version}, CRIU {source_facts.criu_version}/"
            f"{target_facts.criu_version}"
        )


def host_facts(
    session: SSHSession, asks: Mapping[str, Sequence[str]], timeout: float
) -> tuple[HostFacts, dict[str, CommandResult]]:
    """The host's podman and CRIU, checked; and the answers to ``asks``, run at the
    same time (they need root, so they wait for the sudo check)."""
    name = session.host.name
    is_root = settle_privileges(session, timeout=timeout).how == "root"
    # the host's own checks first: their failure is the one to report
    questions = {
        _PODMAN_INFO: commands.podman_info(),
        _CRIU_VERSION: commands.criu_version(),
        _CRIU_CHECK: commands.criu_check(),
        **asks,
    }
    answers = dict(
        zip(
            questions,
            run_together(
                *(partial(session.run, argv, timeout=timeout) for argv in questions.values())
            ),
            strict=True,
        )
    )
    info_result = answers.pop(_PODMAN_INFO)
    if info_result.exit_status == 127:
        raise PreflightFailed(
            f"{name}: podman is not installed",
            host=name,
            hint="Install podman on the host (e.g. apt-get install podman runc).",
        )
    if not info_result.ok:
        raise PreflightFailed(
            f"{name}: 'podman info' failed: {info_result.stderr.strip()[-300:]}", host=name
        )
    try:
        podman = parse_podman_info(info_result.stdout)
    except (OutputError, KeyError) as error:
        raise PreflightFailed(f"{name}: cannot read 'podman info': {error}", host=name) from error
    version_result = answers.pop(_CRIU_VERSION)
    criu_version = parse_criu_version(version_result.stdout)
    if not version_result.ok or criu_version is None:
        raise PreflightFailed(
            f"{name}: CRIU is not installed (or not on root's PATH)",
            host=name,
            hint="Install CRIU >= 4.2 on kernels >= 6.16 (see README 'Requirements'); "
            "check with: criu check",
        )
    if version_tuple(criu_version) < MINIMUM_CRIU:
        raise PreflightFailed(f"{name}: CRIU {criu_version} is too old", host=name)
    check = answers.pop(_CRIU_CHECK)
    if not check.ok:
        tail = "\n".join((check.stderr + check.stdout).strip().splitlines()[-4:])
        raise PreflightFailed(
            f"{name}: 'criu check' fails with CRIU {criu_version}:\n{tail}",
            host=name,
            hint="This kernel needs a newer CRIU (README 'Requirements'); nothing was "
            "changed on either host.",
        )
    facts = HostFacts(name=name, is_root=is_root, podman=podman, criu_version=criu_version)
    return facts, answers


def _check_precopy(ctx: MigrationContext) -> None:
    """``--pre-copy`` needs soft-dirty tracking on both hosts; say so and fall back."""

    def support(session: SSHSession) -> PrecopySupport:
        checked = session.run(dirty_tracking_check(), timeout=ctx.options.command_timeout_s)
        return parse_dirty_tracking(checked.exit_status, checked.stderr + checked.stdout)

    source_support, target_support = ctx.hosts.both(support)
    both = combine_support(source_support, target_support, ctx.source_text, ctx.target_text)
    if both.supported:
        ctx.precopy = True
        return
    ctx.report.precopy = f"stop-and-copy ({both.reason})"
    ctx.warn(f"--pre-copy is not available: {both.reason}; using stop-and-copy")


def _warn_about_leftovers(
    ctx: MigrationContext, info: ContainerInfo, listings: dict[SSHSession, CommandResult]
) -> None:
    """Work directories of this container from an earlier run that never cleaned up (a
    killed coordinator): not in this run's way, but an archive on tmpfs holds memory
    until it is removed, so say where they are and what removes them."""
    for session, listing in listings.items():
        found = listing.stdout.split() if listing.ok else []
        if not found:
            continue
        ctx.warn(
            f"{session.host.name}: {len(found)} work "
            f"{'directory' if len(found) == 1 else 'directories'} of an earlier, "
            f"unfinished migration of {info.name} ({', '.join(found)}); "
            f"'celestial-ssh recover {ctx.source_text} {ctx.target_text} "
            f"{ctx.container}' removes them once this one is done"
        )


def _check_tls_program(session: SSHSession, found: CommandResult) -> None:
    host = session.host.name
    try:
        tls_link.required_tool(found.stdout if found.ok else "", host)
    except PreflightFailed as error:
        raise PreflightFailed(
            f"{host}: --data-path tls needs socat or python3, and neither is there",
            host=host,
            hint=f"{error.hint} Or leave out --tls (the default relays where the hosts "
            "cannot stream to each other); nothing was changed on either host.",
        ) from error


def _inspect_source(ctx: MigrationContext, result: CommandResult) -> ContainerInfo:
    if not result.ok:
        raise PreflightFailed(
            f"{ctx.source_text}: no container {ctx.container!r}",
            host=ctx.source_text,
            hint=f"List the candidates with: celestial-ssh ps {ctx.source_text} "
            f"(or ssh {ctx.source_text} podman ps).",
        )
    info = parse_container_inspect(result.stdout)
    if not info.is_running:
        raise PreflightFailed(
            f"{ctx.source_text}: container {ctx.container!r} is {info.status}, not running",
            host=ctx.source_text,
            hint="Only a running container can be live-migrated; start it first, or "
            "move a stopped one with podman save/load.",
        )
    return info


def _check_target_is_free(
    ctx: MigrationContext, listing: CommandResult, info: ContainerInfo
) -> None:
    if not listing.ok:
        raise listing.failure(f"{ctx.target_text}: listing containers failed")
    containers = parse_container_list(listing.stdout)
    wanted = ctx.options.new_name or info.name
    for item in containers:
        if item.id == info.id:
            raise PreflightFailed(
                f"{ctx.target_text} already has a container with ID {info.id[:12]} "
                f"({', '.join(item.names)}, {item.state})",
                host=ctx.target_text,
                hint="It may be a copy left by an earlier migration; remove it or "
                "restore under another name with --name.",
            )
        if wanted in item.names:
            raise PreflightFailed(
                f"{ctx.target_text} already has a container named {wanted!r} "
                f"({item.id[:12]}, {item.state})",
                host=ctx.target_text,
                hint="Pick another name on the target with --name NEW_NAME.",
            )
    ctx.progress.target_ids_before = {item.id for item in containers}
