"""bench/results/history.md: one line per mode and size of every run, where the raw runs of
all but the latest are not kept (git has them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .tables import fmt

HISTORY_HEADER = """\
# Benchmark history

One line per mode and size of each `make bench` run: medians of the runs that worked, on the
local lab (lab-a -> lab-b, one machine). `bench/run.py` appends the lines of every run; the
latest run in full is `latest.md` / `latest.json`, older raw runs are in git history. Modes
are the labels of `bench/celestial_bench/settings.py` (`far-*`: the distant-coordinator
section, its rate and delay each way to each host; `tool` was the no-flag default, relayed,
until `default` came with the automatic data path). The method is in `bench/README.md`.

| date (UTC) | machine | mode | size | downtime s | ÷ floor | total s | commit, note |
|---|---|---|---|---|---|---|---|
"""


def history_lines(document: dict[str, Any], note: str = "") -> list[str]:
    """The history's lines for one run's document (what `write_results` writes as latest.json)."""
    info = document["machine"]
    date = str(info["date"])[:16].replace("T", " ")
    where = f"{info['cpu_model']}, {info['cores']} cores"
    commit = ", ".join(part for part in (str(info.get("git_commit") or "?"), note) if part)
    rows = [
        (row["mode"], row["size_mb"], row["downtime_s"], row["vs_floor"], row["total_s"])
        for row in document["summary"]
    ]
    distant = document.get("distant")
    if distant:
        # older results: one size for the section, no rate, no ratio to a floor
        link = distant.get("rate") and f"{distant['rate']}, {distant['delay']}"
        rows += [
            (
                f"{row['mode']} ({link or distant['delay']})",
                row.get("size_mb", distant.get("size_mb")),
                row["downtime_s"],
                row.get("vs_floor"),
                row["total_s"],
            )
            for row in distant["summary"]
        ]
    return [
        f"| {date} | {where} | {mode} | {size} MiB | {fmt(downtime)} | "
        f"{fmt(vs_floor, suffix='x')} | {fmt(total)} | {commit} |"
        for mode, size, downtime, vs_floor, total in rows
    ]


def append_history(document: dict[str, Any], path: Path) -> None:
    """Add the run's lines to the history, starting the file with its header if it is new."""
    text = path.read_text() if path.exists() else HISTORY_HEADER
    lines = history_lines(document)
    path.write_text(text + "".join(f"{line}\n" for line in lines))
