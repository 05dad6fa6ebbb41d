"""The migration engine driven against fake SSH sessions: order, preflight, rollback.

The fake hosts (:class:`~tests.unit.fakes.lab.FakeLab`) are described in
``tests/unit/fakes/lab.py``. The host-to-host data paths have their own file
(``test_host_to_host.py``), and so has the choice between them (``test_data_path.py``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest

from celestial_ssh import commands, migration, precopy
from celestial_ssh.commands import CheckpointOptions
from celestial_ssh.errors import (
    ConnectionFailed,
    InvalidInput,
    LockHeld,
    MigrationFailed,
    MigrationInterrupted,
    PreflightFailed,
    RemoteCommandFailed,
)
from celestial_ssh.events import (
    Event,
    Notice,
    Phase,
    PhaseFinished,
    TransferProgress,
)
from celestial_ssh.migration import Migration, MigrationOptions, preflight
from celestial_ssh.report import Outcome
from celestial_ssh.shell import join
from celestial_ssh.ssh import CommandResult
from celestial_ssh.streaming import RelayBroken, RelayStopped
from celestial_ssh_cli.failures import ExitCode, exit_code_for
from tests.unit.fakes.engine import LOOKS_RUNNING, fail, restorable_source, run
from tests.unit.fakes.lab import (  # the fake hosts
    ARCHIVE_BYTES,
    ARCHIVE_SHA,
    CHECKPOINT_WAIT,
    CID,
    IMAGE,
    IMAGE_ID,
    LOCK,
    RESTORE_WAIT,
    SRC,
    TGT,
    WORKDIRS,
    DeferredFakeProcess,
    FakeChannel,
    FakeLab,
    LabSession,
    image,
    inspect,
    listing,
    memory_usage,
    podman_info,
    result,
    source_bytes,
    stats,
)


# -- a successful run ------------------------------------------------------------------------
def test_successful_run_event_order(lab: FakeLab) -> None:
    run(lab)
    assert lab.phases() == [
        ("started", Phase.CONNECT),
        ("finished", Phase.CONNECT),
        ("started", Phase.PREFLIGHT),
        ("finished", Phase.PREFLIGHT),
        ("skipped", Phase.STAGE_IMAGE),
        ("started", Phase.CHECKPOINT),
        ("started", Phase.TRANSFER),
        ("finished", Phase.CHECKPOINT),
        ("finished", Phase.TRANSFER),
        ("started", Phase.RESTORE),
        ("finished", Phase.RESTORE),
        ("started", Phase.VERIFY),
        ("finished", Phase.VERIFY),
        ("started", Phase.CLEANUP),
        ("finished", Phase.CLEANUP),
    ]
    progress = [event for event in lab.events if isinstance(event, TransferProgress)]
    assert progress[-1] == TransferProgress("checkpoint", ARCHIVE_BYTES, ARCHIVE_BYTES, True)
    finished_transfer = next(
        event
        for event in lab.events
        if isinstance(event, PhaseFinished) and event.phase is Phase.TRANSFER
    )
    assert lab.events.index(progress[-1]) < lab.events.index(finished_transfer)
    assert lab.notices() == []


def test_successful_run_report(lab: FakeLab) -> None:
    report = run(lab).report
    assert report.outcome is Outcome.MIGRATED and report.succeeded
    assert report.container_id == CID
    assert report.image == IMAGE
    assert report.target_container == "web"
    assert report.image_staged is False
    assert report.archive_bytes == report.bytes_transferred == ARCHIVE_BYTES
    assert report.archive_sha256 == ARCHIVE_SHA
    assert report.checkpoint_stats == {"frozen_time": 29373}
    assert report.restore_stats == {"restore_time": 117040}
    assert report.downtime_s is not None and report.downtime_s >= 0
    assert report.total_s is not None and report.total_s >= report.downtime_s
    assert set(report.timings) >= {"connect", "preflight", "checkpoint", "transfer", "restore"}
    assert report.warnings == [] and report.error is None


def test_successful_run_commands(lab: FakeLab) -> None:
    run(lab)
    checkpoint = join(
        commands.checkpoint_stream(
            CID,
            WORKDIRS[SRC],
            CheckpointOptions(),
            gated=True,
            hashed=True,
            announce_on_stderr=True,
        )
    )
    lander = join(commands.land_archive(WORKDIRS[TGT], announce=True))
    lock = join(commands.hold_migration_lock(CID))
    restore = join(commands.gated_restore_import(WORKDIRS[TGT], options=CheckpointOptions()))
    # the lock on the source first, then the streams: the target listens before the source
    # starts sending
    assert lab.started == [(SRC, lock), (TGT, lander), (SRC, checkpoint)]
    assert lab.relays == [(checkpoint, lander)]
    assert restore in lab.commands_on(TGT)
    # the restore was connected before the freeze, and told what to check when it went
    [restorer] = [p for p in lab.processes if p.command == restore]
    assert restorer.written == [commands.restore_go_line(ARCHIVE_BYTES, ARCHIVE_SHA)]
    assert join(commands.container_remove(CID)) in lab.commands_on(SRC)
    assert join(commands.remove_workdir(WORKDIRS[SRC])) in lab.commands_on(SRC)
    assert join(commands.remove_workdir(WORKDIRS[TGT])) in lab.commands_on(TGT)
    # every check before the freeze, the source copy removed only once the target runs it
    assert lab.position(SRC, "container checkpoint") > max(
        lab.position(host, "criu check") for host in (SRC, TGT)
    )
    assert lab.position(TGT, "podman container ls") < lab.position(SRC, "container checkpoint")
    assert (
        lab.position(TGT, "restore --import")
        < lab.position(TGT, "podman container inspect")
        < lab.position(SRC, "podman container rm")
    )
    assert not lab.ran(SRC, "container restore")
    assert all(not session.is_connected for session in lab.sessions), "sessions closed"


def meet_first_time(lab: FakeLab, meeting: threading.Barrier, host: str, needle: str) -> None:
    """``needle``'s first answer on ``host`` waits until every party of ``meeting`` has
    come: if the engine asked one after another, the barrier would break."""
    original = lab.answer_for(host, needle)
    met = threading.Event()

    def answer(command: str) -> CommandResult | BaseException:
        if not met.is_set():
            met.set()
            meeting.wait()
        reply = original(command) if callable(original) else original
        assert not isinstance(reply, list)
        return reply

    lab.answer(host, needle, answer)


def test_preflight_asks_each_host_everything_in_one_round(lab: FakeLab) -> None:
    """One round trip for the host checks and the questions about the container (each
    remote command costs a round trip; on a distant link, that is the preflight's time)."""
    checks = ["podman info", "criu --version", "criu check"]
    asked = {
        SRC: [*checks, "podman container inspect", "podman stats"],
        TGT: [*checks, "podman container ls"],
    }
    meeting = threading.Barrier(sum(map(len, asked.values())), timeout=10)
    for host, needles in asked.items():
        for needle in needles:
            meet_first_time(lab, meeting, host, needle)
    report = run(lab).report
    assert report.outcome is Outcome.MIGRATED
    assert not meeting.broken


def test_cleanup_tidies_both_hosts_at_once(lab: FakeLab) -> None:
    meeting = threading.Barrier(3, timeout=10)
    meet_first_time(lab, meeting, SRC, f"cat {WORKDIRS[SRC]}/checkpoint-stats.json")
    meet_first_time(lab, meeting, SRC, "podman container rm --")
    meet_first_time(lab, meeting, TGT, "rm -rf --")
    report = run(lab).report
    assert report.outcome is Outcome.MIGRATED
    assert not meeting.broken
    assert report.checkpoint_stats == {"frozen_time": 29373}
    # the source's statistics are read before its work directory goes
    assert lab.position(SRC, "checkpoint-stats.json") < lab.position(SRC, "rm -rf --")


def test_a_source_without_its_count_warns_and_migrates(lab: FakeLab) -> None:
    lab.answer(SRC, "container checkpoint", result(stderr="dd: not found\n"))
    report = run(lab).report
    assert report.outcome is Outcome.MIGRATED
    assert report.warnings == [
        "lab-a did not report the archive's size; the coordinator's own count of the "
        "stream is used instead",
        "lab-a did not report the archive's SHA-256; the coordinator's own digest of the "
        "stream is used instead",
    ]
    assert report.archive_sha256 == ARCHIVE_SHA  # what the target then checks


def test_an_archive_cut_short_on_the_way_rolls_back_before_the_restore(lab: FakeLab) -> None:
    lab.answer(SRC, "container checkpoint", source_bytes(ARCHIVE_BYTES + 1))
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert isinstance(error.cause, ConnectionFailed)
    assert (
        f"the archive was cut short between lab-a and this machine ({ARCHIVE_BYTES + 1} "
        f"bytes sent by the source, {ARCHIVE_BYTES} arrived here); it was not restored"
    ) in str(error)
    assert not lab.ran(TGT, "restore --import")
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    landing = join(commands.land_archive(WORKDIRS[TGT], announce=True))
    [lander] = [p for p in lab.processes if p.command == landing]
    assert lander.killed
    assert lab.phases()[-4:] == [
        ("failed", Phase.CHECKPOINT),
        ("failed", Phase.TRANSFER),
        ("started", Phase.ROLLBACK),
        ("finished", Phase.ROLLBACK),
    ]


def test_a_source_connection_dead_but_not_yet_noticed_is_replaced_for_the_rollback(
    lab: FakeLab,
) -> None:
    # the stream on its own connection saw the source's sshd die first; the control
    # session still calls itself connected, but it no longer answers (seen in CI)
    def dies(command: str) -> CommandResult:
        lab.lose_connections_unnoticed(SRC)
        return result(status=-1)

    lab.answer(SRC, "container checkpoint", dies)
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed)

    assert engine.report.outcome is Outcome.ROLLED_BACK, engine.report.warnings
    assert "lab-a: the connection died during the checkpoint" in str(error)
    assert lab.connects.count(SRC) == 2, "one new connection for the rollback"
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    assert lab.ran(SRC, "rm -rf"), "the source's work directory removed"
    assert not any(session.is_connected for session in lab.sessions), "the old one too"


