"""Running a batch: its migrations with bounded concurrency, and what each one became.

:func:`run_batch` runs the entries of a :class:`~celestial_ssh.batch.plan.Plan` through the
one migration engine (:class:`~celestial_ssh.migration.Migration`), so every promise of a
single migration holds for each entry. It stops at the first failure unless told to go on
(migrations already running finish; the others are marked skipped). Re-running a plan is
safe: an entry whose container is gone from its source and runs on its target is reported
``already_moved``. A dry run connects and runs the preflight checks only; nothing is frozen.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypedDict, Unpack

from .. import commands
from ..connection import ConnectionSettings, HostResolver, connection_settings
from ..errors import CelestialError, InvalidInput, PreflightFailed
from ..events import Event
from ..hosts import ResolvedHost
from ..migration import Migration, MigrationOptions, check_options
from ..podman_json import OutputError, parse_container_inspect
from ..report import MigrationReport, Outcome
from .plan import Plan, PlanEntry, load_plan


class EntryStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    MIGRATED = "migrated"
    FAILED = "failed"
    SKIPPED = "skipped"
    ALREADY_MOVED = "already_moved"
    WOULD_MIGRATE = "would_migrate"

    @property
    def is_final(self) -> bool:
        return self not in (EntryStatus.PENDING, EntryStatus.RUNNING)


# -- what a batch reports ---------------------------------------------------------------------
@dataclass(frozen=True)
class EntryUpdate:
    """A batch entry changed status; ``report`` is set once a migration (or dry run) ended."""

    status: EntryStatus
    detail: str = ""
    report: MigrationReport | None = None


@dataclass(frozen=True)
class BatchEvent:
    """An event of entry ``index`` (1-based): the engine's own, or an :class:`EntryUpdate`."""

    index: int
    event: Event | EntryUpdate


BatchEventSink = Callable[[BatchEvent], None]


@dataclass
class EntryResult:
    entry: PlanEntry
    status: EntryStatus = EntryStatus.PENDING
    report: MigrationReport | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    detail: str = ""

    @property
    def outcome(self) -> Outcome | None:
        return self.report.outcome if self.report is not None else None

    def to_dict(self) -> dict[str, Any]:
        entry = self.entry
        return {
            "index": entry.index,
            "container": entry.container,
            "source": entry.source,
            "target": entry.target,
            "name": entry.target_name,
            "status": str(self.status),
            "outcome": str(self.outcome) if self.outcome is not None else None,
            "detail": self.detail,
            "error": self.error,
            "report": self.report.to_dict() if self.report is not None else None,
        }


_OK_STATUSES = {
    EntryStatus.MIGRATED,
    EntryStatus.SKIPPED,
    EntryStatus.ALREADY_MOVED,
    EntryStatus.WOULD_MIGRATE,
}


@dataclass
class BatchReport:
    entries: list[EntryResult]
    dry_run: bool = False
    cancelled: bool = False
    total_s: float | None = None

    @property
    def succeeded(self) -> bool:
        """Nothing failed and nobody cancelled: every entry moved, was already moved, or
        (in a dry run) would move."""
        return not self.cancelled and all(entry.status in _OK_STATUSES for entry in self.entries)

    @property
    def failed(self) -> list[EntryResult]:
        return [entry for entry in self.entries if entry.status is EntryStatus.FAILED]

    def count(self, status: EntryStatus) -> int:
        return sum(1 for entry in self.entries if entry.status is status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "succeeded" if self.succeeded else "failed",
            "dry_run": self.dry_run,
            "cancelled": self.cancelled,
            "total_s": self.total_s,
            "counts": {
                str(status): self.count(status) for status in EntryStatus if status.is_final
            },
            "migrations": [entry.to_dict() for entry in self.entries],
        }


# -- running a batch --------------------------------------------------------------------------
def container_state(
    host: str | ResolvedHost,
    container: str,
    *,
    connection: ConnectionSettings | None = None,
    timeout: float = 60.0,
) -> str | None:
    """podman's status of ``container`` on ``host`` (``running``, ``exited``...), None if absent.

    Raises :class:`~celestial_ssh.errors.CelestialError` when the host cannot be asked or
    podman answers something else than "no such container".
    """
    with contextlib.closing(
        (connection or ConnectionSettings()).connect(host, timeout=timeout)
    ) as session:
        name = session.host.name
        result = session.run(commands.container_inspect(container), timeout=timeout)
    if result.ok:
        try:
            return parse_container_inspect(result.stdout).status
        except OutputError as error:
            raise PreflightFailed(f"{name}: {error}", host=name) from error
    text = (result.stderr + result.stdout).lower()
    if "no such" in text or "no container" in text:
        return None
    raise PreflightFailed(
        f"{name}: cannot inspect {container!r}: {result.stderr.strip()[-200:]}",
        host=name,
    )


