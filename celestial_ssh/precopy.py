"""Iterative pre-copy: copy a container's memory while it keeps running, then freeze briefly.

A plain checkpoint freezes the container for as long as CRIU needs to write *all* of its
memory, and the migration's downtime grows with the container's size. Pre-copy moves most
of that work out of the freeze: ``podman container checkpoint --pre-checkpoint`` dumps the
memory while the container goes on running, the archive travels to the target, and only
then does the final ``--with-previous`` checkpoint freeze the container and write just the
pages dirtied since the pre-dump. The target restores from both archives
(``--import`` plus ``--import-previous``).

Knowing which pages were dirtied needs the kernel's soft-dirty page tracking
(``CONFIG_MEM_SOFT_DIRTY``; not implemented on every architecture, and absent from
kernels built without it). ``criu check --feature mem_dirty_track`` reports it; without it
podman refuses both flags, so pre-copy must be detected and reported, never assumed.

What podman itself offers (read in podman's source): every ``--pre-checkpoint``
writes into the container's one ``pre-checkpoint`` directory without a parent image, so a
second pre-checkpoint dumps all memory again and replaces the first, and the final dump's
parent is always the latest pre-checkpoint; ``--import-previous`` takes one archive. The
round logic below is general (it is what CRIU's own pre-dump chain allows), but through
podman's CLI only the last round's archive matters.

Everything here is pure: argument lists, parsing and decisions. Nothing runs anything; the
engine runs the commands and feeds the results back in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, Literal

from .commands import CheckpointOptions
from .podman_json import OutputError, flatten_stats, parse_stats
from .shell import validate_container_name, validate_remote_path

# -- capability --------------------------------------------------------------------------
DIRTY_TRACKING_FEATURE: Final = "mem_dirty_track"
NO_DIRTY_TRACKING: Final = (
    "the kernel lacks soft-dirty page tracking (CONFIG_MEM_SOFT_DIRTY), "
    "which CRIU needs to dump only the pages changed since the previous round"
)
# podman's own refusal when asked for --pre-checkpoint or --with-previous on a host without
# dirty tracking; the engine can recognise it in stderr if a host changed under it
PODMAN_NO_MEMORY_TRACKING: Final = "does not support memory tracking"

# CRIU prefixes its warnings and errors with the source location ("Warn  (criu/cr-check.c:
# 1235): ...") and, at higher log levels, a timestamp; the message alone reads better
_CRIU_LOG_PREFIX = re.compile(r"^(?:\(\s*[0-9.]+\)\s*)?(?:Warn|Error|Info|Debug)\s*\([^)]*\):\s*")
_MAX_REASON = 300


@dataclass(frozen=True)
class PrecopySupport:
    supported: bool
    reason: str


def dirty_tracking_check() -> list[str]:
    """Ask CRIU whether this kernel tracks dirty pages (it must run as root, like podman)."""
    return ["criu", "check", "--feature", DIRTY_TRACKING_FEATURE]


def parse_dirty_tracking(exit_status: int, output: str) -> PrecopySupport:
    """Read :func:`dirty_tracking_check`'s exit status and its stdout and stderr together.

    CRIU exits 0 and prints ``mem_dirty_track is supported`` when the kernel tracks dirty
    pages; otherwise it exits non-zero, and its last line says why ("Dirty tracking is OFF.
    Memory snapshot will not work.", an unknown feature on an old CRIU, not root, no criu).
    """
    lines = [_CRIU_LOG_PREFIX.sub("", line).strip() for line in output.splitlines()]
    last = next((line for line in reversed(lines) if line), "")[:_MAX_REASON]
    if exit_status == 0:
        return PrecopySupport(True, last or f"{DIRTY_TRACKING_FEATURE} is supported")
    return PrecopySupport(False, last or NO_DIRTY_TRACKING)


def combine_support(
    source: PrecopySupport, target: PrecopySupport, source_name: str, target_name: str
) -> PrecopySupport:
    """Pre-copy is offered only when both hosts track dirty pages.

    Only the source dumps pages, but the target's CRIU restores a checkpoint whose memory
    is split between the final images and their parent (the pre-dump): requiring both is
    the safe rule, and it also keeps a migration back the other way possible.
    """
    if source.supported and target.supported:
        return PrecopySupport(
            True, f"dirty page tracking available on {source_name} and {target_name}"
        )
    lacking = [
        f"{name}: {support.reason}"
        for name, support in ((source_name, source), (target_name, target))
        if not support.supported
    ]
    return PrecopySupport(False, "no dirty page tracking on " + "; ".join(lacking))


# -- commands ----------------------------------------------------------------------------
def pre_checkpoint_export(
    container: str,
    export_path: str,
    *,
    compression: str = "none",
    podman: Sequence[str] = ("podman",),
) -> list[str]:
    """Dump the container's memory into ``export_path`` while it keeps running.

    ``--pre-checkpoint`` implies leaving the container running (podman never stops it after
    a pre-dump, and the runtime is called with ``--pre-dump``), so ``--leave-running`` is
    not passed: one flag less for the runtime to interpret. TCP and file-lock options do not
    apply to a memory-only dump; they belong to the final checkpoint.
    """
    validate_container_name(container)
    validate_remote_path(export_path)
    # CheckpointOptions owns the list of compressions podman accepts
    CheckpointOptions(compression=compression)
    return [
        *podman,
        "container",
        "checkpoint",
        "--pre-checkpoint",
        "--export",
        export_path,
        "--compress",
        compression,
        "--print-stats",
        "--",
        container,
    ]


def pages_written(stats_json: str) -> int:
    """CRIU's ``pages_written`` from podman's ``--print-stats`` output.

    A missing or malformed figure is an error, not 0: 0 would read as "converged" and end
    pre-copy on data we never had.
    """
    value = flatten_stats(parse_stats(stats_json)).get("pages_written")
    # JSON true is an int to Python; a page count never is
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise OutputError(
            f"no pages_written in podman's checkpoint statistics: {stats_json[:200]!r}"
        )
    return value


# -- rounds ------------------------------------------------------------------------------
Action = Literal["another_round", "final_dump"]
ANOTHER_ROUND: Final = "another_round"
FINAL_DUMP: Final = "final_dump"


@dataclass(frozen=True)
class PrecopyPolicy:
    """When to stop pre-dumping and freeze.

    ``min_shrink`` is the fraction by which each round must shrink the dirty set to be
    worth another one (0.1: a round must write at most 90% of the previous round's pages);
    ``stop_below_pages`` is a dirty set small enough to freeze for at once.
    """

    max_rounds: int = 5
    min_shrink: float = 0.1
    stop_below_pages: int = 256

    def __post_init__(self) -> None:
        if isinstance(self.max_rounds, bool) or not isinstance(self.max_rounds, int):
            raise ValueError("max_rounds must be an integer")
        if self.max_rounds < 1:
            raise ValueError("max_rounds must be at least 1")
        if isinstance(self.min_shrink, bool) or not isinstance(self.min_shrink, (int, float)):
            raise ValueError("min_shrink must be a number")
        # NaN fails both comparisons, so it is refused here too
        if not 0 <= self.min_shrink < 1:
            raise ValueError("min_shrink must be at least 0 and less than 1")
        if isinstance(self.stop_below_pages, bool) or not isinstance(self.stop_below_pages, int):
            raise ValueError("stop_below_pages must be an integer")
        if self.stop_below_pages < 0:
            raise ValueError("stop_below_pages must not be negative")


@dataclass(frozen=True)
class PrecopyDecision:
    action: Action
    reason: str


def next_step(policy: PrecopyPolicy, pages_written_per_round: Sequence[int]) -> PrecopyDecision:
    """Another pre-dump round, or the final dump, given the pages each round wrote so far.

    When several stop rules hold, the reason names the most telling one: converged, then
    stalled, then out of rounds.
    """
    rounds = list(pages_written_per_round)
    for pages in rounds:
        if isinstance(pages, bool) or not isinstance(pages, int) or pages < 0:
            raise ValueError(f"pages written per round must be non-negative integers: {pages!r}")
    if not rounds:
        return PrecopyDecision(ANOTHER_ROUND, "no pre-dump round yet")
    last = rounds[-1]
    if last == 0:
        # nothing dirtied since the previous dump: another round cannot save anything
        return PrecopyDecision(FINAL_DUMP, f"round {len(rounds)} wrote no pages")
    if last < policy.stop_below_pages:
        return PrecopyDecision(
            FINAL_DUMP,
            f"round {len(rounds)} wrote {last} pages, below {policy.stop_below_pages}",
        )
    if len(rounds) >= 2:
        previous = rounds[-2]
        # exact arithmetic on the decimal the user wrote: 0.1 means exactly 10%, so a
        # round writing exactly 90% of the previous one counts as shrinking enough
        limit = previous * (1 - Fraction(repr(float(policy.min_shrink))))
        if last > limit:
            return PrecopyDecision(
                FINAL_DUMP,
                f"dirty set stopped shrinking: round {len(rounds)} wrote {last} pages "
                f"after {previous} (needs at most {float(limit):g})",
            )
    if len(rounds) >= policy.max_rounds:
        return PrecopyDecision(FINAL_DUMP, f"reached the limit of {policy.max_rounds} rounds")
    return PrecopyDecision(
        ANOTHER_ROUND, f"round {len(rounds)} wrote {last} pages; the dirty set is still shrinking"
    )


@dataclass(frozen=True)
class PrecopyResult:
    pages_per_round: tuple[int, ...]
    stop_reason: str

    @property
    def rounds(self) -> int:
        return len(self.pages_per_round)


def run_precopy_rounds(policy: PrecopyPolicy, dump_round: Callable[[int], int]) -> PrecopyResult:
    """Run pre-dump rounds until :func:`next_step` says to freeze; no I/O of its own.

    ``dump_round(n)`` performs round ``n`` (1-based) and returns its ``pages_written``. Its
    exceptions propagate unchanged: the engine decides how to roll back. At least one round
    always runs (``max_rounds >= 1``), and never more than ``max_rounds``.
    """
    pages: list[int] = []
    decision = next_step(policy, pages)
    while decision.action == ANOTHER_ROUND:
        pages.append(dump_round(len(pages) + 1))
        decision = next_step(policy, pages)
    return PrecopyResult(tuple(pages), decision.reason)
