"""Options shared by every command that talks to hosts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


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
