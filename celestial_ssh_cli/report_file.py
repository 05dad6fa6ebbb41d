"""``--report FILE``: the research row of each migration, appended for ``migrate`` and
``batch``/``evacuate`` alike."""

from __future__ import annotations

import click

from celestial_ssh.report import MigrationReport
from celestial_ssh.research import COLUMNS, append_report


def check_report_file(report_file: str | None) -> None:
    """Refuse, before anything runs, a report file the rows cannot go to."""
    if report_file and not report_file.lower().endswith((".csv", ".json")):
        raise click.BadParameter("must end in .csv or .json", param_hint="--report")


class ReportFile:
    """Appends rows to one file; says once, at the end, what it could not write.

    The row of a migration that has run is worth keeping, but a report file that cannot
    take it (no such directory, no permission) must not turn the migration's outcome
    into a crash: that becomes a warning.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.left_out: set[str] = set()
        self.errors: list[str] = []

    def append(self, report: MigrationReport) -> None:
        try:
            self.left_out.update(append_report(self.path, report))
        except (OSError, ValueError) as error:
            self.errors.append(f"could not append to {self.path}: {error}")

    def warnings(self) -> list[str]:
        found = list(dict.fromkeys(self.errors))
        if self.left_out:
            columns = ", ".join(name for name in COLUMNS if name in self.left_out)
            found.append(
                f"{self.path} has the columns of an older version, so these were left "
                f"out: {columns} (a new file gets every column)"
            )
        return found

    def warn(self) -> None:
        for warning in self.warnings():
            click.echo(f"warning: {warning}", err=True)


def report_rows(report_file: str | None) -> ReportFile | None:
    """The ``--report`` file of the running command, checked; its warnings come last, once
    the command has said everything else (they are printed when its context closes)."""
    check_report_file(report_file)
    if not report_file:
        return None
    rows = ReportFile(report_file)
    click.get_current_context().call_on_close(rows.warn)
    return rows
