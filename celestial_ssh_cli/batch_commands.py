"""``celestial-ssh batch PLAN.yml`` and ``celestial-ssh evacuate HOST --to HOST2,...``.

Both run a batch of migrations (``celestial_ssh.batch``) and show it as a live table on a
terminal (one row per migration), plain lines otherwise, or JSON (one document, or one
event per line). Exit status: 0 when every migration succeeded or was skipped, otherwise
the most serious of the failed migrations' codes (``failures.exit_code_for``): 6 needs
recovery, 5 rolled back, 130 interrupted, 4 preflight, 3 connection, 2 input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO, Any

import click
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from celestial_ssh.batch import (
    BatchEvent,
    BatchReport,
    EntryStatus,
    EntryUpdate,
    Plan,
    PlanEntry,
    load_plan,
    plan_evacuation,
    run_batch,
)
from celestial_ssh.commands import COMPRESSION_SETTINGS
from celestial_ssh.errors import CelestialError
from celestial_ssh.events import (
    Event,
    Notice,
    Phase,
    PhaseFailed,
    PhaseFinished,
    PhaseSkipped,
    PhaseStarted,
    TransferProgress,
)
from celestial_ssh.hosts import ResolvedHost

from .failures import ExitCode, exit_code_for, message_for
from .options import data_plane_options, ssh_options
from .report_file import ReportFile, check_report_file

# the most serious first: what a batch exits with when several migrations failed
_SEVERITY = [
    ExitCode.NEEDS_RECOVERY,
    ExitCode.ROLLED_BACK,
    ExitCode.INTERRUPTED,
    ExitCode.PREFLIGHT,
    ExitCode.CONNECTION,
    ExitCode.USAGE,
    ExitCode.ERROR,
]


def batch_exit_code(report: BatchReport) -> ExitCode:
    """0 if every entry succeeded or was skipped; else the most serious failure's code."""
    codes = {
        exit_code_for(entry.exception) if entry.exception is not None else ExitCode.ERROR
        for entry in report.failed
    }
    if report.cancelled:
        codes.add(ExitCode.INTERRUPTED)
    for code in _SEVERITY:
        if code in codes:
            return code
    return ExitCode.OK


# -- displays -----------------------------------------------------------------------------------
@dataclasses.dataclass
class _Row:
    entry: PlanEntry
    status: EntryStatus = EntryStatus.PENDING
    phase: str = ""
    bytes_done: dict[str, int] = dataclasses.field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    detail: str = ""

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        return (self.ended or time.monotonic()) - self.started

    @property
    def moved(self) -> int:
        return sum(self.bytes_done.values())


class _Rows:
    """What every display keeps per migration; thread-safe (events come from the workers)."""

    def __init__(self, entries: list[PlanEntry]):
        self.rows = {entry.index: _Row(entry) for entry in entries}
        self.lock = threading.Lock()

    def apply(self, batch_event: BatchEvent) -> _Row | None:
        with self.lock:
            row = self.rows.get(batch_event.index)
            if row is None:
                return None
            event = batch_event.event
            if isinstance(event, EntryUpdate):
                row.status = event.status
                row.detail = event.detail
                if event.status is EntryStatus.RUNNING and row.started is None:
                    row.started = time.monotonic()
                if event.status.is_final:
                    row.ended = time.monotonic()
                    row.phase = "" if event.status is not EntryStatus.FAILED else row.phase
            elif isinstance(event, (PhaseStarted, PhaseFinished, PhaseFailed, PhaseSkipped)):
                row.phase = event.phase.label
                if isinstance(event, PhaseFailed):
                    row.phase = f"{event.phase.label} (failed)"
            elif isinstance(event, TransferProgress):
                row.bytes_done[event.what] = event.bytes_done
            return row


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count else ""


_STATUS_STYLE = {
    EntryStatus.PENDING: "dim",
    EntryStatus.RUNNING: "cyan",
    EntryStatus.MIGRATED: "green",
    EntryStatus.FAILED: "bold red",
    EntryStatus.SKIPPED: "yellow",
    EntryStatus.ALREADY_MOVED: "green",
    EntryStatus.WOULD_MIGRATE: "green",
}


