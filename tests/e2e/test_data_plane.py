"""The data plane on the real lab: each transport, --direct, --bwlimit, --compress auto, probe.

Each test proves the memory state survived the move; none of them asserts a speed (the
benchmark measures speed). The --bwlimit test checks the cap held, which is its function.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from celestial_ssh_cli.failures import ExitCode

from .conftest import CLI, LAB, REPO, SSH_CONFIG, assert_state_survived, run_cli


def migrate_json(*args: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    completed = subprocess.run(
        [*CLI, "migrate", "-F", str(SSH_CONFIG), "--json", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env=env,
    )
    return completed.returncode, json.loads(completed.stdout), completed.stderr


@pytest.fixture
def ssh_agent(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An ssh-agent holding the lab key: the environment a --direct user has."""
    socket = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket.exists():
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket)}
        subprocess.run(["ssh-add", "-q", str(LAB / "id_ed25519")], env=env, check=True)
        yield env
    finally:
        agent.terminate()
        agent.wait(10)


def without_agent() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != "SSH_AUTH_SOCK"}


@pytest.mark.parametrize("transport", ["openssh", "paramiko"])
def test_each_transport_moves_the_memory(lab, workloads, transport):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=48)
    before = source.ticks(workload.name)

    code, report, stderr = migrate_json(
        "--data-path", "relay", "--transport", transport, "--compress", "none",
        "lab-a", "lab-b", workload.name,
    )  # fmt: skip

    assert code == ExitCode.OK, stderr
    assert report["transport"] == transport
    assert report["archive_bytes"] > 48 * 1024 * 1024
    assert target.state(workload.name) == "running"
    assert source.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_direct_streams_from_the_source_with_the_forwarded_agent(lab, workloads, ssh_agent):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=48)
    before = source.ticks(workload.name)

    code, report, stderr = migrate_json(
        "--direct", "--compress", "none", "lab-a", "lab-b", workload.name, env=ssh_agent
    )

    assert code == ExitCode.OK, stderr
    assert report["transport"].startswith("direct"), report["transport"]
    assert report["warnings"] == []
    # no coordinator saw the stream: the size and digest the source took as it streamed
    # are what the target checked
    assert report["archive_bytes"] > 48 * 1024 * 1024
    assert re.fullmatch("[0-9a-f]{64}", report["archive_sha256"])
    # the source said its archive was complete and had landed, and the restore began while
    # podman still tidied up there (the step is only timed on that path)
    assert report["timings"]["source_tidy_up"] > 0
    assert target.state(workload.name) == "running"
    assert source.state(workload.name) is None
    assert source.workdirs() == [] and target.workdirs() == []
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_direct_without_credentials_on_the_source_falls_back_to_relaying(lab, workloads):
    # root on the lab's "source" has no key the target accepts, and no agent is forwarded
    if any((Path.home() / ".ssh" / name).exists() for name in ("id_ed25519", "id_rsa")):
        pytest.fail("this machine's root has its own SSH key; the lab assumes it has none")
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)

    code, report, stderr = migrate_json(
        "--direct", "lab-a", "lab-b", workload.name, env=without_agent()
    )

    assert code == ExitCode.OK, stderr
    assert report["transport"] == "openssh"
    [warning] = report["warnings"]
    assert "cannot log in to lab-b itself" in warning
    assert "relayed through this machine instead of --direct" in warning
    assert target.state(workload.name) == "running"
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_bwlimit_caps_the_relayed_stream(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=24)
    before = source.ticks(workload.name)
    limit = 20_000_000  # bytes per second

    code, report, stderr = migrate_json(
        "--bwlimit", "20M", "--compress", "none", "lab-a", "lab-b", workload.name
    )

    assert code == ExitCode.OK, stderr
    # the cap held: the archive cannot have crossed faster than the limit allows (the token
    # bucket's burst is 0.1 s worth)
    floor_seconds = report["archive_bytes"] / limit - 0.1
    assert report["timings"]["transfer"] >= floor_seconds
    assert target.state(workload.name) == "running"
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_bwlimit_and_direct_together_are_refused_and_change_nothing(lab, workloads):
    source = lab["lab-a"]
    workload = workloads.start(memory_mb=8)
    result = run_cli(
        "migrate",
        "-F",
        str(SSH_CONFIG),
        "--direct",
        "--bwlimit",
        "1M",
        "lab-a",
        "lab-b",
        workload.name,
    )
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert "--bwlimit cannot be combined with --direct" in result.stderr
    assert source.state(workload.name) == "running"


@pytest.mark.parametrize("extra", [[], ["--tls"]], ids=["relayed", "tls"])
def test_compress_auto_measures_and_chooses_none_for_random_memory_on_loopback(
    lab, workloads, extra
):
    # with --tls the probe runs over the TLS link itself
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=32)
    before = source.ticks(workload.name)

    # auto is the default
    code, report, stderr = migrate_json(*extra, "lab-a", "lab-b", workload.name)

    assert code == ExitCode.OK, stderr
    assert report["compression"] == "none"
    # the reason names what was measured
    assert "link" in report["compression_choice"], report["compression_choice"]
    assert target.state(workload.name) == "running"
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


def test_pre_copy_falls_back_to_stop_and_copy_without_dirty_tracking(lab, workloads):
    source, target = lab["lab-a"], lab["lab-b"]
    probe = subprocess.run(
        ["criu", "check", "--feature", "mem_dirty_track"], capture_output=True, timeout=60
    )
    if probe.returncode == 0:
        pytest.fail("this kernel tracks dirty pages: this test is for machines that cannot")
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)

    code, report, stderr = migrate_json("--pre-copy", "lab-a", "lab-b", workload.name)

    assert code == ExitCode.OK, stderr
    assert report["precopy"].startswith("stop-and-copy"), report["precopy"]
    assert any("--pre-copy is not available" in warning for warning in report["warnings"])
    assert target.state(workload.name) == "running"
    time.sleep(0.3)
    assert_state_survived(before, target.ticks(workload.name))


@pytest.mark.parametrize(
    ("extra", "data_plane"),
    [
        (["--data-path", "relay"], "openssh"),
        ([], "tls"),
        (["--direct"], "direct"),
        (["--tls"], "tls"),
        (["--tls", "--tls-address", "127.0.0.112"], "tls"),
    ],
    ids=["relayed", "default", "direct", "tls", "tls-address"],
)
def test_probe_measures_the_link_and_changes_nothing(lab, ssh_agent, extra, data_plane):
    completed = subprocess.run(
        [
            *CLI,
            "probe",
            "-F",
            str(SSH_CONFIG),
            "--json",
            "--bytes",
            "16M",
            *extra,
            "lab-a",
            "lab-b",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=ssh_agent,
    )
    assert completed.returncode == 0, completed.stderr
    measured = json.loads(completed.stdout)
    assert measured["bytes"] == 16_000_000
    assert measured["bytes_per_s"] > 0
    assert measured["data_plane"] == data_plane
    assert lab["lab-a"].workdirs() == [] and lab["lab-b"].workdirs() == []
