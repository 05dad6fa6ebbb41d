"""The HTTP shim (`celestial-ssh serve`) over the real lab, driven by a real HTTP client.

The server runs on this machine with lab-a's podman configuration, so its "local" podman is
lab-a's; migrations go over SSH with the lab's ssh_config. Loopback only.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import (
    REPO,
    SSH_CONFIG,
    assert_one_running_copy,
    assert_state_survived,
)


@dataclass
class Shim:
    base: str
    port: int
    token: str

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = "default",
        timeout: float = 600,
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if token == "default":
            token = self.token
        if token is not None:
            request.add_header("Authorization", f"Bearer {token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def raw_get(self, target: str) -> int:
        """The request target as given, byte for byte (no client-side normalization)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            connection.putrequest("GET", target, skip_accept_encoding=True)
            connection.putheader("Authorization", f"Bearer {self.token}")
            connection.endheaders()
            response = connection.getresponse()
            assert response.getheader("Content-Type", "").startswith("application/json")
            response.read()
            return response.status
        finally:
            connection.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def lab_a_podman_env() -> dict[str, str]:
    """CONTAINERS_STORAGE_CONF, CONTAINERS_CONF and TMPDIR as lab-a's sessions have them."""
    output = subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), "lab-a", "env"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    wanted = ("CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF", "TMPDIR")
    found = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    return {key: found[key] for key in wanted if key in found}


@pytest.fixture(scope="module")
def shim(lab: Any) -> Iterator[Shim]:
    token = secrets.token_hex(16)
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="e2e-shim-"))
    token_file = workdir / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    env = {**os.environ, **lab_a_podman_env()}
    env.pop("CELESTIAL_SSH_TOKEN", None)
    log = (workdir / "server.log").open("wb")
    argv = [sys.executable, "-m", "celestial_ssh_cli", "serve", "--port", str(port)]
    argv += ["--token-file", str(token_file), "--ssh-config", str(SSH_CONFIG)]
    server = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    shim = Shim(base=f"http://127.0.0.1:{port}", port=port, token=token)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, (workdir / "server.log").read_text()
            try:
                if shim.request("GET", "/health", token=None, timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the shim did not answer /health"
            time.sleep(0.2)
        yield shim
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        for path in workdir.iterdir():
            path.unlink()
        workdir.rmdir()


def test_health_reports_the_local_podman_and_criu(shim: Shim) -> None:
    status, body = shim.request("GET", "/health", token=None)
    assert status == 200
    assert body["status"] == "UP"
    assert body["podman"]
    assert body["criu"]
    assert body["criu_check"] is True


def test_token_is_refused_or_accepted(shim: Shim) -> None:
    assert shim.request("GET", "/container/e2e-nothing-here", token=None)[0] == 401
    assert shim.request("GET", "/container/e2e-nothing-here", token="wrong")[0] == 401
    status, body = shim.request("GET", "/container/e2e-nothing-here")
    assert status == 404, body
    assert body["status"] == "failed"


def test_migration_there_and_back_with_new_and_old_field_names(
    lab: Any, workloads: Any, shim: Shim
) -> None:
    # the way back also asks for a setting a batch plan takes: --tls
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16)
    before = source.ticks(workload.name)

    status, report = shim.request(
        "POST",
        "/start_migration",
        {"source": "lab-a", "target": "lab-b", "container": workload.name},
    )

    assert status == 200, report
    assert report["outcome"] == "migrated"
    assert report["status"] == "succeeded"
    assert assert_one_running_copy(lab, workload.name) == "lab-b"
    time.sleep(0.5)
    middle = target.ticks(workload.name)
    assert_state_survived(before, middle)

    status, report = shim.request(
        "POST",
        "/start_migration",
        {"source": "lab-b", "server_ip": "lab-a", "container_name": workload.name, "tls": True},
    )

    assert status == 200, report
    assert report["outcome"] == "migrated"
    assert (report["source"], report["target"]) == ("lab-b", "lab-a")
    assert report["transport"] == "direct TLS (python3, to 127.0.0.11)"
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    time.sleep(0.5)
    assert_state_survived(middle, source.ticks(workload.name))


