"""What one migration knows while it runs, shared by its phases: the options, the report,
the sessions, the progress, and how to tell the caller (events) and stop (a cancel)."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

from ..commands import CheckpointOptions
from ..data_plane import DataPlane, StreamProcess, await_ready
from ..errors import CelestialError
from ..events import (
    Event,
    EventSink,
    Notice,
    Phase,
    PhaseFailed,
    PhaseFinished,
    PhaseStarted,
    TransferProgress,
)
from ..rate_limit import TokenBucket
from ..report import STEP_TIMINGS, MigrationReport
from ..ssh import CommandResult, RemoteProcess, SSHSession
from ..streaming import RelayResult, relay
from .options import MigrationOptions
from .sessions import HostSessions
from .state import Progress
from .wording import one_line

if TYPE_CHECKING:
    from .transfer import Transfer

READY_TIMEOUT_S = 60.0


class MigrationCancelled(Exception):
    """Raised inside the engine when :meth:`Migration.request_cancel` was called."""


class MigrationContext:
    """One migration's shared state; each phase reads and advances it."""

    def __init__(
        self,
        source: str,
        target: str,
        container: str,
        options: MigrationOptions,
        on_event: EventSink,
    ):
        self.options = options
        self._emit_to = on_event
        self.report = MigrationReport(
            container=container, source=source, target=target, compression=options.compression
        )
        self.source_text = source
        self.target_text = target
        self.container = container
        self.progress = Progress()
        self.hosts = HostSessions(source, target, options.connection_settings(), self.notice)
        self.cancel = threading.Event()
        self.lock: RemoteProcess | None = None
        self.plane: DataPlane | None = None
        # the data path, chosen once while preparing (see prepare.choose_transfer)
        self.transfer: Transfer | None = None
        self.compression = options.compression
        self.precopy = False
        self.previous_archive: str | None = None
        # a checkpoint whose archive was complete (at that monotonic time) while podman still
        # tidied up the source; once the restore was sent, its end and how long it tidied up
        self.checkpoint_ending: tuple[StreamProcess, float] | None = None
        self.checkpoint_end: Future[tuple[CommandResult | CelestialError, float]] | None = None
        # `podman stats` of the container, read during preflight (for the archive estimate)
        self.memory_in_use: CommandResult | None = None
        # `podman image inspect` of the container's image on the target, read then too
        self.target_image: CommandResult | None = None

    # -- telling the caller -----------------------------------------------------------
    def emit(self, event: Event) -> None:
        with contextlib.suppress(Exception):  # a broken display must not break a migration
            self._emit_to(event)

    def notice(self, message: str, level: str = "info") -> None:
        if level == "warning":
            self.report.warnings.append(message)
        self.emit(Notice(level=level, message=message))

    def warn(self, message: str) -> None:
        self.notice(message, level="warning")

    def time_step(self, step: str, started: float) -> None:
        """Record how long ``step`` (one of STEP_TIMINGS, which reports have columns for)
        took since ``started``."""
        if step not in STEP_TIMINGS:
            raise ValueError(f"{step!r} is not one of the report's step timings")
        self.report.timings[step] = round(time.monotonic() - started, 4)

    @contextlib.contextmanager
    def phase(self, phase: Phase, detail: str = "") -> Iterator[dict[str, str]]:
        """Time a phase, report it, and record its duration in the report."""
        self.emit(PhaseStarted(phase, detail))
        started = time.monotonic()
        outcome: dict[str, str] = {"detail": ""}
        try:
            yield outcome
        except BaseException as error:
            duration = time.monotonic() - started
            self.report.timings[phase.value] = round(duration, 4)
            self.emit(PhaseFailed(phase, duration, one_line(error)))
            raise
        duration = time.monotonic() - started
        self.report.timings[phase.value] = round(duration, 4)
        self.emit(PhaseFinished(phase, duration, outcome["detail"]))

    def fail_checkpoint_and_transfer(self, duration: float, checkpoint: str, transfer: str) -> None:
        """The freeze's two phases (checkpoint and transfer run as one) end in failure."""
        self.emit(PhaseFailed(Phase.CHECKPOINT, duration, checkpoint))
        self.emit(PhaseFailed(Phase.TRANSFER, duration, transfer))

    # -- stopping ---------------------------------------------------------------------
    def raise_if_cancelled(self) -> None:
        if self.cancel.is_set():
            raise MigrationCancelled("cancelled on request")

    # -- what the phases share --------------------------------------------------------
    def sessions(self) -> tuple[SSHSession, SSHSession]:
        return self.hosts.pair()

    def data_plane(self) -> DataPlane:
        assert self.plane is not None
        return self.plane

    def checkpoint_options(self) -> CheckpointOptions:
        options = self.options.checkpoint_options(self.compression)
        if self.previous_archive is not None:
            options = dataclasses.replace(options, with_previous=True)
        return options

    def await_ready(self, process: StreamProcess, host: str) -> None:
        """Read the stream's ready line; nothing is frozen yet, so any failure is clean."""
        await_ready(
            process,
            timeout=READY_TIMEOUT_S,
            host=host,
            ended_before="the freeze",
            check=self.raise_if_cancelled,
        )

    def relay(
        self,
        sender: StreamProcess,
        receiver: StreamProcess,
        what: str,
        expected: int | None = None,
        *,
        throttled: bool = True,
    ) -> RelayResult:
        """Relay ``sender`` into ``receiver`` through this machine, reporting progress as
        ``what``; a cancel request stops it, and ``--bwlimit`` caps it when ``throttled``."""
        limit = self.options.bwlimit_bytes_per_s
        return relay(
            sender,
            receiver,
            on_progress=lambda done: self.emit(TransferProgress(what, done, expected)),
            stall_timeout=self.options.stream_stall_timeout_s,
            should_stop=self.cancel.is_set,
            throttle=TokenBucket(limit) if limit and throttled else None,
        )
