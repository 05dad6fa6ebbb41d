"""Exceptions become exit codes and messages in one place; the CLI keeps to them."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from celestial_ssh.batch import BatchReport
from celestial_ssh.connection import ConnectionSettings, Connector
from celestial_ssh.errors import (
    AuthenticationFailed,
    CelestialError,
    ConnectionFailed,
    HostConfigError,
    HostKeyRejected,
    InvalidInput,
    LockHeld,
    MigrationFailed,
    MigrationInterrupted,
    PreflightFailed,
    RemoteCommandFailed,
)
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.recovery import RunningTwice
from celestial_ssh.report import MigrationReport, Outcome
from celestial_ssh.ssh import NoticeSink, SSHSession
from celestial_ssh_cli import batch_run
from celestial_ssh_cli import main as cli_main
from celestial_ssh_cli.failures import ExitCode, exit_code_for, message_for
from celestial_ssh_cli.main import cli


def report(outcome: Outcome) -> MigrationReport:
    return MigrationReport(container="web", source="lab-a", target="lab-b", outcome=outcome)


def test_exit_codes_are_stable() -> None:
    # scripts depend on these numbers (README): they never change meaning
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "ERROR": 1,
        "USAGE": 2,
        "CONNECTION": 3,
        "PREFLIGHT": 4,
        "ROLLED_BACK": 5,
        "NEEDS_RECOVERY": 6,
        "INTERRUPTED": 130,
    }


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(InvalidInput("bad name"), ExitCode.USAGE, id="InvalidInput"),
        pytest.param(ConnectionFailed("down"), ExitCode.CONNECTION, id="ConnectionFailed"),
        pytest.param(HostKeyRejected("changed"), ExitCode.CONNECTION, id="HostKeyRejected"),
        pytest.param(
            AuthenticationFailed("no key"), ExitCode.CONNECTION, id="AuthenticationFailed"
        ),
        pytest.param(HostConfigError("no such file"), ExitCode.CONNECTION, id="HostConfigError"),
        pytest.param(PreflightFailed("no criu"), ExitCode.PREFLIGHT, id="PreflightFailed"),
        pytest.param(LockHeld("busy"), ExitCode.PREFLIGHT, id="LockHeld"),
        pytest.param(
            RemoteCommandFailed("mktemp failed", host="h", command="c", exit_status=1, stderr=""),
            ExitCode.PREFLIGHT,
            id="RemoteCommandFailed-before-freeze",
        ),
        pytest.param(CelestialError("other"), ExitCode.PREFLIGHT, id="CelestialError"),
        pytest.param(
            MigrationFailed("x", report=report(Outcome.ROLLED_BACK)),
            ExitCode.ROLLED_BACK,
            id="MigrationFailed-rolled-back",
        ),
        pytest.param(
            MigrationFailed("x", report=report(Outcome.NEEDS_RECOVERY)),
            ExitCode.NEEDS_RECOVERY,
            id="MigrationFailed-needs-recovery",
        ),
        pytest.param(
            MigrationInterrupted("x", report=report(Outcome.ROLLED_BACK)),
            ExitCode.INTERRUPTED,
            id="MigrationInterrupted",
        ),
        pytest.param(
            MigrationInterrupted("x", report=report(Outcome.NOT_STARTED)),
            ExitCode.INTERRUPTED,
            id="MigrationInterrupted-before-freeze",
        ),
        pytest.param(
            MigrationInterrupted("x", report=report(Outcome.NEEDS_RECOVERY)),
            ExitCode.NEEDS_RECOVERY,  # "read the message" wins over "interrupted"
            id="MigrationInterrupted-needs-recovery",
        ),
        pytest.param(
            RunningTwice("runs on both"),  # recover: a human must choose
            ExitCode.NEEDS_RECOVERY,
            id="RunningTwice",
        ),
        pytest.param(KeyboardInterrupt(), ExitCode.INTERRUPTED, id="KeyboardInterrupt"),
        pytest.param(ValueError("boom"), ExitCode.ERROR, id="ValueError"),
        pytest.param(AssertionError(), ExitCode.ERROR, id="AssertionError"),
    ],
)
def test_exit_code_for(error: BaseException, code: ExitCode) -> None:
    assert exit_code_for(error) is code


def test_message_for_our_errors_includes_the_hint() -> None:
    error = PreflightFailed("lab-b: CRIU is not installed", host="lab-b", hint="apt install criu")
    assert (
        message_for(error) == "celestial-ssh: error: lab-b: CRIU is not installed\napt install criu"
    )


def test_message_for_a_failed_command_shows_its_stderr_tail() -> None:
    stderr = "\n".join(f"line {n}" for n in range(20))
    error = RemoteCommandFailed(
        "lab-b: podman load failed",
        host="lab-b",
        command="podman load",
        exit_status=125,
        stderr=stderr,
    )
    message = message_for(error)
    assert message.startswith("celestial-ssh: error: lab-b: podman load failed (exit 125)\n")
    assert message.splitlines()[1:] == [f"  line {n}" for n in range(12, 20)]


def test_message_for_an_interrupt() -> None:
    assert message_for(KeyboardInterrupt()) == "celestial-ssh: interrupted"


def test_message_for_a_bug_shows_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError as error:
        message = message_for(error)
    assert message.startswith("celestial-ssh: internal error (this is a bug; please report it")
    assert "Traceback (most recent call last)" in message
    assert message.endswith("ValueError: boom")


# -- the command line -----------------------------------------------------------------------------
@pytest.fixture
def no_hosts(
    monkeypatch: pytest.MonkeyPatch, cli_connection: Callable[[ConnectionSettings], None]
) -> dict[str, list[Any]]:
    """Record (and refuse) any host resolution or SSH session the CLI would start (a
    migration opens its sessions only to hosts it resolved)."""
    calls: dict[str, list[Any]] = {"resolve": [], "session": []}

    def resolve(*args: Any, **kwargs: Any) -> ResolvedHost:
        calls["resolve"].append(args)
        raise AssertionError("no host may be resolved")

    def session(*args: Any, **kwargs: Any) -> SSHSession:
        calls["session"].append(args)
        raise AssertionError("no SSH session may be opened")

    cli_connection(ConnectionSettings(host_resolver=resolve, connector=session))
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    return calls


def refusing_connector(sessions: list[Any]) -> Connector:
    """A connector that records the host it was asked for and opens nothing."""

    def connect(host: ResolvedHost, notice: NoticeSink) -> SSHSession:
        sessions.append(host)
        raise AssertionError("no SSH session may be opened")

    return connect


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        pytest.param(["web;reboot"], "container 'web;reboot'", id="container-semicolon"),
        pytest.param(["$(reboot)"], "container '$(reboot)'", id="container-substitution"),
        pytest.param(["--", "-rf"], "container '-rf'", id="container-dash"),
        pytest.param(["web", "--name", "a b"], "new name 'a b'", id="new-name"),
    ],
)
def test_migrate_refuses_hostile_names_before_connecting(
    no_hosts: dict[str, list[Any]], args: list[str], bad: str
) -> None:
    result = invoke("migrate", "lab-a", "lab-b", *args)
    assert result.exit_code == ExitCode.USAGE == 2
    assert result.stdout == ""
    assert f"celestial-ssh: error: {bad} is not a valid container name or ID" in result.stderr
    assert "nothing is run on either host" in result.stderr
    assert no_hosts == {"resolve": [], "session": []}


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        *(
            pytest.param(
                command,
                ["--data-path", "relay", "--tls-address", "10.0.0.6"],
                "--tls-address has no use with --data-path relay",
                id=f"{command}-relay",
            )
            for command in ("migrate", "probe")
        ),
        *(
            pytest.param(
                command,
                ["--tls", "--tls-address", "lab-b"],
                "--tls-address 'lab-b' is not an IP",
                id=f"{command}-name",
            )
            for command in ("migrate", "probe")
        ),
    ],
)
def test_a_bad_tls_address_is_refused_before_connecting(
    no_hosts: dict[str, list[Any]],
    command: str,
    args: list[str],
    message: str,
) -> None:
    operands = ["lab-a", "lab-b", *(["web"] if command == "migrate" else [])]
    result = invoke(command, *operands, *args)
    assert result.exit_code == ExitCode.USAGE == 2
    assert message in result.stderr
    assert no_hosts == {"resolve": [], "session": []}


def test_migrate_json_reports_refused_input(no_hosts: dict[str, list[Any]]) -> None:
    result = invoke("migrate", "lab-a", "lab-b", "web;reboot", "--json")
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert document["exit_code"] == 2
    assert document["outcome"] == "not_started"
    assert (document["container"], document["source"], document["target"]) == (
        "web;reboot",
        "lab-a",
        "lab-b",
    )
    assert "is not a valid container name or ID" in document["error"]
    assert document["bytes_transferred"] == 0
    assert "celestial-ssh: error:" in result.stderr  # the message still goes to stderr
    assert no_hosts == {"resolve": [], "session": []}


def test_migrate_with_a_missing_ssh_config(
    tmp_path: Path, cli_connection: Callable[[ConnectionSettings], None]
) -> None:
    sessions: list[Any] = []
    cli_connection(ConnectionSettings(connector=refusing_connector(sessions)))
    missing = tmp_path / "nowhere" / "ssh_config"
    result = invoke("migrate", "lab-a", "lab-b", "web", "-F", str(missing))
    # click.Path(dir_okay=False) does not require the file: the library refuses it
    assert result.exit_code == ExitCode.CONNECTION == 3
    assert f"ssh_config file '{missing}' does not exist" in result.stderr
    assert "Pass an existing file with --ssh-config" in result.stderr
    # the plain display (stderr is not a terminal) shows where it failed
    assert "Connect to both hosts: FAILED after" in result.stderr
    assert sessions == []


def test_migrate_json_with_a_missing_ssh_config(tmp_path: Path) -> None:
    missing = tmp_path / "ssh_config"
    result = invoke("migrate", "lab-a", "lab-b", "web", "--ssh-config", str(missing), "--json")
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["status"] == "failed"
    assert document["exit_code"] == 3
    assert document["outcome"] == "not_started"
    assert str(missing) in document["error"]


def test_migrate_with_a_directory_as_ssh_config_is_a_usage_error(tmp_path: Path) -> None:
    result = invoke("migrate", "lab-a", "lab-b", "web", "--ssh-config", str(tmp_path))
    assert result.exit_code == 2  # click refuses a directory itself
    assert str(tmp_path) in result.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        pytest.param(["web", "--compress", "xz"], "Invalid value for '--compress'", id="compress"),
        pytest.param([], "Missing argument 'CONTAINER'", id="missing-container"),
        pytest.param(["web", "--bogus"], "No such option '--bogus'", id="unknown-option"),
    ],
)
def test_click_usage_errors(
    no_hosts: dict[str, list[Any]], args: list[str], complaint: str
) -> None:
    result = invoke("migrate", "lab-a", "lab-b", *args)
    assert result.exit_code == 2
    assert complaint in result.stderr
    assert no_hosts == {"resolve": [], "session": []}


def test_hostile_host_is_a_usage_error(
    cli_connection: Callable[[ConnectionSettings], None],
) -> None:
    sessions: list[Any] = []
    cli_connection(ConnectionSettings(connector=refusing_connector(sessions)))
    result = invoke("migrate", "-oProxyCommand=x", "lab-b", "web")
    assert result.exit_code == ExitCode.USAGE  # click takes it for an unknown option -o
    assert "No such option '-o'" in result.stderr
    assert sessions == []


def test_hostile_host_after_double_dash_is_refused_by_the_library(
    cli_connection: Callable[[ConnectionSettings], None],
) -> None:
    sessions: list[Any] = []
    cli_connection(ConnectionSettings(connector=refusing_connector(sessions)))
    result = invoke("migrate", "--", "-oProxyCommand=x", "lab-b", "web")
    assert result.exit_code == ExitCode.USAGE
    assert "'-oProxyCommand=x' is not a host" in result.stderr
    assert sessions == []


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == "celestial-ssh, version 0.1.0"


# -- the boundary: Ctrl-C, SIGTERM and bugs -------------------------------------------------------
class InterruptedMigration:
    """Stands in for Migration: signals itself while it runs, as a user's Ctrl-C would."""

    signals: ClassVar[list[signal.Signals]] = [signal.SIGINT]

    def __init__(self, source: str, target: str, container: str, options: Any, on_event: Any):
        self.cancel_requested = False

    def request_cancel(self) -> None:
        self.cancel_requested = True

    def run(self) -> MigrationReport:
        for sig in self.signals:
            os.kill(os.getpid(), sig)
        assert self.cancel_requested, "the signal handler did not ask to cancel"
        raise MigrationInterrupted("interrupted", report=report(Outcome.ROLLED_BACK))


