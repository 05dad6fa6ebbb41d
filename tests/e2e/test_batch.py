"""Fleet moves over the real lab: a batch plan (with a failure, then a re-run) and an evacuation.

The commands are run through a click group built here from ``celestial_ssh_cli.batch_commands``
(so the tests do not depend on where the main CLI registers them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    REPO,
    SSH_CONFIG,
    WORKLOAD_IMAGE,
    LabHost,
    WorkloadFactory,
    assert_one_running_copy,
    assert_state_survived,
)

BATCH_CLI = [
    sys.executable,
    "-c",
    "import click\n"
    "from celestial_ssh_cli.batch_commands import batch_command, evacuate_command\n"
    "group = click.Group('celestial-ssh')\n"
    "group.add_command(batch_command)\n"
    "group.add_command(evacuate_command)\n"
    "group(prog_name='celestial-ssh')\n",
]


def run_batch_cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BATCH_CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def document_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(
            f"no JSON on stdout (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
        ) from error
    return document


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {entry["container"]: entry["status"] for entry in document["migrations"]}


def test_a_batch_with_one_failure_then_a_rerun_completes_it(
    lab: dict[str, LabHost],
    workloads: WorkloadFactory,
    workload_image_on_target: str,
    tmp_path: Path,
) -> None:
    source, target = lab["lab-a"], lab["lab-b"]
    moving = [workloads.start("lab-a") for _ in range(4)]
    blocked = moving[2]
    # the blocker: a (created, not running) container with the same name on the target
    target.podman("create", "--name", workloads.track(blocked.name), WORKLOAD_IMAGE, "16")
    plan = tmp_path / "plan.yml"
    plan.write_text(
        "defaults:\n  compression: none\nmigrations:\n"
        + "".join(
            f"  - container: {workload.name}\n    from: lab-a\n    to: lab-b\n"
            for workload in moving
        )
    )
    before = {workload.name: source.ticks(workload.name) for workload in moving}

    first = run_batch_cli(
        "batch",
        str(plan),
        "--parallel",
        "2",
        "--continue-on-error",
        "--json",
        "-F",
        str(SSH_CONFIG),
    )
    document = document_of(first)
    assert first.returncode == 4, first.stderr  # a preflight check failed: name taken
    expected = {workload.name: "migrated" for workload in moving}
    expected[blocked.name] = "failed"
    assert statuses(document) == expected, first.stderr
    failed = next(e for e in document["migrations"] if e["container"] == blocked.name)
    assert "already has a container named" in failed["error"]
    assert failed["outcome"] == "not_started"
    for workload in moving:
        where = assert_one_running_copy(lab, workload.name)
        if workload is blocked:
            assert where == "lab-a"
            assert target.state(workload.name) == "created"  # the blocker, left alone
        else:
            assert where == "lab-b"
            assert_state_survived(before[workload.name], target.ticks(workload.name))

    # remove the blocker and run the very same plan again: it completes the rest
    target.podman("container", "rm", "--force", blocked.name)
    second = run_batch_cli("batch", str(plan), "--parallel", "2", "--json", "-F", str(SSH_CONFIG))
    document = document_of(second)
    assert second.returncode == 0, second.stderr
    expected = {workload.name: "already_moved" for workload in moving}
    expected[blocked.name] = "migrated"
    assert statuses(document) == expected
    assert document["status"] == "succeeded"
    for workload in moving:
        assert assert_one_running_copy(lab, workload.name) == "lab-b"
    assert_state_survived(before[blocked.name], target.ticks(blocked.name))


def test_a_plan_chooses_the_data_plane_per_migration(
    lab: dict[str, LabHost],
    workloads: WorkloadFactory,
    workload_image_on_target: str,
    tmp_path: Path,
) -> None:
    # one entry over TLS, one relayed over paramiko, from one plan and one command line
    source, target = lab["lab-a"], lab["lab-b"]
    over_tls, relayed = (workloads.start("lab-a", memory_mb=16) for _ in range(2))
    plan = tmp_path / "plan.yml"
    plan.write_text(
        "defaults: {compression: none}\nmigrations:\n"
        f"  - {{container: {over_tls.name}, from: lab-a, to: lab-b, data_path: tls}}\n"
        f"  - {{container: {relayed.name}, from: lab-a, to: lab-b, transport: paramiko,"
        " data_path: relay}\n"
    )
    before = {w.name: source.ticks(w.name) for w in (over_tls, relayed)}

    result = run_batch_cli("batch", str(plan), "--json", "-F", str(SSH_CONFIG))

    document = document_of(result)
    assert result.returncode == 0, result.stderr
    transports = {e["container"]: e["report"]["transport"] for e in document["migrations"]}
    assert transports[over_tls.name].startswith("direct TLS (python3, to 127.0.0.12)")
    assert transports[relayed.name].startswith("paramiko")
    for workload in (over_tls, relayed):
        assert assert_one_running_copy(lab, workload.name) == "lab-b"
        assert_state_survived(before[workload.name], target.ticks(workload.name))


@pytest.mark.parametrize("data_path", ["relay", "auto"])
def test_evacuation_moves_the_named_workloads_with_their_state(
    lab: dict[str, LabHost],
    workloads: WorkloadFactory,
    workload_image_on_target: str,
    data_path: str,
) -> None:
    # host to host (the default), two listeners wait on lab-b at once, each on its own port
    source, target = lab["lab-a"], lab["lab-b"]
    mine = [workloads.start("lab-a", memory_mb=16), workloads.start("lab-a", memory_mb=32)]
    names = ",".join(workload.name for workload in mine)

    # a dry run checks and changes nothing
    dry = run_batch_cli(
        "evacuate", "lab-a", "--to", "lab-b", "--only", names, "--dry-run", "--json",
        "-F", str(SSH_CONFIG),
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert set(statuses(document_of(dry)).values()) == {"would_migrate"}
    for workload in mine:
        assert source.state(workload.name) == "running"
        assert target.state(workload.name) is None

    before = {workload.name: source.ticks(workload.name) for workload in mine}
    moved = run_batch_cli(
        "evacuate", "lab-a", "--to", "lab-b", "--only", names, "--parallel", "2", "--json",
        "-F", str(SSH_CONFIG), "--data-path", data_path,
    )  # fmt: skip
    document = document_of(moved)
    assert moved.returncode == 0, moved.stderr
    assert statuses(document) == {workload.name: "migrated" for workload in mine}
    transports = {entry["report"]["transport"] for entry in document["migrations"]}
    tls = data_path == "auto"
    assert transports == ({"direct TLS (python3, to 127.0.0.12)"} if tls else {"openssh"})
    # largest first: the 32 MB workload is placed (and numbered) before the 16 MB one
    assert [entry["container"] for entry in document["migrations"]] == [mine[1].name, mine[0].name]
    for workload in mine:
        assert assert_one_running_copy(lab, workload.name) == "lab-b"
        assert_state_survived(before[workload.name], target.ticks(workload.name))


def test_evacuating_a_container_that_is_not_there_fails_cleanly(lab: dict[str, LabHost]) -> None:
    result = run_batch_cli(
        "evacuate", "lab-a", "--to", "lab-b", "--only", "e2e-no-such-container",
        "-F", str(SSH_CONFIG),
    )  # fmt: skip
    assert result.returncode == 4
    assert "no running container named e2e-no-such-container" in result.stderr