def _table(rows: list[_Row], *, title: str | None = None) -> Table:
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("#", justify="right")
    table.add_column("container")
    table.add_column("from -> to")
    table.add_column("phase")
    table.add_column("bytes", justify="right")
    table.add_column("elapsed", justify="right")
    table.add_column("result")
    for row in rows:
        entry = row.entry
        name = entry.container
        if entry.new_name and entry.new_name != entry.container:
            name = f"{entry.container} -> {entry.new_name}"
        elapsed = row.elapsed
        result = Text(str(row.status), style=_STATUS_STYLE[row.status])
        if row.detail and row.status.is_final:
            result.append(f"  {row.detail}", style="dim")
        table.add_row(
            str(entry.index),
            name,
            f"{entry.source} -> {entry.target}",
            row.phase,
            _megabytes(row.moved),
            f"{elapsed:.1f} s" if elapsed is not None else "",
            result,
        )
    return table


class BatchDisplay:
    """Base: keeps the rows; subclasses render them."""

    def __init__(self, entries: list[PlanEntry]):
        self.rows = _Rows(entries)

    def __enter__(self) -> BatchDisplay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def __call__(self, event: BatchEvent) -> None:
        self.rows.apply(event)

    def summary(self, report: BatchReport) -> None:
        pass

    def message(self, text: str) -> None:
        click.echo(text, err=True)


class QuietDisplay(BatchDisplay):
    def message(self, text: str) -> None:
        pass


class RichBatchDisplay(BatchDisplay):
    """A live table on stderr, one row per migration, then the final table."""

    def __init__(self, entries: list[PlanEntry], console: Console | None = None):
        super().__init__(entries)
        self.console = console or Console(stderr=True)
        self._notices: list[Text] = []
        self._live = Live(
            self, console=self.console, refresh_per_second=8, transient=True, auto_refresh=True
        )

    def __enter__(self) -> RichBatchDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.__exit__(None, None, None)

    def __rich__(self) -> RenderableType:
        with self.rows.lock:
            return _table(list(self.rows.rows.values()))

    def __call__(self, event: BatchEvent) -> None:
        super().__call__(event)
        inner = event.event
        if isinstance(inner, Notice) and inner.level == "warning":
            self._live.console.print(
                Text(f"#{event.index} warning: {inner.message}", style="yellow")
            )

    def summary(self, report: BatchReport) -> None:
        with self.rows.lock:
            rows = list(self.rows.rows.values())
        self.console.print(_table(rows, title=_summary_title(report)))
        for entry in report.failed:
            if entry.error:
                self.console.print(
                    Text(f"#{entry.entry.index} {entry.entry.container}: {entry.error}", "red")
                )

    def message(self, text: str) -> None:
        self.console.print(Text(text))


class PlainBatchDisplay(BatchDisplay):
    """One line per step of each migration, prefixed with its number and container."""

    def __init__(
        self, entries: list[PlanEntry], stream: IO[str] | None = None, verbose: bool = False
    ):
        super().__init__(entries)
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self._started = time.monotonic()
        self._print_lock = threading.Lock()

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self._started
        with self._print_lock:
            print(f"[{elapsed:7.2f}s] {text}", file=self.stream, flush=True)

    def __call__(self, event: BatchEvent) -> None:
        row = self.rows.apply(event)
        if row is None:
            return
        entry = row.entry
        prefix = f"#{entry.index} {entry.container} {entry.source}->{entry.target}:"
        inner = event.event
        if isinstance(inner, EntryUpdate):
            if inner.status is EntryStatus.RUNNING:
                self._line(f"{prefix} started")
            else:
                detail = f" ({inner.detail})" if inner.detail else ""
                self._line(f"{prefix} {inner.status}{detail}")
        elif isinstance(inner, PhaseStarted) and self.verbose:
            self._line(f"{prefix} {inner.phase.label} ...")
        elif isinstance(inner, PhaseFinished) and (
            self.verbose or inner.phase in (Phase.PREFLIGHT, Phase.RESTORE)
        ):
            detail = f" ({inner.detail})" if inner.detail else ""
            self._line(f"{prefix} {inner.phase.label}: done in {inner.duration_s:.2f} s{detail}")
        elif isinstance(inner, PhaseFailed):
            self._line(f"{prefix} {inner.phase.label}: FAILED: {inner.error}")
        elif isinstance(inner, Notice) and (self.verbose or inner.level == "warning"):
            self._line(f"{prefix} {inner.level}: {inner.message}")
        elif isinstance(inner, TransferProgress) and inner.finished:
            self._line(f"{prefix} {inner.what}: {inner.bytes_done / 1e6:.1f} MB moved")

    def summary(self, report: BatchReport) -> None:
        self._line(_summary_title(report))
        for entry in report.entries:
            error = f": {entry.error}" if entry.error else ""
            self._line(
                f"  #{entry.entry.index} {entry.entry.container} "
                f"{entry.entry.source}->{entry.entry.target}: {entry.status}{error}"
            )

    def message(self, text: str) -> None:
        self._line(text)


