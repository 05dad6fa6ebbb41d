"""The relayed path restores once the archive has landed, not once podman on the source has
exited (issue 17, item 5).

The source's script announces the archive on its stderr (size and SHA-256) while podman
still tidies up; the relay ends when that many bytes have passed (sshd holds the end of
the script's stdout back until its stderr ends, i.e. until the script exits), and the
engine sends the go line once the target's landing has ended, if what passed here is
what the source announced. Anything else waits for the script's end, whose checks decide.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from celestial_ssh import commands
from celestial_ssh.commands import CheckpointOptions
from celestial_ssh.errors import (
    ConnectionFailed,
    MigrationFailed,
    MigrationInterrupted,
    RemoteCommandFailed,
)
from celestial_ssh.events import Phase, PhaseFinished
from celestial_ssh.migration import Migration
from celestial_ssh.migration.relay import AnnouncedArchive
from celestial_ssh.openssh import OpenSSHProcess
from celestial_ssh.report import Outcome
from celestial_ssh.shell import join
from celestial_ssh.ssh import CommandResult
from celestial_ssh.streaming import RelayBroken, RelayStopped, relay
from tests.unit.fakes.engine import fail, lab_restorer, restorable_source, run
from tests.unit.fakes.lab import (
    ARCHIVE_BYTES,
    ARCHIVE_SHA,
    CHECKPOINT_WAIT,
    CID,
    EXPORTED,
    SRC,
    TGT,
    FakeLab,
    FakeProcess,
    LabSession,
    result,
    source_bytes,
)
from tests.unit.test_commands import make_host


class RelayedExporter(FakeProcess):
    """The relayed checkpoint script: it has said ``announcement`` on stderr by the time the
    relay ends, and runs (podman tidying up) until the engine waits for its end."""

    def __init__(
        self, session: LabSession, command: str, outcome: CommandResult, announcement: str
    ):
        super().__init__(session, command, outcome)
        self.said_on_stderr = announcement
        self.ended = False
        self.ended_before_go: bool | None = None

    def is_running(self) -> bool:
        return not self.ended

    def wait(self, timeout: float) -> CommandResult:
        if self.ended_before_go is None:
            self.ended_before_go = not lab_restorer(self.session.lab).went
        self.ended = True
        return self.outcome


class Lander(FakeProcess):
    """The target's landing; remembers whether it had ended before the go line."""

    ended_before_go: bool | None = None

    def wait(self, timeout: float) -> CommandResult:
        if self.ended_before_go is None:
            self.ended_before_go = not lab_restorer(self.session.lab).went
        return self.outcome


def relayed_lab(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, announcement: str = EXPORTED
) -> tuple[list[RelayedExporter], list[Lander]]:
    exporters: list[RelayedExporter] = []
    landers: list[Lander] = []
    start = LabSession.start

    def starting(
        session: LabSession, argv: list[str], *, privileged: bool = True, **kwargs: Any
    ) -> Any:
        process = start(session, argv, privileged=privileged, **kwargs)
        replaced: FakeProcess
        if "container checkpoint" in process.command:
            replaced = RelayedExporter(session, process.command, process.outcome, announcement)
            exporters.append(replaced)
        elif "land-archive" in process.command:
            replaced = Lander(session, process.command, process.outcome)
            landers.append(replaced)
        else:
            return process
        lab.processes[lab.processes.index(process)] = replaced
        return replaced

    monkeypatch.setattr(LabSession, "start", starting)
    return exporters, landers


