"""The restore on the target: send the go line to the restore waiting there since before
the freeze, collect the source's end of the checkpoint, and verify the copy runs."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from concurrent.futures import Future

from .. import commands
from ..errors import CelestialError, ConnectionFailed, PreflightFailed, RemoteCommandFailed
from ..events import Phase
from ..podman_json import flatten_stats, parse_container_inspect, parse_container_list, parse_stats
from ..report import Outcome
from ..ssh import CommandResult
from ..stream_markers import without_markers
from .context import MigrationContext
from .state import State
from .wording import one_line


def restore(ctx: MigrationContext) -> None:
    assert ctx.progress.target_workdir and ctx.report.archive_bytes is not None
    _, target = ctx.sessions()
    with ctx.phase(Phase.RESTORE, f"on {ctx.target_text}") as outcome:
        if ctx.options.new_name is not None:
            # a restore under a new name gets a new ID: remember what was there before,
            # so a rollback removes only what the restore itself made
            listing = target.run(
                commands.container_list_all(),
                timeout=ctx.options.command_timeout_s,
                check=True,
                what="listing containers",
            )
            ctx.progress.target_ids_before = {
                item.id for item in parse_container_list(listing.stdout)
            }
        ctx.progress.state = State.RESTORING
        result = _run_restore(ctx)
        if not result.ok:
            _collect_checkpoint_end(ctx)  # before any rollback looks at the source
            what = {
                commands.EXIT_ARCHIVE_CHECKSUM_MISMATCH: "the archive arrived damaged "
                "(SHA-256 mismatch); it was not restored",
                commands.EXIT_ARCHIVE_SIZE_MISMATCH: "the archive arrived incomplete; "
                "it was not restored",
            }.get(result.exit_status, "podman restore failed")
            raise RemoteCommandFailed(
                f"{ctx.target_text}: {what}",
                host=ctx.target_text,
                command=result.command,
                exit_status=result.exit_status,
                stderr=result.stderr,
            )
        ctx.report.restore_stats = flatten_stats(parse_stats(result.stdout))
        ctx.report.downtime_s = round(
            time.monotonic() - (ctx.progress.freeze_started or time.monotonic()), 4
        )
        outcome["detail"] = f"downtime {ctx.report.downtime_s:.2f} s"
    _collect_checkpoint_end(ctx)


def _run_restore(ctx: MigrationContext) -> CommandResult:
    """Start the restore that has waited on the target since before the freeze."""
    assert ctx.transfer is not None
    restorer = ctx.transfer.restorer
    assert restorer is not None and ctx.report.archive_bytes is not None
    timeout = ctx.options.restore_timeout_s
    output = bytearray()
    try:
        restorer.write(
            commands.restore_go_line(ctx.report.archive_bytes, ctx.report.archive_sha256)
        )
        _watch_checkpoint_end(ctx)
        restorer.set_read_timeout(timeout)
        while chunk := restorer.read(1 << 16):
            output += chunk
    except (OSError, EOFError) as error:
        raise ConnectionFailed(
            f"{ctx.target_text}: the connection failed during the restore: "
            f"{error or type(error).__name__}",
            host=ctx.target_text,
        ) from error
    result = restorer.wait(timeout)
    if result.exit_status == -1:
        raise ConnectionFailed(
            f"{ctx.target_text}: the connection closed before the restore finished",
            host=ctx.target_text,
        )
    return dataclasses.replace(result, stdout=output.decode(errors="replace"))


def _watch_checkpoint_end(ctx: MigrationContext) -> None:
    """Once the restore was sent: wait, in a thread, for a checkpoint whose archive was
    complete before podman had ended, so that neither the restore's answer nor the
    downtime waits for the source."""
    ending, ctx.checkpoint_ending = ctx.checkpoint_ending, None
    if ending is None:
        return
    exporter, completed_at = ending
    timeout = ctx.options.command_timeout_s

    end: Future[tuple[CommandResult | CelestialError, float]] = Future()

    def wait() -> None:
        try:
            said: CommandResult | CelestialError = exporter.wait(timeout)
        except CelestialError as error:
            said = error
        end.set_result((said, time.monotonic() - completed_at))

    # a daemon thread (not a pool's): a source that never answers must not hold up exit
    threading.Thread(target=wait, daemon=True).start()
    ctx.checkpoint_end = end


def _collect_checkpoint_end(ctx: MigrationContext) -> None:
    """What that checkpoint said at its end.

    The restore has been sent: whatever podman says now, the archive it made is on the
    target, and its process on the source ended with the dump. A failure while it
    tidied up is reported, never rolled back (that could make two running copies).
    """
    end, ctx.checkpoint_end = ctx.checkpoint_end, None
    if end is None:
        return
    source = ctx.source_text
    said: CommandResult | CelestialError | None = None
    with contextlib.suppress(TimeoutError):
        said, tidied_s = end.result(timeout=ctx.options.command_timeout_s + 5.0)
        ctx.report.timings["source_tidy_up"] = round(tidied_s, 4)
    if isinstance(said, CommandResult) and said.ok:
        return
    if said is None or isinstance(said, CelestialError) or said.exit_status == -1:
        why = one_line(said) if isinstance(said, CelestialError) else "no answer"
        ctx.warn(
            f"{source}: the end of podman's checkpoint was not seen ({why}); its archive "
            f"was complete and the restore went ahead; check the stopped copy on {source} "
            "with 'podman ps -a'"
        )
        return
    if said.exit_status == commands.EXIT_DIRECT_LINK_FAILED:
        ctx.warn(
            f"{source}: its end of the TLS link reported a failure after the whole "
            "archive had landed; the restore went ahead"
        )
        return
    # (a relayed stream's stderr also holds its announcement)
    lines = [line for line in without_markers(said.stderr) if line.strip()]
    detail = lines[-1].strip() if lines else f"exit {said.exit_status}"
    ctx.warn(
        f"{source}: podman reported a failure after its checkpoint archive was "
        f"complete ({detail[-300:]}); the restore went ahead; check the stopped "
        f"copy on {source} with 'podman ps -a'"
    )


def verify(ctx: MigrationContext) -> None:
    _, target = ctx.sessions()
    name = ctx.report.target_container or ctx.container
    with ctx.phase(Phase.VERIFY, f"{name} on {ctx.target_text}") as outcome:
        result = target.run(
            commands.container_inspect(name),
            timeout=ctx.options.command_timeout_s,
            check=True,
            what=f"inspecting {name}",
        )
        info = parse_container_inspect(result.stdout)
        if not info.is_running:
            raise PreflightFailed(
                f"{ctx.target_text}: restored container {name!r} is {info.status}, not running",
                host=ctx.target_text,
            )
        ctx.progress.state = State.RUNNING
        ctx.report.outcome = Outcome.MIGRATED
        outcome["detail"] = f"{name} ({info.id[:12]}) running"
