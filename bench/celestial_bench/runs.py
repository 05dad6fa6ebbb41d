"""One run of one mode: start a workload, move it, read what it saw; and what the CLI accepts."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .lab import Lab, wait_for_quiet_lab
from .moves import move_by_hand, move_floor, move_with_tool
from .settings import CLI, LAB_CONFIG, SOURCE, TARGET, Mode
from .workload import container_log, start_workload, workload_view


def help_text(*command: str) -> str | None:
    result = subprocess.run(
        [str(CLI), *command, "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    return result.stdout if result.returncode == 0 else None


def unsupported(args: Sequence[str], help_out: str) -> str | None:
    """Why the CLI whose ``--help`` printed ``help_out`` would refuse ``args``, or None."""
    for index, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        if not re.search(rf"(?<![\w-]){re.escape(arg)}(?![\w-])", help_out):
            return f"the installed CLI has no {arg}"
        choices = re.search(rf"{re.escape(arg)}\s+\[([^\]]+)\]", help_out)
        if choices and index + 1 < len(args) and not args[index + 1].startswith("--"):
            allowed = choices.group(1).split("|")
            if args[index + 1] not in allowed:
                return f"the installed CLI's {arg} takes {'|'.join(allowed)}, not {args[index + 1]}"
    return None


def runnable_modes(modes: Sequence[Mode], migrate_help: str) -> tuple[list[Mode], dict[str, str]]:
    """The modes the installed CLI takes (a row it lacks options for as its ``older_args``
    where the row has them), and a note on each mode skipped or changed (by label)."""
    kept: list[Mode] = []
    notes: dict[str, str] = {}
    for mode in modes:
        why = unsupported((*mode.needs, *mode.args), migrate_help) if mode.kind == "tool" else None
        if why and mode.older_args is not None and not unsupported(mode.older_args, migrate_help):
            older = dataclasses.replace(mode, args=mode.older_args, older_args=None)
            kept.append(older)
            notes[mode.label] = f"ran `{older.text}` instead: {why}"
        elif why:
            notes[mode.label] = f"skipped: {why}"
        else:
            kept.append(mode)
    return kept, notes


def before_freeze_s(workload: dict[str, Any] | None, move_started_ms: int) -> float | None:
    """From the start of the move to the workload's last tick before its gap: the time before
    the freeze as the workload saw it, whatever the tool calls its steps."""
    before = (workload or {}).get("gap_before") or {}
    if "wall_ms" not in before:
        return None
    return round((int(before["wall_ms"]) - move_started_ms) / 1000, 3)


def run_once(
    lab: Lab,
    mode: Mode,
    *,
    image: str,
    size_mb: int,
    run: int,
    config: Path = LAB_CONFIG,
    target: str = TARGET,
    source: str = SOURCE,
    fill: str = "random",
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    waited = wait_for_quiet_lab()
    name = lab.new_name(size_mb, mode.label, f"r{run}")
    record: dict[str, Any] = {
        "run": run,
        "size_mb": size_mb,
        "mode": mode.label,
        "kind": mode.kind,
        "args": [*mode.args, *extra_args],
        "fill": fill,
        "container": name,
        "waited_for_e2e_s": round(waited, 1),
    }
    phase_started = time.monotonic()
    try:
        start_workload(lab, name, image, size_mb, fill)
        source_log = container_log(SOURCE, name)
        record["started_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        move_started_ms = int(time.time() * 1000)
        record["move_started_ms"] = move_started_ms
        clock = time.monotonic()
        if mode.kind == "floor":
            move = move_floor(lab, name, config)
        elif mode.kind == "hand-made":
            move = move_by_hand(lab, name, config)
        else:
            move = move_with_tool(lab, name, [*mode.args, *extra_args], config, target, source)
        total = time.monotonic() - clock
        move_ended_ms = int(time.time() * 1000)
        record.update(
            ok=move.ok,
            error=move.error,
            total_s=round(total, 3),
            steps=move.steps,
            cpu_s=round(move.cpu_s, 3),
            peak_rss_kib=move.maxrss_kib,
            archive_bytes=move.archive_bytes,
            exit_code=move.exit_code,
        )
        if move.report is not None:
            report = move.report
            record.update(
                tool_downtime_s=report.get("downtime_s"),
                tool_total_s=report.get("total_s"),
                timings=report.get("timings"),
                compression=report.get("compression"),
                compression_choice=report.get("compression_choice"),
                transport=report.get("transport"),
                warnings=report.get("warnings"),
                bytes_transferred=report.get("bytes_transferred"),
                image_staged=report.get("image_staged"),
                outcome=report.get("outcome"),
                report=report,
            )
        if move.ok:
            # the slow alias is the same podman as lab-b: read the log over the fast path
            view, log_source = workload_view(
                name,
                target=TARGET,
                move_started_ms=move_started_ms,
                move_ended_ms=move_ended_ms,
                source_log=source_log,
            )
            workload = view.to_dict()
            record.update(
                downtime_s=view.downtime_s,
                before_freeze_s=before_freeze_s(workload, move_started_ms),
                log_source=log_source,
                workload=workload,
            )
            if not view.state_ok:
                record.update(ok=False, error=f"workload state: {view.problem}")
    except Exception as error:
        record.update(ok=False, error=f"{type(error).__name__}: {error}")
    finally:
        with contextlib.suppress(Exception):
            lab.remove_container(name)
    record["run_wall_s"] = round(time.monotonic() - phase_started, 2)
    return record


def describe(record: dict[str, Any]) -> str:
    head = f"run {record['run']} {record['size_mb']:>5} MB {record['mode']:<20}"
    if not record.get("ok"):
        return f"{head} FAILED: {record.get('error')}"
    text = f"{head} downtime {record['downtime_s']:6.2f} s  total {record['total_s']:6.2f} s"
    if record.get("tool_downtime_s") is not None:
        text += f"  (tool says downtime {record['tool_downtime_s']:.2f} s)"
    if record.get("before_freeze_s") is not None:
        text += f"  before the freeze {record['before_freeze_s']:.2f} s"
    return text + f"  cpu {record['cpu_s']:.2f} s  rss {record['peak_rss_kib'] / 1024:.0f} MiB"
