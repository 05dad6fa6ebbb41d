"""Every command that reaches hosts takes the connection options the same way: -F,
--accept-new-host-keys and an inventory end up in the one ConnectionSettings the library is
given, which is what resolves and connects each host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.errors import ConnectionFailed
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.ssh import NoticeSink, SSHSession
from celestial_ssh_cli.failures import ExitCode
from celestial_ssh_cli.main import cli

INVENTORY = """\
hosts:
  lab-a: {hostname: 10.9.0.1, port: 2201, strict_host_key_checking: "yes"}
  lab-b: {hostname: 10.9.0.2, port: 2202, strict_host_key_checking: "yes"}
  lab-c: {hostname: 10.9.0.3, port: 2203, strict_host_key_checking: "yes"}
groups:
  targets: [lab-b, lab-c]
"""
ADDRESSES = {"lab-a": ("10.9.0.1", 2201), "lab-b": ("10.9.0.2", 2202)}


@pytest.fixture
def unreachable(cli_connection: Callable[[ConnectionSettings], None]) -> list[ResolvedHost]:
    """The hosts the commands try to connect to (every one refuses)."""
    tried: list[ResolvedHost] = []

    def connect(host: ResolvedHost, notice: NoticeSink) -> SSHSession:
        tried.append(host)
        raise ConnectionFailed(f"{host.name}: connection refused", host=host.name)

    cli_connection(ConnectionSettings(connector=connect))
    return tried


@pytest.mark.parametrize(
    ("command", "first", "spelling"),
    [
        (["doctor", "lab-b"], "lab-b", "-i"),
        (["ps", "lab-b"], "lab-b", "--inventory"),
        (["recover", "lab-a", "lab-b", "web"], "lab-a", "-i"),
        (["probe", "lab-a", "lab-b"], "lab-a", "--inventory"),
        (["evacuate", "lab-a", "--to", "lab-b"], "lab-a", "--inventory"),
    ],
)
def test_every_command_reaches_hosts_through_its_inventory_and_ssh_options(
    unreachable: list[ResolvedHost],
    tmp_path: Path,
    command: list[str],
    first: str,
    spelling: str,
) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    ssh_config = tmp_path / "ssh_config"
    ssh_config.write_text("")
    options = ["-F", str(ssh_config), "--accept-new-host-keys", spelling, str(inventory)]
    result = CliRunner().invoke(cli, [*command, *options])
    assert result.exit_code == ExitCode.CONNECTION, result.output
    host = unreachable[0]
    assert (host.name, host.hostname, host.port) == (first, *ADDRESSES[first])
    assert host.ssh_config == str(ssh_config)
    assert host.strict_host_key_checking == "accept-new"


@pytest.mark.parametrize("command", ["doctor", "ps"])
def test_doctor_and_ps_take_an_inventory_group(
    unreachable: list[ResolvedHost], tmp_path: Path, command: str
) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    result = CliRunner().invoke(cli, [command, "targets", "lab-a", "-i", str(inventory), "--json"])
    assert result.exit_code == ExitCode.CONNECTION, result.output
    assert sorted(host.name for host in unreachable) == ["lab-a", "lab-b", "lab-c"]


@pytest.mark.parametrize("command", ["doctor", "ps"])
def test_an_empty_inventory_group_is_refused_not_checked_as_nothing(
    unreachable: list[ResolvedHost], tmp_path: Path, command: str
) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY + "  spare: []\n")
    result = CliRunner().invoke(cli, [command, "spare", "-i", str(inventory), "--json"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"group 'spare' in {inventory} has no hosts" in result.stderr
    assert unreachable == []


def test_without_an_inventory_hosts_resolve_through_the_settings_resolver(
    cli_connection: Callable[[ConnectionSettings], None], tmp_path: Path
) -> None:
    resolved: list[str] = []

    def resolve(name: str) -> ResolvedHost:
        resolved.append(name)
        raise ConnectionFailed(f"{name}: no route to host", host=name)

    cli_connection(ConnectionSettings(host_resolver=resolve))
    for command in (["ps", "lab-b"], ["probe", "lab-a", "lab-b"], ["recover", "x", "y", "web"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == ExitCode.CONNECTION, result.output
    assert resolved == ["lab-b", "lab-a", "x"]
