"""Real migrations over the lab: state survives, the source lets go, images get staged."""

from __future__ import annotations

import csv
import json
import time

from celestial_ssh import commands
from celestial_ssh_cli.failures import ExitCode

from .conftest import SSH_CONFIG, assert_one_running_copy, assert_state_survived, run_cli


def test_migration_moves_a_running_process_with_its_memory(lab, workloads, fresh_image):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=32, image=fresh_image)
    assert target.podman("image", "exists", fresh_image, check=False).returncode != 0
    before = source.ticks(workload.name)

    result = run_cli("migrate", "-F", str(SSH_CONFIG), "--json", "lab-a", "lab-b", workload.name)

    assert result.returncode == ExitCode.OK, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "succeeded"
    assert report["outcome"] == "migrated"
    assert report["container"] == workload.name
    assert (report["source"], report["target"]) == ("lab-a", "lab-b")
    assert report["image_staged"] is True
    assert target.podman("image", "exists", fresh_image, check=False).returncode == 0
    assert report["bytes_transferred"] > 32 * 1024 * 1024
    assert report["archive_bytes"] > 32 * 1024 * 1024
    assert report["downtime_s"] > 0
    for phase in (
        "connect",
        "preflight",
        "stage_image",
        "checkpoint",
        "transfer",
        "restore",
        "verify",
        "cleanup",
    ):
        assert report["timings"][phase] >= 0, phase
    assert report["podman_stats"]["checkpoint"]["pages_written"] > 0
    assert report["podman_stats"]["restore"]["pages_restored"] > 0

    assert target.state(workload.name) == "running"
    assert source.state(workload.name) is None, "the source copy should be removed"
    assert source.workdirs() == [] and target.workdirs() == [], "archives were left behind"
    time.sleep(0.5)
    assert_state_survived(before, target.ticks(workload.name))


def test_keep_source_and_new_name(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=8)
    new_name = workloads.track(f"{workload.name}-moved")
    before = source.ticks(workload.name)

    result = run_cli(
        "migrate",
        "-F",
        str(SSH_CONFIG),
        "--keep-source",
        "--name",
        new_name,
        "lab-a",
        "lab-b",
        workload.name,
    )

    assert result.returncode == ExitCode.OK, result.stderr
    assert "Migrated" in result.stderr
    assert target.state(new_name) == "running"
    assert target.state(workload.name) is None
    assert source.state(workload.name) == "exited", "--keep-source keeps the stopped copy"
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(new_name))


def test_256_megabytes_of_memory_survive(lab, workloads):
    """The issue's size: 256 MB of random memory, checksummed before and after."""
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=256, interval_ms=10)
    before = source.ticks(workload.name)

    result = run_cli("migrate", "-F", str(SSH_CONFIG), "--json", "lab-a", "lab-b", workload.name)

    assert result.returncode == ExitCode.OK, result.stderr
    report = json.loads(result.stdout)
    assert report["archive_bytes"] > 256 * 1024 * 1024
    # lab-b's own tmpfs had room: the archive landed in memory, and is gone again
    assert report["landing"] == "tmpfs"
    assert target.workdirs() == [] and target.tmpfs_entries() == []
    time.sleep(0.5)
    last_before, first_after = assert_state_survived(before, target.ticks(workload.name))
    assert source.state(workload.name) is None
    print(
        f"\n256 MB: total {report['total_s']:.2f} s, downtime {report['downtime_s']:.2f} s "
        f"(workload saw {(first_after.wall_ms - last_before.wall_ms) / 1000:.2f} s), "
        f"timings {report['timings']}"
    )


def test_migrating_back_and_forth_with_a_research_report(lab, workloads, tmp_path):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=8)
    before = source.ticks(workload.name)
    report = tmp_path / "runs.csv"
    for origin, destination in (("lab-a", "lab-b"), ("lab-b", "lab-a")):
        result = run_cli(
            "migrate", "-F", str(SSH_CONFIG), "-q", "--report", str(report),
            origin, destination, workload.name,
        )  # fmt: skip
        assert result.returncode == ExitCode.OK, result.stderr
        assert "warning" not in result.stderr
    assert target.state(workload.name) is None
    # --compress auto (the default) times its choice: a step with its own column
    rows = list(csv.DictReader(report.open()))
    assert [(row["source"], row["outcome"]) for row in rows] == [
        ("lab-a", "migrated"),
        ("lab-b", "migrated"),
    ]
    assert all(float(row["compression_choice_s"]) > 0 for row in rows)
    assert {row["landing"] for row in rows} == {"tmpfs"}
    time.sleep(0.3)
    assert_state_survived(before, source.ticks(workload.name))


def test_an_archive_too_big_for_the_tmpfs_lands_on_disk(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=32)
    before = source.ticks(workload.name)
    # 16 MB of tmpfs: less than the archive of 32 MB of memory needs
    with target.small_landing("16m", "CELESTIAL_SSH_TMPFS"):
        result = run_cli(
            "migrate", "-F", str(SSH_CONFIG), "--json", "lab-a", "lab-b", workload.name
        )
        assert target.tmpfs_entries() == []

    assert result.returncode == ExitCode.OK, result.stderr
    report = json.loads(result.stdout)
    assert report["landing"] == "disk"
    assert target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_leftovers_of_an_earlier_run_are_pointed_out_and_recover_removes_them(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=8)
    container_id = source.podman("container", "inspect", "--format", "{{.Id}}", workload.name)
    # what a killed coordinator leaves: a work directory tagged with the container's ID
    stale = target.run(*commands.make_workdir(container_id.stdout.strip())).stdout.strip()

    result = run_cli("migrate", "-F", str(SSH_CONFIG), "--json", "lab-a", "lab-b", workload.name)

    assert result.returncode == ExitCode.OK, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert [w for w in warnings if stale in w] == [
        f"lab-b: 1 work directory of an earlier, unfinished migration of {workload.name} "
        f"({stale}); 'celestial-ssh recover lab-a lab-b {workload.name}' removes them once "
        "this one is done"
    ]
    assert target.workdirs() == [stale], "the migration leaves what it did not make"
    recovered = run_cli("recover", "-F", str(SSH_CONFIG), "lab-a", "lab-b", workload.name)
    assert recovered.returncode == ExitCode.OK, recovered.stderr
    assert target.workdirs() == []
    assert assert_one_running_copy(lab, workload.name) == "lab-b"
