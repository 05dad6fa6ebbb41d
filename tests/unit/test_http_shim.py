"""The HTTP shim (`celestial-ssh serve`) with a fake podman and a fake migrate."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from celestial_ssh.commands import restore_local
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.errors import (
    ConnectionFailed,
    InvalidInput,
    MigrationFailed,
    PreflightFailed,
)
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.report import MigrationReport, Outcome
from celestial_ssh_cli import http_shim
from celestial_ssh_cli.main import cli

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAYLOAD_BYTES = 3 * 1024 * 1024 + 17

FAKE_PODMAN = r"""#!/bin/sh
# a fake podman: records its arguments, keeps one container's state in a file
dir=$(dirname "$0")
echo "$*" >> "$dir/calls.log"
state_file="$dir/state"
[ -f "$state_file" ] || echo running > "$state_file"
case "$1 $2" in
  "version --format")
    echo '{"Client": {"Version": "9.8.7"}}' ;;
  "container inspect")
    name=$6
    case "$name" in missing*) echo "no such container $name" >&2; exit 125 ;; esac
    printf '[{"Id": "0123456789abcdef", "Name": "%s", "State": {"Status": "%s"}}]\n' \
      "$name" "$(cat "$state_file")" ;;
  "container checkpoint")
    export_path=$4
    name=$9
    if [ "$name" = broken ]; then echo "criu dump failed" >&2; exit 1; fi
    echo exited > "$state_file"
    head -c SIZE /dev/zero | tr '\0' 'x' > "$export_path"
    echo '{"podman_checkpoint_duration": 1234, "container_statistics": [{"frozen_time": 42}]}'
    ;;
  "container restore")
    echo running > "$state_file" ;;
  *) echo "fake podman: unexpected $*" >&2; exit 99 ;;
esac
"""


@pytest.fixture
def podman(tmp_path: Path) -> Path:
    script = tmp_path / "podman"
    script.write_text(FAKE_PODMAN.replace("SIZE", str(PAYLOAD_BYTES)))
    script.chmod(0o755)
    return script


def run_client(
    podman: Path | str,
    scenario: Callable[[TestClient[Any, Any]], Awaitable[Any]],
    ssh_config: str | None = "/cfg/ssh_config",
    migrate: FakeMigrate | None = None,
    connection: ConnectionSettings | None = None,
) -> Any:
    """Run ``scenario`` against the shim; its migrations run through ``migrate`` and reach
    their hosts through ``connection`` (default: just ``ssh_config``)."""
    connection = connection or ConnectionSettings(ssh_config=ssh_config)
    run_migration = {} if migrate is None else {"run_migration": migrate}

    async def main() -> Any:
        app = http_shim.create_app(TOKEN, connection, podman=(str(podman),), **run_migration)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


async def raw_get(client: TestClient[Any, Any], target: str, auth: bool = True) -> int:
    """Send the request line byte for byte (no client-side URL normalization)."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    headers = f"Authorization: Bearer {TOKEN}\r\n" if auth else ""
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    body = await reader.read()
    writer.close()
    assert b"Content-Type: application/json" in body, body[:300]
    return int(status_line.split()[1])


def fake_report(container: str = "web", outcome: Outcome = Outcome.MIGRATED) -> MigrationReport:
    return MigrationReport(container=container, source="lab-a", target="lab-b", outcome=outcome)


class FakeMigrate:
    def __init__(self, error: BaseException | None = None, delay: float = 0.0):
        self.calls: list[tuple[str, str, str, Any]] = []
        self.error = error
        self.delay = delay
        self.release = threading.Event()

    def __call__(self, source: str, target: str, container: str, options: Any) -> Any:
        self.calls.append((source, target, container, options))
        if self.delay:
            self.release.wait(self.delay)
        if self.error is not None:
            raise self.error
        return fake_report(container)


