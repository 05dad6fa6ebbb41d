"""The TLS link: the target listens and the source connects over mutually authenticated
TLS (socat or python3 at each end, throwaway keys handed to each end over SSH).

``--data-path auto`` (the default) proves the link before the freeze and relays when it
cannot; ``--data-path tls`` (``--tls``) has no fallback: the user asked for this link, and
whatever fails here fails before anything changed."""

from __future__ import annotations

import time

from .. import commands, tls_link
from ..data_plane import LinkMeasurement, StreamProcess, TLSEnds
from ..errors import CelestialError, ConnectionFailed
from ..events import Phase, PhaseFailed
from .context import READY_TIMEOUT_S, MigrationContext
from .host_to_host import HostToHostTransfer
from .wording import one_line

# how long a broken link's message waits for the listener to say why it ended
RECEIVER_END_WAIT_S = 1.0


class TLSTransfer(HostToHostTransfer):
    """source -> target, over a TLS link no data of which passes through SSH.

    ``proved``: the link is proved before the freeze (a handshake and
    :data:`~celestial_ssh.tls_link.PROOF_BYTES`), and whatever fails until then makes
    :meth:`prepare` say False (the archive is then relayed; :attr:`why_not` says why)
    instead of raising.
    """

    # the listener is waited for instead (await_landing)
    link_must_end = False
    listener: StreamProcess | None = None
    # the address the target listens on and each end's program, once both ends hold
    # their credentials (prepare)
    ends: TLSEnds | None = None

    def __init__(self, ctx: MigrationContext, *, proved: bool = False):
        super().__init__(ctx)
        self.proved = proved
        self.why_not = ""
        self.proof: LinkMeasurement | None = None

    def prepare(self) -> bool:
        """Hand each end its credentials before the freeze (and prove the link)."""
        ctx = self.ctx
        started = time.monotonic()
        try:
            self.ends = self._hand_out_credentials()
            if self.proved:
                self.proof = self.measure_link(
                    tls_link.PROOF_BYTES,
                    timeout=tls_link.PROOF_TIMEOUT_S,
                    connect_timeout_s=tls_link.PROOF_CONNECT_TIMEOUT_S,
                )
        except CelestialError as error:
            if not self.proved:
                raise
            self.why_not = _why(error)
            return False
        finally:
            ctx.time_step("tls_setup", started)
        ends = self.ends
        programs = sorted({ends.source_tool, ends.target_tool})
        ctx.report.transport = f"direct TLS ({' and '.join(programs)}, to {ends.address})"
        return True

    def _hand_out_credentials(self) -> TLSEnds:
        ctx = self.ctx
        source, target = ctx.sessions()
        source_workdir, target_workdir = ctx.progress.workdirs()
        return ctx.data_plane().prepare_tls(
            source,
            target,
            source_workdir,
            target_workdir,
            timeout=ctx.options.command_timeout_s,
            address=ctx.options.tls_address,
        )

    def measure_link(
        self,
        probe_bytes: int,
        *,
        timeout: float = 120.0,
        connect_timeout_s: float = tls_link.CONNECT_TIMEOUT_S,
    ) -> LinkMeasurement:
        ctx = self.ctx
        source, target = ctx.sessions()
        source_workdir, target_workdir = ctx.progress.workdirs()
        return ctx.data_plane().measure_tls(
            source,
            target,
            source_workdir,
            target_workdir,
            self._ends(),
            probe_bytes,
            port=ctx.options.tls_port,
            timeout=timeout,
            connect_timeout_s=connect_timeout_s,
        )

    def _ends(self) -> TLSEnds:
        if self.ends is None:
            raise RuntimeError("the TLS link is used before it was prepared")
        return self.ends

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
            self._ends(),
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
            self._ends(),
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

    def receiver_said(self) -> str:
        """What the listener said, if it ended within a moment of the link's break (a
        full disk on the target, say); its end is not forced (closing its channel would)."""
        listener = self.listener
        if listener is None:
            return ""
        deadline = time.monotonic() + RECEIVER_END_WAIT_S
        while listener.is_running() and time.monotonic() < deadline:
            time.sleep(0.02)
        if listener.is_running():
            return ""
        try:
            ended = listener.wait(RECEIVER_END_WAIT_S)
        except CelestialError:
            return ""
        if ended.ok:
            return ""
        said = ended.stderr.strip().splitlines()
        return said[-1][:200] if said else f"exit {ended.exit_status}"


def _why(error: CelestialError) -> str:
    """What went wrong, with its fix when the error knows one."""
    return f"{one_line(error)}. {error.hint}" if error.hint else one_line(error)
