"""``--tls`` on the real lab: socat and OpenSSL between lab-a and lab-b, keys handed over SSH.

Each test proves where the container runs afterwards and that its memory state survived;
none asserts a speed (the benchmark measures that).
"""

from __future__ import annotations

import socket
import time

import pytest

from celestial_ssh import MigrationFailed, MigrationOptions, Outcome, migrate
from celestial_ssh_cli.failures import ExitCode

from .conftest import LEDGER, SSH_CONFIG, assert_one_running_copy, assert_state_survived
from .test_data_plane import migrate_json, without_agent
from .test_fault_matrix import _kill_sessions_once_streaming

LAB_B_ADDRESS = "127.0.0.12"


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
    assert target.state(workload.name) == "running"
    assert source.state(workload.name) is None
    # the keys lived in the work directories, and went with them
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_tls_with_compress_auto_measures_the_tls_link(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)

    code, report, stderr = migrate_json("--tls", "lab-a", "lab-b", workload.name)

    assert code == ExitCode.OK, stderr
    assert report["compression"] == "none"
    assert "link" in report["compression_choice"], report["compression_choice"]
    assert target.state(workload.name) == "running"
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_a_tls_port_in_use_on_the_target_fails_before_the_freeze(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
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

    assert code != ExitCode.OK
    assert report["outcome"] == "not_started", report
    assert "Address already in use" in stderr, stderr
    assert source.state(workload.name) == "running"
    assert target.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    ticks = source.ticks(workload.name)
    assert ticks[-1].counter > before[-1].counter and ticks[-1].checksum == before[-1].checksum


@pytest.mark.parametrize(
    ("dying", "fault"),
    [
        ("lab-b", "target SSH connection dies mid-transfer (--tls)"),
        ("lab-a", "source SSH connection dies after the freeze (--tls)"),
    ],
    ids=["target-dies", "source-dies"],
)
def test_a_control_connection_dying_mid_tls_stream_rolls_back(lab, workloads, dying, fault):
    # the TLS stream itself does not pass through SSH: it may even finish, but without
    # both control connections nobody restores it, and the source gets its container back
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=96)
    before = source.ticks(workload.name)
    fired: list[str] = []

    with pytest.raises(MigrationFailed) as failure:
        migrate(
            "lab-a",
            "lab-b",
            workload.name,
            MigrationOptions(ssh_config=str(SSH_CONFIG), tls=True),
            on_event=_kill_sessions_once_streaming(dying, fired),
        )

    LEDGER.faults.append(fault)
    assert fired == [dying], "the fault was not injected during the stream"
    assert failure.value.report.outcome is Outcome.ROLLED_BACK
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    assert target.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))
