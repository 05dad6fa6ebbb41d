"""A target reached through a jump host (ssh_config ProxyJump), as edge sites often are."""

from __future__ import annotations

import time

from celestial_ssh_cli.failures import ExitCode

from .conftest import SSH_CONFIG, assert_one_running_copy, assert_state_survived, run_cli


def test_migrate_to_a_target_behind_a_jump_host(lab, workloads, tmp_path):
    lab_config = SSH_CONFIG.read_text()
    config = tmp_path / "ssh_config"
    # lab-b reached only through lab-a: the coordinator opens a direct-tcpip channel on lab-a
    behind = lab_config.split("Host lab-b", 1)[1].split("Host ", 1)[0]
    config.write_text(lab_config + "\nHost lab-b-behind-a" + behind + "    ProxyJump lab-a\n")
    workload = workloads.start(memory_mb=8)
    before = lab["lab-a"].ticks(workload.name)

    result = run_cli("migrate", "-F", str(config), "lab-a", "lab-b-behind-a", workload.name)

    assert result.returncode == ExitCode.OK, result.stderr
    assert assert_one_running_copy(lab, workload.name) == "lab-b"
    time.sleep(0.3)
    assert_state_survived(before, lab["lab-b"].ticks(workload.name))


def test_migrate_through_two_jump_hosts(lab, workloads, tmp_path):
    """ProxyJump with two hops: lab-c, then lab-a, then lab-b."""
    lab_config = SSH_CONFIG.read_text()
    config = tmp_path / "ssh_config"
    behind = lab_config.split("Host lab-b", 1)[1].split("Host ", 1)[0]
    config.write_text(lab_config + "\nHost lab-b-two-hops" + behind + "    ProxyJump lab-c,lab-a\n")
    workload = workloads.start(memory_mb=4)

    result = run_cli("migrate", "-F", str(config), "lab-a", "lab-b-two-hops", workload.name)

    assert result.returncode == ExitCode.OK, result.stderr
    assert assert_one_running_copy(lab, workload.name) == "lab-b"


def test_an_unreachable_jump_host_is_a_clear_connection_error(lab, workloads, tmp_path):
    lab_config = SSH_CONFIG.read_text()
    config = tmp_path / "ssh_config"
    behind = lab_config.split("Host lab-b", 1)[1].split("Host ", 1)[0]
    config.write_text(
        lab_config
        + "\nHost dead-jump\n    HostName 127.0.0.19\n    Port 2222\n    ConnectTimeout 3\n"
        + "\nHost lab-b-behind-dead"
        + behind
        + "    ProxyJump dead-jump\n"
    )
    workload = workloads.start(memory_mb=4)

    result = run_cli("migrate", "-F", str(config), "lab-a", "lab-b-behind-dead", workload.name)

    assert result.returncode == ExitCode.CONNECTION, result.stderr
    assert "dead-jump" in result.stderr
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