def test_an_archive_damaged_on_the_way_rolls_back_before_the_restore(lab: FakeLab) -> None:
    lab.answer(SRC, "container checkpoint", source_bytes(ARCHIVE_BYTES, "a" * 64))
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert (
        "the archive was damaged between lab-a and this machine (SHA-256 aaaaaaaaaaaaaaaa... "
        "on the source, 5555555555555555... here); it was not restored"
    ) in str(error)
    assert not lab.ran(TGT, "restore --import")
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    # the restore waiting on the target was never told to go, and was let go
    [restorer] = [p for p in lab.processes if isinstance(p, DeferredFakeProcess)]
    assert restorer.killed and not restorer.went


def test_keep_source_keeps_the_stopped_copy(lab: FakeLab) -> None:
    run(lab, MigrationOptions(keep_source=True))
    assert not lab.ran(SRC, "podman container rm")
    cleanup = [e for e in lab.events if isinstance(e, PhaseFinished) and e.phase is Phase.CLEANUP]
    assert cleanup[0].detail.startswith("kept the stopped source copy on lab-a")


def test_image_is_staged_when_the_target_lacks_it(lab: FakeLab) -> None:
    lab.answer(TGT, "podman image inspect", result(status=125, stderr="image not known"))
    report = run(lab).report
    assert lab.phases()[4:6] == [("started", Phase.STAGE_IMAGE), ("finished", Phase.STAGE_IMAGE)]
    assert lab.streams()[:2] == [
        (TGT, join(commands.image_load())),
        (SRC, join(commands.image_save(IMAGE))),
    ]
    assert len(lab.relays) == 2
    assert report.image_staged is True
    assert report.bytes_transferred == 2 * ARCHIVE_BYTES  # image + checkpoint
    image_progress = [
        e for e in lab.events if isinstance(e, TransferProgress) and e.what == "image"
    ]
    assert image_progress[-1] == TransferProgress("image", ARCHIVE_BYTES, 191_000_000, True)


def test_new_name_and_tcp_established_reach_the_restore(lab: FakeLab) -> None:
    lab.answer(TGT, "podman container inspect", inspect("running", name="web2", cid="d" * 64))
    report = run(lab, MigrationOptions(new_name="web2", tcp_established=True)).report
    assert report.target_container == "web2"
    checkpoint = lab.started[-1][1]
    assert "--tcp-established -- " + CID in checkpoint
    restore = next(c for c in lab.commands_on(TGT) if "restore --import" in c)
    assert "--print-stats --name web2 --tcp-established" in restore
    assert join(commands.container_inspect("web2")) in lab.commands_on(TGT)


def test_non_root_user_with_sudo_runs_podman_under_sudo(lab: FakeLab) -> None:
    lab.answer(TGT, "id -u", result("1000\n"))
    lab.answer(TGT, "sudo -n true", result())
    run(lab)
    target = lab.commands_on(TGT)
    assert target[:2] == ["id -u", "sudo -n true"]  # both unprivileged
    assert all(command.startswith("sudo -n -- ") for command in target[2:])
    assert not any(command.startswith("sudo") for command in lab.commands_on(SRC))


def test_accept_new_host_keys_relaxes_only_strict_hosts(lab: FakeLab) -> None:
    run(lab, MigrationOptions(accept_new_host_keys=True))
    assert {s.host.strict_host_key_checking for s in lab.sessions} == {"accept-new"}


# -- refused before anything runs --------------------------------------------------------------
@pytest.mark.parametrize(
    ("container", "options"),
    [
        pytest.param("web;reboot", None, id="container"),
        pytest.param("-web", None, id="leading-dash"),
        pytest.param("web", MigrationOptions(new_name="$(x)"), id="new-name"),
        pytest.param("web", MigrationOptions(compression="xz"), id="compression"),
        pytest.param("web", MigrationOptions(tls_port=4433), id="tls-port-without-tls"),
        pytest.param("web", MigrationOptions(tls=True, tls_port=70000), id="tls-port-range"),
        pytest.param("web", MigrationOptions(tls=True, bwlimit_bytes_per_s=1e6), id="tls-bwlimit"),
        pytest.param("web", MigrationOptions(tls_address="10.0.0.6"), id="tls-address-without-tls"),
        pytest.param("web", MigrationOptions(tls=True, tls_address="lab-b"), id="tls-address-name"),
        pytest.param(
            "web", MigrationOptions(tls=True, tls_address="0.0.0.0"), id="tls-address-any"
        ),
    ],
)
def test_invalid_input_is_refused_before_resolving_or_connecting(
    lab: FakeLab, container: str, options: MigrationOptions | None
) -> None:
    engine = Migration(SRC, TGT, container, lab.options(options), on_event=lab.events.append)
    with pytest.raises(InvalidInput) as caught:
        engine.run()
    assert caught.value.report is engine.report
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert lab.sessions == [] and lab.log == []
    assert lab.events == []


def test_same_host_twice_is_refused_before_connecting(lab: FakeLab) -> None:
    engine = Migration(SRC, "root@10.0.0.5", "web", lab.options(), on_event=lab.events.append)
    with pytest.raises(InvalidInput, match="are the same host"):
        engine.run()
    assert lab.connects == []


def test_unreachable_target_fails_cleanly(lab: FakeLab) -> None:
    lab.unreachable.add(TGT)
    _engine, error = fail(lab, ConnectionFailed)
    assert error.report.outcome is Outcome.NOT_STARTED
    assert exit_code_for(error) is ExitCode.CONNECTION
    assert lab.phases() == [("started", Phase.CONNECT), ("failed", Phase.CONNECT)]
    assert lab.log == []


