"""Reports for research: one flat row per migration, appended to a CSV or JSON file.

The columns are the ones the older experiments plotted: per-phase timings, downtime, bytes,
and podman's ``--print-stats`` fields (podman/runtime checkpoint and restore durations in
microseconds, CRIU's freezing/frozen/memdump/memwrite times, pages written and restored);
then the data plane, where the archive landed, and the timings of steps inside a phase.

A CSV file keeps the columns its header has: a row appended to a file an older version
wrote leaves out the newer columns (:func:`append_report` says which), so a file never
holds rows of two shapes.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
from pathlib import Path
from typing import Any

from .events import Phase
from .report import STEP_TIMINGS, MigrationReport

PHASE_COLUMNS = [f"{phase.value}_s" for phase in Phase]
STEP_COLUMNS = [f"{step}_s" for step in STEP_TIMINGS]
CHECKPOINT_STATS = [
    "podman_checkpoint_duration",
    "runtime_checkpoint_duration",
    "freezing_time",
    "frozen_time",
    "memdump_time",
    "memwrite_time",
    "pages_scanned",
    "pages_written",
]
RESTORE_STATS = [
    "podman_restore_duration",
    "runtime_restore_duration",
    "restore_time",
    "forking_time",
    "pages_restored",
]
COLUMNS = [
    "finished_at",
    "container",
    "source",
    "target",
    "status",
    "outcome",
    "compression",
    "total_s",
    "downtime_s",
    "bytes_transferred",
    "archive_bytes",
    "image_staged",
    *PHASE_COLUMNS,
    *CHECKPOINT_STATS,
    *RESTORE_STATS,
    "error",
    # added later, after the columns older files have
    "transport",
    "landing",
    *STEP_COLUMNS,
]


def report_row(
    report: MigrationReport, finished_at: datetime.datetime | None = None
) -> dict[str, Any]:
    """The report as one flat row with exactly :data:`COLUMNS` (missing values are None)."""
    moment = finished_at or datetime.datetime.now(datetime.UTC)
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        finished_at=moment.isoformat(timespec="seconds"),
        container=report.container,
        source=report.source,
        target=report.target,
        status=report.status,
        outcome=str(report.outcome),
        compression=report.compression,
        total_s=report.total_s,
        downtime_s=report.downtime_s,
        bytes_transferred=report.bytes_transferred,
        archive_bytes=report.archive_bytes,
        image_staged=report.image_staged,
        error=report.error,
        transport=report.transport,
        landing=report.landing,
    )
    for name, seconds in report.timings.items():
        if f"{name}_s" in row:  # every phase and step has a column
            row[f"{name}_s"] = seconds
    for key in CHECKPOINT_STATS:
        row[key] = report.checkpoint_stats.get(key)
    for key in RESTORE_STATS:
        row[key] = report.restore_stats.get(key)
    return row


def append_report(path: str | os.PathLike[str], report: MigrationReport) -> list[str]:
    """Append one row: ``.csv`` gets a header when new; ``.json`` holds a list of rows.

    Returns the columns with a value that the file could not take (a CSV file whose
    header an older version wrote); empty when the whole row went in.
    """
    target = Path(path)
    row = report_row(report)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        header = _csv_header(target)
        columns = header or COLUMNS
        with target.open("a", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=columns, extrasaction="ignore")
            if not header:
                writer.writeheader()
            writer.writerow(row)
        return [name for name in COLUMNS if name not in columns and row[name] is not None]
    elif suffix == ".json":
        rows = json.loads(target.read_text()) if target.exists() and target.stat().st_size else []
        if not isinstance(rows, list):
            raise ValueError(f"{target} does not hold a JSON list of report rows")
        rows.append(row)
        temporary = target.with_name(target.name + ".tmp")
        temporary.write_text(json.dumps(rows, indent=2) + "\n")
        temporary.replace(target)
        return []
    raise ValueError(f"report file {target} must end in .csv or .json")


def _csv_header(path: Path) -> list[str]:
    """The columns of an existing CSV file (none for a missing or empty one)."""
    if not path.exists() or path.stat().st_size == 0:
        return []
    with path.open(newline="") as stream:
        return next(csv.reader(stream), [])
