"""Pre-copy: dirty-tracking detection, the exact podman commands, and when to stop pre-dumping.

Our machines cannot run pre-copy (no soft-dirty tracking in their kernels), so everything
the engine relies on is pinned here without podman or CRIU.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import pytest

from celestial_ssh import precopy
from celestial_ssh.errors import InvalidInput
from celestial_ssh.podman_json import OutputError
from celestial_ssh.precopy import (
    ANOTHER_ROUND,
    FINAL_DUMP,
    NO_DIRTY_TRACKING,
    PrecopyDecision,
    PrecopyPolicy,
    PrecopyResult,
    PrecopySupport,
    combine_support,
    dirty_tracking_check,
    next_step,
    pages_written,
    parse_dirty_tracking,
    pre_checkpoint_export,
    run_precopy_rounds,
)

CID = "3f1c2a9b8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a"
WORKDIR = "/var/tmp/celestial-ssh.AbC123xYz0"
PRE = f"{WORKDIR}/pre-checkpoint.tar"
SUDO = ("sudo", "-n", "podman")

GOOD = PrecopySupport(True, "mem_dirty_track is supported")
OFF = PrecopySupport(False, "Dirty tracking is OFF. Memory snapshot will not work.")
OLD = PrecopySupport(False, "Unknown feature mem_dirty_track")


# -- capability --------------------------------------------------------------------------
def test_dirty_tracking_check() -> None:
    assert dirty_tracking_check() == ["criu", "check", "--feature", "mem_dirty_track"]


@pytest.mark.parametrize(
    ("status", "output", "expected"),
    [
        pytest.param(
            0,
            "mem_dirty_track is supported\n",
            PrecopySupport(True, "mem_dirty_track is supported"),
            id="supported",
        ),
        pytest.param(
            0, "", PrecopySupport(True, "mem_dirty_track is supported"), id="supported-silent"
        ),
        pytest.param(
            0,
            "Warn  (criu/kerndat.c:1234): something minor\nmem_dirty_track is supported\n\n",
            PrecopySupport(True, "mem_dirty_track is supported"),
            id="supported-after-warning",
        ),
        pytest.param(
            1,
            "Warn  (criu/cr-check.c:1235): Dirty tracking is OFF. Memory snapshot will not work.\n",
            OFF,
            id="off-criu-prefix-stripped",
        ),
        pytest.param(
            1,
            "(00.004127) Warn  (criu/cr-check.c:1235): "
            "Dirty tracking is OFF. Memory snapshot will not work.\n",
            OFF,
            id="off-timestamp-and-prefix-stripped",
        ),
        pytest.param(
            1,
            "Dirty tracking is OFF. Memory snapshot will not work.\n  \n\n",
            OFF,
            id="off-trailing-blank-lines",
        ),
        pytest.param(
            1,
            "CRIU is missing features\n",
            PrecopySupport(False, "CRIU is missing features"),
            id="missing-features",
        ),
        pytest.param(
            1,
            "Error (criu/cr-check.c:1711): Unknown feature mem_dirty_track\n",
            OLD,
            id="old-criu",
        ),
        pytest.param(
            127,
            "sh: 1: criu: not found\n",
            PrecopySupport(False, "sh: 1: criu: not found"),
            id="no-criu",
        ),
        pytest.param(1, "", PrecopySupport(False, NO_DIRTY_TRACKING), id="silent-failure"),
        pytest.param(1, " \n\t\n", PrecopySupport(False, NO_DIRTY_TRACKING), id="blank-failure"),
        pytest.param(-1, "", PrecopySupport(False, NO_DIRTY_TRACKING), id="killed"),
    ],
)
def test_parse_dirty_tracking(status: int, output: str, expected: PrecopySupport) -> None:
    assert parse_dirty_tracking(status, output) == expected


def test_parse_dirty_tracking_exit_status_decides() -> None:
    # a zero exit is trusted whatever was printed before; a non-zero one never is
    assert parse_dirty_tracking(0, "Dirty tracking is OFF?").supported
    assert not parse_dirty_tracking(1, "mem_dirty_track is supported").supported


def test_parse_dirty_tracking_bounds_the_reason() -> None:
    reason = parse_dirty_tracking(1, "x" * 5000).reason
    assert reason == "x" * 300


def test_default_reason_names_soft_dirty() -> None:
    assert "soft-dirty" in NO_DIRTY_TRACKING


@pytest.mark.parametrize(
    ("source", "target", "supported", "reason"),
    [
        pytest.param(
            GOOD, GOOD, True, "dirty page tracking available on lab-a and lab-b", id="both"
        ),
        pytest.param(
            OFF,
            GOOD,
            False,
            f"no dirty page tracking on lab-a: {OFF.reason}",
            id="source-lacks",
        ),
        pytest.param(
            GOOD,
            OLD,
            False,
            "no dirty page tracking on lab-b: Unknown feature mem_dirty_track",
            id="target-lacks",
        ),
        pytest.param(
            OFF,
            OLD,
            False,
            f"no dirty page tracking on lab-a: {OFF.reason}; lab-b: {OLD.reason}",
            id="neither",
        ),
    ],
)
def test_combine_support(
    source: PrecopySupport, target: PrecopySupport, supported: bool, reason: str
) -> None:
    assert combine_support(source, target, "lab-a", "lab-b") == PrecopySupport(supported, reason)


# -- commands ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            pre_checkpoint_export("web", PRE),
            [
                "podman", "container", "checkpoint", "--pre-checkpoint", "--export", PRE,
                "--compress", "none", "--print-stats", "--", "web",
            ],
            id="pre-checkpoint-default",
        ),
        pytest.param(
            pre_checkpoint_export(CID, PRE, compression="zstd", podman=SUDO),
            [
                "sudo", "-n", "podman", "container", "checkpoint", "--pre-checkpoint",
                "--export", PRE, "--compress", "zstd", "--print-stats", "--", CID,
            ],
            id="pre-checkpoint-zstd-sudo",
        ),
        pytest.param(
            pre_checkpoint_export("web", PRE, compression="gzip"),
            [
                "podman", "container", "checkpoint", "--pre-checkpoint", "--export", PRE,
                "--compress", "gzip", "--print-stats", "--", "web",
            ],
            id="pre-checkpoint-gzip",
        ),
    ],
)  # fmt: skip
def test_exact_argv(argv: list[str], expected: list[str]) -> None:
    assert argv == expected


def test_pre_checkpoint_never_stops_the_container_or_chains() -> None:
    # --pre-checkpoint implies leaving the container running, and podman refuses it
    # together with --with-previous
    argv = pre_checkpoint_export("web", PRE)
    assert "--with-previous" not in argv
    assert "--leave-running" not in argv


def test_builders_return_fresh_lists() -> None:
    first = pre_checkpoint_export("web", PRE)
    first.append("--oops")
    assert pre_checkpoint_export("web", PRE)[-1] == "web"


HOSTILE_NAMES = [
    "",
    "-rf",
    "--all",
    "web; rm -rf /",
    "web && reboot",
    "$(reboot)",
    "`id`",
    "web\nid",
    "web name",
    "../web",
    "web/../x",
    "'web'",
    "web|cat",
    ".hidden",
    "_web",
    "a" * 254,
]
HOSTILE_PATHS = [
    "",
    "relative/pre.tar",
    "pre.tar",
    "-e",
    "/tmp/a b.tar",
    "/tmp/$(id).tar",
    "/tmp/`id`.tar",
    "/tmp/x;rm -rf /",
    "/tmp/x\n/etc/passwd",
    "/tmp/../etc/shadow",
    "/var/tmp/..",
    "/tmp/x'y",
    "/tmp/x|y",
    "/tmp/*",
    "~/pre.tar",
]


@pytest.mark.parametrize("container", HOSTILE_NAMES)
def test_hostile_container_refused(container: str) -> None:
    with pytest.raises(InvalidInput):
        pre_checkpoint_export(container, PRE)


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_hostile_paths_refused(path: str) -> None:
    with pytest.raises(InvalidInput):
        pre_checkpoint_export("web", path)


@pytest.mark.parametrize("compression", ["", "xz", "ZSTD", "zstd; id", "--print-stats", "lz4"])
def test_unknown_compression_refused(compression: str) -> None:
    with pytest.raises(ValueError, match="compression"):
        pre_checkpoint_export("web", PRE, compression=compression)


# -- pages_written -------------------------------------------------------------------------
def stats(**criu: Any) -> str:
    """`podman container checkpoint --pre-checkpoint --print-stats` output (podman 4.3.1)."""
    return json.dumps(
        {
            "podman_checkpoint_duration": 360749,
            "container_statistics": [
                {
                    "Id": CID,
                    "runtime_checkpoint_duration": 337361,
                    "criu_statistics": {
                        "freezing_time": 1149,
                        "frozen_time": 29373,
                        "memdump_time": 13461,
                        "memwrite_time": 5467,
                        "pages_scanned": 18812,
                        **criu,
                    },
                }
            ],
        },
        indent=4,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(stats(pages_written=2627), 2627, id="plain"),
        pytest.param(stats(pages_written=0), 0, id="zero"),
        pytest.param(f"{CID}\n{stats(pages_written=17)}\n", 17, id="noise-around"),
        pytest.param(json.dumps({"pages_written": 5}), 5, id="top-level"),
    ],
)
def test_pages_written(text: str, expected: int) -> None:
    assert pages_written(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("Error: no such container web", id="podman-error"),
        pytest.param("{not json", id="garbage"),
        pytest.param(stats(), id="missing"),
        pytest.param(stats(pages_written=None), id="null"),
        pytest.param(stats(pages_written="2627"), id="string"),
        pytest.param(stats(pages_written=True), id="bool"),
        pytest.param(stats(pages_written=-1), id="negative"),
        pytest.param(stats(pages_written=12.5), id="float"),
        pytest.param(json.dumps({"container_statistics": []}), id="no-container"),
    ],
)
def test_pages_written_refuses(text: str) -> None:
    with pytest.raises(OutputError, match="pages_written"):
        pages_written(text)


def test_pages_written_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        pages_written("")


# -- policy --------------------------------------------------------------------------------
def test_policy_defaults() -> None:
    assert PrecopyPolicy() == PrecopyPolicy(max_rounds=5, min_shrink=0.1, stop_below_pages=256)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"max_rounds": 0}, "max_rounds", id="zero-rounds"),
        pytest.param({"max_rounds": -3}, "max_rounds", id="negative-rounds"),
        pytest.param({"max_rounds": 2.0}, "max_rounds", id="float-rounds"),
        pytest.param({"max_rounds": True}, "max_rounds", id="bool-rounds"),
        pytest.param({"min_shrink": -0.01}, "min_shrink", id="negative-shrink"),
        pytest.param({"min_shrink": 1.0}, "min_shrink", id="shrink-one"),
        pytest.param({"min_shrink": 1}, "min_shrink", id="shrink-int-one"),
        pytest.param({"min_shrink": 2.5}, "min_shrink", id="shrink-above-one"),
        pytest.param({"min_shrink": float("nan")}, "min_shrink", id="shrink-nan"),
        pytest.param({"min_shrink": "0.1"}, "min_shrink", id="shrink-string"),
        pytest.param({"stop_below_pages": -1}, "stop_below_pages", id="negative-pages"),
        pytest.param({"stop_below_pages": 1.5}, "stop_below_pages", id="float-pages"),
    ],
)
def test_policy_validation(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PrecopyPolicy(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_rounds": 1},
        {"min_shrink": 0.0},
        {"min_shrink": 0},
        {"min_shrink": 0.999},
        {"stop_below_pages": 0},
    ],
)
def test_policy_accepts_boundaries(kwargs: dict[str, Any]) -> None:
    policy = PrecopyPolicy(**kwargs)
    # the boundary value is kept as given, and every other field keeps its default
    assert policy == dataclasses.replace(PrecopyPolicy(), **kwargs)
    assert {name: getattr(policy, name) for name in kwargs} == kwargs


def test_policy_is_frozen() -> None:
    policy = PrecopyPolicy()
    with pytest.raises(AttributeError):
        policy.max_rounds = 9  # type: ignore[misc]


# -- convergence rule ------------------------------------------------------------------------
DEFAULT = PrecopyPolicy()


@pytest.mark.parametrize(
    ("policy", "rounds", "action", "reason"),
    [
        pytest.param(DEFAULT, [], ANOTHER_ROUND, "no pre-dump round yet", id="nothing-yet"),
        pytest.param(
            DEFAULT,
            [60000],
            ANOTHER_ROUND,
            "round 1 wrote 60000 pages; the dirty set is still shrinking",
            id="first-round-big",
        ),
        pytest.param(
            DEFAULT,
            [100],
            FINAL_DUMP,
            "round 1 wrote 100 pages, below 256",
            id="first-round-small",
        ),
        pytest.param(
            DEFAULT, [255], FINAL_DUMP, "round 1 wrote 255 pages, below 256", id="just-below"
        ),
        pytest.param(
            DEFAULT,
            [256],
            ANOTHER_ROUND,
            "round 1 wrote 256 pages; the dirty set is still shrinking",
            id="at-threshold-is-not-below",
        ),
        pytest.param(
            DEFAULT,
            [60000, 30000],
            ANOTHER_ROUND,
            "round 2 wrote 30000 pages; the dirty set is still shrinking",
            id="halving",
        ),
        pytest.param(
            DEFAULT,
            [1000, 900],
            ANOTHER_ROUND,
            "round 2 wrote 900 pages; the dirty set is still shrinking",
            id="exactly-10-percent-smaller",
        ),
        pytest.param(
            DEFAULT,
            [1000, 901],
            FINAL_DUMP,
            "dirty set stopped shrinking: round 2 wrote 901 pages after 1000 (needs at most 900)",
            id="just-under-10-percent",
        ),
        pytest.param(
            DEFAULT,
            [1000, 1000],
            FINAL_DUMP,
            "dirty set stopped shrinking: round 2 wrote 1000 pages after 1000 (needs at most 900)",
            id="flat",
        ),
        pytest.param(
            DEFAULT,
            [1000, 5000],
            FINAL_DUMP,
            "dirty set stopped shrinking: round 2 wrote 5000 pages after 1000 (needs at most 900)",
            id="growing",
        ),
        pytest.param(
            DEFAULT,
            [1000, 5000, 100],
            FINAL_DUMP,
            "round 3 wrote 100 pages, below 256",
            id="converged-beats-stalled",
        ),
        pytest.param(
            DEFAULT,
            [80000, 40000, 20000, 10000],
            ANOTHER_ROUND,
            "round 4 wrote 10000 pages; the dirty set is still shrinking",
            id="one-round-left",
        ),
        pytest.param(
            DEFAULT,
            [80000, 40000, 20000, 10000, 5000],
            FINAL_DUMP,
            "reached the limit of 5 rounds",
            id="max-rounds",
        ),
        pytest.param(
            DEFAULT,
            [80000, 40000, 20000, 10000, 100],
            FINAL_DUMP,
            "round 5 wrote 100 pages, below 256",
            id="converged-beats-max-rounds",
        ),
        pytest.param(
            DEFAULT,
            [80000, 40000, 20000, 10000, 9500],
            FINAL_DUMP,
            "dirty set stopped shrinking: round 5 wrote 9500 pages after 10000 "
            "(needs at most 9000)",
            id="stalled-beats-max-rounds",
        ),
        pytest.param(
            DEFAULT,
            [9000, 8000, 7000, 6000, 5000, 4000, 3000],
            FINAL_DUMP,
            "reached the limit of 5 rounds",
            id="beyond-max-rounds",
        ),
        pytest.param(
            PrecopyPolicy(max_rounds=1),
            [60000],
            FINAL_DUMP,
            "reached the limit of 1 rounds",
            id="single-round-policy",
        ),
        pytest.param(
            PrecopyPolicy(min_shrink=0.0),
            [1000, 1000],
            ANOTHER_ROUND,
            "round 2 wrote 1000 pages; the dirty set is still shrinking",
            id="no-shrink-needed-flat-continues",
        ),
        pytest.param(
            PrecopyPolicy(min_shrink=0.0),
            [1000, 1001],
            FINAL_DUMP,
            "dirty set stopped shrinking: round 2 wrote 1001 pages after 1000 (needs at most 1000)",
            id="no-shrink-needed-growth-stops",
        ),
        pytest.param(
            PrecopyPolicy(min_shrink=0.5),
            [1000, 500],
            ANOTHER_ROUND,
            "round 2 wrote 500 pages; the dirty set is still shrinking",
            id="half-exactly",
        ),
        pytest.param(
            PrecopyPolicy(min_shrink=0.5),
            [1000, 501],
            FINAL_DUMP,
            "dirty set stopped shrinking: round 2 wrote 501 pages after 1000 (needs at most 500)",
            id="half-missed",
        ),
        pytest.param(
            # in floats 90 * (1 - 0.3) is 62.99999999999999, which would refuse 63
            PrecopyPolicy(min_shrink=0.3, stop_below_pages=0),
            [90, 63],
            ANOTHER_ROUND,
            "round 2 wrote 63 pages; the dirty set is still shrinking",
            id="exact-decimal-boundary-0.3",
        ),
        pytest.param(
            # in floats 10 * (1 - 0.9) is 0.9999999999999998, which would refuse 1
            PrecopyPolicy(min_shrink=0.9, stop_below_pages=0),
            [10, 1],
            ANOTHER_ROUND,
            "round 2 wrote 1 pages; the dirty set is still shrinking",
            id="exact-decimal-boundary-0.9",
        ),
        pytest.param(
            PrecopyPolicy(min_shrink=0.3, stop_below_pages=0),
            [90, 64],
            FINAL_DUMP,
            "dirty set stopped shrinking: round 2 wrote 64 pages after 90 (needs at most 63)",
            id="exact-decimal-boundary-0.3-missed",
        ),
        pytest.param(
            PrecopyPolicy(stop_below_pages=0),
            [1000, 0],
            FINAL_DUMP,
            "round 2 wrote no pages",
            id="nothing-dirtied",
        ),
        pytest.param(
            PrecopyPolicy(stop_below_pages=0),
            [0],
            FINAL_DUMP,
            "round 1 wrote no pages",
            id="idle-container",
        ),
        pytest.param(
            PrecopyPolicy(stop_below_pages=0),
            [5],
            ANOTHER_ROUND,
            "round 1 wrote 5 pages; the dirty set is still shrinking",
            id="no-threshold",
        ),
        pytest.param(
            PrecopyPolicy(stop_below_pages=10**9),
            [10**8],
            FINAL_DUMP,
            "round 1 wrote 100000000 pages, below 1000000000",
            id="huge-threshold",
        ),
    ],
)
def test_next_step(policy: PrecopyPolicy, rounds: Sequence[int], action: str, reason: str) -> None:
    assert next_step(policy, rounds) == PrecopyDecision(action, reason)  # type: ignore[arg-type]


def test_next_step_accepts_any_sequence() -> None:
    assert next_step(DEFAULT, (60000, 30000)).action == ANOTHER_ROUND


@pytest.mark.parametrize(
    "rounds",
    [
        pytest.param([-1], id="negative"),
        pytest.param([1000, -5], id="negative-later"),
        pytest.param([1.5], id="float"),
        pytest.param([True], id="bool"),
        pytest.param(["1000"], id="string"),
        pytest.param([None], id="none"),
    ],
)
def test_next_step_refuses_bad_counts(rounds: list[Any]) -> None:
    with pytest.raises(ValueError, match="non-negative integers"):
        next_step(DEFAULT, rounds)


# -- the planner -----------------------------------------------------------------------------
class FakeDumps:
    """A dump_round that replays a fixed series of page counts and records the calls."""

    def __init__(self, pages: Sequence[int]) -> None:
        self.pages = list(pages)
        self.calls: list[int] = []

    def __call__(self, round_number: int) -> int:
        self.calls.append(round_number)
        return self.pages[round_number - 1]


@pytest.mark.parametrize(
    ("policy", "series", "rounds", "reason"),
    [
        pytest.param(
            DEFAULT,
            [100],
            (100,),
            "round 1 wrote 100 pages, below 256",
            id="small-at-once",
        ),
        pytest.param(
            DEFAULT,
            [60000, 30000, 200],
            (60000, 30000, 200),
            "round 3 wrote 200 pages, below 256",
            id="converges",
        ),
        pytest.param(
            DEFAULT,
            [60000, 59000],
            (60000, 59000),
            "dirty set stopped shrinking: round 2 wrote 59000 pages after 60000 "
            "(needs at most 54000)",
            id="stalls",
        ),
        pytest.param(
            DEFAULT,
            [80000, 40000, 20000, 10000, 5000, 2500, 1250],
            (80000, 40000, 20000, 10000, 5000),
            "reached the limit of 5 rounds",
            id="runs-out-of-rounds",
        ),
        pytest.param(
            PrecopyPolicy(max_rounds=1),
            [60000, 1],
            (60000,),
            "reached the limit of 1 rounds",
            id="one-round",
        ),
        pytest.param(
            PrecopyPolicy(max_rounds=3, min_shrink=0.0, stop_below_pages=0),
            [7, 7, 7, 7],
            (7, 7, 7),
            "reached the limit of 3 rounds",
            id="flat-without-shrink-rule",
        ),
    ],
)
def test_run_precopy_rounds(
    policy: PrecopyPolicy, series: list[int], rounds: tuple[int, ...], reason: str
) -> None:
    dumps = FakeDumps(series)
    result = run_precopy_rounds(policy, dumps)
    assert result == PrecopyResult(rounds, reason)
    assert result.rounds == len(rounds)
    assert dumps.calls == list(range(1, len(rounds) + 1))


def test_run_precopy_rounds_propagates_failures_unchanged() -> None:
    calls: list[int] = []

    class DumpFailed(Exception):
        pass

    def dump_round(round_number: int) -> int:
        calls.append(round_number)
        if round_number == 2:
            raise DumpFailed("podman exited 125")
        return 60000

    with pytest.raises(DumpFailed, match="125"):
        run_precopy_rounds(DEFAULT, dump_round)
    assert calls == [1, 2]


def test_run_precopy_rounds_refuses_a_bad_count_from_the_dump() -> None:
    with pytest.raises(ValueError, match="non-negative integers"):
        run_precopy_rounds(DEFAULT, lambda _round: -1)


@pytest.mark.parametrize("max_rounds", [1, 2, 5, 20])
def test_run_precopy_rounds_never_exceeds_max_rounds(max_rounds: int) -> None:
    # a dirty set shrinking by exactly the minimum forever: only max_rounds stops it
    policy = PrecopyPolicy(max_rounds=max_rounds, min_shrink=0.0, stop_below_pages=0)
    dumps = FakeDumps([10**6] * 100)
    result = run_precopy_rounds(policy, dumps)
    assert result.rounds == max_rounds
    assert result.stop_reason == f"reached the limit of {max_rounds} rounds"


def test_run_precopy_rounds_with_pages_from_stats() -> None:
    # the engine's closure: run the remote pre-checkpoint, read pages_written from its stats
    outputs = iter([stats(pages_written=70000), stats(pages_written=9000), stats(pages_written=80)])
    result = run_precopy_rounds(DEFAULT, lambda _round: pages_written(next(outputs)))
    assert result.pages_per_round == (70000, 9000, 80)


def test_public_names() -> None:
    for name in (
        "PrecopySupport",
        "dirty_tracking_check",
        "parse_dirty_tracking",
        "combine_support",
        "pre_checkpoint_export",
        "pages_written",
        "PrecopyPolicy",
        "PrecopyDecision",
        "next_step",
        "PrecopyResult",
        "run_precopy_rounds",
    ):
        assert hasattr(precopy, name), name
