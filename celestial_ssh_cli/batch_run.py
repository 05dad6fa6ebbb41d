"""What ``batch`` and ``evacuate`` share once they have a plan: their options, running the
plan under the signal handler, showing it, and the exit code.

Exit status: 0 when every migration succeeded or was skipped, otherwise the most serious of
the failed migrations' codes (``failures.exit_code_for``): 6 needs recovery, 5 rolled back,
130 interrupted, 4 preflight, 3 connection, 2 input.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import threading
from collections.abc import Callable
from typing import Any

import click

from celestial_ssh.batch import BatchEvent, BatchReport, EntryStatus, EntryUpdate, Plan, run_batch

from .batch_display import choose_batch_display
from .boundary import ErrorDocument, Params
from .display import Output, choose_output
from .failures import ExitCode, exit_code_for
from .options import HostSettings, data_plane_options, ssh_options
from .report_file import ReportFile, report_rows
from .signals import CancelFlag, cancel_on_signals

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


def _summary_failed(error: BaseException, params: Params) -> dict[str, Any]:
    return {"type": "summary", "status": "failed"}


# a batch that could not run at all: the summary line of --json-lines, or the --json document
BATCH_ERRORS = ErrorDocument(lead=_summary_failed)


@dataclasses.dataclass(frozen=True)
class BatchSettings:
    """The options ``batch`` and ``evacuate`` share, read once (see :func:`batch_options`)."""

    parallel: int
    continue_on_error: bool
    dry_run: bool
    ssh_config: str | None
    accept_new_host_keys: bool
    transport: str
    data_path: str
    direct: bool
    bwlimit: float | None
    tls: bool
    output: Output
    verbose: bool
    rows: ReportFile | None


def batch_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The shared options, handed to ``command`` as one ``settings: BatchSettings``."""

    @functools.wraps(command)
    def with_settings(
        *,
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
        data_path: str,
        direct: bool,
        bwlimit: float | None,
        tls: bool = False,
        **own: Any,
    ) -> Any:
        rows = report_rows(report_file)
        if json_output and json_lines:
            raise click.UsageError("--json and --json-lines exclude each other")
        settings = BatchSettings(
            parallel=parallel,
            continue_on_error=continue_on_error,
            dry_run=dry_run,
            ssh_config=ssh_config,
            accept_new_host_keys=accept_new_host_keys,
            transport=transport,
            data_path=data_path,
            direct=direct,
            bwlimit=bwlimit,
            tls=tls,
            output=choose_output(json_output=json_output, quiet=quiet, json_lines=json_lines),
            verbose=verbose,
            rows=rows,
        )
        return command(settings=settings, **own)

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
    function: Callable[..., Any] = with_settings
    for option in reversed(options):
        function = option(function)
    return ssh_options(data_plane_options(function))


def run_plan(plan: Plan, settings: BatchSettings, hosts: HostSettings) -> ExitCode:
    """Run the plan and show it; Ctrl-C or SIGTERM stops it safely."""
    display = choose_batch_display(plan.entries, settings.output, settings.verbose)
    rows = settings.rows
    rows_lock = threading.Lock()

    def on_event(event: BatchEvent) -> None:
        display(event)
        inner = event.event
        if (
            rows is not None
            and not settings.dry_run
            and isinstance(inner, EntryUpdate)
            and inner.report is not None
            and inner.status in (EntryStatus.MIGRATED, EntryStatus.FAILED)
        ):
            with rows_lock:
                rows.append(inner.report)

    cancel = CancelFlag()
    with display, cancel_on_signals(cancel, "stopping every migration at its next safe point"):
        report = run_batch(
            plan,
            parallel=settings.parallel,
            continue_on_error=settings.continue_on_error,
            dry_run=settings.dry_run,
            connection=hosts.connection,
            on_event=on_event,
            cancel=cancel.event,
            transport=settings.transport,
            data_path=settings.data_path,
            direct=settings.direct,
            bwlimit_bytes_per_s=settings.bwlimit,
            tls=settings.tls,
        )
    code = batch_exit_code(report)
    if settings.output is Output.JSON:
        document = report.to_dict()
        document["exit_code"] = int(code)
        click.echo(json.dumps(document, indent=2))
    else:
        display.summary(report)
    return code
