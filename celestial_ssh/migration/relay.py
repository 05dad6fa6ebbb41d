"""The relayed data path: the archive passes this machine, between the two SSH sessions,
which counts and hashes it on the way (``--bwlimit`` caps it here)."""

from __future__ import annotations

import time
from typing import NoReturn

from .. import commands
from ..data_plane import LinkMeasurement, StreamProcess
from ..errors import ConnectionFailed, RemoteCommandFailed
from ..events import Phase, PhaseFailed
from ..ssh import CommandResult
from .transfer import Streamed, Transfer, VerifiedArchive


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
        moved = self.ctx.relay(exporter, self._landing(), "checkpoint")
        return Streamed(moved.bytes, moved.sha256, moved.seconds)

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
