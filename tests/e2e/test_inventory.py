"""Migrations addressed through an inventory file instead of ssh_config aliases."""

from __future__ import annotations

import time

from celestial_ssh_cli.failures import ExitCode

from .conftest import LAB, assert_one_running_copy, assert_state_survived, run_cli


def test_migrate_through_the_labs_inventory(lab, workloads):
    """`make lab` writes .lab/inventory.yml; no ssh_config is involved at all."""
    workload = workloads.start(memory_mb=8)
    before = lab["lab-a"].ticks(workload.name)

    result = run_cli("migrate", "-i", str(LAB / "inventory.yml"), "lab-a", "lab-b", workload.name)

    assert result.returncode == ExitCode.OK, result.stderr
    assert "root@127.0.0.11:2222 -> root@127.0.0.12:2222" in result.stderr
    assert assert_one_running_copy(lab, workload.name) == "lab-b"
    time.sleep(0.3)
    assert_state_survived(before, lab["lab-b"].ticks(workload.name))


def test_a_malformed_inventory_is_refused_with_its_line(lab, workloads, tmp_path):
    workload = workloads.start(memory_mb=4)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("hosts:\n  lab-a:\n    hostname: 127.0.0.11\n    port: 99999\n")
    snapshots = {name: host.snapshot() for name, host in lab.items()}

    result = run_cli("migrate", "-i", str(inventory), "lab-a", "lab-b", workload.name)

    assert result.returncode == ExitCode.CONNECTION, result.stderr
    assert f"{inventory}:4" in result.stderr
    assert {name: host.snapshot() for name, host in lab.items()} == snapshots
