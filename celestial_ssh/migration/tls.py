"""``--tls``: the target listens and the source connects over mutually authenticated TLS
(socat on both hosts, throwaway keys handed to each end over SSH). No fallback: the user
asked for this link, and whatever fails here fails before anything changed."""

from __future__ import annotations

import time

from .. import commands
from ..data_plane import LinkMeasurement, StreamProcess
from ..errors import ConnectionFailed
from ..events import Phase, PhaseFailed
from .context import READY_TIMEOUT_S
from .host_to_host import HostToHostTransfer


class TLSTransfer(HostToHostTransfer):
    """source -> target, over a TLS link no data of which passes through SSH."""

    # the listener is waited for instead (await_landing)
    link_must_end = False
    listener: StreamProcess | None = None
    # the address the target listens on, once both ends hold their credentials (prepare)
    address = ""

    def prepare(self) -> bool:
        """Hand each end its credentials before the freeze."""
        ctx = self.ctx
        source, target = ctx.sessions()
        source_workdir, target_workdir = ctx.progress.workdirs()
        started = time.monotonic()
        self.address = ctx.data_plane().prepare_tls(
            source,
            target,
            source_workdir,
            target_workdir,
            timeout=ctx.options.command_timeout_s,
            address=ctx.options.tls_address,
        )
        ctx.time_step("tls_setup", started)
        ctx.report.transport = f"direct TLS (socat, to {self.address})"
        return True

    def measure_link(self, probe_bytes: int) -> LinkMeasurement:
        ctx = self.ctx
        source, target = ctx.sessions()
        source_workdir, target_workdir = ctx.progress.workdirs()
        return ctx.data_plane().measure_tls(
            source,
            target,
            source_workdir,
            target_workdir,
            self.address,
            probe_bytes,
            port=ctx.options.tls_port,
        )

    def _connect(self, started: list[StreamProcess]) -> StreamProcess:
        """The target listens, the source connects and completes the handshake; both run
        on the control connections."""
        ctx = self.ctx
        source, target = ctx.sessions()
        source_workdir, target_workdir = ctx.progress.workdirs()
        plane = ctx.data_plane()
        stall = ctx.options.stream_stall_timeout_s
        listener, port = plane.start_tls_listener(
            target,
            target_workdir,
            self.address,
            f"{target_workdir}/{commands.ARCHIVE_NAME}",
            digest=f"{target_workdir}/{commands.SUM_NAME}",
            port=ctx.options.tls_port,
            stall_timeout_s=stall,
            accept_timeout_s=READY_TIMEOUT_S,
        )
        started.append(listener)
        self.listener = listener
        link = plane.tls_link(
            source_workdir,
            self.address,
            port,
            commands.direct_link_fifo(source_workdir),
            stall_timeout_s=stall,
        )
        checkpoint = commands.checkpoint_stream(
            ctx.progress.info().id,
            source_workdir,
            ctx.checkpoint_options(),
            hashed=True,
            announce=True,
        )
        exporter = source.start(commands.direct_checkpoint_stream(checkpoint, source_workdir, link))
        started.append(exporter)
        ctx.await_ready(exporter, ctx.target_text)
        self.start_landing_side(started)
        return exporter

    def await_landing(self, started: float) -> None:
        """The source's socat has sent its last byte; the target's may still be writing."""
        if self.listener is None:
            return
        ctx = self.ctx
        landed = self.listener.wait(ctx.options.command_timeout_s)
        if not landed.ok:
            transfer_s = time.monotonic() - started
            ctx.emit(PhaseFailed(Phase.TRANSFER, transfer_s, landed.stderr.strip()))
            raise ConnectionFailed(
                f"{ctx.target_text}: receiving the checkpoint archive over TLS failed "
                f"({landed.what_it_said()})",
                host=ctx.target_text,
            )

    def kill_receivers(self) -> None:
        if self.listener is not None:
            self.listener.kill()
