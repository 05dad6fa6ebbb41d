"""The migration engine: one container, from a source host to a target host, over SSH.

:class:`Migration` runs the phases in order (see :mod:`.state` for the state machine):
connect, :mod:`.preflight`, :mod:`.staging`, :mod:`.prepare` (which picks the data path,
a :class:`~.transfer.Transfer`), the :mod:`.freeze`, the :mod:`.restore`, and
:mod:`.cleanup`; on a failure it dispatches to :mod:`.rollback`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..data_plane import DataPlane
from ..errors import CelestialError, MigrationFailed, MigrationInterrupted
from ..events import EventSink, Phase, discard_events
from ..report import MigrationReport, Outcome
from ..shell import validate_container_name
from ..streaming import RelayStopped
from . import rollback
from .cleanup import clean_up
from .context import MigrationCancelled, MigrationContext
from .freeze import checkpoint_and_transfer
from .options import MigrationOptions, check_options
from .preflight import preflight
from .prepare import prepare
from .restore import restore, verify
from .staging import stage_image
from .state import FROZEN_STATES, State
from .wording import describe, one_line


class Migration:
    """One live migration. ``run()`` once; read ``report`` afterwards (also on failure).

    The hosts are reached through ``options.connection`` (tests give it a fake connector).
    """

    def __init__(
        self,
        source: str,
        target: str,
        container: str,
        options: MigrationOptions | None = None,
        on_event: EventSink | None = None,
    ):
        self.options = options or MigrationOptions()
        self._ctx = MigrationContext(
            source,
            target,
            container,
            self.options,
            on_event or discard_events,
        )
        self.report: MigrationReport = self._ctx.report
        self._started = 0.0

    # -- the whole run ----------------------------------------------------------------
    def run(self) -> MigrationReport:
        ctx = self._ctx
        self._started = time.monotonic()
        steps: tuple[Callable[[], None], ...] = (
            self._validate_input,
            self._connect,
            lambda: preflight(ctx),
            lambda: stage_image(ctx),
            lambda: prepare(ctx),
            lambda: checkpoint_and_transfer(ctx),
        )
        try:
            # a cancel request is honoured between steps and inside the stream; restore and
            # verify always run to the end once started (stopping them could leave two
            # running copies or none)
            for step in steps:
                ctx.raise_if_cancelled()
                step()
                if self.options.preflight_only and ctx.progress.state is State.CHECKED:
                    self._close()  # releases the lock; nothing was staged or frozen
                    return self.report
            # last chance to cancel: once the restore is sent it is never abandoned
            ctx.raise_if_cancelled()
            restore(ctx)
            verify(ctx)
            if ctx.cancel.is_set():
                ctx.warn(
                    "the cancel request came while restoring on the target; the restore "
                    "was finished rather than abandoned, so the migration completed"
                )
        except BaseException as error:
            if not rollback.restore_got_through(ctx, error):
                self._fail(error)  # always raises
        finally:
            self._stop_clock()
        try:
            clean_up(ctx)
        finally:
            self._stop_clock()
            self._close()
        return self.report

    def _stop_clock(self) -> None:
        self.report.total_s = round(time.monotonic() - self._started, 4)

    def _fail(self, error: BaseException) -> None:
        ctx = self._ctx
        progress = ctx.progress
        restorer = ctx.transfer.restorer if ctx.transfer is not None else None
        if restorer is not None and progress.state is not State.RESTORING:
            # never told to go, it ends without touching anything
            restorer.kill()
        interrupted = isinstance(error, (KeyboardInterrupt, MigrationCancelled, RelayStopped))
        source, target, container = ctx.source_text, ctx.target_text, ctx.container
        if progress.state in (State.RUNNING, State.CLEANED):
            # past the point of no return: the target runs it; never roll back from here
            self.report.outcome = Outcome.MIGRATED
            ctx.warn(
                f"interrupted after the container was verified on {target}: the "
                f"stopped copy on {source} and temporary files may remain"
            )
            self._stop_clock()
            self._close()
            if interrupted:
                raise MigrationInterrupted(
                    f"interrupted after {container!r} was verified running on "
                    f"{target}; the migration itself succeeded",
                    report=self.report,
                    cause=error,
                ) from error
            raise error
        try:
            if progress.state in FROZEN_STATES:
                rollback.roll_back(ctx, error)
            else:
                rollback.undo_before_freeze(ctx)
                self.report.outcome = Outcome.NOT_STARTED
        finally:
            self._stop_clock()
            self._close()
        self.report.error = one_line(error)
        if progress.state not in FROZEN_STATES and not interrupted:
            if isinstance(error, CelestialError):
                error.report = self.report
                raise error
            raise error
        where = {
            Outcome.ROLLED_BACK: f"it runs again on {source}, from its checkpoint",
            Outcome.NOT_STARTED: f"it was never stopped and still runs on {source}",
            Outcome.NEEDS_RECOVERY: "its state could not be confirmed",
        }[self.report.outcome]
        hint = None
        if self.report.outcome is Outcome.NEEDS_RECOVERY:
            hint = (
                f"Check both hosts (podman ps -a on {source} and "
                f"{target}); the checkpoint is kept in podman's storage on "
                f"{source}: 'podman container restore {container}' there "
                "brings it back if the target does not run it."
            )
        cls = MigrationInterrupted if interrupted else MigrationFailed
        verb = "was interrupted" if interrupted else "failed"
        raise cls(
            f"migration of {container!r} from {source} to "
            f"{target} {verb}: {describe(error)}\n"
            f"The container was not lost: {where}.",
            report=self.report,
            cause=error,
            hint=hint,
        ) from error

    # -- cancellation -----------------------------------------------------------------
    def request_cancel(self) -> None:
        """Ask a running migration to stop at the next safe point and roll back.

        Safe to call from a signal handler or another thread. Before the freeze nothing is
        changed; during the checkpoint or the stream the source is restored; a restore that
        has started is finished (the migration then completes).
        """
        self._ctx.cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._ctx.cancel.is_set()

    # -- the first two steps ----------------------------------------------------------
    def _validate_input(self) -> None:
        validate_container_name(self._ctx.container)
        check_options(self.options)

    def _connect(self) -> None:
        ctx = self._ctx
        with ctx.phase(Phase.CONNECT) as outcome:
            source_host, target_host = ctx.hosts.connect()
            ctx.plane = DataPlane.open(self.options.transport, ctx.sessions())
            self.report.transport = ctx.plane.kind
            ctx.progress.state = State.CONNECTED
            outcome["detail"] = (
                f"{source_host.user}@{source_host.hostname}:{source_host.port} -> "
                f"{target_host.user}@{target_host.hostname}:{target_host.port}, "
                f"data over {ctx.plane.description}"
            )

    def _close(self) -> None:
        ctx = self._ctx
        if ctx.transfer is not None:
            ctx.transfer.close()
        if ctx.plane is not None:
            ctx.plane.close()
        if ctx.lock is not None:
            ctx.lock.kill()
            ctx.lock = None
        ctx.hosts.close()


def migrate(
    source: str,
    target: str,
    container: str,
    options: MigrationOptions | None = None,
    on_event: EventSink | None = None,
) -> MigrationReport:
    """Live-migrate ``container`` from ``source`` to ``target``; see :class:`Migration`.

    Raises a :class:`~celestial_ssh.errors.CelestialError`; errors after the freeze are
    :class:`~celestial_ssh.errors.MigrationFailed` and carry the partial report.
    """
    return Migration(source, target, container, options, on_event).run()
