"""Bringing a container back to exactly one running copy after an interrupted migration.

When the coordinator itself dies (SIGKILL, a laptop that lost power), nothing rolled back.
``recover`` looks at both hosts, waits for any checkpoint or restore still running there,
and then decides:

==========================  =================================================================
what it finds               what it does
==========================  =================================================================
runs on the target only     nothing to restore: the migration got through; leftovers removed
runs on the source only     removes a non-running copy our restore left on the target
runs on neither             removes a non-running target copy, restores the source from the
                            checkpoint podman kept, and checks that it runs
runs on both                touches nothing and says so (a human must choose)
on neither host at all      an error: there is nothing to recover
==========================  =================================================================

Leftover work directories of this container (and only of this container) are removed.
"""

from __future__ import annotations

import contextlib
import enum
from dataclasses import dataclass, field

from . import commands
from .connection import ConnectionSettings, connection_settings
from .errors import CelestialError, ConnectionFailed, PreflightFailed
from .events import EventSink, Notice, discard_events
from .locking import take_migration_lock
from .podman_json import ContainerInfo, parse_container_inspect
from .shell import validate_container_name
from .ssh import RemoteProcess, SSHSession

WAIT_S = 900


class RecoveryOutcome(enum.StrEnum):
    ON_TARGET = "on_target"
    ON_SOURCE = "on_source"
    RESTORED_ON_SOURCE = "restored_on_source"
    RUNNING_TWICE = "running_twice"


@dataclass
class RecoveryReport:
    container: str
    source: str
    target: str
    outcome: RecoveryOutcome | None = None
    actions: list[str] = field(default_factory=list)

    @property
    def running_on(self) -> str | None:
        return (
            {
                RecoveryOutcome.ON_TARGET: self.target,
                RecoveryOutcome.ON_SOURCE: self.source,
                RecoveryOutcome.RESTORED_ON_SOURCE: self.source,
            }.get(self.outcome)
            if self.outcome
            else None
        )


class RunningTwice(CelestialError):
    """Both hosts run the container; recover will not pick one for you."""


def recover(
    source: str,
    target: str,
    container: str,
    *,
    connection: ConnectionSettings | None = None,
    on_event: EventSink | None = None,
    ssh_config: str | None = None,
    accept_new_host_keys: bool = False,
) -> RecoveryReport:
    """Make ``container`` run on exactly one of ``source`` / ``target`` again.

    ``connection`` says how the hosts are reached (``ssh_config`` and
    ``accept_new_host_keys`` are its older spelling and, given, replace its fields).
    """
    validate_container_name(container)
    emit = on_event or discard_events
    report = RecoveryReport(container=container, source=source, target=target)

    def note(message: str) -> None:
        report.actions.append(message)
        emit(Notice(level="info", message=message))

    settings = connection_settings(
        connection, ssh_config=ssh_config, accept_new_host_keys=accept_new_host_keys
    )
    # both hosts resolved before either is connected: a typo fails before anything runs
    hosts = [settings.resolve(text) for text in (source, target)]
    sessions: list[SSHSession] = []
    sessions_locks: list[RemoteProcess] = []
    try:
        for host in hosts:
            sessions.append(settings.connect(host, timeout=60))
        on_source, on_target = sessions
        found = {
            name: _inspect(s, container) for name, s in ((source, on_source), (target, on_target))
        }
        known = found[source] or found[target]
        if known is None:
            raise PreflightFailed(
                f"no container {container!r} on {source} or {target}: nothing to recover"
            )
        container_id = known.id
        lock = take_migration_lock(
            on_source,
            container,
            container_id,
            timeout_s=60,
            warn=lambda message: emit(Notice(level="warning", message=message)),
        )
        if lock is not None:
            sessions_locks.append(lock)
        for session in sessions:
            _wait_for_leftover_commands(session, container_id)
        # look again: a checkpoint or restore that just ended may have changed the states
        source_copy = _inspect(on_source, container_id)
        # only a copy with the very same ID is ours: a stranger with the name is left alone
        target_copy = _inspect(on_target, container_id)
        source_running = bool(source_copy and source_copy.is_running)
        target_running = bool(target_copy and target_copy.is_running)
        if source_running and target_running:
            report.outcome = RecoveryOutcome.RUNNING_TWICE
            raise RunningTwice(
                f"{container!r} runs on both {source} and {target}; nothing was changed",
                hint="Decide which copy keeps the state you want and stop the other with "
                "podman stop/rm on that host.",
            )
        if target_running:
            report.outcome = RecoveryOutcome.ON_TARGET
            note(f"{container} runs on {target}: the migration had got through")
            if source_copy:
                note(f"the stopped copy on {source} was kept (podman rm {container} removes it)")
        else:
            if not source_running and source_copy is None:
                # checked before anything is removed: the target's copy may be all that is left
                raise PreflightFailed(
                    f"{container!r} is not on {source} any more and does not run on "
                    f"{target}: there is no checkpoint left to restore; nothing was changed",
                    host=source,
                )
            if target_copy:
                on_target.run(
                    commands.container_remove(target_copy.id, force=True),
                    timeout=120,
                    check=True,
                    what="removing the half-restored copy",
                )
                note(f"removed the non-running copy on {target}")
            if source_running:
                report.outcome = RecoveryOutcome.ON_SOURCE
                note(f"{container} runs on {source}")
            else:
                assert source_copy is not None
                on_source.run(
                    commands.restore_local(source_copy.id),
                    timeout=WAIT_S,
                    check=True,
                    what=f"restoring {container} from its checkpoint",
                )
                restored = _inspect(on_source, source_copy.id)
                if not (restored and restored.is_running):
                    raise PreflightFailed(
                        f"{source}: {container} was restored but does not run", host=source
                    )
                report.outcome = RecoveryOutcome.RESTORED_ON_SOURCE
                note(f"restored {container} on {source} from its checkpoint")
        for session in sessions:
            _remove_leftover_workdirs(session, container_id, note)
        return report
    finally:
        for lock in sessions_locks:
            lock.kill()
        for session in sessions:
            session.close()


def _inspect(session: SSHSession, container: str) -> ContainerInfo | None:
    result = session.run(commands.container_inspect(container), timeout=60)
    if not result.ok:
        return None
    return parse_container_inspect(result.stdout)


def _workdirs(session: SSHSession, container_id: str) -> list[str]:
    result = session.run(
        commands.list_workdirs(container_id),
        timeout=60,
        check=True,
        what="listing leftover work directories",
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _wait_for_leftover_commands(session: SSHSession, container_id: str) -> None:
    for workdir in _workdirs(session, container_id):
        for wait in (commands.wait_for_checkpoint_end, commands.wait_for_restore_end):
            result = session.run(wait(workdir, timeout_s=WAIT_S), timeout=WAIT_S + 30)
            if not result.ok:
                raise ConnectionFailed(
                    f"{session.host.name}: a checkpoint or restore in {workdir} is still "
                    f"running after {WAIT_S} s",
                    host=session.host.name,
                )


def _remove_leftover_workdirs(session: SSHSession, container_id: str, note: object) -> None:
    for workdir in _workdirs(session, container_id):
        with contextlib.suppress(CelestialError):
            session.run(commands.remove_workdir(workdir), timeout=60, check=True)
            if callable(note):
                note(f"removed {workdir} on {session.host.name}")
