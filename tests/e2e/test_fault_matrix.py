"""The fault-injection matrix over the real lab: each fault at the phase where it hurts most.

Every test asserts the promise (exactly one running copy, its state intact), the outcome, the
exit code or exception, and that no archive or temporary file is left behind.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import threading
import time

import pytest

from celestial_ssh import MigrationFailed, MigrationOptions, Outcome, migrate
from celestial_ssh.events import Event, TransferProgress
from celestial_ssh.hosts import resolve_host
from celestial_ssh.ssh import SSHSession
from celestial_ssh_cli.failures import ExitCode

from .conftest import (
    CLI,
    LEDGER,
    REPO,
    SSH_CONFIG,
    assert_one_running_copy,
    assert_state_survived,
    run_cli,
    sshd_sessions,
)

OPTIONS = MigrationOptions(ssh_config=str(SSH_CONFIG))


def _kill_sessions_once_streaming(host: str, fired: list[str]):
    def inject(event: Event) -> None:
        if (
            not fired
            and isinstance(event, TransferProgress)
            and event.what == "checkpoint"
            and event.bytes_done > 0
        ):
            fired.append(host)
            for pid in sshd_sessions(host):
                os.kill(pid, signal.SIGKILL)

    return inject


@pytest.mark.parametrize("tls", [False, True], ids=["ssh", "tls"])
@pytest.mark.parametrize(
    ("dying", "fault"),
    [
        ("lab-b", "target SSH connection dies mid-transfer"),
        ("lab-a", "source SSH connection dies after the freeze"),
    ],
    ids=["target-dies", "source-dies"],
)
def test_connection_dies_during_the_stream(lab, workloads, dying, fault, tls):
    # with --tls the stream itself does not pass through SSH and may even finish, but
    # without both control connections nobody restores it: the source gets it back
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=96)
    before = source.ticks(workload.name)
    fired: list[str] = []

    with pytest.raises(MigrationFailed) as failure:
        migrate(
            "lab-a",
            "lab-b",
            workload.name,
            dataclasses.replace(OPTIONS, tls=tls),
            on_event=_kill_sessions_once_streaming(dying, fired),
        )

    LEDGER.faults.append(fault + (" (--tls)" if tls else ""))
    assert fired == [dying], "the fault was not injected during the stream"
    assert failure.value.report.outcome is Outcome.ROLLED_BACK
    assert "runs again on lab-a" in str(failure.value)
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    assert target.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))


def test_a_session_whose_sshd_was_killed_no_longer_answers(lab):
    # the rollback asks, rather than trusting paramiko's is_active(), which can lag the
    # death of the far end (CI once rolled back on such a session and gave up)
    host = resolve_host("lab-a", SSH_CONFIG)
    with SSHSession(host) as alive:
        assert alive.answers()
        before = set(sshd_sessions("lab-a"))
        with SSHSession(host) as probe:
            assert probe.answers()
            [pid] = set(sshd_sessions("lab-a")) - before
            os.kill(pid, signal.SIGKILL)
            assert not probe.answers()
        assert alive.answers() and alive.run(["true"]).ok


def test_target_runs_out_of_space_for_the_archive(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=32)
    before = source.ticks(workload.name)
    # the host's tmpfs and its disk both too small: the archive goes to disk, which fills
    with target.small_landing("8m", "TMPDIR", "CELESTIAL_SSH_TMPFS"):
        with pytest.raises(MigrationFailed) as failure:
            migrate("lab-a", "lab-b", workload.name, OPTIONS)
        assert target.workdirs() == []
    LEDGER.faults.append("target disk full while landing the archive")

    assert "No space left on device" in str(failure.value)
    assert failure.value.report.landing == "disk"
    assert failure.value.report.outcome is Outcome.ROLLED_BACK
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    assert source.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))


def _run_cli_and_signal(argv: list[str], when: str, signum: int) -> tuple[int, str]:
    """Run the CLI (plain output) and send ``signum`` when a stderr line contains ``when``."""
    process = subprocess.Popen(
        [*CLI, *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[str] = []
    sent = threading.Event()

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if not sent.is_set() and when in line:
                process.send_signal(signum)
                sent.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    process.wait(timeout=300)
    watcher.join(timeout=10)
    assert sent.is_set(), f"never saw {when!r}:\n{''.join(lines)}"
    return process.returncode, "".join(lines)


@pytest.mark.parametrize(
    ("signum", "when"),
    [
        (signal.SIGTERM, "Checkpoint on source ..."),
        (signal.SIGINT, "Checkpoint on source ..."),
        (signal.SIGTERM, "Stream checkpoint to target ..."),
        (signal.SIGINT, "Stream checkpoint to target ..."),
        (signal.SIGINT, "Preflight checks ..."),
    ],
    ids=[
        "sigterm-checkpoint",
        "sigint-checkpoint",
        "sigterm-transfer",
        "sigint-transfer",
        "sigint-preflight",
    ],
)
def test_signal_before_the_restore_rolls_back(lab, workloads, signum, when):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=64)
    before = source.ticks(workload.name)

    code, stderr = _run_cli_and_signal(
        ["migrate", "-F", str(SSH_CONFIG), "-v", "lab-a", "lab-b", workload.name], when, signum
    )

    LEDGER.faults.append(f"{signal.Signals(signum).name} at '{when}'")
    assert code == ExitCode.INTERRUPTED, stderr
    assert "stopping at the next safe point" in stderr
    assert "The container was not lost" in stderr
    assert assert_one_running_copy(lab, workload.name) == "lab-a", stderr
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_signal_during_the_restore_lets_the_restore_finish(lab, workloads, signum):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=64)
    before = source.ticks(workload.name)

    code, stderr = _run_cli_and_signal(
        ["migrate", "-F", str(SSH_CONFIG), "lab-a", "lab-b", workload.name],
        "Restore on target ...",
        signum,
    )

    LEDGER.faults.append(f"{signal.Signals(signum).name} during the restore")
    assert code == ExitCode.OK, stderr
    assert "the restore was finished rather than abandoned" in stderr
    assert assert_one_running_copy(lab, workload.name) == "lab-b"
    assert source.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_a_second_coordinator_is_refused_while_the_lock_is_held(lab, workloads):
    source = lab["lab-a"]
    workload = workloads.start(memory_mb=4)
    container_id = source.podman("container", "inspect", "--format", "{{.Id}}", workload.name)
    lock = f"/run/celestial-ssh/lock.{container_id.stdout.strip()}"
    holder = subprocess.Popen(
        ["ssh", "-F", str(SSH_CONFIG), "lab-a", f"flock {lock} sh -c 'echo held; sleep 60'"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        result = run_cli("migrate", "-F", str(SSH_CONFIG), "lab-a", "lab-b", workload.name)
    finally:
        holder.kill()
        holder.wait()
    LEDGER.faults.append("a second coordinator while the lock is held")

    assert result.returncode == ExitCode.PREFLIGHT, result.stderr
    assert "another migration of" in result.stderr
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    assert source.workdirs() == [] and lab["lab-b"].workdirs() == []


def test_two_coordinators_at_once_leave_exactly_one_copy(lab, workloads):
    source = lab["lab-a"]
    workload = workloads.start(memory_mb=32)
    before = source.ticks(workload.name)
    argv = [*CLI, "migrate", "-F", str(SSH_CONFIG), "-q", "lab-a", "lab-b", workload.name]
    first = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True)
    _, first_err = first.communicate(timeout=300)
    _, second_err = second.communicate(timeout=300)
    LEDGER.faults.append("two coordinators at once")

    codes = sorted([first.returncode, second.returncode])
    assert codes[0] == ExitCode.OK, first_err + second_err
    assert codes[1] == ExitCode.PREFLIGHT, first_err + second_err
    where = assert_one_running_copy(lab, workload.name)
    assert where == "lab-b"
    assert source.workdirs() == [] and lab["lab-b"].workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, lab[where].ticks(workload.name))


def test_coordinator_killed_mid_transfer_then_recover(lab, workloads, tmp_path):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=96)
    before = source.ticks(workload.name)
    # a SIGKILLed coordinator cannot remove its temporary files: keep them in this test's
    # directory instead of the machine's /tmp
    process = subprocess.Popen(
        [*CLI, "migrate", "-F", str(SSH_CONFIG), "lab-a", "lab-b", workload.name],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp_path)},
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "Stream checkpoint to target ..." in line:
            time.sleep(0.3)
            process.kill()
            break
    process.wait(timeout=60)
    LEDGER.faults.append("coordinator SIGKILLed mid-transfer, then recover")
    assert process.returncode == -signal.SIGKILL

    result = run_cli("recover", "-F", str(SSH_CONFIG), "lab-a", "lab-b", workload.name)

    assert result.returncode == ExitCode.OK, result.stderr
    assert "exactly one copy" in result.stderr
    where = assert_one_running_copy(lab, workload.name)
    assert f"runs on {where}" in result.stderr
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, lab[where].ticks(workload.name))


def test_recover_with_nothing_to_do_changes_nothing(lab, workloads):
    workload = workloads.start(memory_mb=4)
    snapshots = {name: host.snapshot() for name, host in lab.items()}

    result = run_cli("recover", "-F", str(SSH_CONFIG), "lab-a", "lab-b", workload.name)

    assert result.returncode == ExitCode.OK, result.stderr
    assert "runs on lab-a (exactly one copy)" in result.stderr
    assert {name: host.snapshot() for name, host in lab.items()} == snapshots
