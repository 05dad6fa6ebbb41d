"""End-to-end fixtures: the real two-host lab (real sshd, podman and CRIU on loopback).

The lab is brought up by `make test` (and here again, idempotently, so `pytest tests/e2e`
works on its own). Every container a test makes has a unique `e2e-` name and is removed from
every lab host afterwards; nothing else on the hosts is touched. The hosts are inspected
through the OpenSSH client, independently of the paramiko code under test.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from celestial_ssh import commands

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / ".lab"
SSH_CONFIG = LAB / "ssh_config"
WORKLOAD_IMAGE = "localhost/memtick:latest"
CLI = [sys.executable, "-m", "celestial_ssh_cli"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


class FaultLedger:
    """What the end-to-end suite did to the hosts, printed at the end of the run."""

    def __init__(self) -> None:
        self.faults: list[str] = []
        self.hostile_inputs: list[str] = []
        self.containers_checked = 0
        self.containers_lost = 0
        self.split_brains = 0


LEDGER = FaultLedger()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not (LEDGER.faults or LEDGER.hostile_inputs or LEDGER.containers_checked):
        return
    terminalreporter.write_sep("=", "celestial-ssh fault ledger")
    terminalreporter.write_line(
        f"faults injected: {len(LEDGER.faults)}; hostile inputs tried: "
        f"{len(LEDGER.hostile_inputs)}; containers checked: {LEDGER.containers_checked}; "
        f"containers lost: {LEDGER.containers_lost}; running twice: {LEDGER.split_brains}"
    )


@dataclass(frozen=True)
class Tick:
    counter: int
    wall_ms: int
    checksum: str


class LabHost:
    """One lab host, driven with the OpenSSH client."""

    def __init__(self, name: str):
        self.name = name

    def run(
        self, *argv: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        command = ["ssh", "-F", str(SSH_CONFIG), self.name, shlex.join(argv)]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"{self.name}: {shlex.join(argv)} exited {result.returncode}: {result.stderr}"
            )
        return result

    def podman(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("podman", *argv, check=check)

    def state(self, container: str) -> str | None:
        """podman's State.Status of ``container`` on this host, or None if absent."""
        result = self.podman("container", "inspect", "--format", "json", container, check=False)
        if result.returncode != 0:
            return None
        return str(json.loads(result.stdout)[0]["State"]["Status"])

    def ticks(self, container: str) -> list[Tick]:
        logs = self.podman("logs", container).stdout
        ticks = []
        for line in logs.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == "tick":
                ticks.append(Tick(int(parts[1]), int(parts[2]), parts[3]))
        return ticks

    def snapshot(self) -> tuple[str, str]:
        """What a test must leave unchanged: all containers (with state) and images."""
        listing = json.loads(
            self.podman("container", "ls", "--all", "--no-trunc", "--format", "json").stdout or "[]"
        )
        containers = "\n".join(
            f"{item['Id']} {','.join(item['Names'])} {item['State']}" for item in listing
        )

        images = self.podman("image", "ls", "--all", "--no-trunc", "--format", "{{.ID}}").stdout
        return "\n".join(sorted(containers.splitlines())), "\n".join(sorted(images.splitlines()))

    def tmpfs_entries(self) -> list[str]:
        """Whatever is in the host's own tmpfs for archives (the lab's CELESTIAL_SSH_TMPFS)."""
        return self.run("sh", "-c", 'ls -A "$CELESTIAL_SSH_TMPFS"').stdout.split()

    @contextlib.contextmanager
    def small_landing(self, size: str, *variables: str) -> Iterator[list[str]]:
        """A tmpfs of ``size`` mounted over each directory the host's ``variables`` name
        (``TMPDIR``, ``CELESTIAL_SSH_TMPFS``: the lab's own, never the machine's), for as
        long as the block runs."""
        assert set(variables) <= {"TMPDIR", "CELESTIAL_SSH_TMPFS"}, variables
        paths = self.run("sh", "-c", "".join(f'echo "${name}";' for name in variables))
        landings = paths.stdout.split()
        assert len(landings) == len(variables), landings
        assert all(path.startswith("/var/lib/celestial-lab-") for path in landings), landings
        mounted: list[str] = []
        try:
            for landing in landings:
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", landing], check=True
                )
                mounted.append(landing)
            yield landings
        finally:
            for landing in reversed(mounted):
                subprocess.run(["umount", landing], check=True)

    def workdirs(self) -> list[str]:
        result = self.run(
            "sh",
            "-c",
            'ls -d "${TMPDIR:-/var/tmp}"/celestial-ssh.* '
            '"${CELESTIAL_SSH_TMPFS:-/dev/shm}"/celestial-ssh.* 2>/dev/null || true',
        )
        return result.stdout.split()


