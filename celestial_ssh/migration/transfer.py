"""The data path of the checkpoint archive: one :class:`Transfer` protocol, one class per path.

- :class:`~.relay.RelayTransfer`: source -> this machine -> target, over the SSH sessions;
- :class:`~.ssh_direct.SSHDirectTransfer` (``--direct``): the source logs in to the target;
- :class:`~.tls.TLSTransfer` (``--tls``): the source connects to the target over TLS.

The engine chooses one while preparing (:func:`~.prepare.choose_transfer`) and from then on
only calls these methods, in this order: ``prepare``, ``measure_link`` (``--compress auto``),
``connect`` (before the freeze), ``stream`` (after it), ``verify_archive`` and
``await_landing`` (unless the stream announced early that the archive is complete), and
``close``; ``kill_receivers`` on a failure while streaming.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from .. import commands
from ..data_plane import LinkMeasurement, StreamProcess
from ..ssh import CommandResult
from .context import MigrationContext


@dataclass(frozen=True)
class Streamed:
    """What a stream moved: bytes counted (relayed, or landed on the target), the relayed
    SHA-256 (None when nothing passed this machine), seconds spent streaming, and the
    archive size and SHA-256 the source announced as complete (None: wait for the
    checkpoint's end)."""

    moved_bytes: int
    relayed_sha256: str | None
    seconds: float
    announced_bytes: int | None = None
    announced_sha256: str | None = None


@dataclass(frozen=True)
class VerifiedArchive:
    """The archive as the target will check it before restoring: its size and SHA-256
    (the go line carries both)."""

    size: int
    sha256: str | None


class Transfer(ABC):
    """How the checkpoint archive goes from the source to the target."""

    def __init__(self, ctx: MigrationContext):
        self.ctx = ctx
        # the gated restore on the target, connected before the freeze (see start_restorer)
        self.restorer: StreamProcess | None = None

    def prepare(self) -> bool:
        """Before the freeze, once the work directories exist: set the path up. False when
        this path cannot be used (the archive is then relayed)."""
        return True

    @abstractmethod
    def measure_link(self, probe_bytes: int) -> LinkMeasurement:
        """Stream ``probe_bytes`` along this path and time it (``--compress auto``)."""

    def connect(self) -> StreamProcess:
        """Before the freeze: connect the checkpoint stream, the receiving side and the
        gated restore, and wait until each says it is ready. Returns the exporter (the
        checkpoint script on the source, waiting for its go line)."""
        started: list[StreamProcess] = []
        try:
            return self._connect(started)
        except BaseException:
            for process in started:
                process.kill()
            raise

    @abstractmethod
    def _connect(self, started: list[StreamProcess]) -> StreamProcess:
        """:meth:`connect`, appending each process it starts to ``started``."""

    @abstractmethod
    def stream(self, exporter: StreamProcess, started: float) -> Streamed:
        """After the go line: move the archive; honours a cancel and the stall timeout."""

    @abstractmethod
    def verify_archive(
        self, checkpointed: CommandResult, streamed: Streamed, checkpoint_s: float
    ) -> VerifiedArchive:
        """Check what arrived against what the source says it sent; the archive's size
        and the digest the target checks."""

    @abstractmethod
    def await_landing(self, started: float) -> None:
        """Wait until the target has written the archive's last byte."""

    @abstractmethod
    def kill_receivers(self) -> None:
        """Stop whatever receives the archive on the target."""

    def receiver_said(self) -> str:
        """Why the target's receiver failed, once a host-to-host link broke ("" when it
        has not ended, or said nothing)."""
        return ""

    def close(self) -> None:
        """Stop what this path still runs (at the very end, or after a failure)."""
        if self.restorer is not None and self.restorer.is_running():
            self.restorer.kill()

    def start_restorer(self, started: list[StreamProcess]) -> None:
        """The restore command, connected now and started by a go line once the archive
        has landed: no new SSH command (0.15 s on our lab hosts) falls into the downtime."""
        ctx = self.ctx
        _, target_workdir = ctx.progress.workdirs()
        restorer = ctx.data_plane().start(
            ctx.sessions()[1],
            commands.gated_restore_import(
                target_workdir,
                name=ctx.options.new_name,
                options=ctx.checkpoint_options(),
                import_previous=ctx.previous_archive,
            ),
        )
        started.append(restorer)
        ctx.await_ready(restorer, ctx.target_text)
        self.restorer = restorer