def _event_document(batch_event: BatchEvent) -> dict[str, Any]:
    inner: Event | EntryUpdate = batch_event.event
    document: dict[str, Any] = {"index": batch_event.index}
    if isinstance(inner, EntryUpdate):
        document["type"] = "entry"
        document["status"] = str(inner.status)
        document["detail"] = inner.detail
        if inner.report is not None and inner.status.is_final:
            document["report"] = inner.report.to_dict()
        return document
    document["type"] = {
        PhaseStarted: "phase_started",
        PhaseFinished: "phase_finished",
        PhaseSkipped: "phase_skipped",
        PhaseFailed: "phase_failed",
        TransferProgress: "transfer",
        Notice: "notice",
    }[type(inner)]
    for key, value in dataclasses.asdict(inner).items():
        document[key] = str(value) if isinstance(value, Phase) else value
    return document


class JsonLinesDisplay(BatchDisplay):
    """Every event as one JSON object per line on stdout, as it happens; then the summary."""

    def __init__(self, entries: list[PlanEntry]):
        super().__init__(entries)
        self._print_lock = threading.Lock()
        self._containers = {entry.index: entry for entry in entries}

    def _write(self, document: dict[str, Any]) -> None:
        with self._print_lock:
            sys.stdout.write(json.dumps(document) + "\n")
            sys.stdout.flush()

    def __call__(self, event: BatchEvent) -> None:
        super().__call__(event)
        document = _event_document(event)
        entry = self._containers.get(event.index)
        if entry is not None:
            document["container"] = entry.container
        self._write(document)

    def summary(self, report: BatchReport) -> None:
        self._write({"type": "summary", **report.to_dict()})

    def message(self, text: str) -> None:
        click.echo(text, err=True)


def _summary_title(report: BatchReport) -> str:
    counts = ", ".join(
        f"{count} {status}"
        for status in EntryStatus
        if status.is_final and (count := report.count(status))
    )
    verdict = "all done" if report.succeeded else "NOT all done"
    cancelled = " (cancelled)" if report.cancelled else ""
    kind = "dry run" if report.dry_run else "batch"
    return f"{kind}: {verdict}{cancelled}: {counts or 'nothing to do'} in {report.total_s} s"


def _choose_display(
    entries: list[PlanEntry], *, json_output: bool, json_lines: bool, quiet: bool, verbose: bool
) -> BatchDisplay:
    if json_lines:
        return JsonLinesDisplay(entries)
    if json_output or quiet:
        return QuietDisplay(entries)
    console = Console(stderr=True)
    if console.is_terminal:
        return RichBatchDisplay(entries, console)
    return PlainBatchDisplay(entries, verbose=verbose)


