"""doctor and ps over the real lab: lab-a and lab-b are healthy, lab-c has no CRIU."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from celestial_ssh import commands
from celestial_ssh_cli.main import cli

from .conftest import REPO, SSH_CONFIG, LabHost, WorkloadFactory
from .conftest import run_cli as run_main_cli

# until main.py registers doctor/ps, run them from a group of their own (same process model)
_STANDALONE = (
    "import sys, click\n"
    "from celestial_ssh_cli.fleet_commands import doctor_command, ps_command\n"
    "group = click.Group()\n"
    "group.add_command(doctor_command)\n"
    "group.add_command(ps_command)\n"
    "group(sys.argv[1:], prog_name='celestial-ssh')\n"
)


def run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    if {"doctor", "ps"} <= set(cli.commands):
        return run_main_cli(*args, timeout=timeout)
    return subprocess.run(
        [sys.executable, "-c", _STANDALONE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def doctor_cli(*hosts: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("doctor", "-F", str(SSH_CONFIG), "--json", *hosts, timeout=300)
    return result.returncode, json.loads(result.stdout)


def checks(host: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in host["checks"]}


def test_doctor_healthy_hosts(lab: dict[str, LabHost]) -> None:
    code, document = doctor_cli("lab-a", "lab-b")
    assert code == 0, document
    assert document["ok"] is True
    for host in document["hosts"]:
        found = checks(host)
        assert host["ok"] and host["reachable"]
        assert found["criu"]["ok"] and found["criu"]["detail"].startswith("CRIU 4.")
        assert host["facts"]["criu_version"].startswith("4.")
        assert found["criu check"]["ok"]
        # what this machine's kernel really says (asked independently over OpenSSH)
        dirty = lab[host["host"]].run("criu", "check", "--feature", "mem_dirty_track", check=False)
        assert host["facts"]["criu_features"]["mem_dirty_track"] is (dirty.returncode == 0)
        assert dirty.returncode != 0, "this lab's kernel was expected to lack soft-dirty"
        assert found["pre-copy"]["ok"] is False
        assert found["pre-copy"]["level"] == "warning"
        assert "iterative pre-copy unavailable" in found["pre-copy"]["detail"]
        arch = lab[host["host"]].run("uname", "-m").stdout.strip()
        assert host["facts"]["arch"] == arch
        assert host["facts"]["disk_available_kib"] > 0
        # each lab host's own tmpfs for archives that fit in memory
        assert host["facts"]["tmpfs_dir"].endswith(f"/{host['host']}/shm")
        assert host["facts"]["tmpfs_available_kib"] > 0
        assert found["tmpfs"]["ok"] and found["tmpfs"]["level"] == "info"
        assert host["facts"]["mem_available_kib"] > 0
        # no test leaves work directories behind
        assert found["leftovers"]["ok"] and host["facts"]["workdirs"] == []


def test_doctor_points_out_work_directories_with_their_size(lab: dict[str, LabHost]) -> None:
    # what a killed coordinator leaves on a target: an archive on the host's tmpfs
    target = lab["lab-b"]
    tmpfs = target.run("sh", "-c", 'echo "$CELESTIAL_SSH_TMPFS"').stdout.strip()
    stale = f"{tmpfs}/celestial-ssh.0123456789ab.DoCtOr0000"
    target.run("sh", "-c", 'mkdir -m 700 "$1" && head -c 2097152 /dev/zero > "$1/checkpoint.tar"',
               "sh", stale)  # fmt: skip
    try:
        code, document = doctor_cli("lab-b")
    finally:
        target.run(*commands.remove_workdir(stale))
    assert code == 0, document  # a warning: the host can still migrate
    [host] = document["hosts"]
    leftovers = checks(host)["leftovers"]
    assert (leftovers["ok"], leftovers["level"]) == (False, "warning")
    assert stale in leftovers["detail"] and "recover" in leftovers["fix"]
    [found] = host["facts"]["workdirs"]
    assert found["path"] == stale and found["kib"] >= 2048


def test_doctor_host_without_criu_exits_4(lab: dict[str, LabHost]) -> None:
    code, document = doctor_cli("lab-c")
    assert code == 4, document
    (host,) = document["hosts"]
    assert host["reachable"] and not host["ok"]
    found = checks(host)
    assert found["criu"]["status"] == "FAIL"
    assert "CRIU is not installed" in found["criu"]["detail"]
    assert "CRIU >= 4.2 on kernels >= 6.16" in found["criu"]["fix"]
    assert found["podman"]["ok"]


def test_doctor_plain_text_names_the_fix(lab: dict[str, LabHost]) -> None:
    result = run_cli("doctor", "-F", str(SSH_CONFIG), "lab-a", "lab-c", timeout=300)
    assert result.returncode == 4
    assert "lab-a: ok" in result.stdout and "lab-c: FAILED" in result.stdout
    assert "fix: Install CRIU >= 4.2 on kernels >= 6.16" in result.stdout


def test_doctor_unreachable_host_exits_3(lab: dict[str, LabHost]) -> None:
    code, document = doctor_cli("lab-a", "root@127.0.0.1:1")
    assert code == 3
    assert document["hosts"][1]["reachable"] is False


def test_ps_lists_a_running_workload(lab: dict[str, LabHost], workloads: WorkloadFactory) -> None:
    workload = workloads.start("lab-a")
    result = run_cli("ps", "-F", str(SSH_CONFIG), "--json", "lab-a", timeout=300)
    assert result.returncode == 0, result.stderr
    (host,) = json.loads(result.stdout)["hosts"]
    rows = {row["name"]: row for row in host["containers"]}
    row = rows[workload.name]
    assert row["state"] == "running"
    assert row["checkpointable"] is True and row["reason"] == ""
    assert row["image"] == "localhost/memtick:latest"
    full_id = workload.host.podman("container", "inspect", "--format", "{{.Id}}", workload.name)
    assert row["id"] == full_id.stdout.strip()[:12]
