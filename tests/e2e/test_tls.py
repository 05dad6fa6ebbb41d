"""``--tls`` on the real lab: socat and OpenSSL between lab-a and lab-b, keys handed over SSH.

Each test proves where the container runs afterwards and that its memory state survived;
none asserts a speed (the benchmark measures that). ``--compress auto`` over TLS is tested in
test_data_plane.py, control connections dying under a TLS stream in test_fault_matrix.py.
"""

from __future__ import annotations

import socket
import time

import pytest

from celestial_ssh_cli.failures import ExitCode

from .conftest import assert_state_survived
from .test_data_plane import migrate_json, without_agent

LAB_B_ADDRESS = "127.0.0.12"


def assert_refused_before_the_freeze(lab, workload, before, code, report):
    """Both hosts as they were: the workload ran on at the source, untouched."""
    source, target = lab["lab-a"], lab["lab-b"]
    assert code != ExitCode.OK
    assert report["outcome"] == "not_started", report
    assert source.state(workload.name) == "running"
    assert target.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    ticks = source.ticks(workload.name)
    assert ticks[-1].counter > before[-1].counter and ticks[-1].checksum == before[-1].checksum


def test_tls_moves_the_memory_without_an_agent(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=48)
    before = source.ticks(workload.name)

    code, report, stderr = migrate_json(
        "--tls", "--compress", "none", "lab-a", "lab-b", workload.name, env=without_agent()
    )

    assert code == ExitCode.OK, stderr
    assert report["transport"] == f"direct TLS (socat, to {LAB_B_ADDRESS})"
    assert report["warnings"] == []
    assert report["archive_bytes"] > 48 * 1024 * 1024
    assert report["archive_sha256"] is None  # TLS authenticates every record instead
    assert "tls_setup" in report["timings"]
    # podman on the source said when its archive was complete, and the restore began while
    # it still tidied up there (the step is only timed on that path)
    assert report["timings"]["source_tidy_up"] > 0
    assert target.state(workload.name) == "running"
    assert source.state(workload.name) is None
    # the keys lived in the work directories, and went with them
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_a_tls_port_in_use_on_the_target_fails_before_the_freeze(lab, workloads):
    source = lab["lab-a"]
    workload = workloads.start(memory_mb=8)
    before = source.ticks(workload.name)
    with socket.socket() as taken:
        taken.bind((LAB_B_ADDRESS, 0))
        taken.listen()
        port = taken.getsockname()[1]

        code, report, stderr = migrate_json(
            "--tls",
            "--tls-port",
            str(port),
            "--compress",
            "none",
            "lab-a",
            "lab-b",
            workload.name,
        )

    assert "Address already in use" in stderr, stderr
    assert_refused_before_the_freeze(lab, workload, before, code, report)


@pytest.mark.parametrize("address", ["127.0.0.112", "::1"], ids=["ipv4", "ipv6"])
def test_tls_address_chooses_where_the_target_listens(lab, workloads, address):
    # a data network of its own, here another loopback address than lab-b's SSH one
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)

    code, report, stderr = migrate_json(
        "--tls",
        "--tls-address",
        address,
        "--compress",
        "none",
        "lab-a",
        "lab-b",
        workload.name,
    )

    assert code == ExitCode.OK, stderr
    assert report["transport"] == f"direct TLS (socat, to {address})"
    assert target.state(workload.name) == "running"
    assert source.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_a_tls_address_the_target_lacks_fails_before_the_freeze(lab, workloads):
    source = lab["lab-a"]
    workload = workloads.start(memory_mb=8)
    before = source.ticks(workload.name)

    # 192.0.2.0/24 is for documentation only: no lab host has it
    code, report, stderr = migrate_json(
        "--tls",
        "--tls-address",
        "192.0.2.1",
        "--compress",
        "none",
        "lab-a",
        "lab-b",
        workload.name,
    )

    assert "Cannot assign requested address" in stderr, stderr
    assert_refused_before_the_freeze(lab, workload, before, code, report)
