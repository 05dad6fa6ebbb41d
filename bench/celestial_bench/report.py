"""The report: notes, the markdown file, the results directory and the printed tables."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .history import append_history
from .machine import machine_line
from .settings import INTERVAL_MS, REPO
from .tables import (
    decision_table,
    distant_table,
    main_table,
    size_text,
    slow_table,
    throughput_table,
)


def all_notes(document: dict[str, Any]) -> list[str]:
    """Skipped modes, the tool's warnings (once per mode), and every failed run."""
    notes = [f"{label}: {note}" for label, note in document["notes"].items()]
    seen: set[tuple[str, str]] = set()
    for record in document["runs"]:
        for warning in record.get("warnings") or []:
            text = str(warning).replace(record["container"], "CONTAINER")
            if (record["mode"], text) not in seen:
                seen.add((record["mode"], text))
                notes.append(f"{record['mode']}: the tool warned: {text}")
    notes += failure_notes(document["runs"])
    return notes


def failure_notes(runs: Sequence[dict[str, Any]]) -> list[str]:
    notes = []
    for record in runs:
        if not record.get("ok"):
            notes.append(
                f"{record['mode']}, {record['size_mb']} MB, run {record['run']} failed: "
                f"{record.get('error')}"
            )
    return notes


def markdown_report(document: dict[str, Any]) -> str:
    opts = document["options"]
    parts = [
        "# celestial-ssh benchmark",
        "",
        f"{machine_line(document['machine'])}.",
        "",
        f"Workloads: memtick with {', '.join(str(s) for s in opts['sizes'])} MiB of random memory, "
        f"a tick every {INTERVAL_MS} ms; lab-a -> lab-b on the local lab (two sshd on loopback, "
        f"one machine). Median of {opts['runs']} run(s) per cell, modes interleaved. "
        "*downtime* is the largest gap between two ticks the workload printed (±10 ms); "
        "*total* the wall clock of the whole move; *÷ floor* / *÷ hand-made* compare downtimes; "
        "*coord. CPU* and *peak RSS* are this machine's (the CLI, or ssh/scp for the baselines, "
        "with their children; RSS is the largest single process).",
        "",
        main_table(document["summary"], markdown=True),
    ]
    parts += [f"\n- {note}" for note in all_notes(document)]
    decision = document.get("decision")
    if decision and decision.get("rows"):
        parts += markdown_section(
            "The data path before the freeze (medians)",
            decision_table(decision, markdown=True),
            [DECISION_NOTE.format(reference=decision["reference"])],
        )
    if document.get("throughput"):
        section = document["throughput"]
        parts += markdown_section(
            f"Data plane ({size_text(section['bytes'])}, median of {opts['runs_throughput']})",
            throughput_table(section, markdown=True),
            section["notes"],
        )
    if document.get("slow_links"):
        section = document["slow_links"]
        parts += markdown_section(
            f"Slow links ({section['size_mb']} MiB workload, one run each, user-space throttle)",
            slow_table(section, markdown=True),
            section["notes"] + failure_notes(section["runs"]),
        )
    if document.get("distant"):
        section = document["distant"]
        parts += markdown_section(
            f"Distant coordinator ({distant_title(section)}, medians)",
            distant_table(section, markdown=True),
            section["notes"] + failure_notes(section["runs"]),
        )
    return "\n".join(parts) + "\n"


DECISION_NOTE = (
    "*before freeze*: from the start of the move to the workload's last tick before its gap "
    "(with the CLI's start-up); *vs {reference}*: that, less the relayed run's; *host to "
    "host*: the report's `host_to_host_probe`, else its steps the relayed run does not have "
    "(the link's set-up, or the failed attempt); *÷ {reference}*: downtime against the "
    "relayed run's."
)


def distant_title(section: dict[str, Any]) -> str:
    """``20mbit and 20ms each way to each host, 256 MiB workload``; older results had a
    delay and one size only."""
    link = section.get("link") or f"{section['delay']} each way"
    sizes = section.get("sizes") or [section.get("size_mb")]
    return f"{link} to each host, {' and '.join(str(s) for s in sizes)} MiB workload"


def markdown_section(title: str, table: str, notes: Sequence[str]) -> list[str]:
    """The lines of one section of latest.md: its heading, its table, its notes."""
    return ["", f"## {title}", "", table, *(f"\n- {note}" for note in notes)]


def write_results(document: dict[str, Any], directory: Path) -> list[Path]:
    """latest.json (the whole document), latest.md (its tables) and the run's history lines."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / "latest.json", directory / "latest.md", directory / "history.md"]
    paths[0].write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    paths[1].write_text(markdown_report(document))
    append_history(document, paths[2])
    return paths


def print_report(document: dict[str, Any], paths: Sequence[Path]) -> None:
    opts = document["options"]
    print(f"\ncelestial-ssh benchmark: {machine_line(document['machine'])}\n")
    print(main_table(document["summary"], markdown=False))
    for note in all_notes(document):
        print(f"  {note}")
    if document["throughput"]:
        print(f"\nData plane, {size_text(document['throughput']['bytes'])}:")
        print(throughput_table(document["throughput"], markdown=False))
        for note in document["throughput"]["notes"]:
            print(f"  {note}")
    if document["slow_links"]:
        print(f"\nSlow links, {opts['slow_size_mb']} MiB:")
        print(slow_table(document["slow_links"], markdown=False))
        section = document["slow_links"]
        for note in section["notes"] + failure_notes(section["runs"]):
            print(f"  {note}")
    if document.get("distant"):
        section = document["distant"]
        print(f"\nDistant coordinator, {distant_title(section)}:")
        print(distant_table(section, markdown=False))
        for note in section["notes"] + failure_notes(section["runs"]):
            print(f"  {note}")
    decision = document.get("decision")
    if decision and decision.get("rows"):
        print("\nThe data path before the freeze:")
        print(decision_table(decision, markdown=False))
        print("  " + DECISION_NOTE.format(reference=decision["reference"]))
    print(
        f"\nwall clock per size (all runs, with workload start and clean-up, s): "
        f"{document['size_wall_s']}; whole benchmark {document['duration_s']:.0f} s"
    )
    shown = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in paths]
    print("results: " + ", ".join(shown))