# -- preflight failures: nothing is frozen -------------------------------------------------------
PREFLIGHT_FAILURES = [
    pytest.param(
        SRC,
        "podman container inspect",
        result(status=125, stderr="Error: no such container web"),
        "lab-a: no container 'web'",
        id="container-missing",
    ),
    pytest.param(
        SRC,
        "podman container inspect",
        inspect("exited"),
        "container 'web' is exited, not running",
        id="container-not-running",
    ),
    pytest.param(
        TGT,
        "podman container ls",
        listing(("e" * 64, "web", "running")),
        "lab-b already has a container named 'web'",
        id="name-taken-on-target",
    ),
    pytest.param(
        TGT,
        "podman container ls",
        listing((CID, "old-web", "exited")),
        "lab-b already has a container with ID",
        id="id-taken-on-target",
    ),
    pytest.param(
        TGT,
        "criu check",
        result(status=1, stderr="Error (criu/cr-check.c:1209): Kernel doesn't support PTRACE\n"),
        "lab-b: 'criu check' fails with CRIU 3.17.1",
        id="criu-check-fails",
    ),
    pytest.param(
        SRC,
        "criu --version",
        result(status=127, stderr="sh: 1: criu: not found"),
        "lab-a: CRIU is not installed",
        id="criu-missing",
    ),
    pytest.param(
        TGT, "criu --version", result("Version: 3.10\n"), "CRIU 3.10 is too old", id="criu-old"
    ),
    pytest.param(
        SRC,
        "podman info",
        result(status=127, stderr="sh: 1: podman: not found"),
        "lab-a: podman is not installed",
        id="podman-missing",
    ),
    pytest.param(
        TGT, "podman info", podman_info("arm64"), "lab-a is amd64 but lab-b is arm64", id="arch"
    ),
]


@pytest.mark.parametrize(("host", "predicate", "answer", "message"), PREFLIGHT_FAILURES)
def test_preflight_failures_stop_before_the_freeze(
    lab: FakeLab, host: str, predicate: str, answer: CommandResult, message: str
) -> None:
    lab.answer(host, predicate, answer)
    engine, error = fail(lab, PreflightFailed)
    assert message in str(error)
    assert error.report is engine.report
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert exit_code_for(error) is ExitCode.PREFLIGHT
    assert lab.streams() == [], "no stream (image or checkpoint) was started"
    assert all(holder.killed for holder in lab.lock_holders()), "the lock is released"
    assert not any("checkpoint" in command for _, command in lab.log)
    assert not any("mktemp" in command for _, command in lab.log)
    assert lab.phases()[-1] == ("failed", Phase.PREFLIGHT)


def test_a_container_moved_by_another_coordinator_before_the_lock_is_left_alone(
    lab: FakeLab,
) -> None:
    # running at the first look; by the time this run holds the lock, another run has moved
    # it (its stopped copy stays, --keep-source): restoring that copy would start a second
    lab.answer(SRC, "podman container inspect", [inspect("running"), inspect("exited")])
    engine, error = fail(lab, PreflightFailed)
    assert error.message == "lab-a: container 'web' is exited, not running"
    assert lab.position(SRC, LOCK) < lab.position(
        SRC, f"podman container inspect --format json -- {CID}"
    )
    assert [holder.killed for holder in lab.lock_holders()] == [True]
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert lab.streams() == []
    assert not any("checkpoint" in command or "restore" in command for _, command in lab.log)


def test_after_staging_the_memory_in_use_is_read_again(lab: FakeLab) -> None:
    lab.answer(TGT, "podman image inspect", result(status=125, stderr="image not known"))
    run(lab)
    sampled = [
        index
        for index, (host, command) in enumerate(lab.log)
        if host == SRC and "podman stats" in command
    ]
    assert len(sampled) == 2
    assert sampled[1] > lab.position(SRC, "podman image save")


def test_a_different_image_on_the_target_stops_before_the_freeze(lab: FakeLab) -> None:
    lab.answer(TGT, "podman image inspect", image("b" * 64))
    engine, error = fail(lab, PreflightFailed)
    assert f"lab-b has an image '{IMAGE}' with another ID (bbbbbbbbbbbb," in error.message
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert lab.streams() == []
    assert [holder.killed for holder in lab.lock_holders()] == [True]
    assert not any("checkpoint" in command or "mktemp" in command for _, command in lab.log)
    # reported as a failed image-staging phase, after preflight had finished
    assert lab.phases()[-3:] == [
        ("finished", Phase.PREFLIGHT),
        ("started", Phase.STAGE_IMAGE),
        ("failed", Phase.STAGE_IMAGE),
    ]


def test_non_root_without_sudo_fails_preflight(lab: FakeLab) -> None:
    lab.answer(SRC, "id -u", result("1000\n"))
    lab.answer(SRC, "sudo -n true", result(status=1, stderr="sudo: a password is required\n"))
    _engine, error = fail(lab, PreflightFailed)
    assert "user 'root' is not root and 'sudo -n' does not work" in error.message
    assert "sudo: a password is required" in error.message
    assert "passwordless sudo" in (error.hint or "")
    assert not lab.ran(SRC, "podman")
    assert lab.started == []


# -- failures after the freeze: rollback ----------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "what"),
    [
        pytest.param(125, "podman restore failed", id="podman"),
        pytest.param(97, "the archive arrived damaged (SHA-256 mismatch)", id="checksum"),
        pytest.param(98, "the archive arrived incomplete", id="size"),
    ],
)
def test_failed_restore_rolls_back_to_the_source(lab: FakeLab, status: int, what: str) -> None:
    lab.answer(TGT, "restore --import", result(status=status, stderr="Error: restore failed"))
    # the target lists nothing before the restore, then the copy the restore left behind
    lab.answer(TGT, "podman container ls", [listing(), listing((CID, "web", "created"))])
    lab.answer(SRC, "podman container inspect", [*LOOKS_RUNNING, inspect("exited"), inspect()])
    lab.answer(SRC, "container restore --print-stats", stats(restore_time=1))

    engine, error = fail(lab, MigrationFailed)

    assert type(error) is MigrationFailed
    assert error.report is engine.report
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert exit_code_for(error) is ExitCode.ROLLED_BACK
    assert isinstance(error.cause, RemoteCommandFailed) and error.cause.exit_status == status
    assert what in str(error)
    assert "it runs again on lab-a, from its checkpoint" in str(error)
    # the half-restored target copy goes first, then the source restores from its checkpoint
    assert join(commands.container_remove(CID, force=True)) in lab.commands_on(TGT)
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    assert lab.position(TGT, "podman container rm --force") < lab.position(
        SRC, "container restore --print-stats"
    )
    assert not lab.ran(SRC, "podman container rm")  # the source copy is never removed
    assert join(commands.remove_workdir(WORKDIRS[SRC])) in lab.commands_on(SRC)
    assert join(commands.remove_workdir(WORKDIRS[TGT])) in lab.commands_on(TGT)
    assert lab.phases()[-3:] == [
        ("failed", Phase.RESTORE),
        ("started", Phase.ROLLBACK),
        ("finished", Phase.ROLLBACK),
    ]
    assert "restored web on lab-a from its checkpoint" in lab.notices()
    # podman answered: no need to look whether the restore got through after all
    assert not lab.ran(TGT, "podman container inspect")
    assert (
        lab.commands_on(TGT).count(
            join(commands.wait_for_restore_end(WORKDIRS[TGT], timeout_s=900))
        )
        == 1
    )


def test_rollback_under_a_new_name_removes_only_the_copy_it_made(lab: FakeLab) -> None:
    ours, stranger = "1" * 64, "2" * 64
    restorable_source(lab)
    lab.answer(TGT, "restore --import", result(status=125, stderr="Error: cannot start"))
    lab.answer(
        TGT,
        "podman container ls",
        [
            listing(),  # preflight: nothing named web2
            listing((stranger, "web3", "running")),  # just before the restore
            listing((stranger, "web3", "running"), (ours, "web2", "created")),  # rollback
        ],
    )
    engine, _ = fail(lab, MigrationFailed, MigrationOptions(new_name="web2"))
    assert engine.report.outcome is Outcome.ROLLED_BACK
    removed = [c for c in lab.commands_on(TGT) if "podman container rm" in c]
    assert removed == [join(commands.container_remove(ours, force=True))]


