"""Medians per mode and size, the ratios to the floor and the hand-made pipeline, and the
steps before the freeze (read from the tool's reports, whatever they are called)."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .settings import (
    AFTER_STEPS,
    DECISION_MODES,
    FREEZE_AND_AFTER,
    MB,
    PROBE_STEP,
    RELAYED_REFERENCE,
    Mode,
)


def median(values: Sequence[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def mode_row(
    mode: Mode, mine: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The columns every summary row of ``mode`` starts with, and its runs that succeeded."""
    good = [r for r in mine if r.get("ok")]
    head = {
        "mode": mode.label,
        "command": mode.text,
        "runs": len(mine),
        "failures": len(mine) - len(good),
    }
    return head, good


def summarise(
    runs: list[dict[str, Any]], modes: Sequence[Mode], sizes: Sequence[int]
) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        medians: dict[str, float | None] = {}
        size_rows = []
        for mode in modes:
            mine = [r for r in runs if r["size_mb"] == size and r["mode"] == mode.label]
            if not mine:
                continue
            head, good = mode_row(mode, mine)
            row: dict[str, Any] = {
                "size_mb": size,
                **head,
                "downtime_s": median([r.get("downtime_s") for r in good]),
                "tool_downtime_s": median([r.get("tool_downtime_s") for r in good]),
                "total_s": median([r.get("total_s") for r in good]),
                "before_freeze_s": median([r.get("before_freeze_s") for r in good]),
                "cpu_s": median([r.get("cpu_s") for r in good]),
                "peak_rss_mib": median([r.get("peak_rss_kib", 0) / 1024 for r in good]),
                "chosen": chosen(good) if mode.kind == "tool" else None,
                "archive_mb": median([(r.get("archive_bytes") or 0) / MB for r in good]) or None,
                "wall_s_all_runs": round(sum(r.get("run_wall_s", 0) for r in mine), 1),
            }
            medians[mode.label] = row["downtime_s"]
            size_rows.append(row)
        for row in size_rows:
            for ref, key in (("floor", "vs_floor"), ("hand-made", "vs_hand_made")):
                base = medians.get(ref)
                row[key] = (
                    round(row["downtime_s"] / base, 2) if row["downtime_s"] and base else None
                )
        rows.extend(size_rows)
    return rows


def chosen(good: Sequence[dict[str, Any]]) -> str:
    """The data plane and compression the tool reported, each combination once."""
    return ", ".join(sorted({f"{r.get('transport')}/{r.get('compression')}" for r in good}))


def shown_steps(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The report timings before the freeze, in the order the reports first hold them (the
    tool records them as they happen), then the round-trip-bound ones after it."""
    before: list[str] = []
    after: list[str] = []
    for record in runs:
        if not record.get("ok"):
            continue
        for step in record.get("timings") or {}:
            where = after if step in AFTER_STEPS else before
            if step not in FREEZE_AND_AFTER and step not in before + after:
                where.append(step)
    return before + sorted(after, key=AFTER_STEPS.index)


def step_medians(good: Sequence[dict[str, Any]], steps: Sequence[str]) -> dict[str, float | None]:
    return {step: median([(r.get("timings") or {}).get(step) for r in good]) for step in steps}


def ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value and base else None


def distant_summary(
    runs: Sequence[dict[str, Any]], modes: Sequence[Mode], sizes: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """Per size and mode, the medians of the runs that succeeded, the downtime's ratio to the
    floor measured alongside, and the steps before the freeze."""
    steps = shown_steps(runs)
    rows = []
    for size in sizes if sizes is not None else sorted({r["size_mb"] for r in runs}):
        mine = [r for r in runs if r["size_mb"] == size]
        floors = [m.label for m in modes if m.kind == "floor"]
        floor = median([r.get("downtime_s") for r in mine if r.get("ok") and r["mode"] in floors])
        for mode in modes:
            head, good = mode_row(mode, [r for r in mine if r["mode"] == mode.label])
            if not head["runs"]:
                continue
            downtime = median([r.get("downtime_s") for r in good])
            rows.append(
                {
                    "size_mb": size,
                    **head,
                    "chosen": chosen(good) if mode.kind == "tool" else None,
                    "total_s": median([r.get("total_s") for r in good]),
                    "before_freeze_s": median([r.get("before_freeze_s") for r in good]),
                    "steps": step_medians(good, steps),
                    "downtime_s": downtime,
                    "vs_floor": ratio(downtime, floor),
                }
            )
    return rows


def decision_summary(
    runs: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The main matrix's data-path rows (``DECISION_MODES``) next to the relayed reference:
    what choosing the path, or failing to go host to host, costs before the freeze and
    during it. ``attempt_s`` is the report's ``PROBE_STEP`` where it has one, else the sum
    of the steps the relayed reference does not have (None when there are none)."""
    labels = [label for label in DECISION_MODES if any(r["mode"] == label for r in runs)]
    good = [r for r in runs if r.get("ok") and r["mode"] in labels]
    steps = shown_steps(good)

    def runs_of(size: int, label: str) -> list[dict[str, Any]]:
        return [r for r in good if r["size_mb"] == size and r["mode"] == label]

    by_key = {(row["size_mb"], row["mode"]): row for row in summary}
    rows = []
    for head in summary:
        if head["mode"] not in labels:
            continue
        size = head["size_mb"]
        reference = by_key.get((size, RELAYED_REFERENCE))
        relayed = runs_of(size, RELAYED_REFERENCE)
        reference_steps = {s for r in relayed for s in r.get("timings") or {}}
        medians = step_medians(runs_of(size, head["mode"]), steps)
        extra = [v for k, v in medians.items() if k not in reference_steps and v is not None]
        attempt = medians.get(PROBE_STEP)
        if attempt is None and extra and relayed:  # without the reference, nothing to tell
            attempt = round(sum(extra), 4)
        before = head.get("before_freeze_s")
        reference_before = reference.get("before_freeze_s") if reference else None
        rows.append(
            {
                "size_mb": size,
                "mode": head["mode"],
                "command": head["command"],
                "runs": head["runs"],
                "failures": head["failures"],
                "chosen": head.get("chosen"),
                "before_freeze_s": before,
                "vs_relayed_before_freeze_s": None
                if before is None or reference_before is None
                else round(before - reference_before, 3),
                "attempt_s": attempt,
                "steps": medians,
                "downtime_s": head["downtime_s"],
                "vs_floor": head.get("vs_floor"),
                "vs_relayed": ratio(
                    head["downtime_s"], reference["downtime_s"] if reference else None
                ),
            }
        )
    return {"reference": RELAYED_REFERENCE, "steps": steps, "rows": rows}


def summarise_rates(samples: list[dict[str, Any]]) -> dict[str, Any]:
    good = [s for s in samples if s["ok"]]
    return {
        "runs": samples,
        "median_s": median([s["seconds"] for s in good]),
        "median_bytes_per_s": median([s["bytes_per_s"] for s in good]),
        "median_cpu_s": median([s["cpu_s"] for s in good]),
    }