class BatchRun:
    """One run of a plan. ``run()`` once; ``request_cancel()`` from anywhere (signal handler)."""

    def __init__(
        self,
        plan: Plan,
        *,
        parallel: int = 1,
        continue_on_error: bool = False,
        dry_run: bool = False,
        connection: ConnectionSettings | None = None,
        on_event: BatchEventSink | None = None,
        cancel: threading.Event | None = None,
        transport: str = "auto",
        data_path: str = "auto",
        direct: bool = False,
        bwlimit_bytes_per_s: float | None = None,
        tls: bool = False,
        ssh_config: str | None = None,
        accept_new_host_keys: bool = False,
        host_resolver: HostResolver | None = None,
    ):
        """``ssh_config``, ``accept_new_host_keys`` and ``host_resolver`` are the older
        spelling of ``connection`` (given, they replace its fields)."""
        if parallel < 1:
            raise InvalidInput(f"parallel must be at least 1, not {parallel}")
        self.plan = plan
        self.parallel = parallel
        # a dry run checks every entry: one failed check must not hide the others
        self.continue_on_error = continue_on_error or dry_run
        self.dry_run = dry_run
        self.connection = connection_settings(
            connection,
            ssh_config=ssh_config,
            accept_new_host_keys=accept_new_host_keys,
            host_resolver=host_resolver,
        )
        self._on_event = on_event
        self.cancel = cancel or threading.Event()
        # how every migration's archive travels (the same for the whole batch)
        self.transport = transport
        self.data_path = data_path
        self.direct = direct
        self.bwlimit_bytes_per_s = bwlimit_bytes_per_s
        self.tls = tls
        self._stop = threading.Event()  # a failure stops the entries not yet started
        self._lock = threading.Lock()
        self._running: dict[int, Migration] = {}
        self.results = [EntryResult(entry) for entry in plan.entries]

    # -- events and cancellation ------------------------------------------------------------
    def _emit(self, index: int, event: Event | EntryUpdate) -> None:
        if self._on_event is None:
            return
        with contextlib.suppress(Exception):  # a broken display must not break the batch
            self._on_event(BatchEvent(index, event))

    def request_cancel(self) -> None:
        """Stop starting entries, and ask every running migration to stop at a safe point."""
        self.cancel.set()
        with self._lock:
            running = list(self._running.values())
        for migration in running:
            migration.request_cancel()

    def _watch_cancel(self, done: threading.Event) -> None:
        while not done.is_set():
            if self.cancel.wait(0.1):
                self.request_cancel()
                return

    def _set(self, result: EntryResult, status: EntryStatus, detail: str = "") -> None:
        result.status = status
        result.detail = detail
        self._emit(result.entry.index, EntryUpdate(status, detail, result.report))

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> BatchReport:
        started = time.monotonic()
        self._check_options()
        settings = self.connection
        resolver = settings.host_resolver or self.plan.host_resolver(settings.ssh_config)
        self.connection = settings.with_resolver(self._checked_resolver(resolver))
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(done,), daemon=True)
        watcher.start()
        try:
            with ThreadPoolExecutor(
                max_workers=self.parallel, thread_name_prefix="celestial-batch"
            ) as pool:
                futures = [pool.submit(self._run_entry, result) for result in self.results]
                for future in futures:
                    future.result()
        finally:
            done.set()
            watcher.join()
        return BatchReport(
            entries=self.results,
            dry_run=self.dry_run,
            cancelled=self.cancel.is_set(),
            total_s=round(time.monotonic() - started, 4),
        )

    def _options(self, entry: PlanEntry) -> MigrationOptions:
        """The batch's options, with what the plan says for ``entry`` over them."""
        return entry.options(
            MigrationOptions(
                connection=self.connection,
                preflight_only=self.dry_run,
                transport=self.transport,
                data_path=self.data_path,
                direct=self.direct,
                bwlimit_bytes_per_s=self.bwlimit_bytes_per_s,
                tls=self.tls,
            )
        )

    def _check_options(self) -> None:
        """Every entry's options, checked before anything connects: a plan that asks for
        --tls where the command line gave --bwlimit fails now, not halfway through."""
        for result in self.results:
            try:
                check_options(self._options(result.entry))
            except InvalidInput as error:
                raise InvalidInput(
                    f"{result.entry.where()}: {error.message}", hint=error.hint
                ) from error

    def _checked_resolver(self, resolver: HostResolver) -> HostResolver:
        """Resolve every host of the plan now: a typo fails the batch before anything moves."""
        for result in self.results:
            entry = result.entry
            for host in (entry.source, entry.target):
                try:
                    resolver(host)
                except CelestialError as error:
                    raise type(error)(
                        f"{entry.where()}: {error.message}", host=host, hint=error.hint
                    ) from error
        return resolver

    def _run_entry(self, result: EntryResult) -> None:
        entry = result.entry
        if self.cancel.is_set():
            self._set(result, EntryStatus.SKIPPED, "cancelled before it started")
            return
        if self._stop.is_set():
            self._set(result, EntryStatus.SKIPPED, "not started: an earlier migration failed")
            return
        self._set(result, EntryStatus.RUNNING)
        try:
            if self._already_moved(entry):
                self._set(
                    result,
                    EntryStatus.ALREADY_MOVED,
                    f"{entry.target_name} already runs on {entry.target} and "
                    f"{entry.container} is gone from {entry.source}",
                )
                return
            self._migrate(result)
        except BaseException as error:  # every failure is the entry's result
            report = getattr(error, "report", None)
            result.report = report if isinstance(report, MigrationReport) else None
            result.exception = error
            result.error = (
                str(error) if isinstance(error, CelestialError) else repr(error)
            ).strip()
            if not self.continue_on_error:
                self._stop.set()
            first_line = result.error.splitlines()[0] if result.error else type(error).__name__
            self._set(result, EntryStatus.FAILED, first_line)
            if not isinstance(error, Exception):
                raise

    def _already_moved(self, entry: PlanEntry) -> bool:
        """Gone from the source and running on the target (by name): moved by an earlier run."""
        if container_state(entry.source, entry.container, connection=self.connection) is not None:
            return False
        target_state = container_state(entry.target, entry.target_name, connection=self.connection)
        return target_state == "running"

    def _migrate(self, result: EntryResult) -> None:
        entry = result.entry
        migration = Migration(
            entry.source,
            entry.target,
            entry.container,
            self._options(entry),
            on_event=lambda event: self._emit(entry.index, event),
        )
        with self._lock:
            self._running[entry.index] = migration
        if self.cancel.is_set():
            migration.request_cancel()
        try:
            report = migration.run()
        finally:
            with self._lock:
                self._running.pop(entry.index, None)
        result.report = report
        if self.dry_run:
            self._set(
                result,
                EntryStatus.WOULD_MIGRATE,
                f"would migrate {entry.container} from {entry.source} to {entry.target}",
            )
        else:
            self._set(
                result,
                EntryStatus.MIGRATED,
                f"downtime {report.downtime_s:.2f} s" if report.downtime_s is not None else "",
            )


