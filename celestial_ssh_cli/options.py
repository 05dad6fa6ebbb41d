"""Options shared by every command that talks to hosts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from celestial_ssh.compression_choice import parse_rate
from celestial_ssh.data_plane import TRANSPORTS


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
