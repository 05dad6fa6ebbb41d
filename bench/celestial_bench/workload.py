"""The memtick workload: starting it, reading its ticks, and the largest gap in them."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .lab import Lab, on_host, text_of
from .settings import CHECK_EVERY, FIRST_TICK_TIMEOUT_S, INTERVAL_MS, SOURCE


def start_workload(lab: Lab, name: str, image: str, size_mb: int, fill: str = "random") -> None:
    argv = ["podman", "run", "--detach", "--name", name, image]
    argv += [str(size_mb), str(INTERVAL_MS), str(CHECK_EVERY)]
    if fill != "random":
        argv.append(fill)
    on_host(SOURCE, argv)
    deadline = time.monotonic() + FIRST_TICK_TIMEOUT_S
    while time.monotonic() < deadline:
        if parse_ticks(container_log(SOURCE, name, tail=2)):
            time.sleep(0.3)  # a few ticks before the freeze
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} printed no tick in {FIRST_TICK_TIMEOUT_S:.0f} s")


def container_log(host: str, name: str, tail: int | None = None) -> str:
    argv = ["podman", "logs"] + (["--tail", str(tail)] if tail else []) + [name]
    result = on_host(host, argv, check=False, timeout=120)
    return text_of(result) if result.returncode == 0 else ""


@dataclass(frozen=True)
class Tick:
    counter: int
    wall_ms: int
    checksum: str


_TICK = re.compile(r"^tick (\d+) (\d+) ([0-9a-f]{16})$")


def parse_ticks(text: str) -> list[Tick]:
    ticks = []
    for line in text.splitlines():
        match = _TICK.match(line.strip())
        if match:
            ticks.append(Tick(int(match.group(1)), int(match.group(2)), match.group(3)))
    return ticks


@dataclass
class Continuity:
    """What the workload's log says about one move."""

    downtime_s: float | None
    before: Tick | None
    after: Tick | None
    ticks_before_move: int
    ticks_after_move: int
    state_ok: bool
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "downtime_s": self.downtime_s,
            "gap_before": None if self.before is None else vars(self.before),
            "gap_after": None if self.after is None else vars(self.after),
            "ticks_before_move": self.ticks_before_move,
            "ticks_after_move": self.ticks_after_move,
            "state_ok": self.state_ok,
            "problem": self.problem,
        }


def analyse(ticks: Sequence[Tick], move_started_ms: int) -> Continuity:
    """The largest gap between consecutive ticks that ends after the move started.

    The state survived when the counter goes on by exactly one across that gap and
    everywhere else (a restarted workload would begin at 0 again) with one checksum throughout.
    """
    before_move = sum(1 for t in ticks if t.wall_ms < move_started_ms)
    best: tuple[int, int] | None = None
    for index in range(1, len(ticks)):
        if ticks[index].wall_ms < move_started_ms:
            continue
        gap = ticks[index].wall_ms - ticks[index - 1].wall_ms
        if best is None or gap > best[0]:
            best = (gap, index)
    if best is None:
        return Continuity(None, None, None, before_move, 0, False, "no tick after the move")
    gap_ms, index = best
    before, after = ticks[index - 1], ticks[index]
    problems = []
    jumps = [
        (a.counter, b.counter) for a, b in itertools.pairwise(ticks) if b.counter != a.counter + 1
    ]
    if jumps:
        problems.append(f"counter jumps {jumps[0][0]} -> {jumps[0][1]} ({len(jumps)} in all)")
    if len({t.checksum for t in ticks}) > 1:
        problems.append("the checksum changed")
    if before_move == 0:
        problems.append("no tick from before the move")
    after_move = len(ticks) - index
    if after_move < 2:
        problems.append("fewer than 2 ticks after the move")
    return Continuity(
        downtime_s=gap_ms / 1000,
        before=before,
        after=after,
        ticks_before_move=before_move,
        ticks_after_move=after_move,
        state_ok=not problems,
        problem="; ".join(problems) or None,
    )


def wait_for_tick_after(host: str, name: str, wall_ms: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ticks = parse_ticks(container_log(host, name, tail=1))
        if ticks and ticks[-1].wall_ms > wall_ms:
            return True
        time.sleep(0.2)
    return False


def workload_view(
    name: str, *, target: str, move_started_ms: int, move_ended_ms: int, source_log: str
) -> tuple[Continuity, str]:
    """Read the target's log, which should hold the pre-migration lines too.

    podman's checkpoint archive carries the container's log file, so the restored container's
    `podman logs` starts at tick 0. If it ever does not, the source's lines are merged in.
    """
    wait_for_tick_after(target, name, move_ended_ms)
    target_ticks = parse_ticks(container_log(target, name))
    source_of_log = "target"
    ticks = target_ticks
    if not any(t.wall_ms < move_started_ms for t in target_ticks):
        after_move = container_log(SOURCE, name)  # the source copy exists for the baselines
        merged = {t.counter: t for t in parse_ticks(after_move or source_log)}
        merged.update({t.counter: t for t in target_ticks})
        ticks = [merged[c] for c in sorted(merged)]
        source_of_log = "source+target" if after_move else "source-before-move+target"
    return analyse(ticks, move_started_ms), source_of_log
