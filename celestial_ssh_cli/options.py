"""Options shared by every command that talks to hosts, and the host settings made of them."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterable
from typing import Any

import click

from celestial_ssh.compression_choice import parse_rate
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.data_plane import DATA_PATHS, TRANSPORTS
from celestial_ssh.errors import InvalidInput
from celestial_ssh.inventory import Inventory, load_inventory


def ssh_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The connection options every command that talks to hosts takes."""
    options = [
        click.option(
            "-F",
            "--ssh-config",
            type=click.Path(dir_okay=False),
            default=None,
            help="ssh_config file, like 'ssh -F' (default: ~/.ssh/config).",
        ),
        click.option(
            "--accept-new-host-keys",
            is_flag=True,
            help="Trust and record host keys seen for the first time (like "
            "StrictHostKeyChecking accept-new); changed keys are still refused.",
        ),
        click.option("--json", "json_output", is_flag=True, help="Print one JSON document."),
        click.option("-q", "--quiet", is_flag=True, help="No progress display."),
        click.option("-v", "--verbose", is_flag=True, help="More detail in plain output."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _rate(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_rate(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def data_plane_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """How the archive travels: the transport, --direct or --tls, and a bandwidth cap."""
    options = [
        click.option(
            "--transport",
            type=click.Choice(TRANSPORTS),
            default="auto",
            show_default=True,
            help="Data plane for the archive: the OpenSSH client (about twice as fast) or "
            "paramiko; auto takes OpenSSH when this machine has an ssh client.",
        ),
        click.option(
            "--data-path",
            type=click.Choice(DATA_PATHS),
            default="auto",
            show_default=True,
            help="How the archive goes from the source to the target. auto: straight from "
            "the source to the target over mutually authenticated TLS (throwaway keys "
            "handed over SSH; socat or python3 on each host, a TCP port open from source "
            "to target), proved before the freeze, else relayed through this machine, "
            "with a warning that says why. tls: that link or fail. ssh: the source logs "
            "in to the target with your forwarded ssh-agent or its own keys. relay: "
            "always through this machine.",
        ),
        click.option("--direct", is_flag=True, help="The same as --data-path ssh."),
        click.option("--tls", is_flag=True, help="The same as --data-path tls."),
        click.option(
            "--bwlimit",
            "bwlimit",
            metavar="RATE",
            default=None,
            callback=_rate,
            help="Cap the transfer, e.g. 50Mbit, 6M (bytes/s, like rsync), 1Gbit.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


# Where every command's connection settings start from: the real resolver (``ssh -G``) and
# real SSH. Tests put fake hosts here, in one fixture (``cli_connection``, tests/unit/
# conftest.py), instead of patching the library's modules.
BASE_CONNECTION = ConnectionSettings()


def tls_port_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--tls-port PORT`` (0, the default: the target picks a free one)."""
    return click.option(
        "--tls-port",
        type=click.IntRange(0, 65535),
        default=0,
        show_default=True,
        metavar="PORT",
        help=help_text,
    )


def inventory_option(which_names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-i, --inventory FILE``; ``which_names`` ends its help: what may name its hosts."""
    return click.option(
        "-i",
        "--inventory",
        "inventory_file",
        type=click.Path(dir_okay=False, exists=True),
        default=None,
        help="Inventory (celestial-ssh YAML, Ansible YAML, or ansible-inventory --list JSON) "
        + which_names,
    )


@dataclasses.dataclass(frozen=True)
class HostSettings:
    """How a command reaches hosts: the library's connection settings (made of --ssh-config,
    --accept-new-host-keys and --inventory), and the inventory, for its groups.

    Built by :func:`host_settings` alone, for every command.
    """

    connection: ConnectionSettings
    inventory: Inventory | None = None

    def expand(self, names: Iterable[str]) -> list[str]:
        """Host names for ``names``: an inventory's groups become their hosts. A named group
        with no hosts is refused: a fleet check that checked nothing must not pass."""
        if self.inventory is None:
            return list(names)
        inventory = self.inventory
        empty = [n for n in names if n not in inventory.hosts and inventory.groups.get(n) == []]
        if empty:
            raise InvalidInput(
                f"group {', '.join(map(repr, empty))} in {inventory.path or 'the inventory'} "
                "has no hosts"
            )
        return inventory.expand(names)


def host_settings(
    ssh_config: str | None, accept_new_host_keys: bool, inventory_file: str | None = None
) -> HostSettings:
    """The one place a command turns its connection options into settings; an inventory's
    warnings go to stderr here.

    Raises the library's errors for an inventory it cannot read.
    """
    connection = dataclasses.replace(
        BASE_CONNECTION, ssh_config=ssh_config, accept_new_host_keys=accept_new_host_keys
    )
    if inventory_file is None:
        return HostSettings(connection)
    inventory = load_inventory(inventory_file)
    for warning in inventory.warnings:
        click.echo(f"warning: {warning}", err=True)
    # the inventory's settings over ssh_config's
    resolver = functools.partial(inventory.resolve, ssh_config=ssh_config)
    return HostSettings(connection.with_resolver(resolver), inventory)
