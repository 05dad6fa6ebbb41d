"""The benchmark (bench/celestial_bench): the floor in one shell, the restore as the target;
interrupts; the distant summary; the results it writes."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import BENCH_DIR


def bench_module(name: str) -> ModuleType:
    """A module of bench/celestial_bench (bench/ is on the path when bench/run.py runs)."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    return importlib.import_module(f"celestial_bench.{name}")


@pytest.fixture(scope="module")
def moves() -> ModuleType:
    return bench_module("moves")


FAKE_PODMAN = """#!/bin/sh
echo "$CONTAINERS_STORAGE_CONF|$*" >> "$CALLS"
echo "podman output that the floor must not print"
"""


def test_the_floor_restores_as_the_target_right_after_the_checkpoint(
    moves: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "podman").write_text(FAKE_PODMAN)
    (tmp_path / "podman").chmod(0o755)
    calls = tmp_path / "calls"
    script = moves.floor_script(
        "box", "/dev/shm/box.tar", ["CONTAINERS_STORAGE_CONF=/b/storage.conf"]
    )
    environment = {
        **os.environ,
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "CALLS": str(calls),
        "CONTAINERS_STORAGE_CONF": "/a/storage.conf",
    }
    result = subprocess.run(
        ["sh", "-c", script], env=environment, capture_output=True, text=True, check=True
    )
    assert calls.read_text().splitlines() == [
        "/a/storage.conf|container checkpoint --export /dev/shm/box.tar --compress none box",
        "/b/storage.conf|container restore --import /dev/shm/box.tar",
    ]
    [mark] = result.stdout.splitlines()
    assert mark.startswith(moves.FLOOR_MARK)
    float(mark.removeprefix(moves.FLOOR_MARK))


def test_a_failed_checkpoint_skips_the_restore(moves: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "podman").write_text('#!/bin/sh\necho "$*" >> "$CALLS"\nexit 125\n')
    (tmp_path / "podman").chmod(0o755)
    calls = tmp_path / "calls"
    script = moves.floor_script("box", "/dev/shm/box.tar", [])
    environment = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CALLS": str(calls)}
    result = subprocess.run(["sh", "-c", script], env=environment, capture_output=True, check=False)
    assert result.returncode == 125
    assert len(calls.read_text().splitlines()) == 1


def test_the_target_environment_is_what_selects_its_podman(
    moves: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = "HOME=/root\nTMPDIR=/var/lib/x/lab-b/tmp\nCONTAINERS_CONF=/b/containers.conf\n"
    printed += "CONTAINERS_STORAGE_CONF=/b/storage.conf\nPATH=/usr/bin\n"
    asked: list[tuple[str, list[str]]] = []

    def on_host(host: str, command: list[str], **_: object) -> subprocess.CompletedProcess[bytes]:
        asked.append((host, command))
        return subprocess.CompletedProcess(command, 0, printed.encode(), b"")

    monkeypatch.setattr(moves, "on_host", on_host)
    assert moves.podman_environment("lab-b", Path("/cfg")) == [
        "CONTAINERS_STORAGE_CONF=/b/storage.conf",
        "CONTAINERS_CONF=/b/containers.conf",
        "TMPDIR=/var/lib/x/lab-b/tmp",
    ]
    assert asked == [("lab-b", ["env"])]


STOPS_SLOWLY = """
trap 'echo interrupted >> "$MARKS"; sleep 0.5; echo stopped >> "$MARKS"; exit 3' INT
echo $$ > "$MARKS.pid"
echo started >> "$MARKS"
while :; do sleep 0.05; done
"""


def test_an_interrupted_run_passes_the_interrupt_on_and_waits_for_the_child(tmp_path: Path) -> None:
    # a SIGINT that reaches the bench alone (not its process group) must not leave the
    # child running while the bench cleans up after it
    marks = tmp_path / "marks"
    script = tmp_path / "stops-slowly"
    script.write_text(STOPS_SLOWLY)
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def interrupt_once_started() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not marks.exists():
            time.sleep(0.02)
        signal.pthread_kill(main_thread, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_started)
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            bench_module("processes").measured(
                ["sh", str(script)], timeout=30, env={**os.environ, "MARKS": str(marks)}
            )
    finally:
        interrupter.join()
        # a child the bench left running (the failure this test is about) goes now
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int((tmp_path / "marks.pid").read_text()), signal.SIGKILL)
    # the child got the interrupt, and had stopped before the bench went on
    assert marks.read_text().split() == ["started", "interrupted", "stopped"]


