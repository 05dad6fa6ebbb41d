"""The relayed data path: the archive passes this machine, between the two SSH sessions,
which counts and hashes it on the way (``--bwlimit`` caps it here).

The restore need not wait for podman on the source to exit (it tidies up for 0.15-0.5 s
after its export, see ``docs/design.md``): the source's script announces on its stderr,
with the archive's size and SHA-256, once podman says its export succeeded and the whole
archive went out; the relay then ends as soon as that many bytes have passed (the end of
the source's stdout cannot tell it: sshd holds that back until stderr has ended too, which
is the script's exit). When the relayed bytes and digest are what the source announced, the
engine sends the restore its go line once the target's landing has ended; anything else
waits for the script's end, as before, and the checks there decide.
"""

from __future__ import annotations

import time
from typing import NoReturn

from .. import commands
from ..data_plane import LinkMeasurement, StreamProcess
from ..errors import ConnectionFailed, RemoteCommandFailed
from ..events import Phase, PhaseFailed
from ..ssh import CommandResult
from .transfer import Streamed, Transfer, VerifiedArchive

# how often a relay that has nothing to read looks for the source's announcement: once the
# last byte has passed, this is downtime
ANNOUNCEMENT_POLL_S = 0.01


class AnnouncedArchive:
    """The checkpoint script, whose stdout, as the relay reads it, ends (``b""``) once the
    source has announced the archive complete on its stderr and that many bytes have
    been read, or at the stream's own end, whichever comes first.

    Reads wait in slices of :data:`ANNOUNCEMENT_POLL_S` so the announcement is seen within
    one; a reader's own timeout (the relay's stall and cancel checks) is kept. Everything
    else is the script's own.
    """

    def __init__(self, exporter: StreamProcess):
        self.exporter = exporter
        self.command = exporter.command
        self.said = commands.StreamAnnouncements(link_must_end=False, digest_required=True)
        self.read_bytes = 0
        self._timeout: float | None = None
        self._seen = 0  # how much of the exporter's stderr has been looked at

    @property
    def host_name(self) -> str:
        return self.exporter.host_name

    @property
    def announced_size(self) -> int | None:
        """The archive's size once the source has announced it (with its SHA-256)."""
        if self.said.restorable_size is None:
            self.look()
        return self.said.restorable_size

    def look(self) -> None:
        """Take in the complete lines the source's stderr has said since the last look."""
        text = self.exporter.stderr
        end = text.rfind("\n") + 1
        if end > self._seen:
            for line in text[self._seen : end].splitlines():
                self.said.add(line)
            self._seen = end

    def set_read_timeout(self, seconds: float | None) -> None:
        self._timeout = seconds
        self.exporter.set_read_timeout(ANNOUNCEMENT_POLL_S)

    def read(self, size: int) -> bytes:
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            if self.announced_size == self.read_bytes:
                return b""  # the whole announced archive has passed
            try:
                data = self.exporter.read(size)
            except TimeoutError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                continue
            self.read_bytes += len(data)
            return data

    def write(self, data: bytes | memoryview) -> None:
        self.exporter.write(data)

    def close_stdin(self) -> None:
        self.exporter.close_stdin()

    def is_running(self) -> bool:
        return self.exporter.is_running()

    def wait(self, timeout: float) -> CommandResult:
        return self.exporter.wait(timeout)

    def kill(self) -> None:
        self.exporter.kill()

    @property
    def stderr(self) -> str:
        return self.exporter.stderr


class RelayTransfer(Transfer):
    """source -> this machine -> target."""

    lander: StreamProcess | None = None

    def measure_link(self, probe_bytes: int) -> LinkMeasurement:
        source, target = self.ctx.sessions()
        return self.ctx.data_plane().measure(source, target, probe_bytes)

    def _connect(self, started: list[StreamProcess]) -> StreamProcess:
        ctx = self.ctx
        source, target = ctx.sessions()
        source_workdir, target_workdir = ctx.progress.workdirs()
        plane = ctx.data_plane()
        lander = plane.start(target, commands.land_archive(target_workdir, announce=True))
        started.append(lander)
        exporter = plane.start(
            source,
            commands.checkpoint_stream(
                ctx.progress.info().id,
                source_workdir,
                ctx.checkpoint_options(),
                gated=True,
                hashed=True,
                announce_on_stderr=True,
            ),
        )
        started.append(exporter)
        ctx.await_ready(lander, ctx.target_text)
        ctx.await_ready(exporter, ctx.source_text)
        self.start_restorer(started)
        self.lander = lander
        return exporter

    def _landing(self) -> StreamProcess:
        assert self.lander is not None
        return self.lander

    def stream(self, exporter: StreamProcess, started: float) -> Streamed:
        archive = AnnouncedArchive(exporter)
        moved = self.ctx.relay(archive, self._landing(), "checkpoint")
        announced = archive.announced_size
        if announced is None or (announced, archive.said.exported_sha256) != (
            moved.bytes,
            moved.sha256,
        ):
            # not announced, or not what passed here: the script's end decides (a short or
            # damaged archive is refused there, by verify_archive)
            return Streamed(moved.bytes, moved.sha256, moved.seconds)
        return Streamed(moved.bytes, moved.sha256, moved.seconds, announced, moved.sha256)

    def verify_archive(
        self, checkpointed: CommandResult, streamed: Streamed, checkpoint_s: float
    ) -> VerifiedArchive:
        ctx = self.ctx
        source = ctx.source_text
        source_bytes = commands.parse_source_bytes(checkpointed.stderr)
        moved_bytes, relayed_sum = streamed.moved_bytes, streamed.relayed_sha256
        if source_bytes is None:
            ctx.warn(
                f"{source} did not report the archive's size; the "
                "coordinator's own count of the stream is used instead"
            )
        elif source_bytes != moved_bytes:
            self._reject_archive(
                checkpoint_s,
                f"the archive was cut short between {source} and this machine "
                f"({source_bytes} bytes sent by the source, {moved_bytes} arrived here); "
                "it was not restored",
            )
        source_sum = commands.parse_source_sum(checkpointed.stderr)
        if source_sum is None and relayed_sum is not None:
            ctx.warn(
                f"{source} did not report the archive's SHA-256; the "
                "coordinator's own digest of the stream is used instead"
            )
        if source_sum is not None and relayed_sum is not None and source_sum != relayed_sum:
            self._reject_archive(
                checkpoint_s,
                f"the archive was damaged between {source} and this machine "
                f"(SHA-256 {source_sum[:16]}... on the source, {relayed_sum[:16]}... here); "
                "it was not restored",
            )
        return VerifiedArchive(moved_bytes, relayed_sum)

    def _reject_archive(self, checkpoint_s: float, message: str) -> NoReturn:
        """The relayed archive is not what the source sent: never restore it."""
        self._landing().kill()
        self.ctx.fail_checkpoint_and_transfer(checkpoint_s, "archive mismatch", "archive mismatch")
        raise ConnectionFailed(message, host=self.ctx.source_text)

    def await_landing(self, started: float) -> None:
        ctx = self.ctx
        landed = self._landing().wait(ctx.options.command_timeout_s)
        if not landed.ok:
            transfer_s = time.monotonic() - started
            ctx.emit(PhaseFailed(Phase.TRANSFER, transfer_s, landed.stderr.strip()))
            raise RemoteCommandFailed(
                f"{ctx.target_text}: receiving the checkpoint archive failed",
                host=ctx.target_text,
                command=landed.command,
                exit_status=landed.exit_status,
                stderr=landed.stderr,
            )

    def kill_receivers(self) -> None:
        if self.lander is not None:
            self.lander.kill()
