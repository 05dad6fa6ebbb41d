#!/usr/bin/env python3
"""Plot a --report CSV: downtime and its parts per migration, as a PNG.

celestial-ssh migrate -F .lab/ssh_config --report runs.csv lab-a lab-b CONTAINER
pip install matplotlib
python examples/plot_report.py runs.csv examples/report.png
"""

from __future__ import annotations

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def seconds(value: str) -> float:
    return float(value) if value else 0.0


def main(csv_path: str, png_path: str) -> None:
    with open(csv_path, newline="") as stream:
        rows = [row for row in csv.DictReader(stream) if row["status"] == "succeeded"]
    if not rows:
        sys.exit(f"{csv_path} has no successful migration to plot")
    labels = [
        f"{i + 1}\n{row['archive_bytes'] and int(row['archive_bytes']) // 10**6} MB"
        for i, row in enumerate(rows)
    ]
    # the parts of the downtime: CRIU's frozen time, the rest of the checkpoint+stream,
    # and the restore (podman's fields are microseconds)
    frozen = [seconds(row["frozen_time"]) / 1e6 for row in rows]
    stream = [max(seconds(row["checkpoint_s"]) - f, 0) for row, f in zip(rows, frozen, strict=True)]
    restore = [seconds(row["restore_s"]) for row in rows]
    downtime = [seconds(row["downtime_s"]) for row in rows]

    figure, axes = plt.subplots(figsize=(8, 4.5))
    axes.bar(labels, frozen, label="CRIU frozen (dump)")
    axes.bar(labels, stream, bottom=frozen, label="podman export + stream")
    axes.bar(
        labels,
        restore,
        bottom=[a + b for a, b in zip(frozen, stream, strict=True)],
        label="restore on target",
    )
    axes.plot(labels, downtime, "k_", markersize=30, label="downtime (measured)")
    axes.set_ylabel("seconds")
    axes.set_title("celestial-ssh migrations: where the downtime goes")
    axes.legend()
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    print(f"wrote {png_path}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
