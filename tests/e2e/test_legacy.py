"""The older design's entry points over the real lab: `migrate-container` (over SSH and
`--via-http` through a real `celestial-ssh serve`) and the Python API's event stream."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import celestial_ssh
from celestial_ssh import MigrationOptions, Phase
from celestial_ssh.events import (
    Event,
    PhaseFailed,
    PhaseFinished,
    PhaseSkipped,
    PhaseStarted,
    TransferProgress,
)

from .conftest import REPO, SSH_CONFIG, assert_one_running_copy, assert_state_survived

LEGACY = [sys.executable, "-c", "from celestial_ssh_cli.legacy import main; main()"]


def run_legacy(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("CELESTIAL_SSH_TOKEN", None)
    return subprocess.run(
        [*LEGACY, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env
    )


@dataclass
class Server:
    base: str
    token_file: Path
    log: Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/health", timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


@pytest.fixture(scope="module")
def server(lab: Any) -> Iterator[Server]:
    """A real `celestial-ssh serve` on loopback, migrating with the lab's ssh_config."""
    port = _free_port()
    workdir = Path(tempfile.mkdtemp(prefix="e2e-legacy-shim-"))
    token_file = workdir / "token"
    token_file.write_text(secrets.token_hex(16) + "\n")
    token_file.chmod(0o600)
    log_path = workdir / "server.log"
    env = dict(os.environ)
    env.pop("CELESTIAL_SSH_TOKEN", None)
    argv = [sys.executable, "-m", "celestial_ssh_cli", "serve", "--port", str(port)]
    argv += ["--token-file", str(token_file), "--ssh-config", str(SSH_CONFIG)]
    base = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while not _healthy(base):
                assert process.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the shim did not answer /health"
                time.sleep(0.2)
            yield Server(base=base, token_file=token_file, log=log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for path in workdir.iterdir():
                path.unlink()
            workdir.rmdir()


def test_migrate_container_over_ssh_keeps_the_state(lab: Any, workloads: Any) -> None:
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)

    result = run_legacy("-F", str(SSH_CONFIG), "--json", "lab-a", "lab-b", workload.name)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["outcome"], report["source"], report["target"]) == ("migrated", "lab-a", "lab-b")
    assert assert_one_running_copy(lab, workload.name) == "lab-b"
    time.sleep(0.5)
    assert_state_survived(before, target.ticks(workload.name))


def test_migrate_container_via_http_through_a_real_shim(
    lab: Any, workloads: Any, server: Server
) -> None:
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)
    common = ["--via-http", "--shim-url", server.base, "--token-file", str(server.token_file)]

    result = run_legacy(*common, "--json", "lab-a", "lab-b", workload.name)

    assert result.returncode == 0, result.stderr + server.log.read_text()
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    assert (report["outcome"], report["source"], report["target"]) == ("migrated", "lab-a", "lab-b")
    assert report["archive_bytes"] > 16 * 1024 * 1024
    assert assert_one_running_copy(lab, workload.name) == "lab-b"
    time.sleep(0.5)
    assert_state_survived(before, target.ticks(workload.name))


def test_via_http_errors_have_migrates_exit_codes(
    lab: Any, workloads: Any, server: Server, tmp_path: Path
) -> None:
    workload = workloads.start(memory_mb=16)
    snapshots = {name: lab[name].snapshot() for name in ("lab-a", "lab-b")}
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    url = ["--via-http", "--shim-url", server.base]

    refused = run_legacy(*url, "--token-file", str(wrong), "lab-a", "lab-b", workload.name)
    assert refused.returncode == 3, refused.stderr
    assert "token refused" in refused.stderr

    missing = run_legacy(
        *url, "--token-file", str(server.token_file), "lab-a", "lab-b", "e2e-no-such-container"
    )
    assert missing.returncode == 4, missing.stderr  # 409: a preflight check failed
    assert "HTTP 409" in missing.stderr

    unknown = run_legacy(
        *url, "--token-file", str(server.token_file), "lab-a", "lab-nowhere", workload.name
    )
    assert unknown.returncode == 3, unknown.stderr  # 502: the target cannot be reached

    assert {name: lab[name].snapshot() for name in ("lab-a", "lab-b")} == snapshots
    assert assert_one_running_copy(lab, workload.name) == "lab-a"


def _phases(events: list[Event]) -> list[tuple[str, Phase]]:
    return [
        (type(event).__name__, event.phase)
        for event in events
        if isinstance(event, PhaseStarted | PhaseFinished | PhaseSkipped | PhaseFailed)
    ]


def test_api_events_arrive_in_phase_order(lab: Any, workloads: Any) -> None:
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)
    events: list[Event] = []

    report = celestial_ssh.migrate(
        "lab-a",
        "lab-b",
        workload.name,
        MigrationOptions(ssh_config=str(SSH_CONFIG)),
        on_event=events.append,
    )

    assert report.outcome is celestial_ssh.Outcome.MIGRATED
    started, finished = "PhaseStarted", "PhaseFinished"
    if report.image_staged:
        stage = [(started, Phase.STAGE_IMAGE), (finished, Phase.STAGE_IMAGE)]
    else:
        stage = [("PhaseSkipped", Phase.STAGE_IMAGE)]
    assert _phases(events) == [
        (started, Phase.CONNECT),
        (finished, Phase.CONNECT),
        (started, Phase.PREFLIGHT),
        (finished, Phase.PREFLIGHT),
        *stage,
        (started, Phase.CHECKPOINT),
        (started, Phase.TRANSFER),
        (finished, Phase.CHECKPOINT),
        (finished, Phase.TRANSFER),
        (started, Phase.RESTORE),
        (finished, Phase.RESTORE),
        (started, Phase.VERIFY),
        (finished, Phase.VERIFY),
        (started, Phase.CLEANUP),
        (finished, Phase.CLEANUP),
    ]

    progress = [event for event in events if isinstance(event, TransferProgress)]
    for what in ("image", "checkpoint"):
        done = [event.bytes_done for event in progress if event.what == what]
        assert done == sorted(done), f"{what} bytes went backwards: {done}"
    checkpoint = [event for event in progress if event.what == "checkpoint"]
    assert checkpoint, "no progress for the checkpoint stream"
    assert [event.finished for event in checkpoint].count(True) == 1
    assert checkpoint[-1].finished
    assert checkpoint[-1].bytes_done == report.archive_bytes
    assert report.archive_bytes is not None and report.archive_bytes > 16 * 1024 * 1024
    # the checkpoint's progress lies between the freeze and the end of the transfer
    start_index = next(
        i
        for i, event in enumerate(events)
        if isinstance(event, PhaseStarted) and event.phase is Phase.TRANSFER
    )
    end_index = next(
        i
        for i, event in enumerate(events)
        if isinstance(event, PhaseFinished) and event.phase is Phase.TRANSFER
    )
    indexes = [
        i
        for i, event in enumerate(events)
        if isinstance(event, TransferProgress) and event.what == "checkpoint"
    ]
    assert start_index < min(indexes) and max(indexes) < end_index
    if report.image_staged:
        image = [event for event in progress if event.what == "image"]
        assert image and image[-1].finished

    assert assert_one_running_copy(lab, workload.name) == "lab-b"
    time.sleep(0.5)
    assert_state_survived(before, target.ticks(workload.name))
