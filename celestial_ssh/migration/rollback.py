"""After a failure: undo what preparation made, decide whether a restore whose answer was
lost got through, and otherwise roll back so the container runs on the source again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from .. import commands
from ..errors import CelestialError, ConnectionFailed, PreflightFailed, RemoteCommandFailed
from ..events import Phase, PhaseFailed, PhaseFinished, PhaseStarted
from ..podman_json import (
    ContainerInfo,
    OutputError,
    parse_container_inspect,
    parse_container_list,
)
from ..report import Outcome
from ..ssh import SSHSession
from .context import MigrationContext
from .sessions import Side
from .state import State
from .wording import one_line


def undo_before_freeze(ctx: MigrationContext) -> None:
    """Leave both hosts as they were: nothing was frozen yet."""
    progress = ctx.progress
    # one try to reconnect where a connection died: what it made there should go too
    for side, workdir in _workdirs(ctx):
        if workdir:
            with contextlib.suppress(CelestialError):
                session = ctx.hosts.reconnected(side, attempts=1)
                if session is not None:
                    session.run(commands.remove_workdir(workdir), timeout=30)
    progress.source_workdir = progress.target_workdir = None
    if progress.staged_image_id:
        with contextlib.suppress(CelestialError):
            target = ctx.hosts.reconnected("target", attempts=1)
            if target is not None:
                target.run(commands.image_remove(progress.staged_image_id), timeout=60)
        progress.staged_image_id = None


def restore_got_through(ctx: MigrationContext, error: BaseException) -> bool:
    """After losing the answer of a restore: did it succeed on the target after all?

    If it did, the target copy may already be serving; removing it to restore the
    source would throw that away, so the migration is completed instead.
    """
    if ctx.progress.state is not State.RESTORING or isinstance(error, RemoteCommandFailed):
        return False
    info = ctx.progress.source_info
    name = ctx.report.target_container
    try:
        target = ctx.hosts.reconnected("target")
        if target is None or info is None or name is None:
            return False
        _wait_for_target_restore(ctx, target)
        result = target.run(commands.container_inspect(name), timeout=60)
        if not result.ok:
            return False
        copy = parse_container_inspect(result.stdout)
    except (CelestialError, OutputError):
        return False
    ours = copy.id == info.id or (
        ctx.options.new_name is not None and copy.id not in ctx.progress.target_ids_before
    )
    if not (ours and copy.is_running):
        return False
    ctx.progress.state = State.RUNNING
    ctx.report.outcome = Outcome.MIGRATED
    if ctx.report.downtime_s is None and ctx.progress.freeze_started is not None:
        ctx.report.downtime_s = round(time.monotonic() - ctx.progress.freeze_started, 4)
    ctx.warn(
        f"lost the answer of the restore ({one_line(error)}), but {name} runs on "
        f"{ctx.target_text}: the migration got through"
    )
    return True


def roll_back(ctx: MigrationContext, cause: BaseException) -> None:
    """From any state after the freeze: make the source run the container again."""
    progress = ctx.progress
    info = progress.info()
    ctx.emit(PhaseStarted(Phase.ROLLBACK, f"because: {one_line(cause)}"))
    started = time.monotonic()
    try:
        if progress.state in (State.RESTORING, State.RUNNING):
            target = ctx.hosts.reconnected("target")
            if target is None:
                ctx.report.outcome = Outcome.NEEDS_RECOVERY
                ctx.warn(
                    f"cannot reach {ctx.target_text} to see whether the restore "
                    "started there, so the source copy was NOT restored (that could "
                    "make two running copies)"
                )
                return
            _wait_for_target_restore(ctx, target)
            _remove_target_copy(ctx, target, info)
        _restore_source(ctx, info)
        ctx.report.outcome = Outcome.ROLLED_BACK
        _remove_leftovers(ctx)
    except CelestialError as error:
        ctx.report.outcome = Outcome.NEEDS_RECOVERY
        ctx.warn(f"rollback failed: {one_line(error)}")
    finally:
        duration = time.monotonic() - started
        ctx.report.timings[Phase.ROLLBACK.value] = round(duration, 4)
        if ctx.report.outcome is Outcome.ROLLED_BACK:
            ctx.emit(PhaseFinished(Phase.ROLLBACK, duration, f"running on {ctx.source_text}"))
        else:
            ctx.emit(PhaseFailed(Phase.ROLLBACK, duration, "needs recovery"))


def _remove_target_copy(ctx: MigrationContext, target: SSHSession, info: ContainerInfo) -> None:
    """Remove the copy our restore made on the target, and only that one."""
    listing = target.run(
        commands.container_list_all(), timeout=60, check=True, what="listing containers"
    )
    new_name = ctx.options.new_name
    for item in parse_container_list(listing.stdout):
        # without --name the restore keeps the source's ID, so the ID alone says "ours";
        # with --name it gets a new ID, and only a container that was not there just
        # before the restore can be ours (a stranger with that name is left alone)
        ours = item.id == info.id or (
            new_name is not None
            and new_name in item.names
            and item.id not in ctx.progress.target_ids_before
        )
        if ours:
            target.run(
                commands.container_remove(item.id, force=True),
                timeout=120,
                check=True,
                what=f"removing the half-restored copy {item.id[:12]}",
            )
            ctx.notice(f"removed the copy restored on {ctx.target_text}")


def _wait_for_target_restore(ctx: MigrationContext, target: SSHSession) -> None:
    """A restore whose answer we lost may still be running: let it end first."""
    workdir = ctx.progress.target_workdir
    if not workdir or ctx.progress.restore_ended:
        return
    _wait_remote(ctx, target, commands.wait_for_restore_end, workdir, "the restore")
    ctx.progress.restore_ended = True


def _wait_remote(
    ctx: MigrationContext,
    session: SSHSession,
    build: Callable[..., list[str]],
    workdir: str,
    what: str,
) -> None:
    timeout = int(ctx.options.restore_timeout_s)
    waited = session.run(build(workdir, timeout_s=timeout), timeout=timeout + 30)
    if not waited.ok:
        raise ConnectionFailed(
            f"{session.host.name}: {what} is still running after {timeout} s",
            host=session.host.name,
        )


def _restore_source(ctx: MigrationContext, info: ContainerInfo) -> None:
    source = ctx.hosts.reconnected("source")
    if source is None:
        raise ConnectionFailed(
            f"cannot reconnect to {ctx.source_text} to restore the container",
            host=ctx.source_text,
        )
    # after a lost connection the checkpoint may still run: decide only once it ended
    workdir = ctx.progress.source_workdir
    if workdir:
        _wait_remote(ctx, source, commands.wait_for_checkpoint_end, workdir, "the checkpoint")
    state = _inspect(source, info.id)
    if state.is_running:
        ctx.notice(f"the container still runs on {ctx.source_text} (it was never frozen)")
        return
    source.run(
        commands.restore_local(info.id),
        timeout=ctx.options.restore_timeout_s,
        check=True,
        what=f"restoring {info.name} from its checkpoint",
    )
    state = _inspect(source, info.id)
    if not state.is_running:
        raise PreflightFailed(
            f"{ctx.source_text}: {info.name} was restored but is {state.status}",
            host=ctx.source_text,
        )
    ctx.notice(f"restored {info.name} on {ctx.source_text} from its checkpoint")


def _inspect(session: SSHSession, container: str) -> ContainerInfo:
    result = session.run(
        commands.container_inspect(container),
        timeout=60,
        check=True,
        what=f"inspecting {container[:12]} on {session.host.name}",
    )
    return parse_container_inspect(result.stdout)


def _remove_leftovers(ctx: MigrationContext) -> None:
    progress = ctx.progress
    for side, workdir in _workdirs(ctx):
        if workdir and ctx.hosts.get(side):
            live = ctx.hosts.reconnected(side)
            if live is not None:
                with contextlib.suppress(CelestialError):
                    live.run(commands.remove_workdir(workdir), timeout=30)
    progress.source_workdir = progress.target_workdir = None


def _workdirs(ctx: MigrationContext) -> tuple[tuple[Side, str | None], ...]:
    """Each side with its work directory (None: there is none)."""
    return (("source", ctx.progress.source_workdir), ("target", ctx.progress.target_workdir))
