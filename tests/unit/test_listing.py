"""ps: container rows, the checkpointable rule, tolerance of stats failures, the CLI."""

from __future__ import annotations

import json
from typing import Any

import click
import pytest
from click.testing import CliRunner

from celestial_ssh import commands, doctor_commands
from celestial_ssh.errors import ConnectionFailed
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.listing import checkpoint_blocker, list_containers, parse_size
from celestial_ssh.ssh import SUDO_PREFIX
from celestial_ssh_cli import fleet_commands as cli_fleet_commands
from celestial_ssh_cli.fleet_commands import doctor_command, ps_command
from tests.unit.fakes import FakeFleet, FakeSession

WEB = "a" * 64
DB = "b" * 64
OLD = "c" * 64
PRIV = "d" * 64


def listing(*items: tuple[str, str, str]) -> str:
    return json.dumps(
        [
            {"Id": cid, "Names": [name], "State": state, "Image": "localhost/memtick:latest"}
            for cid, name, state in items
        ]
    )


def inspect(cid: str, **host_config: Any) -> dict[str, Any]:
    return {
        "Id": cid,
        "ImageName": "localhost/memtick:latest",
        "Pod": "",
        "HostConfig": {"NetworkMode": "bridge", "Privileged": False, **host_config},
    }


ITEMS = [(WEB, "web", "running"), (DB, "db", "running"), (OLD, "old", "exited")]
STATS = json.dumps(
    [
        {"id": WEB[:12], "name": "web", "mem_usage": "17.06MB / 25.33GB"},
        {"id": DB[:12], "name": "db", "mem_usage": "1.5GiB / 25.33GB"},
    ]
)


def responses(
    items: list[tuple[str, str, str]] = ITEMS,
    inspected: list[dict[str, Any]] | None = None,
    stats: tuple[int, str, str] = (0, STATS, ""),
) -> dict[tuple[str, ...], tuple[int, str, str]]:
    if inspected is None:
        inspected = [inspect(WEB), inspect(DB, NetworkMode="host"), inspect(OLD)]
    table = {
        tuple(commands.whoami()): (0, "0\n", ""),
        tuple(commands.container_list_all()): (0, listing(*items), ""),
        tuple(doctor_commands.container_stats()): stats,
    }
    if items:
        ids = [cid for cid, _, _ in items]
        table[tuple(doctor_commands.container_inspect_many(ids))] = (0, json.dumps(inspected), "")
    return table


@pytest.fixture
def fleet() -> FakeFleet:
    return FakeFleet()


def add(fleet: FakeFleet, name: str, **kwargs: Any) -> FakeSession:
    user = kwargs.pop("user", "root")
    return fleet.add(
        FakeSession(
            ResolvedHost(name=name, hostname=f"{name}.example", user=user),
            kwargs.pop("responses", None) or responses(),
            **kwargs,
        )
    )


def test_rows(fleet: FakeFleet) -> None:
    session = add(fleet, "alpha")
    rows = {row.name: row for row in list_containers("alpha", connection=fleet.settings())}
    web, db, old = rows["web"], rows["db"], rows["old"]
    assert (web.id, web.image, web.state) == (WEB[:12], "localhost/memtick:latest", "running")
    assert (web.memory_usage, web.memory_bytes) == ("17.06MB", 17_060_000)
    assert (web.checkpointable, web.reason) == (True, "")
    assert not db.checkpointable and "--network host" in db.reason
    assert db.memory_bytes == int(1.5 * 1024**3)
    assert not old.checkpointable and old.reason == "not running (exited)"
    assert old.memory_usage is None
    assert session.closed
    assert json.loads(json.dumps(web.to_dict()))["checkpointable"] is True


def test_stats_failure_is_tolerated(fleet: FakeFleet) -> None:
    add(fleet, "alpha", responses=responses(stats=(125, "", "Error: cgroup stats\n")))
    rows = list_containers("alpha", connection=fleet.settings())
    assert [row.memory_usage for row in rows] == [None, None, None]
    assert rows[0].checkpointable


def test_empty_host_runs_neither_inspect_nor_stats(fleet: FakeFleet) -> None:
    session = add(fleet, "alpha", responses=responses(items=[]))
    assert list_containers("alpha", connection=fleet.settings()) == []
    assert tuple(doctor_commands.container_stats()) not in [argv for argv, _ in session.ran]


