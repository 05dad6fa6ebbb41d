"""A batch of migrations to watch: a live table on a terminal (one row per migration), plain
lines otherwise, JSON lines, or nothing. Progress goes to stderr; JSON lines to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from typing import IO, Any

import click
from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from celestial_ssh.batch import BatchEvent, BatchReport, EntryStatus, EntryUpdate, PlanEntry
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

from .display import Output, megabytes


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
            megabytes(row.moved) if row.moved else "",
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
            self._line(f"{prefix} {inner.what}: {megabytes(inner.bytes_done)} moved")

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


def choose_batch_display(entries: list[PlanEntry], output: Output, verbose: bool) -> BatchDisplay:
    """The display for the ``output`` :func:`~.display.choose_output` chose."""
    if output is Output.JSON_LINES:
        return JsonLinesDisplay(entries)
    if output is Output.LIVE:
        return RichBatchDisplay(entries)
    if output is Output.PLAIN:
        return PlainBatchDisplay(entries, verbose=verbose)
    return QuietDisplay(entries)
