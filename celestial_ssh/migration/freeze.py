"""The freeze: checkpoint the container on the source and stream its archive to the target
along the chosen data path, until the archive has landed (state LANDED)."""

from __future__ import annotations

import time

from .. import commands
from ..data_plane import StreamProcess
from ..errors import ConnectionFailed, RemoteCommandFailed
from ..events import Phase, PhaseFinished, PhaseStarted, TransferProgress
from ..ssh import CommandResult
from ..stream_markers import without_markers
from ..units import megabytes, megabytes_per_s
from .context import MigrationContext
from .state import State
from .transfer import Transfer, VerifiedArchive
from .wording import one_line


def checkpoint_and_transfer(ctx: MigrationContext) -> None:
    info = ctx.progress.info()
    transfer = ctx.transfer
    assert transfer is not None
    ctx.emit(PhaseStarted(Phase.CHECKPOINT, f"{info.name} on {ctx.source_text}"))
    ctx.emit(PhaseStarted(Phase.TRANSFER, f"to {ctx.target_text}"))
    try:
        exporter = transfer.connect()
    except BaseException as error:
        ctx.fail_checkpoint_and_transfer(0.0, one_line(error), one_line(error))
        raise
    started = time.monotonic()
    ctx.progress.freeze_started = started
    ctx.progress.state = State.FROZEN
    try:
        exporter.write(commands.GO_LINE)
        streamed = transfer.stream(exporter, started)
        if streamed.announced_bytes is None:
            checkpointed = exporter.wait(ctx.options.restore_timeout_s)
    except BaseException as error:
        exporter.kill()
        transfer.kill_receivers()
        ctx.fail_checkpoint_and_transfer(
            time.monotonic() - started, one_line(error), one_line(error)
        )
        raise
    if streamed.announced_bytes is not None:
        announced = VerifiedArchive(streamed.announced_bytes, streamed.announced_sha256)
        _archive_complete(ctx, transfer, exporter, announced, started)
        return
    checkpoint_s = time.monotonic() - started
    ctx.report.timings[Phase.CHECKPOINT.value] = round(checkpoint_s, 4)
    if not checkpointed.ok:
        link_broke = checkpointed.exit_status == commands.EXIT_DIRECT_LINK_FAILED
        receiver_said = transfer.receiver_said() if link_broke else ""
        transfer.kill_receivers()
        ctx.fail_checkpoint_and_transfer(
            checkpoint_s, checkpointed.stderr.strip(), "the checkpoint failed"
        )
        raise _checkpoint_failure(ctx, checkpointed, receiver_said)
    archive = transfer.verify_archive(checkpointed, streamed, checkpoint_s)
    ctx.emit(PhaseFinished(Phase.CHECKPOINT, checkpoint_s, megabytes(archive.size)))
    transfer.await_landing(started)
    _landed(ctx, archive, started, streamed.seconds)


def _checkpoint_failure(
    ctx: MigrationContext, checkpointed: CommandResult, receiver_said: str = ""
) -> Exception:
    """Why the checkpoint script failed, as the error to raise (with what the target's
    receiver said, when the link to it broke and it said something)."""
    if checkpointed.exit_status == -1:
        return ConnectionFailed(
            f"{ctx.source_text}: the connection died during the checkpoint",
            host=ctx.source_text,
        )
    if checkpointed.exit_status == commands.EXIT_DIRECT_LINK_FAILED:
        why = f" ({ctx.target_text}: {receiver_said})" if receiver_said else ""
        return ConnectionFailed(
            f"{ctx.source_text}: the direct stream to {ctx.target_text} broke{why}",
            host=ctx.target_text,
        )
    return RemoteCommandFailed(
        f"{ctx.source_text}: podman checkpoint of {ctx.progress.info().name} failed",
        host=ctx.source_text,
        command=checkpointed.command,
        exit_status=checkpointed.exit_status,
        stderr="\n".join(without_markers(checkpointed.stderr)),
        hint="If the container uses established TCP connections, try --tcp-established.",
    )


def _landed(
    ctx: MigrationContext, archive: VerifiedArchive, started: float, stream_s: float
) -> None:
    moved_bytes = archive.size
    transfer_s = time.monotonic() - started
    ctx.report.timings[Phase.TRANSFER.value] = round(transfer_s, 4)
    ctx.emit(TransferProgress("checkpoint", moved_bytes, moved_bytes, finished=True))
    rate = moved_bytes / stream_s if stream_s > 0 else 0.0
    ctx.emit(
        PhaseFinished(
            Phase.TRANSFER, transfer_s, f"{megabytes(moved_bytes)} at {megabytes_per_s(rate)}"
        )
    )
    ctx.report.bytes_transferred += moved_bytes
    ctx.report.archive_bytes = moved_bytes
    # what the restore's go line carries, for the target to check before it restores
    ctx.report.archive_sha256 = archive.sha256
    ctx.progress.state = State.LANDED


def _archive_complete(
    ctx: MigrationContext,
    transfer: Transfer,
    exporter: StreamProcess,
    exported: VerifiedArchive,
    started: float,
) -> None:
    """The source said the archive is complete (and, over ``ssh``, landed; relayed, that
    many bytes with that digest passed this machine) while podman still tidies up there
    (network, storage: 0.15-0.5 s on our lab): the restore need not wait for that, once
    the target's landing has ended. The checkpoint's exit is collected once the restore
    was sent; a failure it reports then is a warning (see restore._collect_checkpoint_end)."""
    checkpoint_s = time.monotonic() - started
    ctx.report.timings[Phase.CHECKPOINT.value] = round(checkpoint_s, 4)
    ctx.emit(PhaseFinished(Phase.CHECKPOINT, checkpoint_s, megabytes(exported.size)))
    # a rollback from here waits for the checkpoint's end by its status file
    transfer.await_landing(started)
    ctx.checkpoint_ending = (exporter, time.monotonic())
    _landed(ctx, exported, started, checkpoint_s)