def test_download_of_a_running_container_restores_elsewhere(
    lab: Any, workloads: Any, shim: Shim, workload_image_on_target: str
) -> None:
    source, target = lab["lab-a"], lab["lab-b"]
    workload = workloads.start(memory_mb=16, image=workload_image_on_target)
    before = source.ticks(workload.name)
    archive = Path(tempfile.mkdtemp(prefix="e2e-shim-dl-")) / "checkpoint.tar"
    request = urllib.request.Request(f"{shim.base}/container/{workload.name}")
    request.add_header("Authorization", f"Bearer {shim.token}")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/x-tar"
            container_id = response.headers["X-Celestial-Container-Id"]
            archive.write_bytes(response.read())
        assert archive.stat().st_size > 16 * 1024 * 1024
        assert source.state(workload.name) == "exited", "the export stops it here"

        status, stats = shim.request("GET", f"/container/{workload.name}/stats")
        assert status == 200
        assert stats["complete"] is True
        assert stats["container_id"] == container_id
        assert stats["stats"]["container_statistics"]

        remote = f"celestial-e2e-shim-{workload.name}.tar"
        copy = subprocess.run(
            ["ssh", "-F", str(SSH_CONFIG), "lab-b", f'cat > "$TMPDIR"/{shlex.quote(remote)}'],
            stdin=archive.open("rb"),
            capture_output=True,
            timeout=300,
        )
        assert copy.returncode == 0, copy.stderr
    finally:
        archive.unlink(missing_ok=True)
        archive.parent.rmdir()
    workloads.track(workload.name)
    restore = target.run(
        "sh",
        "-c",
        f'podman container restore --import "$TMPDIR"/{shlex.quote(remote)}; rc=$?; '
        f'rm -f "$TMPDIR"/{shlex.quote(remote)}; exit $rc',
        check=False,
    )
    assert restore.returncode == 0, restore.stderr
    assert target.state(workload.name) == "running"

    source.podman("container", "rm", "--force", "--time", "0", workload.name)
    assert source.state(workload.name) is None
    assert assert_one_running_copy(lab, workload.name) == "lab-b"
    time.sleep(0.5)
    assert_state_survived(before, target.ticks(workload.name))


def test_broken_download_restores_the_container_here(lab: Any, workloads: Any, shim: Shim) -> None:
    source = lab["lab-a"]
    workload = workloads.start(memory_mb=64)
    before = source.ticks(workload.name)
    connection = http.client.HTTPConnection("127.0.0.1", shim.port, timeout=120)
    connection.request(
        "GET", f"/container/{workload.name}", headers={"Authorization": f"Bearer {shim.token}"}
    )
    response = connection.getresponse()
    assert response.status == 200
    assert len(response.read(64 * 1024)) == 64 * 1024
    connection.sock.shutdown(socket.SHUT_RDWR)  # the client goes away mid-stream
    connection.close()

    deadline = time.monotonic() + 120
    while True:
        status, stats = shim.request("GET", f"/container/{workload.name}/stats")
        if status == 200 and "restored_here" in stats:
            break
        assert time.monotonic() < deadline, "the shim did not restore the container here"
        time.sleep(0.5)
    assert stats["restored_here"] is True, stats
    assert stats["complete"] is False
    assert assert_one_running_copy(lab, workload.name) == "lab-a"
    time.sleep(0.5)
    assert_state_survived(before, source.ticks(workload.name))


@pytest.mark.parametrize(
    "target",
    [
        "/container/../x",
        "/container/%2e%2e",
        "/container/%2e%2e%2fetc%2fpasswd",
        "/containers/..%2F..%2Fhealth",
        "/container/e2e;id",
        "/container/$(id)",
        "/container/%24(touch%20%2Ftmp%2Fpwned)",
        "/container/-a",
    ],
)
def test_bad_names_and_path_tricks_are_rejected(lab: Any, shim: Shim, target: str) -> None:
    before = lab["lab-a"].snapshot()
    assert shim.raw_get(target) in (400, 404)
    status, body = shim.request(
        "POST",
        "/start_migration",
        {"source": "lab-a", "target": "lab-b", "container": target.rsplit("/", 1)[-1] + ";x"},
    )
    assert status == 400, body
    assert lab["lab-a"].snapshot() == before, "nothing may change on the host"
