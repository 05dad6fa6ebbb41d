"""Failures over the real lab: bad input changes nothing; a failure after the freeze rolls back.

Faults are injected from the engine's own event stream (the callback runs synchronously in
the migration thread, so a fault lands exactly at the phase named).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from celestial_ssh import MigrationFailed, MigrationOptions, Outcome, migrate
from celestial_ssh.events import Event, Phase, PhaseStarted
from celestial_ssh.openssh import OpenSSHProcess
from celestial_ssh.ssh import RemoteProcess
from celestial_ssh_cli.failures import ExitCode

from .conftest import (
    LEDGER,
    SSH_CONFIG,
    WORKLOAD_IMAGE,
    assert_one_running_copy,
    assert_state_survived,
    run_cli,
)


@pytest.mark.parametrize("data_path", ["relay", "auto"])
def test_restore_failure_after_the_freeze_rolls_back_to_the_source(
    lab, workloads, workload_image_on_target, data_path
):
    # on every path the restore starts while podman still tidies up the source: the
    # rollback must wait for that checkpoint's end before it restores there
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)

    def conflicting_container_appears(event: Event) -> None:
        # after preflight said the name was free: the restore on the target must now fail
        if isinstance(event, PhaseStarted) and event.phase is Phase.TRANSFER:
            target.podman("create", "--name", workload.name, WORKLOAD_IMAGE, "1")

    with pytest.raises(MigrationFailed) as failure:
        migrate(
            "lab-a",
            "lab-b",
            workload.name,
            MigrationOptions(ssh_config=str(SSH_CONFIG), data_path=data_path),
            on_event=conflicting_container_appears,
        )

    LEDGER.faults.append(
        f"a conflicting container appears on the target after preflight ({data_path})"
    )
    report = failure.value.report
    assert report.outcome is Outcome.ROLLED_BACK
    assert report.data_path == ("relay" if data_path == "relay" else "tls")
    # the restore had been sent before podman on the source had ended
    assert "source_tidy_up" in report.timings
    assert "runs again on lab-a" in str(failure.value)
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    # the stranger on the target is not ours: it must still be there, untouched
    assert target.state(workload.name) == "created"
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))


STREAMS = [
    pytest.param("paramiko", RemoteProcess, id="paramiko"),
    pytest.param("openssh", OpenSSHProcess, id="openssh"),
]


@pytest.mark.parametrize(("transport", "stream"), STREAMS)
def test_archive_damaged_in_flight_is_never_restored(
    lab, workloads, monkeypatch, transport, stream
):
    """A byte flipped between the coordinator's checksum and the target's disk."""
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)
    original_write = stream.write
    chunks = {"count": 0}

    def flip_a_byte_in_the_third_chunk(self, data):
        if "checkpoint.tar" in self.command:
            chunks["count"] += 1
            if chunks["count"] == 3:
                damaged = bytearray(data)
                damaged[100] ^= 0xFF
                data = bytes(damaged)
        return original_write(self, data)

    monkeypatch.setattr(stream, "write", flip_a_byte_in_the_third_chunk)
    options = MigrationOptions(ssh_config=str(SSH_CONFIG), transport=transport, data_path="relay")
    with pytest.raises(MigrationFailed) as failure:
        migrate("lab-a", "lab-b", workload.name, options)

    LEDGER.faults.append("a byte flipped in flight")
    assert chunks["count"] >= 3
    assert "damaged" in str(failure.value)
    assert failure.value.report.outcome is Outcome.ROLLED_BACK
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    assert target.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))


@pytest.mark.parametrize(("transport", "stream"), STREAMS)
def test_archive_damaged_before_the_coordinator_is_caught_by_the_source_checksum(
    lab, workloads, monkeypatch, transport, stream
):
    """A byte flipped as it arrives from the source: the source's own SHA-256 disagrees."""
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)
    original_read = stream.read
    chunks = {"count": 0}

    def flip_a_byte_in_the_second_chunk(self, size):
        data = original_read(self, size)
        if "checkpoint" in self.command and "--export" in self.command and data:
            chunks["count"] += 1
            if chunks["count"] == 2:
                damaged = bytearray(data)
                damaged[0] ^= 0xFF
                data = bytes(damaged)
        return data

    monkeypatch.setattr(stream, "read", flip_a_byte_in_the_second_chunk)
    options = MigrationOptions(ssh_config=str(SSH_CONFIG), transport=transport, data_path="relay")
    with pytest.raises(MigrationFailed) as failure:
        migrate("lab-a", "lab-b", workload.name, options)

    LEDGER.faults.append("a byte flipped between the source and the coordinator")
    assert chunks["count"] >= 2
    assert "damaged between lab-a and this machine" in str(failure.value)
    assert failure.value.report.outcome is Outcome.ROLLED_BACK
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    assert target.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))


def _config_with_known_hosts(tmp_path: Path, known_hosts: str) -> Path:
    known_hosts_file = tmp_path / "known_hosts"
    known_hosts_file.write_text(known_hosts)
    config = SSH_CONFIG.read_text().replace(
        str(SSH_CONFIG.parent / "known_hosts"), str(known_hosts_file)
    )
    config_file = tmp_path / "ssh_config"
    config_file.write_text(config)
    return config_file


