"""The default data path (auto) on the real lab: host to host over TLS where the hosts can,
relayed through this machine where they cannot, and never failing for it.

- lab-a -> lab-b: both hosts have python3; the TLS link is proved and carries the archive;
- a firewall on lab-b that drops every new TCP connection but sshd's: relayed;
- lab-d has neither socat nor python3 on its PATH (lab/lab.sh): relayed;
- a stranger knocking on the TLS port before and during the move: still host to host.

Each test proves where the container runs afterwards and that its memory state survived;
none asserts a speed or a duration (the benchmark measures the fallback's cost).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from celestial_ssh_cli.failures import ExitCode

from .conftest import assert_state_survived
from .test_data_plane import migrate_json, without_agent

LAB_B_ADDRESS = "127.0.0.12"
LAB_SSH_PORT = 2222


def moved(lab, workload, before, source: str, target: str) -> None:
    """The workload runs on ``target`` only, with its memory intact."""
    assert lab[target].state(workload.name) == "running"
    assert lab[source].state(workload.name) is None
    assert lab[source].workdirs() == [] and lab[target].workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, lab[target].ticks(workload.name))


def test_the_default_streams_host_to_host_over_tls(lab, workloads):
    workload = workloads.start(memory_mb=32)
    before = lab["lab-a"].ticks(workload.name)

    code, report, stderr = migrate_json("lab-a", "lab-b", workload.name, env=without_agent())

    assert code == ExitCode.OK, stderr
    assert report["data_path"] == "tls"
    assert report["data_path_reason"].startswith("auto: TLS link proved"), report
    # both lab hosts have python3, which each end prefers to socat
    assert report["transport"] == f"direct TLS (python3, to {LAB_B_ADDRESS})"
    assert report["warnings"] == []
    assert "tls_setup" in report["timings"]
    moved(lab, workload, before, "lab-a", "lab-b")


@contextlib.contextmanager
def firewall_on_lab_b() -> Iterator[None]:
    """lab-b drops every new TCP connection to its address but its sshd's, as a firewall
    that lets only SSH in does (the packets vanish: the source waits, nothing refuses)."""
    rule = [
        "INPUT",
        "-d",
        LAB_B_ADDRESS,
        "-p",
        "tcp",
        "--syn",
        "!",
        "--dport",
        str(LAB_SSH_PORT),
        "-m",
        "comment",
        "--comment",
        f"celestial-ssh-e2e-{os.getpid()}",
        "-j",
        "DROP",
    ]
    subprocess.run(["iptables", "-I", *rule], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run(["iptables", "-D", *rule], check=True, timeout=30)


def test_a_firewall_between_the_hosts_falls_back_to_relaying(lab, workloads):
    workload = workloads.start(memory_mb=32)
    before = lab["lab-a"].ticks(workload.name)

    with firewall_on_lab_b():
        code, report, stderr = migrate_json("lab-a", "lab-b", workload.name)

    assert code == ExitCode.OK, stderr
    assert report["data_path"] == "relay"
    assert report["data_path_reason"].startswith("no host-to-host link"), report
    [warning] = report["warnings"]
    assert "cannot stream to lab-b over TLS" in warning
    assert "relayed through this machine" in warning
    assert report["transport"] == "openssh"
    print(f"the failed proof cost {report['timings']['tls_setup']:.2f} s before the freeze")
    moved(lab, workload, before, "lab-a", "lab-b")


def test_a_target_without_socat_or_python_falls_back_to_relaying(lab, workloads):
    workload = workloads.start(memory_mb=32)
    before = lab["lab-a"].ticks(workload.name)

    code, report, stderr = migrate_json("lab-a", "lab-d", workload.name)

    assert code == ExitCode.OK, stderr
    assert report["data_path"] == "relay"
    [warning] = report["warnings"]
    assert "lab-d: no program for the TLS link (socat or python3)" in warning
    assert "Install socat" in warning
    moved(lab, workload, before, "lab-a", "lab-d")
    # and back: the source's end has no tool now
    before = lab["lab-d"].ticks(workload.name)
    code, report, stderr = migrate_json("lab-d", "lab-a", workload.name)
    assert code == ExitCode.OK, stderr
    assert report["data_path"] == "relay"
    moved(lab, workload, before, "lab-d", "lab-a")


def test_insisting_on_tls_to_a_host_without_a_tool_changes_nothing(lab, workloads):
    workload = workloads.start(memory_mb=8)

    code, report, stderr = migrate_json("--data-path", "tls", "lab-a", "lab-d", workload.name)

    assert code != ExitCode.OK
    assert report["outcome"] == "not_started"
    assert "lab-d: --data-path tls needs socat or python3, and neither is there" in stderr
    assert lab["lab-a"].state(workload.name) == "running"
    assert lab["lab-d"].state(workload.name) is None
    assert lab["lab-a"].workdirs() == [] and lab["lab-d"].workdirs() == []


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def knock(address: str, port: int, stop: threading.Event, knocks: list[int]) -> None:
    """A stranger: connect to the TLS port over and over, say something that is not TLS,
    and hang up."""
    while not stop.is_set():
        with contextlib.suppress(OSError), socket.create_connection((address, port), 0.5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            knocks.append(1)
        stop.wait(0.02)


@pytest.mark.parametrize("data_path", ["auto", "tls"])
def test_a_stranger_on_the_tls_port_does_not_fail_the_move(lab, workloads, data_path):
    workload = workloads.start(memory_mb=32)
    before = lab["lab-a"].ticks(workload.name)
    port = free_port(LAB_B_ADDRESS)
    stop, knocks = threading.Event(), []
    stranger = threading.Thread(target=knock, args=(LAB_B_ADDRESS, port, stop, knocks))
    stranger.start()
    try:
        code, report, stderr = migrate_json(
            "--data-path", data_path, "--tls-port", str(port), "lab-a", "lab-b", workload.name
        )
    finally:
        stop.set()
        stranger.join()

    assert code == ExitCode.OK, stderr
    assert knocks, "the stranger never got through to the listener"
    assert report["data_path"] == "tls", report
    assert report["warnings"] == []
    moved(lab, workload, before, "lab-a", "lab-b")