# -- health and tokens ---------------------------------------------------------------------
def test_health_needs_no_token_and_reports_podman(podman: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.get("/health")
        return response.status, await response.json()

    status, body = run_client(podman, scenario)
    assert status == 200
    assert body["status"] == "UP"
    assert body["podman"] == "9.8.7"
    assert set(body) == {"status", "podman", "criu", "criu_check"}
    assert isinstance(body["criu_check"], bool)


def test_health_without_podman_is_still_up(tmp_path: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.get("/health")
        return response.status, await response.json()

    status, body = run_client(tmp_path / "no-such-podman", scenario)
    assert status == 200
    assert body["status"] == "UP"
    assert body["podman"] is None


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
    ],
)
def test_wrong_or_missing_token_is_refused(podman: Path, headers: dict[str, str]) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        answers = []
        for method, path in (
            ("POST", "/start_migration"),
            ("GET", "/container/web"),
            ("GET", "/containers/web"),
            ("GET", "/container/web/stats"),
            ("GET", "/migrations/abc"),
            ("GET", "/nowhere"),
        ):
            response = await client.request(method, path, headers=headers, json={})
            answers.append((response.status, await response.json()))
        return answers

    for status, body in run_client(podman, scenario):
        assert status == 401
        assert body["status"] == "failed"
    assert not (podman.parent / "calls.log").exists(), "nothing may run without the token"


def test_unknown_path_is_json_404(podman: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.get("/nowhere", headers=AUTH)
        wrong_method = await client.delete("/health")
        return response.status, await response.json(), wrong_method.status

    status, body, wrong_method = run_client(podman, scenario)
    assert status == 404
    assert body["status"] == "failed"
    assert wrong_method == 405


# -- /start_migration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "body",
    [
        {"source": "lab-a", "target": "lab-b", "container": "web"},
        {"source": "lab-a", "server_ip": "lab-b", "container_name": "web"},
    ],
)
def test_start_migration_new_and_old_field_names(podman: Path, body: dict[str, str]) -> None:
    fake = FakeMigrate()

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration", json=body, headers=AUTH)
        return response.status, await response.json()

    status, document = run_client(podman, scenario, migrate=fake)
    assert status == 200
    assert document == fake_report().to_dict()
    [(source, target, container, options)] = fake.calls
    assert (source, target, container) == ("lab-a", "lab-b", "web")
    assert options.connection_settings().ssh_config == "/cfg/ssh_config"


def test_start_migration_takes_the_settings_a_plan_takes(podman: Path) -> None:
    fake = FakeMigrate()
    body = {
        "source": "lab-a",
        "target": "lab-b",
        "container": "web",
        "tls": True,
        "compression": "none",
        "keep_source": True,
        "colour": "red",  # unknown keys are ignored, as the older server did
        "bwlimit": None,  # null: not given
    }

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration", json=body, headers=AUTH)
        return response.status

    assert run_client(podman, scenario, migrate=fake) == 200
    [(_, _, _, options)] = fake.calls
    assert (options.tls, options.compression, options.keep_source) == (True, "none", True)
    assert options.connection_settings().ssh_config == "/cfg/ssh_config"


def test_start_migration_reaches_hosts_through_the_shims_connection(podman: Path) -> None:
    fake = FakeMigrate()

    def resolver(name: str) -> ResolvedHost:
        return ResolvedHost(name=name, hostname=f"{name}.example")

    connection = ConnectionSettings("/cfg/other", resolver, accept_new_host_keys=True)
    body = {"source": "lab-a", "target": "lab-b", "container": "web"}

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration", json=body, headers=AUTH)
        return response.status

    assert run_client(podman, scenario, migrate=fake, connection=connection) == 200
    [(_, _, _, options)] = fake.calls
    assert options.connection is connection


def partial_error(error: Any) -> Any:
    error.report = fake_report(outcome=Outcome.NOT_STARTED)
    return error


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (partial_error(PreflightFailed("no CRIU on lab-b")), 409),
        (ConnectionFailed("lab-b: connection refused"), 502),
        (
            MigrationFailed(
                "restore failed; rolled back", report=fake_report(outcome=Outcome.ROLLED_BACK)
            ),
            500,
        ),
        (InvalidInput("bad name"), 400),
        (RuntimeError("a bug"), 500),
    ],
)
def test_errors_map_to_status_codes(podman: Path, error: BaseException, expected: int) -> None:
    fake = FakeMigrate(error=error)
    body = {"source": "lab-a", "target": "lab-b", "container": "web"}

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration", json=body, headers=AUTH)
        return response.status, await response.json()

    status, document = run_client(podman, scenario, migrate=fake)
    assert status == expected
    assert document["status"] == "failed"
    assert str(error) in document["error"]
    partial = getattr(error, "report", None)
    assert document["report"] == (partial.to_dict() if partial else None)