class RunSettings(TypedDict, total=False):
    """How a batch runs, whatever its plan (see :class:`BatchRun`)."""

    parallel: int
    continue_on_error: bool
    dry_run: bool
    on_event: BatchEventSink | None
    cancel: threading.Event | None


class BatchSettings(RunSettings, total=False):
    """:class:`RunSettings`, how the hosts are reached, and how every archive travels."""

    connection: ConnectionSettings | None
    transport: str
    data_path: str
    direct: bool
    bwlimit_bytes_per_s: float | None
    tls: bool
    ssh_config: str | None
    accept_new_host_keys: bool
    host_resolver: HostResolver | None


def run_batch(
    plan: Plan | str | os.PathLike[str], **settings: Unpack[BatchSettings]
) -> BatchReport:
    """Run every migration of ``plan`` (a :class:`Plan` or a plan file); see :class:`BatchRun`
    for the keyword arguments.

    ``transport``, ``data_path``, ``direct``, ``bwlimit_bytes_per_s`` and ``tls`` apply to
    every migration, as the :class:`~celestial_ssh.migration.MigrationOptions` fields of
    those names (each TLS listener takes a port of its own choosing). ``connection`` says how the
    hosts are reached (``ssh_config``, ``accept_new_host_keys`` and ``host_resolver`` are
    its older spelling and, given, replace its fields).

    Returns the report of the whole batch: failed entries do not raise, they are in it.
    Raises :class:`~celestial_ssh.errors.InvalidInput` / ``HostConfigError`` for a bad
    plan or an unknown host, before anything is changed.
    """
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    return BatchRun(plan, **settings).run()