def test_rollback_never_removes_a_stranger_with_the_new_name(lab: FakeLab) -> None:
    # a container named web2 appeared on the target after preflight: podman refuses the
    # restore, and the rollback must leave that stranger alone
    stranger = "2" * 64
    restorable_source(lab)
    lab.answer(TGT, "restore --import", result(status=125, stderr="Error: name web2 in use"))
    lab.answer(
        TGT,
        "podman container ls",
        [listing(), listing((stranger, "web2", "running"))],
    )
    engine, _ = fail(lab, MigrationFailed, MigrationOptions(new_name="web2"))
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert not lab.ran(TGT, "podman container rm")
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)


def test_target_unreachable_after_restore_needs_recovery(lab: FakeLab) -> None:
    lab.answer(
        TGT,
        "restore --import",
        ConnectionFailed("lab-b: the connection closed before 'sh -c ...' finished", host=TGT),
    )
    engine, error = fail(lab, MigrationFailed)

    assert engine.report.outcome is Outcome.NEEDS_RECOVERY
    assert exit_code_for(error) is ExitCode.NEEDS_RECOVERY
    assert not lab.ran(SRC, "container restore"), "the source must not be restored"
    # the first connection; three tries to see whether the restore got through after all;
    # three more by the rollback
    assert lab.connects.count(TGT) == 1 + 3 + 3
    assert not lab.ran(TGT, "podman container inspect")
    assert any("was NOT restored" in warning for warning in engine.report.warnings)
    assert "podman container restore web" in (error.hint or "")
    assert "its state could not be confirmed" in str(error)
    assert lab.phases()[-2:] == [("started", Phase.ROLLBACK), ("failed", Phase.ROLLBACK)]


def test_target_reconnected_after_restore_was_sent_rolls_back(lab: FakeLab) -> None:
    # the connection dies during the restore, but a new one works: find out, then roll back
    lab.answer(
        TGT, "restore --import", ConnectionFailed("lab-b: connection reset by peer", host=TGT)
    )
    # the restore did not get through: it left a stopped copy
    lab.answer(TGT, "podman container inspect", inspect("exited"))
    lab.answer(TGT, "podman container ls", [listing(), listing((CID, "web", "exited"))])
    restorable_source(lab)
    lab.back_on_reconnect.add(TGT)
    engine, _error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert lab.connects.count(TGT) == 2, "one reconnection, for the check and the rollback"
    # it waited for the restore and looked at the copy before deciding to roll back
    assert (
        lab.position(TGT, RESTORE_WAIT)
        < lab.position(TGT, "podman container inspect")
        < lab.position(TGT, "podman container rm --force")
    )
    # the fresh target session listed containers before the source was restored
    assert lab.position(TGT, "podman container ls") < lab.position(SRC, "restore --print-stats")
    assert join(commands.container_remove(CID, force=True)) in lab.commands_on(TGT)


def test_a_lost_restore_answer_that_got_through_completes_the_migration(lab: FakeLab) -> None:
    # the connection dies during the restore, which went on and succeeded on the target:
    # removing that copy to restore the source would throw away a serving container
    lab.answer(
        TGT, "restore --import", ConnectionFailed("lab-b: connection reset by peer", host=TGT)
    )
    lab.back_on_reconnect.add(TGT)
    engine = Migration(SRC, TGT, "web", lab.options(), on_event=lab.events.append)
    report = engine.run()  # no exception
    assert report.outcome is Outcome.MIGRATED and report.succeeded
    assert report.warnings == [
        "lost the answer of the restore (lab-b: connection reset by peer), but web runs on "
        "lab-b: the migration got through"
    ]
    assert report.downtime_s is not None
    assert lab.connects.count(TGT) == 2
    assert lab.position(TGT, RESTORE_WAIT) < lab.position(TGT, "podman container inspect")
    assert join(commands.container_inspect("web")) in lab.commands_on(TGT)
    # nothing rolled back, and the migration's cleanup ran
    assert not lab.ran(SRC, "container restore")
    assert not lab.ran(TGT, "podman container rm")
    assert join(commands.container_remove(CID)) in lab.commands_on(SRC)
    assert join(commands.remove_workdir(WORKDIRS[SRC])) in lab.commands_on(SRC)
    assert join(commands.remove_workdir(WORKDIRS[TGT])) in lab.commands_on(TGT)
    assert Phase.ROLLBACK not in [phase for _, phase in lab.phases()]
    assert ("finished", Phase.CLEANUP) in lab.phases()
    assert [holder.killed for holder in lab.lock_holders()] == [True]


def test_a_lost_verify_answer_after_a_good_restore_completes_the_migration(lab: FakeLab) -> None:
    lab.answer(
        TGT,
        "podman container inspect",
        [ConnectionFailed("lab-b: connection reset", host=TGT), inspect("running")],
    )
    lab.back_on_reconnect.add(TGT)
    report = run(lab).report
    assert report.outcome is Outcome.MIGRATED
    assert "but web runs on lab-b: the migration got through" in report.warnings[0]
    assert not lab.ran(SRC, "container restore")


def test_a_lost_restore_answer_with_a_strangers_copy_rolls_back(lab: FakeLab) -> None:
    # under a new name, a running container with that name that was on the target before
    # the restore is not ours: the restore did not get through
    stranger = "2" * 64
    lab.answer(TGT, "restore --import", ConnectionFailed("lab-b: connection reset", host=TGT))
    lab.answer(
        TGT,
        "podman container ls",
        [listing(), listing((stranger, "web2", "running")), listing((stranger, "web2", "running"))],
    )
    lab.answer(TGT, "podman container inspect", inspect("running", name="web2", cid=stranger))
    restorable_source(lab)
    lab.back_on_reconnect.add(TGT)
    engine, _error = fail(lab, MigrationFailed, MigrationOptions(new_name="web2"))
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert not lab.ran(TGT, "podman container rm")
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)


def test_a_lost_restore_answer_under_a_new_name_that_got_through(lab: FakeLab) -> None:
    ours = "1" * 64  # a restore under a new name gets a new ID
    lab.answer(TGT, "restore --import", ConnectionFailed("lab-b: connection reset", host=TGT))
    lab.answer(TGT, "podman container inspect", inspect("running", name="web2", cid=ours))
    lab.back_on_reconnect.add(TGT)
    report = run(lab, MigrationOptions(new_name="web2")).report
    assert report.outcome is Outcome.MIGRATED
    assert join(commands.container_inspect("web2")) in lab.commands_on(TGT)
    assert not lab.ran(SRC, "container restore")


def test_target_copy_not_running_after_restore_rolls_back(lab: FakeLab) -> None:
    lab.answer(TGT, "podman container inspect", inspect("exited"))
    lab.answer(TGT, "podman container ls", [listing(), listing((CID, "web", "exited"))])
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert "restored container 'web' is exited, not running" in str(error)
    assert join(commands.container_remove(CID, force=True)) in lab.commands_on(TGT)


def test_failed_checkpoint_leaves_the_running_source_alone(lab: FakeLab) -> None:
    # CRIU failed to dump and resumed the container: nothing to restore
    lab.answer(
        SRC, "container checkpoint", result(status=125, stderr="Error: criu failed: type NOTIFY")
    )
    lab.answer(SRC, "podman container inspect", inspect("running"))
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert "podman checkpoint of web failed" in str(error)
    assert "criu failed: type NOTIFY" in str(error)
    assert not lab.ran(SRC, "container restore")
    assert not lab.ran(TGT, "restore --import")
    assert not lab.ran(TGT, "podman container rm")  # the target was never restored to
    assert all(process.killed for process in lab.processes if process.session.host.name == TGT)
    assert "the container still runs on lab-a (it was never frozen)" in lab.notices()


