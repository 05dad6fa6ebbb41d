"""Medians per mode and size, and the ratios to the floor and the hand-made pipeline."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .settings import DISTANT_STEPS, MB, Mode


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
                "cpu_s": median([r.get("cpu_s") for r in good]),
                "peak_rss_mib": median([r.get("peak_rss_kib", 0) / 1024 for r in good]),
                "chosen": ", ".join(
                    sorted({f"{r.get('transport')}/{r.get('compression')}" for r in good})
                )
                if mode.kind == "tool"
                else None,
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


def distant_summary(runs: Sequence[dict[str, Any]], modes: Sequence[Mode]) -> list[dict[str, Any]]:
    """Per mode, the medians of the runs that succeeded."""
    rows = []
    for mode in modes:
        head, good = mode_row(mode, [r for r in runs if r["mode"] == mode.label])
        row: dict[str, Any] = {
            **head,
            "total_s": median([r.get("total_s") for r in good]),
            "downtime_s": median([r.get("downtime_s") for r in good]),
        }
        for step in DISTANT_STEPS:
            row[f"{step}_s"] = median([(r.get("timings") or {}).get(step) for r in good])
        rows.append(row)
    return rows


def summarise_rates(samples: list[dict[str, Any]]) -> dict[str, Any]:
    good = [s for s in samples if s["ok"]]
    return {
        "runs": samples,
        "median_s": median([s["seconds"] for s in good]),
        "median_bytes_per_s": median([s["bytes_per_s"] for s in good]),
        "median_cpu_s": median([s["cpu_s"] for s in good]),
    }