@pytest.mark.parametrize("signals", [[signal.SIGINT], [signal.SIGTERM, signal.SIGTERM]])
def test_a_signal_cancels_the_migration_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, signals: list[signal.Signals]
) -> None:
    monkeypatch.setattr(cli_main, "Migration", InterruptedMigration)
    monkeypatch.setattr(InterruptedMigration, "signals", signals)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    result = invoke("migrate", "lab-a", "lab-b", "web", "--json")
    assert result.exit_code == ExitCode.INTERRUPTED == 130
    assert json.loads(result.stdout)["exit_code"] == 130
    name = signals[0].name
    assert f"celestial-ssh: {name}: stopping at the next safe point and rolling back" in (
        result.stderr
    )
    assert (f"{name} again: still stopping safely" in result.stderr) == (len(signals) > 1)
    assert {sig: signal.getsignal(sig) for sig in before} == before, "handlers not restored"


def test_a_signal_cancels_a_batch_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.yml"
    plan.write_text("migrations:\n  - {container: web, from: lab-a, to: lab-b}\n")

    def interrupted_batch(plan: Any, *, cancel: threading.Event, **kwargs: Any) -> BatchReport:
        os.kill(os.getpid(), signal.SIGINT)
        assert cancel.is_set(), "the signal handler did not cancel the batch"
        return BatchReport(entries=[], cancelled=True, total_s=0.0)

    monkeypatch.setattr(batch_run, "run_batch", interrupted_batch)
    result = invoke("batch", str(plan), "--json")
    assert result.exit_code == ExitCode.INTERRUPTED
    assert json.loads(result.stdout)["cancelled"] is True
    assert "SIGINT: stopping every migration at its next safe point" in result.stderr


def test_a_bug_becomes_exit_1_with_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    class BrokenMigration(InterruptedMigration):
        def run(self) -> MigrationReport:
            raise ValueError("boom")

    monkeypatch.setattr(cli_main, "Migration", BrokenMigration)
    result = invoke("migrate", "lab-a", "lab-b", "web", "--json")
    assert result.exit_code == ExitCode.ERROR == 1
    document = json.loads(result.stdout)
    assert (document["status"], document["error"]) == ("failed", "ValueError('boom')")
    assert "internal error (this is a bug" in result.stderr
    assert result.stderr.rstrip().endswith("ValueError: boom")
