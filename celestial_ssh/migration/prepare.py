"""Preparing the freeze: the work directories, the data path, ``--compress auto``'s choice,
and ``--pre-copy``'s copy of the memory while the container still runs."""

from __future__ import annotations

import time
from functools import partial
from typing import cast

from .. import commands
from ..compression_choice import choose_compression, compressibility, sample_memory_command
from ..data_plane import LinkMeasurement
from ..errors import CelestialError, PreflightFailed, RemoteCommandFailed
from ..parallel import run_together
from ..podman_json import ContainerInfo, OutputError, parse_memory_usage
from ..precopy import PrecopyPolicy, pages_written, pre_checkpoint_export, run_precopy_rounds
from ..ssh import SSHSession
from ..units import megabytes
from .context import MigrationContext
from .relay import RelayTransfer
from .ssh_direct import SSHDirectTransfer
from .state import State
from .tls import TLSTransfer
from .transfer import Transfer
from .wording import one_line

# what --compress auto streams to measure the link: long enough that the SSH handshake of a
# new stream is a small part of it, short enough to cost well under a second on fast links
PROBE_BYTES = 32 * 1024 * 1024
NOMINAL_ARCHIVE_BYTES = 256 * 1024 * 1024
PREVIOUS_ARCHIVE_NAME = "previous.tar"
# one round: podman's pre-checkpoints are full dumps each time (see copy_memory_while_running)
PRECOPY_POLICY = PrecopyPolicy(max_rounds=1)


def prepare(ctx: MigrationContext) -> None:
    _make_workdirs(ctx)
    ctx.transfer = choose_transfer(ctx)
    if ctx.options.compression == "auto":
        _choose_compression(ctx, ctx.transfer)
    ctx.report.compression = ctx.compression
    if ctx.precopy:
        _copy_memory_while_running(ctx)


def choose_transfer(ctx: MigrationContext) -> Transfer:
    """The data path the options ask for, set up.

    ``auto`` proves a TLS link from the source to the target and relays through this
    machine when there is none (saying why, and what would make it work); ``ssh`` relays
    when the source cannot log in to the target; ``tls`` never relays.
    """
    path = ctx.options.chosen_data_path()
    if path == "relay":
        return _relayed(ctx, "asked for (--data-path relay)")
    if path == "auto" and ctx.options.bwlimit_bytes_per_s is not None:
        return _relayed(ctx, "--bwlimit caps the stream where it passes this machine")
    transfer: Transfer = (
        SSHDirectTransfer(ctx) if path == "ssh" else TLSTransfer(ctx, proved=path == "auto")
    )
    if transfer.prepare():
        ctx.report.data_path = "ssh" if path == "ssh" else "tls"
        ctx.report.data_path_reason = _why_host_to_host(path, transfer)
        ctx.notice(f"the archive goes host to host: {ctx.report.data_path_reason}")
        return transfer
    if isinstance(transfer, TLSTransfer):
        ctx.warn(
            f"{ctx.source_text} cannot stream to {ctx.target_text} over TLS "
            f"({transfer.why_not}); the archive is relayed through this machine"
        )
        return _relayed(ctx, f"no host-to-host link: {transfer.why_not}")
    return _relayed(ctx, "the source cannot log in to the target (--data-path ssh)")


def _relayed(ctx: MigrationContext, reason: str) -> RelayTransfer:
    ctx.report.data_path = "relay"
    ctx.report.data_path_reason = reason
    return RelayTransfer(ctx)


def _why_host_to_host(path: str, transfer: Transfer) -> str:
    if path == "ssh":
        return "asked for (--data-path ssh)"
    if path == "tls":
        return "asked for (--data-path tls)"
    proof = transfer.proof if isinstance(transfer, TLSTransfer) else None
    if proof is None:
        return "auto"
    return f"auto: TLS link proved ({megabytes(proof.bytes)} in {proof.seconds:.2f} s)"


def _make_workdirs(ctx: MigrationContext) -> None:
    timeout = ctx.options.command_timeout_s
    info = ctx.progress.source_info
    source, target = ctx.sessions()
    if ctx.report.image_staged and info is not None:
        # staging may have taken minutes: preflight's reading is stale by now
        ctx.memory_in_use = source.run(commands.container_stats(info.id), timeout=timeout)
    # the target's work directory is where the archive lands: on tmpfs if it fits
    landing = None
    if info is not None and (estimate := _archive_estimate(ctx, info)):
        landing = commands.make_landing_workdir(info.id, estimate)

    def make(session: SSHSession) -> str:
        if session is target and landing:
            argv = landing
        else:
            argv = commands.make_workdir(info.id) if info else commands.make_workdir()
        made = session.run(
            argv, timeout=timeout, check=True, what="creating a private work directory"
        )
        if argv is not landing:
            if session is target:
                ctx.report.landing = commands.LANDING_DISK
            return made.stdout.strip()
        try:
            workdir, ctx.report.landing = commands.parse_landing_workdir(made.stdout)
        except ValueError as error:
            raise PreflightFailed(f"{ctx.target_text}: {error}", host=ctx.target_text) from error
        return workdir

    source_dir, target_dir = ctx.hosts.both(make)
    ctx.progress.source_workdir = source_dir
    ctx.progress.target_workdir = target_dir
    ctx.progress.state = State.PREPARED