# -- running -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _cancel_on_signals(cancel: threading.Event) -> Iterator[None]:
    """Ctrl-C / SIGTERM: no new migration starts; running ones stop at a safe point."""

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if cancel.is_set():
            click.echo(f"celestial-ssh: {name} again: still stopping safely, please wait", err=True)
        else:
            click.echo(
                f"celestial-ssh: {name}: stopping every migration at its next safe point",
                err=True,
            )
        cancel.set()

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _batch_options(function: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--parallel",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="How many migrations run at once.",
        ),
        click.option(
            "--continue-on-error",
            is_flag=True,
            help="Go on with the other migrations when one fails (default: stop starting new "
            "ones; those already running finish).",
        ),
        click.option(
            "--dry-run",
            is_flag=True,
            help="Connect and run the preflight checks of every migration; freeze nothing.",
        ),
        click.option(
            "--json-lines",
            is_flag=True,
            help="Print every event as one JSON object per line on stdout, as it happens.",
        ),
        click.option(
            "--report",
            "report_file",
            type=click.Path(dir_okay=False),
            default=None,
            help="Append a row per finished migration to FILE.csv or FILE.json.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return ssh_options(data_plane_options(function))


def _fail(error: BaseException, json_output: bool, json_lines: bool) -> None:
    code = exit_code_for(error)
    if json_output or json_lines:
        document = {
            "type": "summary",
            "status": "failed",
            "error": str(error) if isinstance(error, CelestialError) else repr(error),
            "exit_code": int(code),
        }
        click.echo(json.dumps(document, indent=None if json_lines else 2))
    click.echo(message_for(error), err=True)
    sys.exit(int(code))


def _run(
    entries: list[PlanEntry],
    start: Callable[[Callable[[BatchEvent], None], threading.Event], BatchReport],
    *,
    json_output: bool,
    json_lines: bool,
    quiet: bool,
    verbose: bool,
    report_file: str | None,
    dry_run: bool,
) -> None:
    display = _choose_display(
        entries, json_output=json_output, json_lines=json_lines, quiet=quiet, verbose=verbose
    )
    report_lock = threading.Lock()
    rows = ReportFile(report_file) if report_file else None

    def on_event(event: BatchEvent) -> None:
        display(event)
        inner = event.event
        if (
            rows is not None
            and not dry_run
            and isinstance(inner, EntryUpdate)
            and inner.report is not None
            and inner.status in (EntryStatus.MIGRATED, EntryStatus.FAILED)
        ):
            with report_lock:
                rows.append(inner.report)

    cancel = threading.Event()
    try:
        with display, _cancel_on_signals(cancel):
            report = start(on_event, cancel)
    except (CelestialError, KeyboardInterrupt, Exception) as error:
        if rows is not None:
            rows.warn()
        _fail(error, json_output, json_lines)
        return
    code = batch_exit_code(report)
    if json_output:
        document = report.to_dict()
        document["exit_code"] = int(code)
        click.echo(json.dumps(document, indent=2))
    else:
        display.summary(report)
    if rows is not None:
        rows.warn()
    sys.exit(int(code))


def _check_json(json_output: bool, json_lines: bool) -> None:
    if json_output and json_lines:
        raise click.UsageError("--json and --json-lines exclude each other")


def _run_plan(
    plan: Plan,
    *,
    parallel: int,
    continue_on_error: bool,
    dry_run: bool,
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_output: bool,
    json_lines: bool,
    quiet: bool,
    verbose: bool,
    report_file: str | None,
    transport: str = "auto",
    direct: bool = False,
    bwlimit: float | None = None,
    tls: bool = False,
) -> None:
    """What `batch` and `evacuate` share once they have a plan: run it and show it."""

    def start(on_event: Callable[[BatchEvent], None], cancel: threading.Event) -> BatchReport:
        return run_batch(
            plan,
            parallel=parallel,
            continue_on_error=continue_on_error,
            dry_run=dry_run,
            ssh_config=ssh_config,
            accept_new_host_keys=accept_new_host_keys,
            on_event=on_event,
            cancel=cancel,
            transport=transport,
            direct=direct,
            bwlimit_bytes_per_s=bwlimit,
            tls=tls,
        )

    _run(
        plan.entries,
        start,
        json_output=json_output,
        json_lines=json_lines,
        quiet=quiet,
        verbose=verbose,
        report_file=report_file,
        dry_run=dry_run,
    )


@click.command("batch")
@click.argument("plan_file", metavar="PLAN.yml", type=click.Path(dir_okay=False))
@_batch_options
def batch_command(
    plan_file: str,
    parallel: int,
    continue_on_error: bool,
    dry_run: bool,
    json_lines: bool,
    report_file: str | None,
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_output: bool,
    quiet: bool,
    verbose: bool,
    transport: str,
    direct: bool,
    bwlimit: float | None,
    tls: bool = False,
) -> None:
    """Run the migrations listed in PLAN.yml (container, from, to; see the README).

    Re-running a plan is safe: containers already moved are reported as already_moved.
    """
    check_report_file(report_file)
    _check_json(json_output, json_lines)
    try:
        plan: Plan = load_plan(plan_file)
    except CelestialError as error:
        _fail(error, json_output, json_lines)
        return

    _run_plan(
        plan,
        parallel=parallel,
        continue_on_error=continue_on_error,
        dry_run=dry_run,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys,
        json_output=json_output,
        json_lines=json_lines,
        quiet=quiet,
        verbose=verbose,
        report_file=report_file,
        transport=transport,
        direct=direct,
        bwlimit=bwlimit,
        tls=tls,
    )


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@click.command("evacuate")
@click.argument("host")
@click.option(
    "--to",
    "targets",
    required=True,
    multiple=True,
    help="Target host(s): HOST2[,HOST3...] (repeatable; inventory groups with --inventory).",
)
@click.option(
    "--only",
    default=None,
    help="Move only these containers: NAME[,NAME...] (default: every running container).",
)
@click.option(
    "--inventory",
    "inventory_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Inventory file naming the hosts (and groups of them).",
)
@click.option("--keep-source", is_flag=True, help="Leave the stopped copies on HOST.")
@click.option(
    "--compress",
    "compression",
    type=click.Choice(COMPRESSION_SETTINGS),
    default="auto",
    show_default=True,
    help="Compression of the checkpoint archives; auto decides for each migration from its "
    "link and the container's memory, as migrate does.",
)
@click.option("--tcp-established", is_flag=True, help="Keep established TCP connections.")
@_batch_options
def evacuate_command(
    host: str,
    targets: tuple[str, ...],
    only: str | None,
    inventory_file: str | None,
    keep_source: bool,
    compression: str,
    tcp_established: bool,
    parallel: int,
    continue_on_error: bool,
    dry_run: bool,
    json_lines: bool,
    report_file: str | None,
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_output: bool,
    quiet: bool,
    verbose: bool,
    transport: str,
    direct: bool,
    bwlimit: float | None,
    tls: bool = False,
) -> None:
    """Move every running container off HOST to the --to hosts, by their free memory.

    Largest containers first, each to the target with the most memory available.
    """
    check_report_file(report_file)
    _check_json(json_output, json_lines)
    target_names = [name for value in targets for name in _names(value)]
    only_names = _names(only) if only is not None else None
    if not (json_output or json_lines or quiet):
        click.echo(f"evacuating {host}: reading its containers and the targets' memory", err=True)
    try:
        resolver: Callable[[str], ResolvedHost] | None = None
        if inventory_file is not None:
            from celestial_ssh.inventory import load_inventory

            inventory = load_inventory(inventory_file)
            target_names = inventory.expand(target_names)

            def resolver(name: str) -> ResolvedHost:
                return inventory.resolve(name, ssh_config)

        plan = plan_evacuation(
            host,
            target_names,
            ssh_config=ssh_config,
            accept_new_host_keys=accept_new_host_keys,
            host_resolver=resolver,
            only=only_names,
            keep_source=keep_source,
            compression=compression,
            tcp_established=tcp_established,
        )
    except (CelestialError, Exception) as error:
        _fail(error, json_output, json_lines)
        return

    _run_plan(
        plan,
        parallel=parallel,
        continue_on_error=continue_on_error,
        dry_run=dry_run,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys,
        json_output=json_output,
        json_lines=json_lines,
        quiet=quiet,
        verbose=verbose,
        report_file=report_file,
        transport=transport,
        direct=direct,
        bwlimit=bwlimit,
        tls=tls,
    )
