"""`migrate-container`: the SSH migration by default, or one POST to an HTTP shim (--via-http)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner, Result

from celestial_ssh.errors import MigrationFailed
from celestial_ssh.migration import MigrationOptions
from celestial_ssh.report import MigrationReport, Outcome
from celestial_ssh_cli import legacy
from celestial_ssh_cli import main as cli_main
from celestial_ssh_cli.failures import ExitCode, exit_code_for_http

TOKEN = "legacy-s3cret"


def report(outcome: Outcome = Outcome.MIGRATED, **fields: Any) -> MigrationReport:
    return MigrationReport(
        container="web",
        source="lab-a",
        target="lab-b",
        outcome=outcome,
        target_container="web",
        total_s=2.5,
        downtime_s=0.75,
        bytes_transferred=12_000_000,
        archive_bytes=12_000_000,
        **fields,
    )


# -- a fake engine for the SSH path ----------------------------------------------------------
class FakeMigration:
    """Stands in for celestial_ssh.migration.Migration in the CLI: records, never connects."""

    created: ClassVar[list[FakeMigration]] = []
    outcome: ClassVar[MigrationReport | BaseException] = report()

    def __init__(
        self, source: str, target: str, container: str, options: MigrationOptions, on_event: Any
    ):
        self.args = (source, target, container)
        self.options = options
        self.cancel_requested = False
        FakeMigration.created.append(self)

    def request_cancel(self) -> None:
        self.cancel_requested = True

    def run(self) -> MigrationReport:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> type[FakeMigration]:
    FakeMigration.created = []
    FakeMigration.outcome = report()
    monkeypatch.setattr(cli_main, "Migration", FakeMigration)
    return FakeMigration


# -- a tiny HTTP server with canned answers for --via-http -----------------------------------
@dataclass
class Canned:
    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, status: int, document: Any = None, raw: bytes | None = None) -> None:
        self.status = status
        self.body = raw if raw is not None else json.dumps(document).encode()
        self.content_type = "text/html" if raw is not None else "application/json"


@dataclass
class FakeShim:
    url: str
    canned: Canned


@pytest.fixture
def fake_shim() -> Iterator[FakeShim]:
    canned = Canned()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            canned.requests.append(
                {
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": self.rfile.read(length),
                }
            )
            self.send_response(canned.status)
            self.send_header("Content-Type", canned.content_type)
            self.send_header("Content-Length", str(len(canned.body)))
            self.end_headers()
            self.wfile.write(canned.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield FakeShim(url=f"http://127.0.0.1:{server.server_address[1]}", canned=canned)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CELESTIAL_SSH_TOKEN", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(legacy.migrate_container, list(args), env=env, catch_exceptions=False)


def via_http(shim: FakeShim, token_file: str, *args: str) -> Result:
    return invoke("--via-http", "--shim-url", shim.url, "--token-file", token_file, *args)


# -- without --via-http: the SSH migration ---------------------------------------------------
def test_runs_the_ssh_migration_with_migrates_options(fake_engine: type[FakeMigration]) -> None:
    result = invoke(
        "-F", "/etc/lab_ssh_config", "--json", "--keep-source", "10.0.0.1", "10.0.0.2", "web"
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == report().to_dict()
    [migration] = fake_engine.created
    assert migration.args == ("10.0.0.1", "10.0.0.2", "web")
    assert migration.options.connection_settings().ssh_config == "/etc/lab_ssh_config"
    assert migration.options.keep_source is True
    assert migration.options.compression == "auto"  # migrate's default


def test_ssh_migration_failure_has_migrates_exit_code(fake_engine: type[FakeMigration]) -> None:
    fake_engine.outcome = MigrationFailed("restore failed", report=report(Outcome.ROLLED_BACK))
    result = invoke("--json", "lab-a", "lab-b", "web")
    assert result.exit_code == ExitCode.ROLLED_BACK
    document = json.loads(result.stdout)
    assert document["outcome"] == "rolled_back"
    assert document["exit_code"] == 5
    assert "restore failed" in result.stderr


def test_plain_ssh_migration_prints_the_summary(fake_engine: type[FakeMigration]) -> None:
    result = invoke("lab-a", "lab-b", "web")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "Migrated web from lab-a to lab-b" in result.stderr


def test_http_options_need_via_http(fake_engine: type[FakeMigration], token_file: str) -> None:
    for extra in (["--shim-url", "http://127.0.0.1:1"], ["--token-file", token_file]):
        result = invoke(*extra, "lab-a", "lab-b", "web")
        assert result.exit_code == ExitCode.USAGE
        assert "only go with --via-http" in result.stderr
    assert fake_engine.created == []


def test_help_lists_migrates_and_the_http_options() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "Usage: migrate-container [OPTIONS] SOURCE TARGET CONTAINER" in result.stdout
    for option in ("--ssh-config", "--json", "--compress", "--via-http", "--shim-url"):
        assert option in result.stdout


# -- --via-http ------------------------------------------------------------------------------
def test_via_http_success_prints_the_report(
    fake_shim: FakeShim, token_file: str, fake_engine: type[FakeMigration]
) -> None:
    fake_shim.canned.answer(200, report().to_dict())
    result = via_http(fake_shim, token_file, "--json", "lab-a", "lab-b", "web")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == report().to_dict()
    [request] = fake_shim.canned.requests
    assert request["path"] == "/start_migration"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"source": "lab-a", "target": "lab-b", "container": "web"}
    assert fake_engine.created == [], "no SSH migration from here"


def test_via_http_plain_output_is_one_summary_line(fake_shim: FakeShim) -> None:
    fake_shim.canned.answer(200, report(warnings=["slow disk"]).to_dict())
    result = invoke(
        "--via-http",
        "--shim-url",
        fake_shim.url + "/",
        "lab-a",
        "lab-b",
        "web",
        env={"CELESTIAL_SSH_TOKEN": TOKEN},
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"Migrated web from lab-a to lab-b as web via {fake_shim.url}: "
        "total 2.50 s, downtime 0.75 s, 12.0 MB transferred"
    )
    assert lines[1:] == ["warning: slow disk"]
    [request] = fake_shim.canned.requests
    assert request["path"] == "/start_migration"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_quiet_via_http_prints_nothing(fake_shim: FakeShim, token_file: str) -> None:
    fake_shim.canned.answer(200, report().to_dict())
    result = via_http(fake_shim, token_file, "-q", "lab-a", "lab-b", "web")
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ("", "")


def test_refused_token_is_a_connection_error(fake_shim: FakeShim, token_file: str) -> None:
    fake_shim.canned.answer(401, {"status": "failed", "error": "missing or wrong bearer token"})
    result = via_http(fake_shim, token_file, "lab-a", "lab-b", "web")
    assert result.exit_code == ExitCode.CONNECTION
    assert f"token refused by the HTTP shim at {fake_shim.url}" in result.stderr
    assert "missing or wrong bearer token" in result.stderr


def test_preflight_failure_409(fake_shim: FakeShim, token_file: str) -> None:
    message = "lab-a: no container 'web'"
    fake_shim.canned.answer(
        409,
        {"status": "failed", "error": message, "report": report(Outcome.NOT_STARTED).to_dict()},
    )
    result = via_http(fake_shim, token_file, "--json", "lab-a", "lab-b", "web")
    assert result.exit_code == ExitCode.PREFLIGHT
    assert message in result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert document["outcome"] == "not_started"
    assert (document["exit_code"], document["http_status"]) == (4, 409)
    assert document["error"].startswith(message)


def test_rolled_back_500(fake_shim: FakeShim, token_file: str) -> None:
    message = "migration of 'web' failed: restore failed\nThe container was not lost"
    fake_shim.canned.answer(
        500,
        {"status": "failed", "error": message, "report": report(Outcome.ROLLED_BACK).to_dict()},
    )
    result = via_http(fake_shim, token_file, "--json", "lab-a", "lab-b", "web")
    assert result.exit_code == ExitCode.ROLLED_BACK
    document = json.loads(result.stdout)
    assert document["outcome"] == "rolled_back"
    assert (document["exit_code"], document["http_status"]) == (5, 500)
    assert "The container was not lost" in result.stderr


@pytest.mark.parametrize(
    ("status", "document", "code"),
    [
        (400, {"status": "failed", "error": "'container' is required"}, ExitCode.USAGE),
        (502, {"status": "failed", "error": "lab-b: connection refused"}, ExitCode.CONNECTION),
        (
            500,
            {"status": "failed", "error": "x", "report": report(Outcome.NEEDS_RECOVERY).to_dict()},
            ExitCode.NEEDS_RECOVERY,
        ),
        (500, {"status": "failed", "error": "internal error: boom", "report": None}, 1),
    ],
)
def test_other_answers(
    fake_shim: FakeShim, token_file: str, status: int, document: Any, code: int
) -> None:
    fake_shim.canned.answer(status, document)
    result = via_http(fake_shim, token_file, "lab-a", "lab-b", "web")
    assert result.exit_code == code
    assert document["error"] in result.stderr
    assert f"HTTP {status}" in result.stderr


def test_an_html_error_page_from_a_proxy(fake_shim: FakeShim, token_file: str) -> None:
    fake_shim.canned.answer(502, raw=b"Bad Gateway from the proxy\n<html></html>")
    result = via_http(fake_shim, token_file, "--json", "lab-a", "lab-b", "web")
    assert result.exit_code == ExitCode.CONNECTION
    assert "Bad Gateway from the proxy (HTTP 502" in result.stderr
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert (document["container"], document["exit_code"]) == ("web", 3)


def test_a_200_without_json_is_an_error(fake_shim: FakeShim, token_file: str) -> None:
    fake_shim.canned.answer(200, raw=b"<html>not a shim</html>")
    result = via_http(fake_shim, token_file, "lab-a", "lab-b", "web")
    assert result.exit_code == ExitCode.ERROR
    assert "without a JSON report" in result.stderr


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_unreachable_shim(token_file: str) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    result = invoke(
        "--via-http", "--shim-url", url, "--token-file", token_file, "--json", "a", "b", "web"
    )
    assert result.exit_code == ExitCode.CONNECTION
    assert f"cannot reach the HTTP shim at {url}" in result.stderr
    document = json.loads(result.stdout)
    assert document["http_status"] is None
    assert (document["source"], document["target"], document["container"]) == ("a", "b", "web")


def test_no_token_is_a_usage_error_and_nothing_is_sent(fake_shim: FakeShim) -> None:
    result = invoke("--via-http", "--shim-url", fake_shim.url, "lab-a", "lab-b", "web")
    assert result.exit_code == ExitCode.USAGE
    assert "CELESTIAL_SSH_TOKEN" in result.stderr
    assert fake_shim.canned.requests == []


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["-F", "x"], "--ssh-config"),
        (["--name", "web2"], "--name"),
        (["--compress", "zstd"], "--compress"),
        (["--tcp-established"], "--tcp-established"),
        (["--report", "r.csv"], "--report"),
    ],
)
def test_ssh_only_options_are_refused_with_via_http(
    fake_shim: FakeShim, token_file: str, extra: list[str], flag: str
) -> None:
    result = via_http(fake_shim, token_file, *extra, "lab-a", "lab-b", "web")
    assert result.exit_code == ExitCode.USAGE
    assert f"{flag} cannot be used with --via-http" in result.stderr
    assert fake_shim.canned.requests == []


def test_the_default_options_are_fine_with_via_http(fake_shim: FakeShim, token_file: str) -> None:
    fake_shim.canned.answer(200, report().to_dict())
    result = via_http(fake_shim, token_file, "--compress", "auto", "-v", "lab-a", "lab-b", "web")
    assert result.exit_code == 0, result.stderr
    assert f"POST {fake_shim.url}/start_migration" in result.stderr


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("10.0.0.2", "http://10.0.0.2:8080"),
        ("root@10.0.0.2:2222", "http://10.0.0.2:8080"),
        ("lab-b", "http://lab-b:8080"),
        ("root@[::1]:2222", "http://[::1]:8080"),
    ],
)
def test_default_shim_url_is_the_target_host(target: str, url: str) -> None:
    assert legacy.default_shim_url(target) == url


def test_default_shim_url_is_used(monkeypatch: pytest.MonkeyPatch, token_file: str) -> None:
    posted: list[str] = []

    def post(url: str, body: dict[str, str], token: str, timeout: float = 0) -> tuple[int, bytes]:
        posted.append(url)
        return 200, json.dumps(report().to_dict()).encode()

    monkeypatch.setattr(legacy, "post_start_migration", post)
    result = invoke("--via-http", "--token-file", token_file, "10.0.0.1", "10.0.0.2", "web")
    assert result.exit_code == 0, result.stderr
    assert posted == ["http://10.0.0.2:8080"]


def test_a_bad_shim_url_is_a_usage_error(token_file: str) -> None:
    result = invoke(
        "--via-http", "--shim-url", "ftp://x", "--token-file", token_file, "a", "b", "web"
    )
    assert result.exit_code == ExitCode.USAGE
    assert "http:// or https://" in result.stderr


# -- the status -> exit code map -------------------------------------------------------------
def rolled(outcome: str) -> dict[str, Any]:
    return {"status": "failed", "error": "x", "report": {"outcome": outcome}}


@pytest.mark.parametrize(
    ("status", "document", "code"),
    [
        (None, None, ExitCode.CONNECTION),
        (200, {}, ExitCode.OK),
        (400, None, ExitCode.USAGE),
        (401, None, ExitCode.CONNECTION),
        (404, None, ExitCode.USAGE),
        (409, None, ExitCode.PREFLIGHT),
        (502, None, ExitCode.CONNECTION),
        (503, None, ExitCode.CONNECTION),
        (500, rolled("rolled_back"), ExitCode.ROLLED_BACK),
        (500, rolled("needs_recovery"), ExitCode.NEEDS_RECOVERY),
        (500, rolled("not_started"), ExitCode.PREFLIGHT),
        (500, rolled("migrated"), ExitCode.ERROR),
        (500, {"status": "failed", "error": "x", "report": None}, ExitCode.ERROR),
        (500, None, ExitCode.ERROR),
        (500, ["not", "a", "dict"], ExitCode.ERROR),
        (418, None, ExitCode.USAGE),
        (505, None, ExitCode.ERROR),
    ],
)
def test_exit_code_for_http(status: int | None, document: Any, code: ExitCode) -> None:
    assert exit_code_for_http(status, document) is code