@pytest.mark.parametrize(
    "body",
    [
        {"target": "lab-b", "container": "web"},  # no source
        {"source": "lab-a", "container": "web"},
        {"source": "lab-a", "target": "lab-b"},
        {"source": "lab-a", "target": "lab-b", "container": "web;reboot"},
        {"source": "lab-a", "target": "lab-b", "container": "$(id)"},
        {"source": "lab-a", "target": "lab-b", "container": "../etc"},
        {"source": "lab-a;id", "target": "lab-b", "container": "web"},
        {"source": "lab-a", "server_ip": "-oProxyCommand=id", "container_name": "web"},
        {"source": "lab-a", "target": "lab-b", "container": 7},
        ["lab-a", "lab-b", "web"],
        {"source": "lab-a", "target": "lab-b", "container": "web", "tls": "yes"},
        {"source": "lab-a", "target": "lab-b", "container": "web", "compression": "lz4"},
        {"source": "lab-a", "target": "lab-b", "container": "web", "bwlimit": "fast"},
        {"source": "lab-a", "target": "lab-b", "container": "web", "tls": True, "bwlimit": "1M"},
        {"source": "lab-a", "target": "lab-b", "container": "web", "direct": True},
    ],
)
def test_bad_migration_input_is_400(podman: Path, body: Any) -> None:
    fake = FakeMigrate()

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration", json=body, headers=AUTH)
        not_json = await client.post("/start_migration", data=b"{oops", headers=AUTH)
        return response.status, await response.json(), not_json.status

    status, document, not_json = run_client(podman, scenario, migrate=fake)
    assert (status, not_json) == (400, 400)
    assert document["status"] == "failed"
    assert fake.calls == []


def test_wait_false_answers_202_and_polls(podman: Path) -> None:
    fake = FakeMigrate(delay=30)
    body = {"source": "lab-a", "target": "lab-b", "container": "web"}

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration?wait=false", json=body, headers=AUTH)
        accepted = response.status, await response.json()
        poll = accepted[1]["poll"]
        running = await (await client.get(poll, headers=AUTH)).json()
        fake.release.set()
        for _ in range(200):
            final = await (await client.get(poll, headers=AUTH)).json()
            if final["state"] != "running":
                break
            await asyncio.sleep(0.02)
        unknown = await client.get("/migrations/nope", headers=AUTH)
        return accepted, running, final, unknown.status

    (status, accepted), running, final, unknown = run_client(podman, scenario, migrate=fake)
    assert status == 202
    assert accepted["poll"] == f"/migrations/{accepted['id']}"
    assert running == {"state": "running"}
    assert final["state"] == "finished"
    assert final["outcome"] == "migrated"
    assert final["status"] == "succeeded"
    assert unknown == 404


def test_wait_false_keeps_the_error_document(podman: Path) -> None:
    fake = FakeMigrate(error=ConnectionFailed("down"))
    body = {"source": "lab-a", "target": "lab-b", "container": "web"}

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration?wait=false", json=body, headers=AUTH)
        poll = (await response.json())["poll"]
        for _ in range(200):
            final = await (await client.get(poll, headers=AUTH)).json()
            if final["state"] != "running":
                return final
            await asyncio.sleep(0.02)
        raise AssertionError("never finished")

    final = run_client(podman, scenario, migrate=fake)
    assert final["status"] == "failed"
    assert final["error"] == "down"
    assert final["http"] == 502


