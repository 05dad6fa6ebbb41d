"""The host-to-host data paths driven against fake hosts: the source streams the archive
straight to the target (over TLS, or over its own SSH login), and the target restores only
what it can check against the source's digest.

The fake hosts and their host-to-host answers are in ``tests/unit/fakes/``.
"""

from __future__ import annotations

import pytest

from celestial_ssh import commands
from celestial_ssh.errors import MigrationFailed, PreflightFailed
from celestial_ssh.events import Phase
from celestial_ssh.migration import MigrationOptions
from celestial_ssh.report import Outcome
from celestial_ssh.shell import join
from tests.unit.fakes.engine import fail, lab_restorer, restorable_source, run
from tests.unit.fakes.host_to_host import host_to_host_path, tls_lab
from tests.unit.fakes.lab import (
    ARCHIVE_BYTES,
    ARCHIVE_SHA,
    CHECKPOINT_WAIT,
    CID,
    EXPORTED,
    SRC,
    TGT,
    WORKDIRS,
    FakeLab,
    result,
    source_bytes,
)


@pytest.mark.parametrize("host", [SRC, TGT])
def test_tls_without_socat_on_a_host_stops_in_preflight(lab: FakeLab, host: str) -> None:
    for each in (SRC, TGT):
        lab.answer(each, "command -v socat", result("" if each == host else "socat\n"))
    engine, error = fail(lab, PreflightFailed, MigrationOptions(tls=True))
    assert error.message == f"{host}: --data-path tls needs socat or python3, and neither is there"
    assert "nothing was changed" in (error.hint or "")
    assert engine.report.outcome is Outcome.NOT_STARTED
    assert lab.streams() == []
    assert not any("checkpoint" in command or "mktemp" in command for _, command in lab.log)