def _archive_estimate(ctx: MigrationContext, info: ContainerInfo) -> int | None:
    """How large the archive may get, from the container's memory in use as preflight
    read it (None when podman could not say: the archive then lands on disk)."""
    sample = ctx.memory_in_use
    if sample is None:
        return None
    usage = parse_memory_usage(sample.stdout) if sample.ok else {}
    memory = usage.get(info.id[:12]) or usage.get(info.id) or usage.get(info.name)
    if not memory:
        return None
    # pre-copy lands a second archive beside the final one
    return commands.archive_size_estimate(memory) * (2 if ctx.precopy else 1)


def _choose_compression(ctx: MigrationContext, transfer: Transfer) -> None:
    """``--compress auto``: measure the link and how well the memory compresses."""
    source, _ = ctx.sessions()
    info = ctx.progress.info()
    started = time.monotonic()
    try:
        # both at once: each pays a connection set-up
        measured, sampled = run_together(
            partial(transfer.measure_link, PROBE_BYTES),
            partial(_memory_sample, ctx, source, info.pid),
        )
        link, sample = cast(LinkMeasurement, measured), cast(bytes, sampled)
    except (CelestialError, OSError) as error:
        ctx.compression = "none"
        ctx.warn(
            f"--compress auto could not measure the link ({one_line(error)}); "
            "sending the archive uncompressed"
        )
        return
    estimate = compressibility(sample)
    limit = ctx.options.bwlimit_bytes_per_s
    choice = choose_compression(
        link_bytes_per_s=min(link.bytes_per_s, limit) if limit else link.bytes_per_s,
        ratio=estimate.ratio,
        # every predicted time grows linearly with the size, so the choice does not
        # depend on it; a nominal size keeps the reason's seconds readable
        archive_bytes_estimate=NOMINAL_ARCHIVE_BYTES,
    )
    ctx.compression = choice.compression
    ctx.report.compression_choice = choice.reason
    ctx.time_step("compression_choice", started)
    ctx.notice(f"--compress auto chose {choice.reason}")


def _memory_sample(ctx: MigrationContext, source: SSHSession, pid: int) -> bytes:
    if pid <= 0:
        return b""
    reader = ctx.data_plane().start(source, sample_memory_command(pid))
    chunks = []
    try:
        reader.set_read_timeout(10.0)
        while chunk := reader.read(1 << 20):
            chunks.append(chunk)
        reader.wait(30.0)
    finally:
        reader.kill()
    return b"".join(chunks)


def _copy_memory_while_running(ctx: MigrationContext) -> None:
    """Pre-copy: dump the memory while the container runs and land it on the target,
    so the freeze only moves the pages dirtied since.

    podman redumps all memory on every ``--pre-checkpoint`` (it keeps no parent images
    between pre-dumps), so more rounds only pay where the convergence rule says so;
    the default is one round (:data:`PRECOPY_POLICY`). The dump is always relayed.
    """
    info = ctx.progress.info()
    source_workdir, target_workdir = ctx.progress.workdirs()
    source, target = ctx.sessions()
    previous = f"{source_workdir}/{PREVIOUS_ARCHIVE_NAME}"
    started = time.monotonic()

    def dump_round(number: int) -> int:
        dumped = source.run(
            pre_checkpoint_export(info.id, previous, compression=ctx.compression),
            timeout=ctx.options.restore_timeout_s,
            check=True,
            what=f"pre-copy round {number} of {info.name}",
        )
        return pages_written(dumped.stdout)

    try:
        rounds = run_precopy_rounds(PRECOPY_POLICY, dump_round)
    except OutputError as error:
        raise PreflightFailed(
            f"{ctx.source_text}: cannot read the pre-copy statistics: {error}",
            host=ctx.source_text,
        ) from error
    plane = ctx.data_plane()
    sender = plane.start(source, ["cat", "--", previous])
    landing = f"{target_workdir}/{PREVIOUS_ARCHIVE_NAME}"
    receiver = plane.start(target, commands.receive_file(landing))
    try:
        moved = ctx.relay(sender, receiver, "pre-copy")
        for process, host in ((sender, ctx.source_text), (receiver, ctx.target_text)):
            ended = process.wait(ctx.options.command_timeout_s)
            if not ended.ok:
                raise RemoteCommandFailed(
                    f"{host}: moving the pre-copy archive failed",
                    host=host,
                    command=ended.command,
                    exit_status=ended.exit_status,
                    stderr=ended.stderr,
                )
    except BaseException:
        sender.kill()
        receiver.kill()
        raise
    ctx.previous_archive = landing
    ctx.report.bytes_transferred += moved.bytes
    ctx.time_step("pre_copy", started)
    pages = ", ".join(str(count) for count in rounds.pages_per_round)
    ctx.report.precopy = (
        f"{rounds.rounds} round(s) while running ({pages} pages, "
        f"{megabytes(moved.bytes)}); stopped because {rounds.stop_reason}"
    )
    ctx.notice(f"pre-copy: {ctx.report.precopy}")