def test_sudo_is_used_when_not_root(fleet: FakeFleet) -> None:
    table = responses()
    table[tuple(commands.whoami())] = (0, "1000\n", "")
    table[tuple(commands.sudo_works())] = (0, "", "")
    session = add(fleet, "alpha", user="deploy", responses=table)
    list_containers("alpha", connection=fleet.settings())
    assert dict(session.ran)[tuple(commands.container_list_all())] == SUDO_PREFIX


@pytest.mark.parametrize(
    ("state", "document", "listed", "reason"),
    [
        ("running", inspect(WEB), {}, ""),
        ("paused", inspect(WEB), {}, "not running (paused)"),
        ("running", inspect(WEB, Privileged=True), {}, "--privileged"),
        ("running", inspect(WEB, NetworkMode="host"), {}, "--network host"),
        ("running", inspect(WEB, PidMode="host"), {}, "--pid host"),
        ("running", inspect(WEB, IpcMode="host"), {}, "--ipc host"),
        ("running", {**inspect(WEB), "Pod": "p" * 64}, {}, "belongs to a pod"),
        ("running", inspect(WEB), {"IsInfra": True}, "infra container"),
        ("running", None, {}, "could not inspect"),
    ],
)
def test_checkpoint_rule(
    state: str, document: dict[str, Any] | None, listed: dict[str, Any], reason: str
) -> None:
    blocker = checkpoint_blocker(state, document, listed)
    assert (reason in blocker) if reason else blocker == ""


def test_parse_size() -> None:
    assert parse_size("512kB") == 512_000
    assert parse_size("2MiB") == 2 * 1024**2
    assert parse_size("10B") == 10
    assert parse_size("lots") is None


@pytest.fixture
def cli_fleet(fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch) -> FakeFleet:
    """The fleet, reached by the ps command with its own ssh options."""
    fleet.serve_cli(monkeypatch, cli_fleet_commands, "list_containers")
    return fleet


def group() -> click.Group:
    cli = click.Group()
    cli.add_command(doctor_command)
    cli.add_command(ps_command)
    return cli


def test_cli_ps_plain(cli_fleet: FakeFleet) -> None:
    add(cli_fleet, "alpha")
    result = CliRunner().invoke(group(), ["ps", "alpha"])
    assert result.exit_code == 0, result.output
    lines = [line.split("\t") for line in result.output.splitlines()]
    assert lines[0] == [
        "alpha",
        "web",
        WEB[:12],
        "localhost/memtick:latest",
        "running",
        "17.06MB",
        "yes",
    ]
    assert lines[1][-1].startswith("no: uses the host network")


def test_cli_ps_json_and_unreachable_host(cli_fleet: FakeFleet) -> None:
    add(cli_fleet, "alpha")
    add(cli_fleet, "beta", connect_error=ConnectionFailed("beta: cannot connect", hint="is it up?"))
    result = CliRunner().invoke(group(), ["ps", "--json", "alpha", "beta"])
    assert result.exit_code == 3
    document = json.loads(result.stdout)
    assert document["exit_code"] == 3 and document["ok"] is False
    alpha, beta = document["hosts"]
    assert alpha["ok"] and [row["name"] for row in alpha["containers"]] == ["web", "db", "old"]
    assert set(alpha["containers"][0]) == {
        "host",
        "name",
        "id",
        "image",
        "state",
        "memory_usage",
        "memory_bytes",
        "checkpointable",
        "reason",
    }
    assert beta == {
        "host": "beta",
        "ok": False,
        "error": "beta: cannot connect\nis it up?",
        "containers": [],
    }


def test_cli_ps_without_root_exits_4(cli_fleet: FakeFleet) -> None:
    table = responses()
    table[tuple(commands.whoami())] = (0, "1000\n", "")
    table[tuple(commands.sudo_works())] = (1, "", "sudo: a password is required\n")
    add(cli_fleet, "alpha", user="deploy", responses=table)
    result = CliRunner().invoke(group(), ["ps", "alpha"])
    assert result.exit_code == 4
    assert "sudo -n" in result.stderr


def test_cli_ps_table_on_a_terminal(cli_fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_fleet_commands, "_is_terminal", lambda: True)
    add(cli_fleet, "alpha")
    result = CliRunner(env={"COLUMNS": "200"}).invoke(group(), ["ps", "alpha"])
    assert result.exit_code == 0
    assert "web" in result.output and "checkpointable" in result.output