BAD_INPUT = [
    # (id, argv after "migrate", expected exit code, words the message must hold)
    ("unknown-alias", ["lab-a", "lab-z", "{name}"], ExitCode.CONNECTION, ["lab-z", "neither"]),
    (
        "unknown-container",
        ["lab-a", "lab-b", "e2e-nosuch"],
        ExitCode.PREFLIGHT,
        ["no container", "e2e-nosuch"],
    ),
    (
        "shell-metacharacters",
        ["lab-a", "lab-b", "x;touch /tmp/celestial-pwned"],
        ExitCode.USAGE,
        ["not a valid container name"],
    ),
    (
        "command-substitution",
        ["lab-a", "lab-b", "$(touch /tmp/celestial-pwned)"],
        ExitCode.USAGE,
        ["not a valid container name"],
    ),
    (
        "leading-dash",
        ["lab-a", "lab-b", "--", "-rf"],
        ExitCode.USAGE,
        ["not a valid container name"],
    ),
    ("hostile-host", ["lab-a;id", "lab-b", "{name}"], ExitCode.USAGE, ["is not a host"]),
    ("same-host", ["lab-a", "lab-a", "{name}"], ExitCode.USAGE, ["same host"]),
    (
        "target-without-criu",
        ["lab-a", "lab-c", "{name}"],
        ExitCode.PREFLIGHT,
        ["lab-c", "CRIU is not installed"],
    ),
    (
        "name-taken-on-target",
        ["--name", "{taken}", "lab-a", "lab-b", "{name}"],
        ExitCode.PREFLIGHT,
        ["already has a container named"],
    ),
]


@pytest.mark.parametrize(
    ("argv", "exit_code", "words"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(
    lab, workloads, workload_image_on_target, argv, exit_code, words
):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=4)
    taken = workloads.track(f"{workload.name}-taken")
    target.podman("create", "--name", taken, WORKLOAD_IMAGE, "1")
    snapshots = {name: host.snapshot() for name, host in lab.items()}
    Path("/tmp/celestial-pwned").unlink(missing_ok=True)

    argv = [part.format(name=workload.name, taken=taken) for part in argv]
    result = run_cli("migrate", "-F", str(SSH_CONFIG), *argv)
    LEDGER.hostile_inputs.append(" ".join(argv))

    assert result.returncode == exit_code, result.stderr
    for word in words:
        assert word in result.stderr
    assert "Traceback" not in result.stderr
    assert {name: host.snapshot() for name, host in lab.items()} == snapshots
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    assert not Path("/tmp/celestial-pwned").exists()
    assert source.workdirs() == [] and target.workdirs() == []


def test_unknown_host_key_is_refused(lab, workloads, tmp_path):
    workload = workloads.start(memory_mb=4)
    config = _config_with_known_hosts(tmp_path, "")

    result = run_cli("migrate", "-F", str(config), "lab-a", "lab-b", workload.name)
    LEDGER.hostile_inputs.append("unknown host key")

    assert result.returncode == ExitCode.CONNECTION
    assert "No ED25519 host key is known for [127.0.0.11]:2222" in result.stderr
    assert "--accept-new-host-keys" in result.stderr
    assert lab["lab-a"].state(workload.name) == "running"


def test_changed_host_key_is_refused_with_the_openssh_warning(lab, workloads, tmp_path):
    workload = workloads.start(memory_mb=4)
    lab_known = (SSH_CONFIG.parent / "known_hosts").read_text().splitlines()
    lab_b_key = next(line for line in lab_known if line.startswith("[127.0.0.12]")).split(" ", 1)[1]
    forged = "\n".join(
        [
            f"[127.0.0.11]:2222 {lab_b_key}",
            *[line for line in lab_known if line.startswith("[127.0.0.12]")],
        ]
    )
    config = _config_with_known_hosts(tmp_path, forged + "\n")

    result = run_cli("migrate", "-F", str(config), "lab-a", "lab-b", workload.name)
    LEDGER.hostile_inputs.append("changed host key")

    assert result.returncode == ExitCode.CONNECTION
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in result.stderr
    assert f'ssh-keygen -f "{tmp_path / "known_hosts"}" -R "[127.0.0.11]:2222"' in result.stderr
    assert "Host key verification failed." in result.stderr
    assert lab["lab-a"].state(workload.name) == "running"


def test_accept_new_host_keys_records_first_contact(lab, workloads, tmp_path):
    workload = workloads.start(memory_mb=4)
    config = _config_with_known_hosts(tmp_path, "")

    # an unknown container stops the run right after connecting: nothing is changed
    result = run_cli(
        "migrate", "-F", str(config), "--accept-new-host-keys", "lab-a", "lab-b", "e2e-nosuch"
    )

    assert result.returncode == ExitCode.PREFLIGHT, result.stderr
    recorded = (tmp_path / "known_hosts").read_text()
    assert "[127.0.0.11]:2222 ssh-ed25519" in recorded
    assert "[127.0.0.12]:2222 ssh-ed25519" in recorded
    assert lab["lab-a"].state(workload.name) == "running"
