"""Options shared by every command that talks to hosts, and the host settings made of them."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import click

from celestial_ssh.compression_choice import parse_rate
from celestial_ssh.data_plane import TRANSPORTS
from celestial_ssh.hosts import ResolvedHost, resolve_host
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
            "--direct",
            is_flag=True,
            help="Stream from the source straight to the target (this machine's link is "
            "not in the path). The source logs in to the target with your forwarded "
            "ssh-agent, or its own keys; falls back to relaying if it cannot.",
        ),
        click.option(
            "--tls",
            is_flag=True,
            help="Stream from the source straight to the target over TLS instead of SSH "
            "(faster; needs socat on both hosts and a TCP port open from source to target). "
            "Each end gets a throwaway key over SSH and trusts only the other's; no agent "
            "is forwarded.",
        ),
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


@dataclasses.dataclass(frozen=True)
class HostSettings:
    """How a command reaches hosts: --ssh-config, --accept-new-host-keys and --inventory.

    Built by :func:`host_settings` alone, for every command.
    """

    ssh_config: str | None
    accept_new_host_keys: bool
    inventory: Inventory | None = None

    @property
    def host_resolver(self) -> Callable[[str], ResolvedHost] | None:
        """The inventory's resolver (its settings over ssh_config), if there is one."""
        if self.inventory is None:
            return None
        return functools.partial(self.inventory.resolve, ssh_config=self.ssh_config)

    def resolve(self, name: str) -> ResolvedHost:
        """A host resolved with the host-key policy applied, for library calls that take a
        resolver and no policy of their own (``probe``)."""
        if self.inventory is not None:
            host = self.inventory.resolve(name, self.ssh_config)
        else:
            host = resolve_host(name, self.ssh_config)
        if self.accept_new_host_keys and host.strict_host_key_checking == "yes":
            host = host.with_strict_host_key_checking("accept-new")
        return host


def host_settings(
    ssh_config: str | None, accept_new_host_keys: bool, inventory_file: str | None = None
) -> HostSettings:
    """The one place a command turns its connection options into settings.

    Raises the library's errors for an inventory it cannot read.
    """
    inventory = load_inventory(inventory_file) if inventory_file is not None else None
    return HostSettings(ssh_config, accept_new_host_keys, inventory)