@pytest.fixture(scope="session")
def lab() -> dict[str, LabHost]:
    if os.geteuid() != 0:
        pytest.fail("the end-to-end tests need root (they run podman and sshd); run `make test`")
    result = subprocess.run(
        ["bash", str(REPO / "lab" / "lab.sh"), "up"], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        pytest.fail(f"the lab did not come up (run `make lab`):\n{result.stderr}")
    return {name: LabHost(name) for name in ("lab-a", "lab-b", "lab-c", "lab-d")}


@dataclass
class Workload:
    name: str
    host: LabHost
    memory_mb: int


class WorkloadFactory:
    def __init__(self, lab: dict[str, LabHost]):
        self.lab = lab
        self.names: list[str] = []
        self.ids: list[str] = []

    def start(
        self,
        host: str = "lab-a",
        memory_mb: int = 16,
        interval_ms: int = 20,
        image: str = WORKLOAD_IMAGE,
    ) -> Workload:
        name = f"e2e-{uuid.uuid4().hex[:10]}"
        self.names.append(name)
        lab_host = self.lab[host]
        started = lab_host.podman(
            "run", "--detach", "--name", name, image, str(memory_mb), str(interval_ms), "5"
        )
        self.ids.append(started.stdout.strip().splitlines()[-1])
        deadline = time.monotonic() + 60
        while len(lab_host.ticks(name)) < 5:
            if time.monotonic() > deadline:
                raise AssertionError(f"workload {name} did not start ticking on {host}")
            time.sleep(0.2)
        return Workload(name=name, host=lab_host, memory_mb=memory_mb)

    def track(self, name: str) -> str:
        self.names.append(name)
        return name

    def remove_all(self) -> None:
        for host in self.lab.values():
            for name in self.names:
                host.podman("container", "rm", "--force", "--time", "0", name, check=False)
            # work directories a failed test left (the tests that promise none assert it
            # themselves): gone, so one failure does not fail every later test as well
            for container_id in self.ids:
                found = host.run(*commands.list_workdirs(container_id), check=False)
                for workdir in found.stdout.split():
                    host.run(*commands.remove_workdir(workdir), check=False)


@pytest.fixture
def workloads(lab: dict[str, LabHost]) -> Iterator[WorkloadFactory]:
    factory = WorkloadFactory(lab)
    yield factory
    factory.remove_all()


@pytest.fixture
def workload_image_on_target(lab: dict[str, LabHost]) -> str:
    """lab-b has the workload image (moved with podman save | podman load, keeping its ID)."""
    if lab["lab-b"].podman("image", "exists", WORKLOAD_IMAGE, check=False).returncode != 0:
        pipeline = (
            f"ssh -F {shlex.quote(str(SSH_CONFIG))} lab-a podman save {WORKLOAD_IMAGE} | "
            f"ssh -F {shlex.quote(str(SSH_CONFIG))} lab-b podman load --quiet"
        )
        subprocess.run(["sh", "-c", pipeline], check=True, capture_output=True, timeout=300)
    return WORKLOAD_IMAGE


@pytest.fixture
def fresh_image(lab: dict[str, LabHost]) -> Iterator[str]:
    """A workload image with an ID of its own, only on lab-a: the target surely lacks it."""
    name = f"localhost/e2e-image-{uuid.uuid4().hex[:10]}:latest"
    builder = f"e2e-build-{uuid.uuid4().hex[:10]}"
    source = lab["lab-a"]
    source.podman("create", "--name", builder, WORKLOAD_IMAGE)
    try:
        source.podman("commit", "--quiet", builder, name)
    finally:
        source.podman("rm", "--force", builder, check=False)
    yield name
    for host in lab.values():
        host.podman("image", "rm", "--force", name, check=False)


def assert_one_running_copy(lab: dict[str, LabHost], name: str) -> str:
    """The promise: the container runs on exactly one host. Returns that host's name."""
    running = [host for host, lab_host in lab.items() if lab_host.state(name) == "running"]
    LEDGER.containers_checked += 1
    if not running:
        LEDGER.containers_lost += 1
    if len(running) > 1:
        LEDGER.split_brains += 1
    assert len(running) == 1, f"{name} runs on {running or 'no host'}"
    return running[0]


def sshd_sessions(host: str) -> list[int]:
    """PIDs of the lab host's sshd session processes (children of its listener)."""
    listener = int((LAB / host / "sshd.pid").read_text())
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == listener:
            children.append(int(stat.parent.name))
    return children


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)


def assert_state_survived(before: list[Tick], after: list[Tick]) -> tuple[Tick, Tick]:
    """The counter went on from where it stopped, with the same memory checksum.

    Returns the ticks on either side of the largest gap (the freeze).
    """
    assert before, "no ticks before the move"
    assert after, "no ticks after the move"
    counters = [tick.counter for tick in after]
    assert counters == list(range(counters[0], counters[0] + len(counters))), (
        "the counter skipped or restarted: the process state did not survive"
    )
    assert after[0].counter == 0, "the restored log should hold the whole history"
    assert {tick.checksum for tick in after} == {before[0].checksum}, (
        "the memory checksum changed: the memory did not survive intact"
    )
    assert after[-1].counter > before[-1].counter, "the counter did not go on after the move"
    gaps = [(b.wall_ms - a.wall_ms, a, b) for a, b in itertools.pairwise(after)]
    _, last_before, first_after = max(gaps, key=lambda gap: gap[0])
    return last_before, first_after