# -- /container/<id> -----------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["/container", "/containers"])
def test_export_streams_what_podman_writes(podman: Path, prefix: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.get(f"{prefix}/web", headers=AUTH)
        data = await response.read()
        stats = await client.get(f"{prefix}/web/stats", headers=AUTH)
        by_id = await client.get("/container/0123456789abcdef/stats", headers=AUTH)
        return response.status, dict(response.headers), data, await stats.json(), by_id.status

    status, headers, data, stats, by_id = run_client(podman, scenario)
    assert status == 200
    assert headers["Content-Type"] == "application/x-tar"
    assert headers["X-Celestial-Container-Id"] == "0123456789abcdef"
    assert data == b"x" * PAYLOAD_BYTES
    assert stats["exit_code"] == 0
    assert stats["complete"] is True
    assert stats["stats"]["podman_checkpoint_duration"] == 1234
    assert by_id == 200
    calls = (podman.parent / "calls.log").read_text().splitlines()
    [checkpoint] = [line for line in calls if line.startswith("container checkpoint")]
    argv = checkpoint.split()
    export_path = Path(argv[3])
    assert argv[4:] == ["--compress", "none", "--print-stats", "--", "web"]
    assert export_path.name == "export.tar"
    assert not export_path.parent.exists(), "the private work directory is removed"
    assert not any("restore" in line for line in calls), "a complete download is not undone"


def test_export_of_unknown_container_is_404(podman: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.get("/container/missing-one", headers=AUTH)
        stats = await client.get("/container/nothing-yet/stats", headers=AUTH)
        return response.status, await response.json(), stats.status

    status, body, stats = run_client(podman, scenario)
    assert (status, stats) == (404, 404)
    assert body["status"] == "failed"


def test_failed_checkpoint_is_json_500(podman: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await asyncio.wait_for(client.get("/container/broken", headers=AUTH), 20)
        return response.status, await response.json()

    status, body = run_client(podman, scenario)
    assert status == 500
    assert "criu dump failed" in body["stderr"]


def test_client_disconnect_drains_and_restores_here(podman: Path) -> None:
    calls = podman.parent / "calls.log"

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.get("/container/web", headers=AUTH)
        assert response.status == 200
        await response.content.read(4096)
        response.close()  # the client goes away mid-stream
        deadline = time.monotonic() + 20
        # the engine's rollback restore, run with the fake podman
        restore = " ".join(restore_local("0123456789abcdef")[1:])
        while restore not in calls.read_text():
            assert time.monotonic() < deadline, "the container was not restored here"
            await asyncio.sleep(0.05)
        for _ in range(100):
            stats = await (await client.get("/container/web/stats", headers=AUTH)).json()
            if "restored_here" in stats:
                return stats
            await asyncio.sleep(0.05)
        raise AssertionError("no stats after the broken download")

    stats = run_client(podman, scenario)
    assert stats["complete"] is False
    assert stats["restored_here"] is True
    assert (podman.parent / "state").read_text().strip() == "running"


@pytest.mark.parametrize(
    "target",
    [
        "/container/../x",
        "/container/%2e%2e",
        "/container/%2E%2E/stats",
        "/container/..%2fetc%2fpasswd",
        "/container/web;reboot",
        "/container/$(id)",
        "/container/%24(id)",
        "/containers/web%3Bid",
        "/container/-rf",
        "/container/.hidden",
        "/container/a%20b",
        "/container/%00",
        "/container/web/../../health",
    ],
)
def test_path_tricks_are_refused(podman: Path, target: str) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        return await raw_get(client, target)

    status = run_client(podman, scenario)
    assert status in (400, 404)
    calls = podman.parent / "calls.log"
    assert not calls.exists() or "checkpoint" not in calls.read_text()


# -- the command -------------------------------------------------------------------------
def test_serve_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(http_shim.TOKEN_ENV, raising=False)
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code == 2
    assert "token" in result.output


def test_serve_refuses_an_empty_token_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(http_shim.TOKEN_ENV, raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("  \n")
    result = CliRunner().invoke(cli, ["serve", "--token-file", str(token_file)])
    assert result.exit_code == 2


def test_token_comes_from_file_stripped_or_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("abc\n")
    monkeypatch.setenv(http_shim.TOKEN_ENV, "from-env")
    assert http_shim.read_token(str(token_file)) == "abc"
    assert http_shim.read_token(None) == "from-env"


def test_the_library_does_not_import_aiohttp() -> None:
    code = "import sys, celestial_ssh; sys.exit('aiohttp' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_health_document_is_json_serializable(podman: Path) -> None:
    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.get("/health")
        return response.headers["Content-Type"], await response.text()

    content_type, text = run_client(podman, scenario)
    assert content_type.startswith("application/json")
    document = json.loads(text)
    assert isinstance(document, dict)
    assert (document["status"], document["podman"]) == ("UP", "9.8.7")
    assert document["criu"] is None or isinstance(document["criu"], str)
    assert isinstance(document["criu_check"], bool)
    assert json.loads(json.dumps(document)) == document  # plain JSON values only
