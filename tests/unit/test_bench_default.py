"""The benchmark's default-data-path rows (issue 17): which modes run on which CLI, the
steps before the freeze read from the reports, the fallback's cost, the distant section
with a floor and several sizes, and results written before all this still read."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from .test_bench_floor import bench_module

NEW_HELP = """Usage: celestial-ssh migrate [OPTIONS] SOURCE TARGET CONTAINER
  --compress [none|zstd|gzip|auto]
  --transport [auto|openssh|paramiko]
  --data-path [auto|tls|ssh|relay]
                                  How the archive travels.
  --direct                        Same as --data-path ssh.
  --tls                           Same as --data-path tls.
  --tls-address ADDRESS           The target's address for TLS.
"""
# a CLI from before --data-path (which its help then mentions nowhere)
OLD_HELP = "\n".join(line for line in NEW_HELP.splitlines() if "data-path" not in line)


@pytest.fixture(scope="module")
def settings() -> ModuleType:
    return bench_module("settings")


@pytest.fixture(scope="module")
def summary() -> ModuleType:
    return bench_module("summary")


@pytest.fixture(scope="module")
def tables() -> ModuleType:
    return bench_module("tables")


def runnable(help_text: str, labels: list[str] | None = None) -> tuple[dict[str, str], Any]:
    settings = bench_module("settings")
    modes = [m for m in settings.MODES if labels is None or m.label in labels]
    kept, notes = bench_module("runs").runnable_modes(modes, help_text)
    return {m.label: m.text for m in kept}, notes


# -- which modes run ------------------------------------------------------------------


def test_a_cli_with_data_paths_runs_the_default_bare_and_the_relayed_rows_spelt_out() -> None:
    commands, notes = runnable(NEW_HELP)
    assert notes == {}
    assert commands["default"] == "celestial-ssh migrate"
    assert commands["tool"] == "celestial-ssh migrate --data-path relay"
    assert commands["tool-none"] == "celestial-ssh migrate --data-path relay --compress none"
    assert commands["fallback"] == "celestial-ssh migrate --tls-address 192.0.2.1"
    assert commands["tool-tls"] == "celestial-ssh migrate --tls --compress none"


def test_a_cli_without_data_paths_relays_with_no_flag_and_skips_the_fallback() -> None:
    commands, notes = runnable(OLD_HELP)
    assert commands["default"] == commands["tool"] == "celestial-ssh migrate"
    assert commands["tool-zstd"] == "celestial-ssh migrate --compress zstd"
    assert "fallback" not in commands
    assert notes["fallback"] == "skipped: the installed CLI has no --data-path"
    assert notes["tool"] == (
        "ran `celestial-ssh migrate` instead: the installed CLI has no --data-path"
    )


def test_a_data_path_choice_the_cli_lacks_falls_back_the_same_way() -> None:
    commands, notes = runnable(NEW_HELP.replace("|relay]", "]"), ["tool", "tool-none"])
    assert commands == {
        "tool": "celestial-ssh migrate",
        "tool-none": "celestial-ssh migrate --compress none",
    }
    assert "takes auto|tls|ssh, not relay" in notes["tool"]


def test_a_row_without_older_args_is_skipped_as_before(settings: ModuleType) -> None:
    mode = settings.Mode("x", "tool", ("--frobnicate",))
    kept, notes = bench_module("runs").runnable_modes([mode], NEW_HELP)
    assert (kept, notes) == ([], {"x": "skipped: the installed CLI has no --frobnicate"})


def test_the_distant_rows_follow_the_same_rules(settings: ModuleType) -> None:
    run = bench_module("runs").runnable_modes
    new = {m.label: m.text for m in run(settings.DISTANT_MODES, NEW_HELP)[0]}
    old = {m.label: m.text for m in run(settings.DISTANT_MODES, OLD_HELP)[0]}
    assert new == {
        "far-floor": "far-floor",
        "far-default": "celestial-ssh migrate",
        "far-relayed": "celestial-ssh migrate --data-path relay --compress none",
        "far-tls": "celestial-ssh migrate --tls --compress none",
    }
    assert old["far-relayed"] == "celestial-ssh migrate --compress none"


def test_the_fallback_address_is_no_loopback_address(settings: ModuleType) -> None:
    # all of 127/8 is this machine's: the target would listen there and the source reach it
    assert not settings.FALLBACK_ADDRESS.startswith("127.")
    assert settings.fallback_mode("10.9.9.9").args == ("--tls-address", "10.9.9.9")


def test_the_options_default_to_a_20_mbit_20_ms_coordinator_at_256_mb() -> None:
    parse = bench_module("main").parse_args
    args = parse([])
    assert (args.distant_rate, args.distant_delay, args.distant_sizes) == ("20mbit", "20ms", [256])
    assert args.fallback_address == "192.0.2.1"
    args = parse(["--distant-rate", "none", "--distant-size", "16", "--fallback-address", "x"])
    assert (args.distant_rate, args.distant_sizes, args.fallback_address) == (None, [16], "x")
    assert parse(["--distant-sizes", "256,1024"]).distant_sizes == [256, 1024]


# -- before the freeze ----------------------------------------------------------------


def test_the_time_before_the_freeze_ends_at_the_last_tick_before_the_gap() -> None:
    before = bench_module("runs").before_freeze_s
    workload = {"gap_before": {"counter": 5, "wall_ms": 10_500}, "gap_after": {"wall_ms": 12_000}}
    assert before(workload, 8_000) == 2.5
    assert before({"gap_before": None}, 8_000) is None
    assert before(None, 8_000) is None


def record(
    mode: str,
    size: int = 256,
    *,
    downtime: float = 2.0,
    before: float | None = 3.0,
    timings: dict[str, float] | None = None,
    ok: bool = True,
    transport: str = "openssh",
) -> dict[str, Any]:
    return {
        "run": 0,
        "mode": mode,
        "size_mb": size,
        "ok": ok,
        "error": None if ok else "restore: exit 1",
        "container": f"bench-{size}-{mode}",
        "downtime_s": downtime,
        "before_freeze_s": before,
        "total_s": (before or 0) + downtime + 1,
        "transport": transport,
        "compression": "none",
        "timings": timings or {},
    }


RELAYED_TIMINGS = {
    "connect": 0.1,
    "preflight": 1.5,
    "compression_choice": 1.0,
    "checkpoint": 1.0,
    "transfer": 1.0,
    "restore": 0.5,
    "verify": 0.1,
    "cleanup": 0.4,
}


def with_steps(**steps: float) -> dict[str, float]:
    """Relayed timings with ``steps`` where the tool records them: after preflight."""
    timings = dict(list(RELAYED_TIMINGS.items())[:3])
    timings.update(steps)
    timings.update(list(RELAYED_TIMINGS.items())[3:])
    return timings


def test_the_steps_shown_are_every_timing_before_the_freeze_whatever_its_name(
    summary: ModuleType,
) -> None:
    runs = [
        record("tool", timings=RELAYED_TIMINGS),
        record("fallback", timings=with_steps(host_to_host_probe=0.6, source_tidy_up=0.2)),
        record("x", timings=with_steps(brand_new_step=0.3), ok=False),  # failed: not shown
        record("default", timings={**with_steps(tls_setup=0.3), "rollback": 1.0}),
    ]
    assert summary.shown_steps(runs) == [
        "connect",
        "preflight",
        "compression_choice",
        "host_to_host_probe",
        "tls_setup",
        "cleanup",
    ]


# -- the fallback's cost --------------------------------------------------------------


def decision_runs(probe_step: str) -> list[dict[str, Any]]:
    runs = []
    for before, downtime in ((3.0, 3.0), (3.2, 3.1), (2.9, 3.2)):
        runs.append(record("floor", before=0.4, downtime=1.6))
        runs.append(record("tool", before=before, downtime=downtime, timings=RELAYED_TIMINGS))
        runs.append(
            record(
                "fallback",
                before=before + 0.7,
                downtime=downtime + 0.1,
                timings=with_steps(**{probe_step: 0.65}),
            )
        )
        runs.append(
            record(
                "default",
                before=before + 0.3,
                downtime=1.7,
                timings=with_steps(host_to_host_probe=0.3),
                transport="direct TLS (socat, to 127.0.0.12)",
            )
        )
    runs.append(record("fallback", ok=False, before=None))
    return runs


def decision_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    settings = bench_module("settings")
    modes = [m for m in settings.MODES if m.label in ("floor", "tool", "default", "fallback")]
    main = bench_module("summary").summarise(runs, modes, [256])
    return dict(bench_module("summary").decision_summary(runs, main))


def test_the_fallback_row_shows_its_attempt_the_time_it_adds_and_its_downtime() -> None:
    decision = decision_of(decision_runs("host_to_host_probe"))
    rows = {row["mode"]: row for row in decision["rows"]}
    assert list(rows) == ["default", "fallback", "tool"]  # the floor is no data-path row
    fallback = rows["fallback"]
    assert (fallback["runs"], fallback["failures"]) == (4, 1)
    assert fallback["attempt_s"] == 0.65
    assert fallback["before_freeze_s"] == pytest.approx(3.7)
    assert fallback["vs_relayed_before_freeze_s"] == pytest.approx(0.7)
    assert fallback["downtime_s"] == pytest.approx(3.2)
    assert fallback["vs_relayed"] == pytest.approx(1.03)
    assert fallback["vs_floor"] == pytest.approx(2.0)
    assert rows["default"]["vs_floor"] == pytest.approx(1.06)
    assert rows["default"]["chosen"] == "direct TLS (socat, to 127.0.0.12)/none"
    assert rows["tool"]["attempt_s"] is None
    assert rows["tool"]["vs_relayed_before_freeze_s"] == 0
    assert "host_to_host_probe" in decision["steps"]


def test_without_a_probe_step_the_steps_relaying_lacks_stand_for_the_attempt() -> None:
    decision = decision_of(decision_runs("tls_setup"))
    fallback = next(row for row in decision["rows"] if row["mode"] == "fallback")
    assert fallback["attempt_s"] == 0.65
    assert fallback["steps"]["tls_setup"] == 0.65


def test_without_the_relayed_reference_nothing_is_compared_to_it() -> None:
    runs = [r for r in decision_runs("tls_setup") if r["mode"] != "tool"]
    fallback = next(row for row in decision_of(runs)["rows"] if row["mode"] == "fallback")
    assert (fallback["attempt_s"], fallback["vs_relayed_before_freeze_s"]) == (None, None)
    assert (fallback["vs_relayed"], fallback["vs_floor"]) == (None, pytest.approx(2.0))


def test_the_data_path_table(tables: ModuleType) -> None:
    decision = decision_of(decision_runs("host_to_host_probe"))
    table = tables.decision_table(decision, markdown=True).splitlines()
    assert table[0] == (
        "| size | mode | ok | transport/compr. | before freeze s | vs tool s | host to host s "
        "| connect s | preflight s | compression_choice s | host_to_host_probe s | cleanup s "
        "| downtime s | ÷ floor | ÷ tool |"
    )
    fallback = next(line for line in table if "--tls-address" in line)
    assert fallback.startswith(
        "| 256 MB | fallback: `celestial-ssh migrate --tls-address 192.0.2.1` | 3/4 | openssh/none "
        "| 3.70 | +0.70 | 0.65 |"
    )
    assert fallback.endswith("| 3.20 | 2.00x | 1.03x |")
    plain = tables.decision_table(decision, markdown=False)
    assert "fallback" in plain and "`" not in plain


# -- the distant section --------------------------------------------------------------


def distant_section(settings: ModuleType, summary: ModuleType) -> dict[str, Any]:
    runs = []
    for size, floor in ((256, 1.6), (1024, 9.0)):
        for run in range(3):
            runs.append({**record("far-floor", size, downtime=floor + run / 10), "run": run})
            runs.append(
                {
                    **record(
                        "far-default",
                        size,
                        downtime=floor * 1.1,
                        timings=with_steps(host_to_host_probe=0.5, tls_setup=0.4),
                        transport="direct TLS (socat, to 127.0.0.12)",
                    ),
                    "run": run,
                }
            )
            runs.append(
                {
                    **record("far-relayed", size, downtime=floor * 40, timings=RELAYED_TIMINGS),
                    "run": run,
                }
            )
    return {
        "delay": "20ms",
        "rate": "20mbit",
        "link": "20mbit and 20ms each way",
        "sizes": [256, 1024],
        "runs": runs,
        "notes": ["far-tls: skipped: the installed CLI has no --tls"],
        "summary": summary.distant_summary(runs, settings.DISTANT_MODES, [256, 1024]),
        "steps": summary.shown_steps(runs),
    }


def test_the_distant_rows_have_a_ratio_to_the_floor_per_size_and_the_reports_steps(
    settings: ModuleType, summary: ModuleType, tables: ModuleType
) -> None:
    section = distant_section(settings, summary)
    rows = {(row["size_mb"], row["mode"]): row for row in section["summary"]}
    assert list(rows) == [
        (256, "far-floor"),
        (256, "far-default"),
        (256, "far-relayed"),
        (1024, "far-floor"),
        (1024, "far-default"),
        (1024, "far-relayed"),
    ]
    assert rows[256, "far-default"]["vs_floor"] == pytest.approx(1.04)
    assert rows[1024, "far-relayed"]["vs_floor"] == pytest.approx(39.56)
    assert rows[256, "far-default"]["steps"]["host_to_host_probe"] == 0.5
    assert rows[256, "far-relayed"]["steps"]["host_to_host_probe"] is None
    table = tables.distant_table(section, markdown=True).splitlines()
    assert "| host_to_host_probe s | tls_setup s | cleanup s | downtime s | ÷ floor |" in table[0]
    assert table[3].startswith("| 256 MB | far-default: `celestial-ssh migrate` | 3/3 | direct TLS")
    assert table[3].endswith("| 0.50 | 0.40 | 0.40 | 1.76 | 1.04x |")


OLD_DISTANT = {
    "delay": "25ms",
    "size_mb": 16,
    "runs": [],
    "notes": [],
    "proxies": {},
    "summary": [
        {
            "mode": "far-relayed",
            "command": "celestial-ssh migrate --compress none",
            "runs": 3,
            "failures": 0,
            "total_s": 6.53,
            "downtime_s": 1.18,
            "connect_s": 0.2,
            "preflight_s": 1.66,
            "tls_setup_s": None,
            "cleanup_s": 0.56,
        }
    ],
}

MACHINE = {
    "date": "2026-11-27T16:45:33+00:00",
    "cpu_model": "AMD EPYC",
    "cores": 2,
    "memory_gib": 23.5,
    "kernel": "6.18",
    "openssh_client": "OpenSSH_9.2p1",
    "celestial_ssh": "0.1.0",
    "git_commit": "f720116",
    "hosts": {"lab-a": {"podman": "podman version 4.3.1", "criu": "Version: 4.2.1"}},
}


def old_document() -> dict[str, Any]:
    """A schema 1 latest.json: one distant size, its steps as STEP_s keys, no data-path
    table, no rate."""
    row = {
        "size_mb": 64,
        "mode": "tool",
        "command": "celestial-ssh migrate",
        "runs": 3,
        "failures": 0,
        "downtime_s": 1.29,
        "tool_downtime_s": 1.2,
        "total_s": 6.03,
        "vs_floor": 1.74,
        "vs_hand_made": 0.54,
        "chosen": "openssh/none",
        "cpu_s": 1.7,
        "peak_rss_mib": 74.0,
        "archive_mb": 69.0,
    }
    return {
        "schema": 1,
        "options": {"sizes": [64], "runs": 3},
        "machine": MACHINE,
        "notes": {"tool-x": "skipped: the installed CLI has no --x"},
        "runs": [],
        "summary": [row],
        "throughput": None,
        "slow_links": None,
        "distant": OLD_DISTANT,
    }


def test_old_results_still_make_their_tables_and_history_lines(tables: ModuleType) -> None:
    table = tables.distant_table(OLD_DISTANT, markdown=True).splitlines()
    assert table[0] == (
        "| mode | ok | total s | connect s | preflight s | tls_setup s | cleanup s | downtime s |"
    )
    assert (
        table[2]
        == "| far-relayed: `celestial-ssh migrate --compress none` | 3/3 | 6.53 | 0.20 | 1.66 | - "
        "| 0.56 | 1.18 |"
    )
    document = old_document()
    markdown = bench_module("report").markdown_report(document)
    assert (
        "## Distant coordinator (25ms each way to each host, 16 MiB workload, medians)" in markdown
    )
    assert "data path before the freeze" not in markdown
    lines = bench_module("history").history_lines(document)
    assert lines[1] == (
        "| 2026-11-27 16:45 | AMD EPYC, 2 cores | far-relayed (25ms) | 16 MiB | 1.18 | - | 6.53 "
        "| f720116 |"
    )


def test_new_results_have_a_line_per_distant_size_with_its_link_and_ratio(
    settings: ModuleType, summary: ModuleType, tmp_path: Path
) -> None:
    runs = decision_runs("host_to_host_probe")
    modes = [m for m in settings.MODES if m.label in ("floor", "tool", "default", "fallback")]
    main_summary = summary.summarise(runs, modes, [256])
    document = {
        **old_document(),
        "schema": 2,
        "runs": runs,
        "summary": main_summary,
        "decision": summary.decision_summary(runs, main_summary),
        "distant": distant_section(settings, summary),
        "duration_s": 1.0,
        "size_wall_s": {},
    }
    lines = bench_module("history").history_lines(document)
    assert (
        "| 2026-11-27 16:45 | AMD EPYC, 2 cores | far-default (20mbit, 20ms) | 1024 MiB | 9.90 "
        "| 1.09x | 13.90 | f720116 |"
    ) in lines
    report = bench_module("report")
    markdown = report.markdown_report(document)
    assert "## The data path before the freeze (medians)" in markdown
    assert (
        "## Distant coordinator (20mbit and 20ms each way to each host, 256 and 1024 MiB "
        "workload, medians)"
    ) in markdown
    paths = report.write_results(document, tmp_path)
    report.print_report(document, paths)


def test_the_throttle_limits_both_directions_when_given_a_rate() -> None:
    from .conftest import load_bench_script

    throttle = load_bench_script("throttle.py", "bench_throttle_rate")
    assert throttle.parse_rate("20mbit") == 20e6
    limited = throttle.Throttle(("127.0.0.1", 1), 20e6, 0.02)
    assert [bucket.rate for bucket in limited.buckets.values()] == [2.5e6, 2.5e6]
    assert limited.delay_s == 0.02
    assert sys.modules["bench_throttle_rate"] is throttle
