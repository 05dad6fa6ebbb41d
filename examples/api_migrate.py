#!/usr/bin/env python3
"""Migrate a container through the Python API, with a progress callback of your own.

Against the local lab (`make lab`):

    .venv/bin/python examples/api_migrate.py lab-a lab-b CONTAINER

Every event the engine emits is printed with its time since the start; the report's
timings and podman's statistics are printed at the end, and appended to runs.csv.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from celestial_ssh import CelestialError, MigrationFailed, MigrationOptions, migrate
from celestial_ssh.events import Event, PhaseFinished, PhaseStarted, TransferProgress
from celestial_ssh.research import append_report

REPO = Path(__file__).resolve().parents[1]


def main(source: str, target: str, container: str) -> int:
    started = time.monotonic()
    last_progress = [0.0]

    def on_event(event: Event) -> None:
        elapsed = time.monotonic() - started
        if isinstance(event, TransferProgress):
            if not event.finished and elapsed - last_progress[0] < 0.5:
                return  # one progress line every half second is plenty
            last_progress[0] = elapsed
            print(f"{elapsed:6.2f}s  {event.what}: {event.bytes_done / 1e6:8.1f} MB")
        elif isinstance(event, PhaseStarted):
            print(f"{elapsed:6.2f}s  > {event.phase.label}")
        elif isinstance(event, PhaseFinished):
            print(f"{elapsed:6.2f}s  < {event.phase.label} ({event.duration_s:.2f} s)")
        else:
            print(f"{elapsed:6.2f}s  {event}")

    options = MigrationOptions(ssh_config=str(REPO / ".lab" / "ssh_config"))
    try:
        report = migrate(source, target, container, options, on_event=on_event)
    except MigrationFailed as failure:
        print(f"failed, {failure.report.outcome}: {failure}", file=sys.stderr)
        append_report("runs.csv", failure.report)
        return 1
    except CelestialError as error:
        print(f"failed before anything was frozen: {error}", file=sys.stderr)
        return 1
    append_report("runs.csv", report)
    print(f"downtime {report.downtime_s:.2f} s, total {report.total_s:.2f} s")
    print("timings:", report.timings)
    print("CRIU frozen time (us):", report.checkpoint_stats.get("frozen_time"))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