def test_tls_restores_once_the_archive_is_complete(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporters = tls_lab(lab, monkeypatch)
    engine = run(lab, MigrationOptions(tls=True, compression="none"))
    [exporter] = exporters
    # podman on the source runs at debug level, which is how it says its export succeeded
    assert "podman --log-level=debug container checkpoint" in exporter.command
    # the restore was sent while podman still tidied up the source, then its end collected
    assert exporter.ended_before_go is False
    assert exporter.ended
    assert engine.report.outcome is Outcome.MIGRATED
    assert engine.report.archive_bytes == ARCHIVE_BYTES
    # the target checks the source's digest before it restores
    assert lab_restorer(lab).written == [commands.restore_go_line(ARCHIVE_BYTES, ARCHIVE_SHA)]
    assert engine.report.archive_sha256 == ARCHIVE_SHA
    assert engine.report.warnings == []
    # how long podman tidied up after the archive was complete, beside the restore
    assert "source_tidy_up" in engine.report.timings


def test_tls_without_the_announcement_waits_for_the_checkpoint(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a podman that never says its export succeeded: its end is waited for, as before
    exporters = tls_lab(lab, monkeypatch, announces=False)
    engine = run(lab, MigrationOptions(tls=True, compression="none"))
    assert exporters[0].ended_before_go is True
    assert engine.report.outcome is Outcome.MIGRATED
    assert engine.report.archive_bytes == ARCHIVE_BYTES
    assert "source_tidy_up" not in engine.report.timings


def test_a_checkpoint_failing_after_its_archive_was_complete_is_reported_not_rolled_back(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_lab(lab, monkeypatch)
    failed = source_bytes(ARCHIVE_BYTES, status=125, stderr="Error: tearing down\n")
    lab.answer(SRC, "container checkpoint", failed)
    engine = run(lab, MigrationOptions(tls=True, compression="none"))
    # the restore had been sent: rolling back could make two running copies
    assert engine.report.outcome is Outcome.MIGRATED
    assert not lab.ran(SRC, "container restore")
    [warning] = engine.report.warnings
    assert warning == (
        "lab-a: podman reported a failure after its checkpoint archive was complete "
        "(Error: tearing down); the restore went ahead; check the stopped copy on lab-a "
        "with 'podman ps -a'"
    )


@pytest.mark.parametrize(
    ("status", "said"),
    [
        pytest.param(
            -1,
            "lab-a: the end of podman's checkpoint was not seen (no answer); its archive was "
            "complete and the restore went ahead; check the stopped copy on lab-a with "
            "'podman ps -a'",
            id="connection-lost",
        ),
        pytest.param(
            commands.EXIT_DIRECT_LINK_FAILED,
            "lab-a: its end of the TLS link reported a failure after the whole archive had "
            "landed; the restore went ahead",
            id="link-end-failed",
        ),
    ],
)
def test_what_the_source_says_after_the_archive_was_complete_is_a_warning(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, status: int, said: str
) -> None:
    tls_lab(lab, monkeypatch)
    lab.answer(SRC, "container checkpoint", source_bytes(ARCHIVE_BYTES, status=status))
    engine = run(lab, MigrationOptions(tls=True, compression="none"))
    assert engine.report.outcome is Outcome.MIGRATED
    assert engine.report.warnings == [said]
    assert not lab.ran(SRC, "container restore")


def test_a_landing_failing_after_the_announcement_waits_for_the_checkpoint_then_rolls_back(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # podman said its archive was complete, but the target's socat failed: nothing was
    # restored there, and podman may still tidy up the source, so the rollback waits for
    # the checkpoint's end before it restores the source
    exporters = tls_lab(lab, monkeypatch)
    lab.answer(TGT, "OPENSSL-LISTEN", result("celestial-ssh-listening 4433\n", status=1))
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed, MigrationOptions(tls=True, compression="none"))
    assert "receiving the checkpoint archive over TLS failed" in error.message
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert not lab_restorer(lab).went
    assert not exporters[0].ended  # never waited for: the rollback asks the host instead
    restored = join(commands.restore_local(CID))
    assert lab.position(SRC, CHECKPOINT_WAIT) < lab.position(SRC, restored)


@pytest.mark.parametrize("announces", [True, False], ids=["early", "late"])
@pytest.mark.parametrize("path", ["tls", "direct"])
def test_a_host_to_host_restore_goes_with_the_sources_digest(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, path: str, announces: bool
) -> None:
    # the source hashes the archive as it streams it and says the digest early (with the
    # archive complete) or at its end; the target hashes what lands, and its restore
    # compares the two before podman sees the archive
    exporters, options = host_to_host_path(lab, monkeypatch, path, EXPORTED if announces else "")
    engine = run(lab, options)
    [exporter] = exporters
    assert engine.report.outcome is Outcome.MIGRATED
    assert engine.report.warnings == []  # no fallback to relaying
    assert exporter.ended_before_go is not announces
    assert lab_restorer(lab).written == [commands.restore_go_line(ARCHIVE_BYTES, ARCHIVE_SHA)]
    assert engine.report.archive_sha256 == ARCHIVE_SHA
    assert " hashed announce " in exporter.command  # the source's checkpoint stream
    if path == "direct":
        assert "land-archive" in exporter.command and "no-hashed" not in exporter.command
    else:
        [listener] = [c for c in lab.commands_on(TGT) if "OPENSSL-LISTEN" in c]
        archive, digest = (
            f"{WORKDIRS[TGT]}/{name}" for name in ("checkpoint.tar", "checkpoint.sha256")
        )
        assert f" {archive} {digest} " in listener


@pytest.mark.parametrize("path", ["tls", "direct"])
def test_a_host_to_host_archive_damaged_on_the_way_rolls_back(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    _, options = host_to_host_path(lab, monkeypatch, path)
    # what restore_import says when the landed archive's digest is not the source's
    damaged = result(status=97, stderr=f"archive SHA-256 on this host is {'6' * 64}, ...")
    lab.answer(TGT, "restore --import", damaged)
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed, options)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert "the archive arrived damaged (SHA-256 mismatch); it was not restored" in str(error)
    assert "it runs again on lab-a, from its checkpoint" in str(error)
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    assert lab.phases()[-3:] == [
        ("failed", Phase.RESTORE),
        ("started", Phase.ROLLBACK),
        ("finished", Phase.ROLLBACK),
    ]


@pytest.mark.parametrize(
    "announcement",
    ["", f"{commands.EXPORTED_MARKER} {ARCHIVE_BYTES}\n"],
    ids=["said-nothing-early", "said-the-size-only"],
)
@pytest.mark.parametrize("path", ["tls", "direct"])
def test_a_host_to_host_source_without_a_digest_is_never_restored(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, path: str, announcement: str
) -> None:
    # its hasher failed: nothing on the target can be checked against the source, so the
    # restore waits for the checkpoint's end, whose last line has no digest either
    exporters, options = host_to_host_path(lab, monkeypatch, path, announcement)
    lab.answer(SRC, "container checkpoint", source_bytes(ARCHIVE_BYTES, digest=""))
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed, options)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert (
        "lab-a did not report the archive's SHA-256, and no copy passed this machine to hash "
        "it, so lab-b could not check what landed; it was not restored"
    ) in str(error)
    assert exporters[0].ended_before_go is True
    assert not lab_restorer(lab).went
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)
    assert lab.phases()[-4:] == [
        ("failed", Phase.CHECKPOINT),
        ("failed", Phase.TRANSFER),
        ("started", Phase.ROLLBACK),
        ("finished", Phase.ROLLBACK),
    ]


def test_without_tls_nobody_asks_for_socat(lab: FakeLab) -> None:
    run(lab)
    assert not any("socat" in command for _, command in lab.log)
