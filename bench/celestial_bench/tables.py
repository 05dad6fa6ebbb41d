"""The result tables, as markdown or plain text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .settings import DISTANT_STEPS, MB


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
            f"`{row['command']}`" if markdown and row["command"] != row["mode"] else row["mode"],
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


def distant_table(section: dict[str, Any], markdown: bool) -> str:
    rows = [
        [
            row["command"],
            f"{row['runs'] - row['failures']}/{row['runs']}",
            fmt(row["total_s"]),
            *(fmt(row[f"{step}_s"]) for step in DISTANT_STEPS),
            fmt(row["downtime_s"]),
        ]
        for row in section["summary"]
    ]
    headers = ["mode", "ok", "total s", *(f"{step} s" for step in DISTANT_STEPS), "downtime s"]
    return render(headers, rows, markdown, left=1)