FAILURES_AFTER_THE_FREEZE: dict[str, Callable[[FakeLab], None]] = {
    "checkpoint-fails": lambda lab: lab.answer(
        SRC, "container checkpoint", result(status=125, stderr="Error: criu failed")
    ),
    "stream-breaks": lambda lab: setattr(
        lab, "relay_error", RelayBroken("lab-b: broken pipe", host=TGT, side="target")
    ),
    "stream-interrupted": lambda lab: setattr(lab, "relay_error", KeyboardInterrupt()),
    "landing-fails": lambda lab: lab.answer(
        TGT, "tee ", result(status=1, stderr="tee: No space left on device")
    ),
    "restore-fails": lambda lab: lab.answer(TGT, "restore --import", result(status=125)),
    "target-lost": lambda lab: lab.answer(
        TGT, "restore --import", ConnectionFailed("lab-b: connection reset", host=TGT)
    ),
    "verify-fails": lambda lab: lab.answer(TGT, "podman container inspect", inspect("exited")),
}


@pytest.mark.parametrize(
    "break_it", FAILURES_AFTER_THE_FREEZE.values(), ids=FAILURES_AFTER_THE_FREEZE.keys()
)
def test_every_started_phase_is_closed_after_a_failure(
    lab: FakeLab, break_it: Callable[[FakeLab], None]
) -> None:
    restorable_source(lab)
    break_it(lab)
    fail(lab, MigrationFailed)
    open_phases: list[Phase] = []
    for kind, phase in lab.phases():
        if kind == "started":
            open_phases.append(phase)
        elif kind in ("finished", "failed"):
            assert phase in open_phases, f"{phase} closed but never started"
            open_phases.remove(phase)
    assert open_phases == [], "a display would keep a spinner for these"
    assert Phase.ROLLBACK in [phase for kind, phase in lab.phases() if kind != "started"]


def test_broken_stream_rolls_back_from_the_checkpoint(lab: FakeLab) -> None:
    lab.relay_error = RelayBroken(
        "lab-b: the connection broke while receiving", host=TGT, side="target"
    )
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert exit_code_for(error) is ExitCode.ROLLED_BACK
    assert all(process.killed for process in lab.processes)
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    assert not lab.ran(TGT, "restore --import")


def test_failed_source_restore_needs_recovery(lab: FakeLab) -> None:
    lab.relay_error = RelayBroken("lab-a: the stream broke", host=SRC, side="source")
    lab.answer(SRC, "podman container inspect", [*LOOKS_RUNNING, inspect("exited")])
    lab.answer(
        SRC, "container restore --print-stats", result(status=125, stderr="Error: no checkpoint")
    )
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.NEEDS_RECOVERY
    assert exit_code_for(error) is ExitCode.NEEDS_RECOVERY
    assert any(warning.startswith("rollback failed:") for warning in engine.report.warnings)


def test_interrupt_during_the_stream_rolls_back(lab: FakeLab) -> None:
    lab.relay_error = KeyboardInterrupt()
    restorable_source(lab)
    engine, error = fail(lab, MigrationInterrupted)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert exit_code_for(error) is ExitCode.INTERRUPTED
    assert "was interrupted" in error.message
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)


def test_interrupt_before_the_freeze_changes_nothing(lab: FakeLab) -> None:
    lab.answer(TGT, "criu check", KeyboardInterrupt())
    engine, error = fail(lab, MigrationInterrupted)
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert exit_code_for(error) is ExitCode.INTERRUPTED
    assert "it was never stopped and still runs on lab-a" in str(error)
    assert lab.started == []


def test_interrupt_after_the_point_of_no_return_keeps_the_outcome(lab: FakeLab) -> None:
    lab.answer(TGT, "podman image inspect", result(status=125))  # so the image is staged

    def interrupt_after_verify(event: Event) -> None:
        lab.events.append(event)
        if isinstance(event, PhaseFinished) and event.phase is Phase.VERIFY:
            raise KeyboardInterrupt  # Ctrl-C while the display draws "verified"

    engine = Migration(SRC, TGT, "web", lab.options(), on_event=interrupt_after_verify)
    with pytest.raises(MigrationInterrupted) as caught:
        engine.run()
    assert engine.report.outcome is Outcome.MIGRATED
    assert caught.value.report is engine.report
    assert "the migration itself succeeded" in caught.value.message
    # nothing is undone on either host: the target runs the container now
    assert not lab.ran(SRC, "container restore")
    assert not lab.ran(TGT, "podman container rm")
    assert not lab.ran(TGT, "podman image rm")
    assert Phase.ROLLBACK not in [phase for _, phase in lab.phases()]
    assert any("interrupted after the container was verified" in w for w in engine.report.warnings)


# -- the migration lock ------------------------------------------------------------------------
def test_the_engine_takes_the_lock_through_locking_take_migration_lock(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, Any]] = []
    released: list[bool] = []

    class Held:
        def kill(self) -> None:
            released.append(True)

    def take(session: LabSession, container: str, container_id: str, **kwargs: Any) -> Held:
        calls.append({"host": session.host.name, "container": container, "id": container_id})
        calls[-1].update(kwargs)
        kwargs["warn"]("a warning from the lock")
        return Held()

    monkeypatch.setattr(preflight, "take_migration_lock", take)
    engine = run(lab, MigrationOptions(command_timeout_s=42.0))
    [call] = calls
    assert {key: call[key] for key in ("host", "container", "id", "timeout_s")} == {
        "host": SRC,
        "container": "web",
        "id": CID,
        "timeout_s": 42.0,
    }
    assert released == [True]
    assert engine.report.warnings == ["a warning from the lock"]
    assert not lab.ran(SRC, LOCK), "only through take_migration_lock"


def test_the_lock_is_held_on_the_source_for_the_whole_migration(lab: FakeLab) -> None:
    engine = run(lab)
    assert lab.started[0] == (SRC, join(commands.hold_migration_lock(CID)))
    assert not lab.ran(TGT, LOCK), "one lock, on the source"
    [holder] = lab.lock_holders()
    assert holder.channel.timeout == engine.options.command_timeout_s
    # taken once the container's ID is known, before anything changes on either host...
    assert lab.position(SRC, "podman container inspect") < lab.position(SRC, LOCK)
    assert lab.position(SRC, LOCK) < min(lab.position(h, "mktemp -d") for h in (SRC, TGT))
    # ...and released only after the last command of the cleanup
    assert holder.killed and holder.killed_after == len(lab.log)
    assert engine.report.warnings == []


def test_a_lock_held_by_another_migration_stops_before_the_freeze(lab: FakeLab) -> None:
    # flock -n -E 75 exits at once, printing nothing, when another channel holds the lock
    lab.answer(SRC, LOCK, result(status=commands.LOCK_HELD_EXIT))
    engine, error = fail(lab, LockHeld)
    assert isinstance(error, PreflightFailed)
    assert error.message == "lab-a: another migration of 'web' (c0ffee00c0ff) is running"
    assert "Wait for it to finish" in (error.hint or "")
    assert error.report is engine.report
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert lab.streams() == []
    assert not any("checkpoint" in command or "mktemp" in command for _, command in lab.log)
    assert lab.phases()[-1] == ("failed", Phase.PREFLIGHT)


def test_a_source_without_flock_warns_and_migrates(lab: FakeLab) -> None:
    lab.answer(SRC, LOCK, result(status=127, stderr="sh: 1: exec: flock: not found\n"))
    report = run(lab).report
    assert report.outcome is Outcome.MIGRATED
    assert report.warnings == ["lab-a has no flock(1): two coordinators could race on 'web'"]
    assert Notice("warning", report.warnings[0]) in lab.events


