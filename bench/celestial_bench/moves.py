"""The ways of moving a workload: the floor, by hand, and with celestial-ssh."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .lab import Lab, on_host, ssh_argv, text_of
from .processes import Measured, measured
from .settings import CLI, SOURCE, TARGET


@dataclass
class Move:
    """What one mode did: its steps, its cost here, and the tool's report if any."""

    ok: bool
    steps: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0
    maxrss_kib: int = 0
    error: str | None = None
    archive_bytes: int | None = None
    report: dict[str, Any] | None = None
    exit_code: int | None = None

    def add(self, step: str, result: Measured) -> bool:
        self.steps[step] = round(result.wall_s, 4)
        self.cpu_s += result.cpu_s
        self.maxrss_kib = max(self.maxrss_kib, result.maxrss_kib)
        if not result.ok:
            self.ok = False
            why = "timed out" if result.timed_out else f"exit {result.returncode}"
            self.error = f"{step}: {why}: {short_error(result.stderr)}"
        return result.ok


def short_error(text: str, limit: int = 300) -> str:
    """One line of an error: a traceback's last line, else the text with spaces collapsed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    if lines[0].startswith("Traceback"):
        return lines[-1][:limit]
    joined = " ".join(lines)
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


# what makes a lab host's podman its own (lab/lab.sh sets these in each sshd's SetEnv)
PODMAN_HOST_VARIABLES = ("CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF", "TMPDIR")


FLOOR_MARK = "checkpointed-at "


def podman_environment(host: str, config: Path) -> list[str]:
    """``NAME=value`` for each variable that selects ``host``'s podman state."""
    printed = text_of(on_host(host, ["env"], config=config))
    values = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    return [f"{name}={values[name]}" for name in PODMAN_HOST_VARIABLES if name in values]


def floor_script(name: str, archive: str, target_environment: Sequence[str]) -> str:
    """Checkpoint on this host, then restore as the target in the same shell: no SSH between."""
    checkpoint = ["podman", "container", "checkpoint", "--export", archive]
    checkpoint += ["--compress", "none", name]
    restore = ["env", *target_environment, "podman", "container", "restore", "--import", archive]
    return (
        f"{shlex.join(checkpoint)} >/dev/null && "
        f"echo {shlex.quote(FLOOR_MARK)}$(date +%s.%N) && "
        f"{shlex.join(restore)} >/dev/null"
    )


def move_floor(lab: Lab, name: str, config: Path) -> Move:
    # The floor is what podman and CRIU need on this machine with nothing in between: one
    # shell checkpoints to tmpfs and restores that file. Two SSH commands would put a
    # connection set-up (~0.3 s) and a login shell into the workload's gap.
    archive = lab.new_file("/dev/shm", f"{name}-floor", ".tar")
    move = Move(ok=True)
    try:
        script = floor_script(name, archive, podman_environment(TARGET, config))
        started = time.time()
        result = measured(ssh_argv(SOURCE, ["sh", "-c", script], config), timeout=1800)
        ended = started + result.wall_s
        move.add("ssh + checkpoint + restore", result)
        marks = [line for line in result.stdout.splitlines() if line.startswith(FLOOR_MARK)]
        if marks:
            checkpointed = float(marks[-1].removeprefix(FLOOR_MARK))
            move.steps = {
                "ssh + checkpoint": round(checkpointed - started, 4),
                "restore": round(ended - checkpointed, 4),
            }
        if result.ok:
            move.archive_bytes = os.path.getsize(archive)
    finally:
        lab.remove_files(archive)
    return move


def move_by_hand(lab: Lab, name: str, config: Path) -> Move:
    # the lab hosts share one filesystem: a distinct name at each step, as on real hosts
    on_source = lab.new_file("/var/tmp", f"{name}-a", ".tar.zst")
    here = lab.new_file("/var/tmp", f"{name}-local", ".tar.zst")
    on_target = lab.new_file("/var/tmp", f"{name}-b", ".tar.zst")
    move = Move(ok=True)
    scp = ["scp", "-q", "-F", str(config)]
    try:
        checkpoint = ["podman", "container", "checkpoint", "--export", on_source, name]
        steps: list[tuple[str, list[str]]] = [
            ("checkpoint", ssh_argv(SOURCE, checkpoint, config)),
            ("scp source->here", [*scp, f"{SOURCE}:{on_source}", here]),
            ("scp here->target", [*scp, here, f"{TARGET}:{on_target}"]),
            (
                "restore",
                ssh_argv(TARGET, ["podman", "container", "restore", "--import", on_target], config),
            ),
        ]
        for step, argv in steps:
            if not move.add(step, measured(argv, timeout=900)):
                break
            if step == "checkpoint":
                move.archive_bytes = os.path.getsize(on_source)
    finally:
        lab.remove_files(on_source, here, on_target)
    return move


def move_with_tool(
    lab: Lab,
    name: str,
    args: Sequence[str],
    config: Path,
    target: str = TARGET,
    source: str = SOURCE,
) -> Move:
    argv = [str(CLI), "migrate", "-F", str(config), "--json", *args, source, target, name]
    result = measured(argv, timeout=1800, env=lab.tool_env)
    move = Move(ok=True, exit_code=result.returncode)
    move.add("celestial-ssh migrate", result)
    with contextlib.suppress(ValueError):
        document = json.loads(result.stdout)
        if isinstance(document, dict):
            move.report = document
            move.archive_bytes = document.get("archive_bytes")
            if document.get("status") not in (None, "succeeded"):
                move.ok = False
                move.error = short_error(f"{document.get('outcome')}: {document.get('error')}")
    if result.ok and move.report is None:
        move.ok = False
        move.error = f"no JSON report on stdout: {result.stdout[-300:]!r}"
    return move
