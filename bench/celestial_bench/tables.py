"""The result tables, as markdown or plain text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .settings import MB, OLD_DISTANT_STEPS


def size_text(count: int) -> str:
    if count % 2**20 == 0:
        return f"{count // 2**20} MiB ({count / MB:.0f} MB)"
    return f"{count / MB:.0f} MB"


def fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def mode_cell(row: dict[str, Any], markdown: bool) -> str:
    """A row's label, and in markdown the command it ran (two labels may run the same one)."""
    if markdown and row["command"] != row["mode"]:
        return f"{row['mode']}: `{row['command']}`"
    return str(row["mode"])


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def render(
    headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool, left: int = 2
) -> str:
    """A markdown table, or a plain one whose first ``left`` columns are text."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for row in rows:
        out.append(
            "  ".join(
                c.rjust(w) if i >= left else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)


def main_table(summary: list[dict[str, Any]], markdown: bool) -> str:
    headers = [
        "size",
        "mode",
        "downtime s",
        "tool says s",
        "total s",
        "÷ floor",
        "÷ hand-made",
        "transport/compr.",
        "coord. CPU s",
        "peak RSS MB",
        "archive MB",
        "runs",
        "failed",
    ]
    rows = [
        [
            f"{row['size_mb']} MB",
            mode_cell(row, markdown),
            fmt(row["downtime_s"]),
            fmt(row["tool_downtime_s"]),
            fmt(row["total_s"]),
            fmt(row["vs_floor"], suffix="x"),
            fmt(row["vs_hand_made"], suffix="x"),
            row["chosen"] or "-",
            fmt(row["cpu_s"]),
            fmt(row["peak_rss_mib"], 0),
            fmt(row["archive_mb"], 0),
            str(row["runs"]),
            str(row["failures"]),
        ]
        for row in summary
    ]
    return render(headers, rows, markdown)


def throughput_table(section: dict[str, Any], markdown: bool) -> str:
    base = section["openssh_push"]["median_bytes_per_s"]
    connect = section.get("ssh_connect_s") or 0.0
    rows = []
    for key, label in (
        ("openssh_push", "OpenSSH here -> lab-b"),
        ("openssh_relay", "OpenSSH lab-a -> here -> lab-b"),
    ):
        item = section[key]
        rate = item["median_bytes_per_s"]
        rows.append(
            [
                label,
                fmt(rate and rate / MB, 0),
                fmt(net_rate(section["bytes"], item["median_s"], connect), 0),
                fmt(item["median_s"]),
                fmt(item["median_cpu_s"]),
                fmt(rate / base if rate and base else None, 2, "x"),
            ]
        )
    for item in section.get("probe", []):
        rate = item["median_bytes_per_s"]
        rows.append(
            [
                item["label"] + (" " + " ".join(item["args"]) if item["args"] else ""),
                fmt(rate and rate / MB, 0),
                "-",
                fmt(item["median_s"]),
                fmt(item["median_cpu_s"]),
                fmt(item["ratio_to_openssh"], 2, "x"),
            ]
        )
    headers = ["path", "MB/s", "MB/s w/o connect", "seconds", "CPU s here", "÷ OpenSSH"]
    return render(headers, rows, markdown, left=1)


def net_rate(count: int, seconds: float | None, connect_s: float) -> float | None:
    """MB/s once the ssh connection is up (its set-up, `ssh host true`, taken off)."""
    if not seconds or seconds <= connect_s:
        return None
    return count / (seconds - connect_s) / MB


def slow_table(section: dict[str, Any], markdown: bool) -> str:
    rows = []
    for record in section["runs"]:
        rows.append(
            [
                record["rate"],
                record["fill"],
                record["requested_compression"],
                record.get("compression") or "-",
                fmt(record.get("downtime_s")),
                fmt(record.get("tool_downtime_s")),
                fmt(record.get("total_s")),
                fmt((record.get("archive_bytes") or 0) / MB or None, 1),
                "ok" if record.get("ok") else "FAILED (see below)",
            ]
        )
    headers = [
        "link",
        "memory",
        "--compress",
        "chosen",
        "downtime s",
        "tool says s",
        "total s",
        "archive MB",
        "result",
    ]
    return render(headers, rows, markdown, left=3)


def row_steps(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row's step medians; rows of results written before the steps were read
    from the reports hold them as ``STEP_s`` keys."""
    steps = row.get("steps")
    if isinstance(steps, dict):
        return steps
    return {step: row.get(f"{step}_s") for step in OLD_DISTANT_STEPS}


def distant_table(section: dict[str, Any], markdown: bool) -> str:
    """One row per size and mode: total, the steps before the freeze, downtime, ÷ floor.
    Results without sizes per row (one size) or steps (older results) are shown as they are."""
    summary = section["summary"]
    steps = section.get("steps") or list(OLD_DISTANT_STEPS)
    sized = any("size_mb" in row for row in summary)
    rows = [
        [
            *([f"{row['size_mb']} MB"] if sized else []),
            mode_cell(row, markdown),
            f"{row['runs'] - row['failures']}/{row['runs']}",
            *([row.get("chosen") or "-"] if sized else []),
            fmt(row["total_s"]),
            *([fmt(row.get("before_freeze_s"))] if sized else []),
            *(fmt(row_steps(row).get(step)) for step in steps),
            fmt(row["downtime_s"]),
            *([fmt(row.get("vs_floor"), suffix="x")] if sized else []),
        ]
        for row in summary
    ]
    headers = [
        *(["size"] if sized else []),
        "mode",
        "ok",
        *(["transport/compr."] if sized else []),
        "total s",
        *(["before freeze s"] if sized else []),
        *(f"{step} s" for step in steps),
        "downtime s",
        *(["÷ floor"] if sized else []),
    ]
    return render(headers, rows, markdown, left=4 if sized else 1)


def decision_table(decision: dict[str, Any], markdown: bool) -> str:
    """The data path: what the default's choice, or its failed host-to-host attempt, costs
    before the freeze (measured from the workload, and the reports' steps) and during it."""
    steps = decision["steps"]
    rows = [
        [
            f"{row['size_mb']} MB",
            mode_cell(row, markdown),
            f"{row['runs'] - row['failures']}/{row['runs']}",
            row.get("chosen") or "-",
            fmt(row["before_freeze_s"]),
            signed(row["vs_relayed_before_freeze_s"]),
            fmt(row["attempt_s"]),
            *(fmt(row["steps"].get(step)) for step in steps),
            fmt(row["downtime_s"]),
            fmt(row["vs_floor"], suffix="x"),
            fmt(row["vs_relayed"], suffix="x"),
        ]
        for row in decision["rows"]
    ]
    headers = [
        "size",
        "mode",
        "ok",
        "transport/compr.",
        "before freeze s",
        f"vs {decision['reference']} s",
        "host to host s",
        *(f"{step} s" for step in steps),
        "downtime s",
        "÷ floor",
        f"÷ {decision['reference']}",
    ]
    return render(headers, rows, markdown, left=4)