# -- the engine ----------------------------------------------------------------------------
def test_the_relayed_restore_goes_before_the_checkpoint_command_has_ended(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporters, landers = relayed_lab(lab, monkeypatch)
    engine = run(lab)
    [exporter], [lander] = exporters, landers
    # the source's script announces on stderr, podman running at debug level to say it
    assert " hashed announce-on-stderr podman --log-level=debug container checkpoint" in (
        exporter.command
    )
    # the go line went once the target's landing had ended, before the checkpoint's end
    assert lander.ended_before_go is True
    assert exporter.ended_before_go is False
    assert exporter.ended, "its end collected after the go line"
    assert lab_restorer(lab).written == [commands.restore_go_line(ARCHIVE_BYTES, ARCHIVE_SHA)]
    report = engine.report
    assert report.outcome is Outcome.MIGRATED
    assert report.archive_bytes == report.bytes_transferred == ARCHIVE_BYTES
    assert report.archive_sha256 == ARCHIVE_SHA
    assert report.warnings == []
    # how long podman tidied up beside the restore
    assert "source_tidy_up" in report.timings
    # the phases as on the other paths
    assert [e.phase for e in lab.events if isinstance(e, PhaseFinished)][-5:] == [
        Phase.CHECKPOINT,
        Phase.TRANSFER,
        Phase.RESTORE,
        Phase.VERIFY,
        Phase.CLEANUP,
    ]


@pytest.mark.parametrize(
    "announcement",
    [
        pytest.param("", id="said-nothing"),
        pytest.param(f"{commands.EXPORTED_MARKER} {ARCHIVE_BYTES}\n", id="no-digest"),
        pytest.param(EXPORTED.rstrip("\n"), id="line-unfinished"),
    ],
)
def test_without_a_complete_announcement_the_relayed_restore_waits_for_the_checkpoint(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, announcement: str
) -> None:
    exporters, _ = relayed_lab(lab, monkeypatch, announcement)
    engine = run(lab)
    assert exporters[0].ended_before_go is True
    assert engine.report.outcome is Outcome.MIGRATED
    assert lab_restorer(lab).written == [commands.restore_go_line(ARCHIVE_BYTES, ARCHIVE_SHA)]
    assert "source_tidy_up" not in engine.report.timings


@pytest.mark.parametrize(
    ("announced", "said_at_the_end", "why"),
    [
        pytest.param(
            f"{commands.EXPORTED_MARKER} {ARCHIVE_BYTES + 1} {ARCHIVE_SHA}\n",
            source_bytes(ARCHIVE_BYTES + 1),
            f"the archive was cut short between lab-a and this machine ({ARCHIVE_BYTES + 1} "
            f"bytes sent by the source, {ARCHIVE_BYTES} arrived here); it was not restored",
            id="short",
        ),
        pytest.param(
            f"{commands.EXPORTED_MARKER} {ARCHIVE_BYTES} {'a' * 64}\n",
            source_bytes(ARCHIVE_BYTES, "a" * 64),
            "the archive was damaged between lab-a and this machine (SHA-256 "
            "aaaaaaaaaaaaaaaa... on the source, 5555555555555555... here); it was not restored",
            id="damaged",
        ),
    ],
)
def test_a_short_or_damaged_relayed_archive_is_never_restored(
    lab: FakeLab,
    monkeypatch: pytest.MonkeyPatch,
    announced: str,
    said_at_the_end: CommandResult,
    why: str,
) -> None:
    # the source announced an archive that is not what passed this machine: no early go;
    # the script's end is waited for, and its marker refuses the archive as before
    lab.answer(SRC, "container checkpoint", said_at_the_end)
    exporters, _ = relayed_lab(lab, monkeypatch, announced)
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert isinstance(error.cause, ConnectionFailed)
    assert why in str(error)
    assert exporters[0].ended_before_go is True
    restorer = lab_restorer(lab)
    assert not restorer.went and restorer.written == []
    assert not lab.ran(TGT, "restore --import")
    assert join(commands.restore_local(CID)) in lab.commands_on(SRC)


def test_a_checkpoint_failing_after_its_relayed_archive_was_complete_is_a_warning(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # podman said its export succeeded, the archive passed here whole and landed, then
    # podman failed tidying up: the container's processes ended with the dump, the target
    # runs it, and a rollback now could make two running copies
    failed = source_bytes(ARCHIVE_BYTES, status=125, stderr=f"{EXPORTED}Error: tearing down\n")
    lab.answer(SRC, "container checkpoint", failed)
    exporters, _ = relayed_lab(lab, monkeypatch)
    engine = run(lab)
    assert exporters[0].ended_before_go is False
    assert engine.report.outcome is Outcome.MIGRATED
    assert not lab.ran(SRC, "container restore")
    # the announcement in the script's stderr is no part of what podman said
    assert engine.report.warnings == [
        "lab-a: podman reported a failure after its checkpoint archive was complete "
        "(Error: tearing down); the restore went ahead; check the stopped copy on lab-a "
        "with 'podman ps -a'"
    ]


def test_a_relayed_checkpoint_failing_silently_after_the_archive_says_its_status(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = source_bytes(ARCHIVE_BYTES, status=125, stderr=EXPORTED)
    lab.answer(SRC, "container checkpoint", failed)
    relayed_lab(lab, monkeypatch)
    engine = run(lab)
    assert engine.report.outcome is Outcome.MIGRATED
    [warning] = engine.report.warnings
    assert "(exit 125)" in warning and commands.EXPORTED_MARKER not in warning


def test_a_relayed_checkpoint_failing_before_its_export_was_complete_rolls_back(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no announcement (podman never said its export succeeded): as before, the failed
    # checkpoint rolls back, and its message leaves out the script's markers
    failed = source_bytes(ARCHIVE_BYTES, status=125, stderr="Error: criu failed\n")
    lab.answer(SRC, "container checkpoint", failed)
    relayed_lab(lab, monkeypatch, announcement="")
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert isinstance(error.cause, RemoteCommandFailed)
    assert error.cause.stderr == "Error: criu failed"
    assert not lab_restorer(lab).went


def test_a_relayed_landing_failing_after_the_announcement_waits_for_the_checkpoint(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the archive was complete on the source, but the target's landing failed (disk
    # full): nothing is restored there, and podman may still tidy up the source, so the
    # rollback waits for the checkpoint's end before it restores the source
    lab.answer(TGT, "tee ", result(status=1, stderr="tee: No space left on device"))
    exporters, _ = relayed_lab(lab, monkeypatch)
    restorable_source(lab)
    engine, error = fail(lab, MigrationFailed)
    assert "receiving the checkpoint archive failed" in str(error)
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert not lab_restorer(lab).went
    assert not exporters[0].ended  # never waited for: the rollback asks the host instead
    restored = join(commands.restore_local(CID))
    assert lab.position(SRC, CHECKPOINT_WAIT) < lab.position(SRC, restored)


def test_a_cancel_after_the_relayed_archive_landed_rolls_back_after_the_checkpoint(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    relayed_lab(lab, monkeypatch)
    restorable_source(lab)
    engine_box: list[Any] = []

    def cancel_after_the_transfer(event: Any) -> None:
        lab.events.append(event)
        if isinstance(event, PhaseFinished) and event.phase is Phase.TRANSFER:
            engine_box[0].request_cancel()

    engine = Migration(SRC, TGT, "web", lab.options(), on_event=cancel_after_the_transfer)
    engine_box.append(engine)
    with pytest.raises(MigrationInterrupted):
        engine.run()
    assert engine.report.outcome is Outcome.ROLLED_BACK
    assert not lab_restorer(lab).went
    assert lab.position(SRC, CHECKPOINT_WAIT) < lab.position(SRC, "container restore")


# -- the relay, ending with the announced archive ------------------------------------------
class QuietSource:
    """A checkpoint stream's stdout over SSH: ``chunks``, then nothing (its end held back
    while the script runs); its stderr says ``stderr`` once ``said_after`` reads timed out."""

    host_name = "lab-a"
    command = "checkpoint"

    def __init__(self, chunks: list[bytes], stderr: str, said_after: int = 0):
        self.chunks = list(chunks)
        self._stderr = stderr
        self.said_after = said_after
        self.timeout: float | None = None
        self.timeouts = 0
        self.ends = False  # whether its end of file comes after the chunks

    @property
    def stderr(self) -> str:
        return self._stderr if self.timeouts >= self.said_after else ""

    def set_read_timeout(self, seconds: float | None) -> None:
        self.timeout = seconds

    def read(self, size: int) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.ends:
            return b""
        self.timeouts += 1
        time.sleep(self.timeout or 0)
        raise TimeoutError("no data")

    def write(self, data: bytes | memoryview) -> None:
        raise AssertionError("nothing is written to the source while relaying")

    def close_stdin(self) -> None:
        pass


class Sink:
    host_name = "lab-b"

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes | memoryview) -> None:
        self.data += data

    def close_stdin(self) -> None:
        self.closed = True


def announced(data: bytes) -> str:
    return f"{commands.EXPORTED_MARKER} {len(data)} {hashlib.sha256(data).hexdigest()}\n"


def test_the_relay_ends_with_the_announced_archive_without_its_end_of_file() -> None:
    chunks = [os.urandom(1000), os.urandom(24)]
    data = b"".join(chunks)
    source = QuietSource(chunks, f"noise\n{announced(data)}", said_after=3)
    archive = AnnouncedArchive(source)  # type: ignore[arg-type]
    target = Sink()
    started = time.monotonic()
    moved = relay(archive, target, stall_timeout=30)
    assert time.monotonic() - started < 5
    assert (moved.bytes, moved.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert bytes(target.data) == data and target.closed
    assert archive.announced_size == len(data)
    assert archive.said.exported_sha256 == moved.sha256
    # it looked for the announcement in short slices, not the relay's half-second ones
    assert source.timeout == pytest.approx(0.01)


def test_an_archive_longer_than_announced_is_relayed_to_its_end() -> None:
    # more bytes than announced: not the archive the source says it made; the relay goes on
    # to the stream's end and the engine then refuses it (the sizes differ)
    data = os.urandom(100)
    source = QuietSource([data[:50], data[50:]], announced(data[:60]))
    source.ends = True
    archive = AnnouncedArchive(source)  # type: ignore[arg-type]
    moved = relay(archive, Sink(), stall_timeout=30)
    assert moved.bytes == 100
    assert archive.announced_size == 60


def test_a_short_archive_ends_with_its_end_of_file() -> None:
    data = os.urandom(100)
    source = QuietSource([data[:60]], announced(data))
    source.ends = True
    archive = AnnouncedArchive(source)  # type: ignore[arg-type]
    moved = relay(archive, Sink(), stall_timeout=30)
    assert (moved.bytes, archive.announced_size) == (60, 100)


def test_a_relay_without_an_announcement_still_stalls() -> None:
    source = QuietSource([b"some"], "")
    with pytest.raises(RelayBroken, match="no data for 0 s"):
        relay(AnnouncedArchive(source), Sink(), stall_timeout=0.3)  # type: ignore[arg-type]


def test_a_relay_waiting_for_the_announcement_still_stops_on_request() -> None:
    source = QuietSource([b"some"], "")
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(RelayStopped):
        relay(AnnouncedArchive(source), Sink(), should_stop=stop.is_set)  # type: ignore[arg-type]
    assert time.monotonic() - started < 2


# -- the real scripts, with a fake podman --------------------------------------------------
def test_the_real_scripts_relay_the_archive_before_podman_has_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The checkpoint script and the landing script as local processes (no ssh), relayed
    by the real relay: the relay ends, with the whole archive landed and its digest the
    source's, while podman still tidies up for 3 s. The script runs under a shell that
    holds its stdout open until it has ended, as sshd does (it passes the end of stdout
    on only once stderr has ended too)."""
    host = make_host(tmp_path, openssl=False)
    payload = os.urandom(3 * 1024 * 1024 + 5)
    (host.root / "payload").write_bytes(payload)
    host.env.update(
        FAKE_PODMAN_PAYLOAD=str(host.root / "payload"), FAKE_PODMAN_SLEEP="3", FAKE_PODMAN_RDWR="1"
    )
    for name, value in host.env.items():
        monkeypatch.setenv(name, value)
    landing = host.root / "landing"
    landing.mkdir(mode=0o700)
    checkpoint = commands.checkpoint_stream(
        "web",
        str(host.workdir),
        CheckpointOptions(),
        gated=True,
        hashed=True,
        announce_on_stderr=True,
    )
    exporter = OpenSSHProcess(
        "lab-a", "checkpoint", ["sh", "-c", '"$@"; exit $?', "sshd", *checkpoint]
    )
    lander = OpenSSHProcess("lab-b", "land", commands.land_archive(str(landing), announce=True))
    try:
        for process in (exporter, lander):
            process.set_read_timeout(5)
            assert process.read(len(commands.READY_LINE)) == commands.READY_LINE
        exporter.write(commands.GO_LINE)
        archive = AnnouncedArchive(exporter)
        moved = relay(archive, lander, stall_timeout=30)
        relayed_at = time.monotonic()
        assert not (host.root / "podman-argv.done").exists(), "podman had not ended yet"
        assert exporter.is_running()
        digest = hashlib.sha256(payload).hexdigest()
        assert (moved.bytes, moved.sha256) == (len(payload), digest)
        assert (archive.announced_size, archive.said.exported_sha256) == (len(payload), digest)
        landed = lander.wait(10)
        assert landed.ok, landed.stderr
        assert (landing / "checkpoint.tar").read_bytes() == payload
        assert (landing / "checkpoint.sha256").read_text().split()[0] == digest
        ended = exporter.wait(10)
        assert time.monotonic() - relayed_at > 1, "podman went on tidying up"
    finally:
        exporter.kill()
        lander.kill()
    assert ended.ok, ended.stderr
    assert commands.parse_source_bytes(ended.stderr) == len(payload)
    assert commands.parse_source_sum(ended.stderr) == digest
