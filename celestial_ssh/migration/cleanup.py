"""Cleaning up after a migration that got through: the source's stopped copy (unless
``keep_source``) and both work directories; failures here are warnings only."""

from __future__ import annotations

from .. import commands
from ..events import Phase
from ..parallel import run_together
from ..podman_json import flatten_stats, parse_stats
from ..ssh import CommandResult
from .context import MigrationContext
from .state import State


def clean_up(ctx: MigrationContext) -> None:
    source, target = ctx.sessions()
    progress = ctx.progress
    timeout = ctx.options.command_timeout_s
    with ctx.phase(Phase.CLEANUP) as outcome:
        done = []
        info = progress.source_info
        remove_copy = info is not None and not ctx.options.keep_source

        def tidy_source_workdir() -> CommandResult | None:
            workdir = progress.source_workdir
            if not workdir:
                return None
            stats = source.run(
                ["cat", f"{workdir}/{commands.CHECKPOINT_STATS_NAME}"], timeout=timeout
            )
            if stats.ok:
                ctx.report.checkpoint_stats = flatten_stats(parse_stats(stats.stdout))
            return source.run(commands.remove_workdir(workdir), timeout=timeout)

        def remove_source_copy() -> CommandResult | None:
            if not remove_copy:
                return None
            assert info is not None
            return source.run(commands.container_remove(info.id), timeout=timeout)

        def remove_target_workdir() -> CommandResult | None:
            workdir = progress.target_workdir
            return (
                target.run(commands.remove_workdir(workdir), timeout=timeout) if workdir else None
            )

        # three independent steps, at once (notices follow, in a fixed order)
        workdir_removed, removed, target_workdir_removed = run_together(
            tidy_source_workdir, remove_source_copy, remove_target_workdir
        )
        if removed is not None and removed.ok:
            done.append(f"removed the stopped source copy on {ctx.source_text}")
        elif removed is not None:
            ctx.warn(
                f"could not remove the stopped copy on {ctx.source_text}: "
                f"{removed.stderr.strip()[-200:]}"
            )
        elif info:
            done.append(f"kept the stopped source copy on {ctx.source_text}")
        for session, workdir, result in (
            (source, progress.source_workdir, workdir_removed),
            (target, progress.target_workdir, target_workdir_removed),
        ):
            if result is not None and not result.ok:
                ctx.warn(f"could not remove {workdir} on {session.host.name}")
        progress.source_workdir = progress.target_workdir = None
        progress.state = State.CLEANED
        outcome["detail"] = "; ".join(done) or "archives removed"