def test_the_distant_summary_takes_medians_of_the_runs_that_worked() -> None:
    modes = bench_module("settings").DISTANT_MODES
    _floor, _default, relayed, tls = modes

    def record(mode: object, total: float, preflight: float, ok: bool = True) -> dict[str, object]:
        return {
            "mode": mode.label,  # type: ignore[attr-defined]
            "size_mb": 256,
            "ok": ok,
            "total_s": total,
            "downtime_s": 0.8,
            "timings": {"connect": 0.24, "preflight": preflight, "cleanup": 0.6},
        }

    runs = [
        record(relayed, 5.6, 1.5),
        record(tls, 5.7, 1.8),
        record(relayed, 5.4, 1.6),
        record(tls, 9.9, 9.9, ok=False),
        record(relayed, 5.8, 1.4),
    ]
    summary = bench_module("summary").distant_summary(runs, modes, [256])
    assert [(row["mode"], row["runs"], row["failures"]) for row in summary] == [
        ("far-relayed", 3, 0),
        ("far-tls", 2, 1),
    ]
    assert (summary[0]["total_s"], summary[0]["steps"]["preflight"]) == (5.6, 1.5)
    assert (summary[1]["total_s"], summary[1]["vs_floor"]) == (5.7, None)
    table = bench_module("tables").distant_table(
        {"summary": summary, "steps": ["connect", "preflight", "cleanup"]}, markdown=True
    )
    assert table.splitlines()[0] == (
        "| size | mode | ok | transport/compr. | total s | before freeze s | connect s "
        "| preflight s | cleanup s | downtime s | ÷ floor |"
    )
    assert "| 256 MB | far-tls: `celestial-ssh migrate --tls --compress none` | 1/2 |" in table


def test_the_results_are_the_latest_run_and_a_history_line_per_mode_and_size(
    tmp_path: Path,
) -> None:
    report = bench_module("report")
    summary_row = {
        "size_mb": 64,
        "mode": "floor",
        "command": "floor",
        "runs": 1,
        "failures": 0,
        "downtime_s": 0.74,
        "tool_downtime_s": None,
        "total_s": 1.41,
        "vs_floor": 1.0,
        "vs_hand_made": None,
        "chosen": None,
        "cpu_s": 0.1,
        "peak_rss_mib": 26.0,
        "archive_mb": 69.0,
    }
    document = {
        "options": {"sizes": [64], "runs": 1},
        "machine": {
            "date": "2026-11-27T16:45:33+00:00",
            "cpu_model": "AMD EPYC",
            "cores": 2,
            "memory_gib": 23.5,
            "kernel": "6.18",
            "openssh_client": "OpenSSH_9.2p1",
            "celestial_ssh": "0.1.0",
            "git_commit": "f720116",
            "hosts": {"lab-a": {"podman": "podman version 4.3.1", "criu": "Version: 4.2.1"}},
        },
        "notes": {},
        "runs": [],
        "summary": [summary_row],
        "throughput": None,
        "slow_links": None,
        "distant": None,
    }
    for _ in range(2):
        paths = report.write_results(document, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.md", "latest.json", "latest.md"]
    assert json.loads((tmp_path / "latest.json").read_text()) == document
    assert "| 64 MB | floor | 0.74 |" in (tmp_path / "latest.md").read_text()
    line = (
        "| 2026-11-27 16:45 | AMD EPYC, 2 cores | floor | 64 MiB | 0.74 | 1.00x | 1.41 | f720116 |"
    )
    history = (tmp_path / "history.md").read_text().splitlines()
    assert history.count(line) == 2
    assert history[0] == "# Benchmark history"
    assert paths == [tmp_path / "latest.json", tmp_path / "latest.md", tmp_path / "history.md"]