def test_a_failing_lock_command_stops_before_the_freeze(lab: FakeLab) -> None:
    lab.answer(SRC, LOCK, result(status=1, stderr="flock: cannot open lock file: Read-only\n"))
    engine, error = fail(lab, RemoteCommandFailed)
    assert error.message == "lab-a: taking the migration lock failed"
    assert error.exit_status == 1 and "Read-only" in str(error)
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert lab.streams() == []


def test_a_lock_channel_that_never_answers_is_closed(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Silent:
        def readline(self) -> bytes:
            raise TimeoutError("timed out")

    monkeypatch.setattr(FakeChannel, "makefile", lambda channel, mode="r": Silent())
    engine, error = fail(lab, ConnectionFailed)
    assert "lab-a: could not take the migration lock: timed out" in error.message
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert [holder.killed for holder in lab.lock_holders()] == [True]
    assert lab.streams() == []


# -- cancelling ------------------------------------------------------------------------------------
def test_cancel_before_run_changes_nothing(lab: FakeLab) -> None:
    engine = Migration(SRC, TGT, "web", lab.options(), on_event=lab.events.append)
    assert not engine.cancel_requested
    engine.request_cancel()
    assert engine.cancel_requested
    with pytest.raises(MigrationInterrupted) as caught:
        engine.run()
    error = caught.value
    assert error.report is engine.report
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert exit_code_for(error) is ExitCode.INTERRUPTED
    assert "it was never stopped and still runs on lab-a" in str(error)
    assert lab.sessions == [] and lab.log == [] and lab.started == []


def test_cancel_while_preparing_undoes_the_work_directories(lab: FakeLab) -> None:
    engine = Migration(SRC, TGT, "web", lab.options(), on_event=lab.events.append)

    def make_then_cancel(command: str) -> CommandResult:
        engine.request_cancel()  # Ctrl-C while the work directories are being made
        return result(WORKDIRS[SRC] + "\n")

    lab.answer(SRC, "mktemp -d", make_then_cancel)
    with pytest.raises(MigrationInterrupted):
        engine.run()
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert lab.streams() == [], "never frozen"
    assert join(commands.remove_workdir(WORKDIRS[SRC])) in lab.commands_on(SRC)
    assert join(commands.remove_workdir(WORKDIRS[TGT])) in lab.commands_on(TGT)
    assert [holder.killed for holder in lab.lock_holders()] == [True]
    assert Phase.ROLLBACK not in [phase for _, phase in lab.phases()]


def test_cancel_during_the_stream_rolls_back(lab: FakeLab) -> None:
    restorable_source(lab)
    engine = Migration(SRC, TGT, "web", lab.options(), on_event=lab.events.append)

    def cancel_halfway() -> None:
        should_stop = lab.should_stops[-1]
        assert should_stop is not None and not should_stop()
        engine.request_cancel()
        assert should_stop(), "the relay's should_stop is the cancel request"

    lab.during_relay = cancel_halfway
    with pytest.raises(MigrationInterrupted) as caught:
        engine.run()
    error = caught.value
    assert type(error) is MigrationInterrupted
    assert isinstance(error.cause, RelayStopped)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert exit_code_for(error) is ExitCode.INTERRUPTED
    assert "was interrupted" in error.message
    assert "it runs again on lab-a, from its checkpoint" in str(error)
    assert all(process.killed for process in lab.processes), "both streams and the lock"
    assert not lab.ran(TGT, "restore --import")
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    assert lab.position(SRC, CHECKPOINT_WAIT) < lab.position(SRC, "container restore")
    assert lab.phases()[-4:] == [
        ("failed", Phase.CHECKPOINT),
        ("failed", Phase.TRANSFER),
        ("started", Phase.ROLLBACK),
        ("finished", Phase.ROLLBACK),
    ]


def test_cancel_during_the_restore_finishes_the_migration(lab: FakeLab) -> None:
    engine = Migration(SRC, TGT, "web", lab.options(), on_event=lab.events.append)

    def restore_then_cancel(command: str) -> CommandResult:
        engine.request_cancel()  # Ctrl-C while podman restores on the target
        return stats(restore_time=117040)

    lab.answer(TGT, "restore --import", restore_then_cancel)
    report = engine.run()  # no exception: the migration got through
    assert report.outcome is Outcome.MIGRATED and report.succeeded
    [warning] = report.warnings
    assert "the cancel request came while restoring on the target" in warning
    assert "the migration completed" in warning
    assert Notice("warning", warning) in lab.events
    assert lab.ran(TGT, "podman container inspect")  # verified
    assert join(commands.container_remove(CID)) in lab.commands_on(SRC)  # cleaned up
    assert not lab.ran(SRC, "container restore") and not lab.ran(TGT, "podman container rm")
    assert Phase.ROLLBACK not in [phase for _, phase in lab.phases()]


def test_cancel_after_the_stream_but_before_the_restore_rolls_back(lab: FakeLab) -> None:
    # the last check before the restore: once the archive has landed but before the restore
    # is sent, a cancel still rolls back (nothing runs on the target yet)
    restorable_source(lab)

    def cancel_after_the_transfer(event: Event) -> None:
        lab.events.append(event)
        if isinstance(event, PhaseFinished) and event.phase is Phase.TRANSFER:
            engine.request_cancel()

    engine = Migration(SRC, TGT, "web", lab.options(), on_event=cancel_after_the_transfer)
    with pytest.raises(MigrationInterrupted) as caught:
        engine.run()
    error = caught.value
    assert isinstance(error.cause, migration.MigrationCancelled)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert exit_code_for(error) is ExitCode.INTERRUPTED
    assert "it runs again on lab-a, from its checkpoint" in str(error)
    assert not lab.ran(TGT, "restore --import")
    assert not lab.ran(TGT, "podman container rm"), "no restore, so no copy to remove"
    assert not lab.ran(TGT, RESTORE_WAIT)
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    assert lab.position(SRC, CHECKPOINT_WAIT) < lab.position(SRC, "container restore")
    assert join(commands.remove_workdir(WORKDIRS[SRC])) in lab.commands_on(SRC)
    assert join(commands.remove_workdir(WORKDIRS[TGT])) in lab.commands_on(TGT)
    assert not any("while restoring" in warning for warning in engine.report.warnings)
    assert Phase.RESTORE not in [phase for _, phase in lab.phases()]
    assert lab.phases()[-2:] == [("started", Phase.ROLLBACK), ("finished", Phase.ROLLBACK)]
    assert [holder.killed for holder in lab.lock_holders()] == [True]


def image_to_stage(lab: FakeLab) -> None:
    lab.answer(TGT, "podman image inspect", result(status=125, stderr="image not known"))
    lab.answer(TGT, "podman image rm --", result())  # the undo of a half-staged image


def test_the_image_relay_stops_on_a_cancel_request(lab: FakeLab) -> None:
    image_to_stage(lab)
    engine = Migration(SRC, TGT, "web", lab.options(), on_event=lab.events.append)

    def cancel_during_the_image() -> None:
        should_stop = lab.should_stops[-1]
        assert should_stop is not None and not should_stop()
        engine.request_cancel()
        assert should_stop(), "the image relay's should_stop is the cancel request"

    lab.during_relay = cancel_during_the_image
    with pytest.raises(MigrationInterrupted) as caught:
        engine.run()
    error = caught.value
    assert isinstance(error.cause, RelayStopped)
    assert exit_code_for(error) is ExitCode.INTERRUPTED
    # before the freeze: nothing to roll back, the half-staged image is removed
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert "it was never stopped and still runs on lab-a" in str(error)
    assert len(lab.relays) == 1, "the checkpoint stream never started"
    assert lab.streams() == [
        (TGT, join(commands.image_load())),
        (SRC, join(commands.image_save(IMAGE))),
    ]
    assert join(commands.image_remove(IMAGE_ID)) in lab.commands_on(TGT)
    assert not any("mktemp" in command or "checkpoint" in command for _, command in lab.log)
    assert engine.report.image_staged is False
    assert Phase.ROLLBACK not in [phase for _, phase in lab.phases()]
    assert lab.phases()[-1] == ("failed", Phase.STAGE_IMAGE)
    assert [holder.killed for holder in lab.lock_holders()] == [True]


def test_a_cancelled_image_relay_kills_both_streams_before_removing_the_image(
    lab: FakeLab,
) -> None:
    image_to_stage(lab)
    engine = Migration(SRC, TGT, "web", lab.options(), on_event=lab.events.append)
    lab.during_relay = engine.request_cancel
    with pytest.raises(MigrationInterrupted):
        engine.run()
    streams = [process for process in lab.processes if LOCK not in process.command]
    assert [process.killed for process in streams] == [True, True]
    removal = lab.position(TGT, "podman image rm")
    assert all(p.killed_after is not None and p.killed_after <= removal for p in streams)


def test_work_directories_are_tagged_with_the_container_id(lab: FakeLab) -> None:
    run(lab)
    make = join(commands.make_workdir(CID))
    # the target's may land on tmpfs: sized from the 17.33 MB podman stats says is in use
    land = join(commands.make_landing_workdir(CID, commands.archive_size_estimate(17_330_000)))
    for host, made in ((SRC, make), (TGT, land)):
        assert f"celestial-ssh.{CID[:12]}.XXXXXXXXXX" in made
        assert [c for c in lab.commands_on(host) if "mktemp" in c] == [made]
    # so that `recover` finds them with list_workdirs(CID)
    assert f"celestial-ssh.{CID[:12]}.*" in join(commands.list_workdirs(CID))


def test_the_target_lands_the_archive_on_tmpfs_when_it_says_there_is_room(lab: FakeLab) -> None:
    tmpfs_workdir = f"/dev/shm/celestial-ssh.{CID[:12]}.TGT0000000"
    lab.answer(TGT, "CELESTIAL_SSH_TMPFS", result(f"{tmpfs_workdir}\n{commands.LANDING_TMPFS}\n"))
    lab.answer(SRC, "podman stats", memory_usage(usage="269.4MB / 25.33GB"))
    engine = run(lab)
    assert engine.report.succeeded
    assert engine.report.landing == "tmpfs" == engine.report.to_dict()["landing"]
    estimate = commands.archive_size_estimate(269_400_000)
    assert lab.ran(TGT, join(commands.make_landing_workdir(CID, estimate)))
    assert lab.ran(TGT, f"{tmpfs_workdir}/{commands.ARCHIVE_NAME}")
    assert join(commands.remove_workdir(tmpfs_workdir)) in lab.commands_on(TGT)


@pytest.mark.parametrize(
    "stats",
    [result(status=125, stderr="Error: cgroups not available"), result("not json"), result("[]")],
    ids=["podman-fails", "unreadable", "empty"],
)
def test_without_the_memory_in_use_the_archive_lands_on_disk(
    lab: FakeLab, stats: CommandResult
) -> None:
    lab.answer(SRC, "podman stats", stats)
    engine = run(lab)
    assert engine.report.succeeded and engine.report.landing == "disk"
    assert not lab.ran(TGT, "stat -f -c %T"), "no look at the tmpfs"
    assert join(commands.make_workdir(CID)) in lab.commands_on(TGT)


def test_work_directories_of_an_earlier_run_are_pointed_out(lab: FakeLab) -> None:
    stale = f"/dev/shm/celestial-ssh.{CID[:12]}.OLD0000000"
    lab.answer(TGT, join(commands.list_workdirs(CID)), result(stale + "\n"))
    engine = run(lab)
    assert engine.report.succeeded
    assert engine.report.warnings == [
        f"lab-b: 1 work directory of an earlier, unfinished migration of web ({stale}); "
        "'celestial-ssh recover lab-a lab-b web' removes them once this one is done"
    ]
    # looked for under the lock, and left alone: this run does not know what they hold
    assert lab.position(SRC, LOCK) < lab.position(TGT, "for d in")
    assert join(commands.remove_workdir(stale)) not in lab.commands_on(TGT)


def test_an_unreadable_landing_answer_stops_before_the_freeze(lab: FakeLab) -> None:
    lab.answer(TGT, "CELESTIAL_SSH_TMPFS", result("what?\n"))
    engine, error = fail(lab, PreflightFailed)
    assert "landing directory" in str(error)
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert not lab.ran(SRC, "container checkpoint")


# -- the rollback waits for what may still run -----------------------------------------------------
def test_rollback_waits_for_the_checkpoint_before_restoring_the_source(lab: FakeLab) -> None:
    lab.relay_error = RelayBroken("lab-a: the stream broke", host=SRC, side="source")
    restorable_source(lab)
    engine, _error = fail(lab, MigrationFailed, MigrationOptions(restore_timeout_s=60.5))
    assert engine.report.outcome is Outcome.ROLLED_BACK
    wait = join(commands.wait_for_checkpoint_end(WORKDIRS[SRC], timeout_s=60))
    assert wait in lab.commands_on(SRC)
    # the wait comes before the source's state is read again, and so before its restore
    inspects = [
        index
        for index, (host, command) in enumerate(lab.log)
        if host == SRC and "podman container inspect" in command
    ]
    # (preflight looks twice: first, and under the lock)
    assert inspects[1] < lab.position(SRC, CHECKPOINT_WAIT) < inspects[2]
    assert lab.position(SRC, CHECKPOINT_WAIT) < lab.position(SRC, "container restore")
    assert not lab.ran(TGT, RESTORE_WAIT), "no restore was sent: nothing to wait for there"


def test_a_checkpoint_that_does_not_end_needs_recovery(lab: FakeLab) -> None:
    lab.relay_error = RelayBroken("lab-a: the stream broke", host=SRC, side="source")
    lab.answer(SRC, CHECKPOINT_WAIT, result(status=1))  # still running after the timeout
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.NEEDS_RECOVERY
    assert exit_code_for(error) is ExitCode.NEEDS_RECOVERY
    assert not lab.ran(SRC, "container restore")
    # its state was not even read again: only preflight's two looks ran
    assert [c for c in lab.commands_on(SRC) if "podman container inspect" in c] == [
        join(commands.container_inspect("web")),
        join(commands.container_inspect(CID)),
    ]
    assert any(
        "lab-a: the checkpoint is still running after 900 s" in warning
        for warning in engine.report.warnings
    )
    assert lab.phases()[-2:] == [("started", Phase.ROLLBACK), ("failed", Phase.ROLLBACK)]


def test_rollback_from_restoring_waits_for_the_restore_before_removing_it(lab: FakeLab) -> None:
    lab.answer(TGT, "restore --import", result(status=125, stderr="Error: restore failed"))
    lab.answer(TGT, "podman container ls", [listing(), listing((CID, "web", "created"))])
    restorable_source(lab)
    engine, _error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    wait = join(commands.wait_for_restore_end(WORKDIRS[TGT], timeout_s=900))
    assert wait in lab.commands_on(TGT)
    assert (
        lab.position(TGT, "restore --import")
        < lab.position(TGT, RESTORE_WAIT)
        < lab.position(TGT, "podman container rm --force")
        < lab.position(SRC, "container restore")
    )


def test_a_restore_that_does_not_end_needs_recovery(lab: FakeLab) -> None:
    # the connection died during the restore; the reconnected target says it still runs
    lab.answer(TGT, "restore --import", ConnectionFailed("lab-b: connection reset", host=TGT))
    lab.answer(TGT, RESTORE_WAIT, result(status=1))  # still running after the timeout
    restorable_source(lab)
    lab.back_on_reconnect.add(TGT)
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.NEEDS_RECOVERY
    assert exit_code_for(error) is ExitCode.NEEDS_RECOVERY
    assert lab.ran(TGT, RESTORE_WAIT), "asked on the reconnected target"
    assert not lab.ran(TGT, "podman container rm"), "a copy being restored is not removed"
    assert not lab.ran(SRC, "container restore"), "and the source is not restored"
    assert not lab.ran(SRC, CHECKPOINT_WAIT)
    # the archive and the restore's PID file stay for `recover`
    assert join(commands.remove_workdir(WORKDIRS[TGT])) not in lab.commands_on(TGT)
    assert any(
        "lab-b: the restore is still running after 900 s" in warning
        for warning in engine.report.warnings
    )
    assert lab.phases()[-2:] == [("started", Phase.ROLLBACK), ("failed", Phase.ROLLBACK)]


def test_the_freeze_begins_with_the_go_line_once_both_streams_are_ready(lab: FakeLab) -> None:
    run(lab)
    gated = join(
        commands.checkpoint_stream(
            CID,
            WORKDIRS[SRC],
            CheckpointOptions(),
            gated=True,
            hashed=True,
            announce_on_stderr=True,
        )
    )
    [exporter] = [p for p in lab.processes if p.command == gated]
    assert exporter.written == [commands.GO_LINE]


def test_a_connection_lost_before_the_freeze_is_renewed_to_remove_the_work_directory(
    lab: FakeLab,
) -> None:
    # the target's connection dies right after its work directory was made
    def made_then_dies(command: str) -> CommandResult:
        lab.lose_connections_unnoticed(TGT)
        return result(f"{WORKDIRS[TGT]}\n{commands.LANDING_DISK}\n")

    lab.answer(TGT, "mktemp -d", made_then_dies)
    engine, _ = fail(lab, ConnectionFailed)

    assert engine.report.outcome is Outcome.NOT_STARTED
    assert lab.connects.count(TGT) == 2, "one new connection, to clean up"
    assert join(commands.remove_workdir(WORKDIRS[TGT])) in lab.commands_on(TGT)
    assert join(commands.remove_workdir(WORKDIRS[SRC])) in lab.commands_on(SRC)
    assert not lab.ran(SRC, "container checkpoint"), "nothing was frozen"
    assert not any(session.is_connected for session in lab.sessions)


@pytest.mark.parametrize("host", [SRC, TGT])
def test_a_stream_that_never_gets_ready_fails_before_the_freeze(lab: FakeLab, host: str) -> None:
    lab.silent_streams.add(host)
    engine, error = fail(lab, ConnectionFailed)
    assert "the stream ended before the freeze" in str(error)
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert all(process.killed for process in lab.processes if "echo ready" in process.command)
    assert all(not process.written for process in lab.processes), "no go line was sent"
    assert not lab.ran(SRC, "container restore")


# -- --pre-copy ----------------------------------------------------------------------------
def no_dirty_tracking(lab: FakeLab, host: str) -> None:
    lab.answer(
        host,
        "criu check --feature mem_dirty_track",
        result(status=1, stderr="Error (criu/cr-check.c:1): Dirty tracking is OFF.\n"),
    )


@pytest.mark.parametrize("lacking", [[SRC], [TGT], [SRC, TGT]])
def test_pre_copy_without_dirty_tracking_falls_back_to_stop_and_copy(
    lab: FakeLab, lacking: list[str]
) -> None:
    for host in lacking:
        no_dirty_tracking(lab, host)
    report = run(lab, MigrationOptions(precopy=True)).report
    assert report.outcome is Outcome.MIGRATED
    assert report.precopy is not None and report.precopy.startswith("stop-and-copy (")
    for host in lacking:
        assert host in report.precopy
    [warning] = report.warnings
    assert warning.startswith("--pre-copy is not available: ")
    assert not lab.ran(SRC, "--pre-checkpoint")
    assert not lab.ran(SRC, "--with-previous")
    assert not lab.ran(TGT, "--import-previous")


def pre_copy_answers(lab: FakeLab) -> None:
    lab.answer(SRC, "--pre-checkpoint", stats(pages_written=65_000))
    lab.answer(SRC, "cat -- ", result())  # sends the pre-copy archive
    lab.answer(TGT, "exec cat > ", result())  # lands it


def test_pre_copy_where_both_hosts_track_dirty_pages(lab: FakeLab) -> None:
    pre_copy_answers(lab)
    report = run(lab, MigrationOptions(precopy=True)).report
    assert report.outcome is Outcome.MIGRATED
    previous_src = f"{WORKDIRS[SRC]}/previous.tar"
    previous_tgt = f"{WORKDIRS[TGT]}/previous.tar"
    # one pre-dump while the container runs, before the freeze
    pre_dump = join(precopy.pre_checkpoint_export(CID, previous_src))
    assert lab.ran(SRC, pre_dump)
    assert lab.position(SRC, pre_dump) < lab.position(SRC, "container checkpoint --export")
    # its archive is moved to the target before the freeze too
    assert (join(["cat", "--", previous_src]), join(commands.receive_file(previous_tgt))) in [
        relayed for relayed in lab.relays
    ]
    # the freeze dumps only what changed since, and the target restores both
    gated = commands.checkpoint_stream(
        CID,
        WORKDIRS[SRC],
        CheckpointOptions(with_previous=True),
        gated=True,
        hashed=True,
        announce_on_stderr=True,
    )
    assert lab.ran(SRC, join(gated))
    [restore] = [c for c in lab.commands_on(TGT) if "restore --import" in c]
    assert f"--import-previous {previous_tgt}" in restore
    assert report.precopy is not None
    assert report.precopy.startswith("1 round(s) while running (65000 pages")
    assert report.timings["pre_copy"] >= 0


def test_a_failed_pre_copy_round_changes_nothing(lab: FakeLab) -> None:
    lab.answer(SRC, "--pre-checkpoint", result(status=125, stderr="Error: criu failed\n"))
    engine, error = fail(lab, RemoteCommandFailed, MigrationOptions(precopy=True))
    assert "pre-copy round 1" in str(error)
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert not lab.ran(SRC, "container checkpoint --export")
    assert not lab.ran(SRC, "container restore")


# -- --compress auto -------------------------------------------------------------------------
def auto_answers(lab: FakeLab, memory: str) -> None:
    lab.answer(SRC, "timeout -s INT", result())  # the link probe's zeros
    lab.answer(TGT, "echo ready && exec cat > /dev/null", result())
    lab.answer(SRC, "/proc/", result(memory))  # the memory sample


@pytest.mark.parametrize(
    ("memory", "chosen"),
    [
        pytest.param("\x00" * 65536, "zstd", id="compressible-on-a-slow-link"),
        pytest.param(os.urandom(65536).decode("latin-1"), "none", id="random"),
    ],
)
def test_compress_auto_measures_before_the_freeze_and_chooses(
    lab: FakeLab, memory: str, chosen: str
) -> None:
    auto_answers(lab, memory)
    report = run(lab, MigrationOptions(compression="auto")).report
    assert report.outcome is Outcome.MIGRATED
    # the fake relay moves 5 MB in 0.5 s: a 10 MB/s link
    assert report.compression == chosen
    assert report.compression_choice is not None
    assert report.compression_choice.startswith(f"{chosen}: ")
    assert "link 10.0 MB/s" in report.compression_choice
    assert any(
        notice == f"--compress auto chose {report.compression_choice}" for notice in lab.notices()
    )
    assert lab.position(SRC, "timeout -s INT") < lab.position(SRC, "container checkpoint")
    assert f"--compress {chosen}" in next(c for c in lab.commands_on(SRC) if "--export" in c)


def test_compress_auto_that_cannot_measure_sends_uncompressed(lab: FakeLab) -> None:
    auto_answers(lab, "")
    lab.answer(SRC, "/proc/", OSError("the sample stream broke"))
    report = run(lab, MigrationOptions(compression="auto")).report
    assert report.outcome is Outcome.MIGRATED
    assert report.compression == "none"
    assert report.warnings == [
        "--compress auto could not measure the link (the sample stream broke); "
        "sending the archive uncompressed"
    ]
