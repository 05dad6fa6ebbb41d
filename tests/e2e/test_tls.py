"""``--tls`` on the real lab: python3's ssl at both ends, keys handed over SSH.

Each test proves where the container runs afterwards and that its memory state survived;
none asserts a speed (the benchmark measures that). ``--compress auto`` over TLS is tested in
test_data_plane.py, control connections dying under a TLS stream in test_fault_matrix.py.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from celestial_ssh import MigrationFailed, MigrationOptions, Outcome, commands, migrate
from celestial_ssh_cli.failures import ExitCode

from .conftest import LEDGER, SSH_CONFIG, assert_one_running_copy, assert_state_survived
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
    assert report["transport"] == f"direct TLS (python3, to {LAB_B_ADDRESS})"
    assert report["warnings"] == []
    assert report["archive_bytes"] > 48 * 1024 * 1024
    # the source's digest, taken as it streamed, which the target checked before restoring
    assert re.fullmatch("[0-9a-f]{64}", report["archive_sha256"])
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
    assert report["transport"] == f"direct TLS (python3, to {address})"
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


def test_an_archive_damaged_between_the_two_hashes_is_never_restored(lab, workloads, monkeypatch):
    """--tls: bytes changed after the source hashed the archive and before the target did
    (TLS protects only the wire between them): the target's restore compares the two
    digests, refuses (97) before podman sees the archive, and the source is rolled back."""
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)
    original = commands.direct_checkpoint_stream

    def damaging(checkpoint, workdir, link):
        # every zero byte the source's checkpoint stream sent becomes a one: the same size
        # (the size check passes), another content; the announcement (descriptor 5) and the
        # source's marker (stderr) pass unchanged
        damage = ["sh", "-c", '"$@" | tr "\\000" "\\001"', "damage", *checkpoint]
        return original(damage, workdir, link)

    monkeypatch.setattr(commands, "direct_checkpoint_stream", damaging)
    options = MigrationOptions(ssh_config=str(SSH_CONFIG), tls=True, compression="none")
    with pytest.raises(MigrationFailed) as failure:
        migrate("lab-a", "lab-b", workload.name, options)

    LEDGER.faults.append("a host-to-host archive damaged between the two hashes (--tls)")
    report = failure.value.report
    assert "the archive arrived damaged (SHA-256 mismatch); it was not restored" in str(
        failure.value
    )
    assert report.transport == f"direct TLS (python3, to {LAB_B_ADDRESS})"
    assert re.fullmatch("[0-9a-f]{64}", report.archive_sha256 or "")
    assert report.outcome is Outcome.ROLLED_BACK
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    assert target.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))
