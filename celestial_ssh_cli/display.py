"""Turning migration events into something to watch: a rich live view, plain lines, or nothing.

Everything goes to stderr; stdout is kept for results (the JSON document). :func:`choose_output`
is the one place that decides, from the flags and stderr, how a running command shows itself
(``migrate`` here; ``batch`` and ``evacuate`` in :mod:`.batch_display`).
"""

from __future__ import annotations

import enum
import sys
import time
from typing import IO, Protocol

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

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
from celestial_ssh.report import MigrationReport


class Output(enum.Enum):
    """How a command shows what it is doing."""

    LIVE = "live"  # a rich live view on stderr, a terminal
    PLAIN = "plain"  # one timestamped line per step on stderr (logs, pipes)
    JSON = "json"  # nothing while it runs; one JSON document on stdout at the end
    JSON_LINES = "json-lines"  # every event as a JSON line on stdout (batch, evacuate)
    QUIET = "quiet"  # nothing while it runs


def choose_output(
    *, json_output: bool, quiet: bool, json_lines: bool = False, console: Console | None = None
) -> Output:
    """The flags decide; without any, a terminal on stderr gets the live view."""
    if json_lines:
        return Output.JSON_LINES
    if json_output:
        return Output.JSON
    if quiet:
        return Output.QUIET
    console = console or Console(stderr=True)
    return Output.LIVE if console.is_terminal else Output.PLAIN


def megabytes(count: float, digits: int = 1) -> str:
    """Bytes as decimal megabytes, the unit every line of the command line uses."""
    return f"{count / 1e6:.{digits}f} MB"


class Display(Protocol):
    def __enter__(self) -> Display: ...
    def __exit__(self, *exc_info: object) -> None: ...
    def __call__(self, event: Event) -> None: ...
    def summary(self, report: MigrationReport) -> None: ...


def summary_line(report: MigrationReport) -> str:
    moved = megabytes(report.bytes_transferred)
    downtime = f"{report.downtime_s:.2f} s" if report.downtime_s is not None else "n/a"
    total = f"{report.total_s:.2f} s" if report.total_s is not None else "n/a"
    name = report.target_container or report.container
    return (
        f"Migrated {report.container} from {report.source} to {report.target} as {name}: "
        f"total {total}, downtime {downtime}, {moved} transferred"
    )


class NullDisplay:
    """For --quiet and --json: shows nothing."""

    def __enter__(self) -> NullDisplay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def __call__(self, event: Event) -> None:
        pass

    def summary(self, report: MigrationReport) -> None:
        pass


class PlainDisplay:
    """One readable line per event, for logs and terminals that are not terminals."""

    def __init__(self, stream: IO[str] | None = None, verbose: bool = False):
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self._started = time.monotonic()
        self._last_percent: dict[str, int] = {}

    def __enter__(self) -> PlainDisplay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def _line(self, text: str) -> None:
        elapsed = time.monotonic() - self._started
        print(f"[{elapsed:7.2f}s] {text}", file=self.stream, flush=True)

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStarted):
            self._line(f"{event.phase.label} ..." + (f" {event.detail}" if event.detail else ""))
        elif isinstance(event, PhaseFinished):
            detail = f" ({event.detail})" if event.detail else ""
            self._line(f"{event.phase.label}: done in {event.duration_s:.2f} s{detail}")
        elif isinstance(event, PhaseSkipped):
            self._line(f"{event.phase.label}: skipped, {event.reason}")
        elif isinstance(event, PhaseFailed):
            self._line(f"{event.phase.label}: FAILED after {event.duration_s:.2f} s: {event.error}")
        elif isinstance(event, Notice):
            self._line(f"{event.level}: {event.message}")
        elif isinstance(event, TransferProgress) and (self.verbose or event.finished):
            if event.finished:
                self._line(f"{event.what}: {megabytes(event.bytes_done)} moved")
            elif event.expected_bytes:
                percent = int(100 * event.bytes_done / event.expected_bytes) // 10 * 10
                if self._last_percent.get(event.what) != percent:
                    self._last_percent[event.what] = percent
                    self._line(f"{event.what}: {percent}%")

    def summary(self, report: MigrationReport) -> None:
        self._line(summary_line(report))


class _PhaseRow:
    def __init__(self, phase: Phase, detail: str):
        self.phase = phase
        self.detail = detail
        self.state = "running"
        self.duration: float | None = None
        self.spinner = Spinner("dots", style="cyan")


class RichDisplay:
    """A live view: a line per phase (spinner, then its duration) and a transfer bar."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self._rows: list[_PhaseRow] = []
        self._notices: list[Text] = []
        self._transfers = Progress(
            TextColumn("  [bold]{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._tasks: dict[str, TaskID] = {}
        self._live = Live(self, console=self.console, refresh_per_second=12, transient=False)

    def __enter__(self) -> RichDisplay:
        self._live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.__exit__(None, None, None)

    def __rich__(self) -> RenderableType:
        table = Table.grid(padding=(0, 1))
        table.add_column(width=2)
        table.add_column()
        table.add_column(justify="right")
        for row in self._rows:
            if row.state == "running":
                mark: RenderableType = row.spinner
            elif row.state == "done":
                mark = Text("✓", style="green")
            elif row.state == "skipped":
                mark = Text("-", style="dim")
            else:
                mark = Text("✗", style="bold red")
            label = Text(row.phase.label, style="bold" if row.state == "running" else "")
            if row.detail:
                label.append(f"  {row.detail}", style="dim" if row.state != "failed" else "red")
            duration = Text(f"{row.duration:.2f} s" if row.duration is not None else "")
            table.add_row(mark, label, duration)
        parts: list[RenderableType] = [table]
        if self._tasks:
            parts.append(self._transfers)
        parts.extend(self._notices)
        return Group(*parts)

    def _row(self, phase: Phase) -> _PhaseRow | None:
        for row in reversed(self._rows):
            if row.phase is phase:
                return row
        return None

    def __call__(self, event: Event) -> None:
        if isinstance(event, PhaseStarted):
            self._rows.append(_PhaseRow(event.phase, event.detail))
        elif isinstance(event, (PhaseFinished, PhaseFailed)):
            row = self._row(event.phase)
            if row is None:
                row = _PhaseRow(event.phase, "")
                self._rows.append(row)
            row.duration = event.duration_s
            if isinstance(event, PhaseFinished):
                row.state = "done"
                row.detail = event.detail or row.detail
            else:
                row.state = "failed"
                row.detail = event.error
        elif isinstance(event, PhaseSkipped):
            row = _PhaseRow(event.phase, event.reason)
            row.state = "skipped"
            self._rows.append(row)
        elif isinstance(event, TransferProgress):
            task = self._tasks.get(event.what)
            if task is None:
                task = self._transfers.add_task(event.what, total=event.expected_bytes)
                self._tasks[event.what] = task
            total = event.bytes_done if event.finished else event.expected_bytes
            if total is not None and total < event.bytes_done:
                total = None
            self._transfers.update(task, completed=event.bytes_done, total=total)
        elif isinstance(event, Notice):
            style = "yellow" if event.level == "warning" else "dim"
            self._notices.append(Text(f"{event.level}: {event.message}", style=style))
        self._live.refresh()

    def summary(self, report: MigrationReport) -> None:
        self.console.print(Text(summary_line(report), style="bold green"))


def choose_display(output: Output, verbose: bool) -> Display:
    """The display of one migration (``migrate``, ``migrate-container``)."""
    if output is Output.LIVE:
        return RichDisplay()
    if output is Output.PLAIN:
        return PlainDisplay(verbose=verbose)
    return NullDisplay()
