"""What the two host-to-host data paths (``--direct`` over ssh, ``--tls``) share: the
archive never passes this machine, so a watch on the target reports how much has landed,
and the source's own count and SHA-256 (taken as it streams) are what the target checks
before it restores (the target hashes the archive as it lands)."""

from __future__ import annotations

import threading
import time

from .. import commands
from ..data_plane import StreamProcess
from ..errors import ConnectionFailed
from ..events import TransferProgress
from ..ssh import CommandResult
from ..streaming import RelayStopped
from .transfer import Streamed, Transfer, VerifiedArchive

DIRECT_PROGRESS_INTERVAL_S = 0.25
# the landing watch normally ends when its channel closes; this bounds it if that is missed
DIRECT_PROGRESS_LIMIT_S = 24 * 3600
DIRECT_END_POLL_S = 0.01


class HostToHostTransfer(Transfer):
    """The source streams straight to the target."""

    # whether the source's "archive complete" needs its link to have ended too (see
    # commands.StreamAnnouncements): over ssh yes, over TLS the listener is waited for
    link_must_end = True
    landing_watch: StreamProcess | None = None

    def start_landing_side(self, started: list[StreamProcess]) -> None:
        """A direct stream's target side, before the freeze: the gated restore, and the
        watch that reports how much has landed."""
        ctx = self.ctx
        _, target_workdir = ctx.progress.workdirs()
        self.start_restorer(started)
        self.landing_watch = ctx.sessions()[1].start(
            commands.landed_bytes_watch(
                target_workdir, DIRECT_PROGRESS_INTERVAL_S, DIRECT_PROGRESS_LIMIT_S
            )
        )
        started.append(self.landing_watch)
        ctx.await_ready(self.landing_watch, ctx.target_text)

    def stream(self, exporter: StreamProcess, started: float) -> Streamed:
        moved_bytes, said = self._watch_stream(exporter)
        if said is None:
            return Streamed(moved_bytes, None, time.monotonic() - started)
        return Streamed(
            moved_bytes,
            None,
            time.monotonic() - started,
            said.restorable_size,
            said.exported_sha256,
        )

    def _watch_stream(
        self, exporter: StreamProcess
    ) -> tuple[int, commands.StreamAnnouncements | None]:
        """Wait for a direct stream, reporting how much has landed on the target.

        Its end is noticed within ``DIRECT_END_POLL_S`` (that wait is downtime); the landed
        size comes from the landing watch started before the freeze, read in another thread.
        The announcing checkpoint ends the wait earlier, once the source says its archive
        is complete, with its digest (and, over ``ssh``, that its link has ended: see
        :class:`~celestial_ssh.commands.StreamAnnouncements`). Returns the bytes landed by
        the last look and what the source announced, once the restore may go with it
        (None: wait for the script's end); honours a cancel and the stall timeout.
        """
        ctx = self.ctx
        watch = self.landing_watch
        assert watch is not None
        landed = [0, time.monotonic()]  # bytes, when they last changed
        done = threading.Event()
        said = commands.StreamAnnouncements(link_must_end=self.link_must_end, digest_required=True)
        announced = threading.Event()

        def listen() -> None:
            lines = b""
            while not (announced.is_set() or done.is_set() or said.link_failed):
                try:
                    chunk = exporter.read(4096)
                except TimeoutError:
                    continue
                except (OSError, EOFError):
                    return  # the script's end is seen by the loop below
                if not chunk:
                    return
                *complete, lines = (lines + chunk).split(b"\n")
                for line in complete:
                    said.add(line.decode(errors="replace"))
                if said.restorable_size is not None:
                    announced.set()

        def look() -> None:
            watch.set_read_timeout(DIRECT_PROGRESS_INTERVAL_S * 4)
            unfinished = b""
            while not done.is_set():
                try:
                    chunk = watch.read(4096)
                except TimeoutError:
                    continue
                except (OSError, EOFError):
                    return  # progress only: the stream and its stall check go on
                if not chunk:
                    return
                size, unfinished = commands.parse_landed_sizes(unfinished + chunk)
                if size is not None and size != landed[0] and not done.is_set():
                    landed[:] = [size, time.monotonic()]
                    ctx.emit(TransferProgress("checkpoint", size, None))

        watcher = threading.Thread(target=look, daemon=True)
        watcher.start()
        exporter.set_read_timeout(DIRECT_PROGRESS_INTERVAL_S)  # read only by listen()
        threading.Thread(target=listen, daemon=True).start()
        stall_s = ctx.options.stream_stall_timeout_s
        try:
            while exporter.is_running() and not announced.is_set():
                if ctx.cancel.is_set():
                    raise RelayStopped("the transfer was stopped on request")
                if time.monotonic() - landed[1] > stall_s:
                    raise ConnectionFailed(
                        f"no data landed on {ctx.target_text} for {stall_s:.0f} s while streaming",
                        host=ctx.target_text,
                    )
                time.sleep(DIRECT_END_POLL_S)
        finally:
            done.set()
            watch.kill()
        return int(landed[0]), said if announced.is_set() else None

    def verify_archive(
        self, checkpointed: CommandResult, streamed: Streamed, checkpoint_s: float
    ) -> VerifiedArchive:
        """No copy passed this machine: the source's count is the size and its digest is
        what the target checks, and it must say both."""
        source = self.ctx.source_text
        source_bytes = commands.parse_source_bytes(checkpointed.stderr)
        if source_bytes is None:
            raise ConnectionFailed(
                f"{source} did not report the archive's size, and no copy "
                "passed this machine to count it; it was not restored",
                host=source,
            )
        source_sum = commands.parse_source_sum(checkpointed.stderr)
        if source_sum is None:
            self.kill_receivers()
            self.ctx.fail_checkpoint_and_transfer(
                checkpoint_s, "no archive digest", "no archive digest"
            )
            raise ConnectionFailed(
                f"{source} did not report the archive's SHA-256, and no copy passed this "
                f"machine to hash it, so {self.ctx.target_text} could not check what "
                "landed; it was not restored",
                host=source,
            )
        return VerifiedArchive(source_bytes, source_sum)

    def close(self) -> None:
        super().close()
        self.kill_receivers()
        if self.landing_watch is not None:
            self.landing_watch.kill()
