"""``celestial-ssh batch PLAN.yml`` and ``celestial-ssh evacuate HOST --to HOST2,...``.

Both make a plan of migrations (``celestial_ssh.batch``) and hand it to :func:`.run_plan`,
which runs it and shows it as a live table on a terminal (one row per migration), plain lines
otherwise, or JSON (one document, or one event per line); see :mod:`.batch_run` for the exit
status.
"""

from __future__ import annotations

import click

from celestial_ssh.batch import load_plan, plan_evacuation
from celestial_ssh.commands import COMPRESSION_SETTINGS

from .batch_run import BATCH_ERRORS, BatchSettings, batch_options, run_plan
from .boundary import Command
from .display import Output
from .failures import ExitCode
from .options import host_settings


@click.command("batch", cls=Command, error_document=BATCH_ERRORS)
@click.argument("plan_file", metavar="PLAN.yml", type=click.Path(dir_okay=False))
@batch_options
def batch_command(plan_file: str, settings: BatchSettings) -> ExitCode:
    """Run the migrations listed in PLAN.yml (container, from, to; see the README).

    Re-running a plan is safe: containers already moved are reported as already_moved.
    """
    plan = load_plan(plan_file)
    hosts = host_settings(settings.ssh_config, settings.accept_new_host_keys)
    return run_plan(plan, settings, hosts)


def _names(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


@click.command("evacuate", cls=Command, error_document=BATCH_ERRORS)
@click.argument("host")
@click.option(
    "--to",
    "targets",
    required=True,
    multiple=True,
    help="Target host(s): HOST2[,HOST3...] (repeatable; inventory groups with --inventory).",
)
@click.option(
    "--only",
    default=None,
    help="Move only these containers: NAME[,NAME...] (default: every running container).",
)
@click.option(
    "--inventory",
    "inventory_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Inventory file naming the hosts (and groups of them).",
)
@click.option("--keep-source", is_flag=True, help="Leave the stopped copies on HOST.")
@click.option(
    "--compress",
    "compression",
    type=click.Choice(COMPRESSION_SETTINGS),
    default="auto",
    show_default=True,
    help="Compression of the checkpoint archives; auto decides for each migration from its "
    "link and the container's memory, as migrate does.",
)
@click.option("--tcp-established", is_flag=True, help="Keep established TCP connections.")
@batch_options
def evacuate_command(
    host: str,
    targets: tuple[str, ...],
    only: str | None,
    inventory_file: str | None,
    keep_source: bool,
    compression: str,
    tcp_established: bool,
    settings: BatchSettings,
) -> ExitCode:
    """Move every running container off HOST to the --to hosts, by their free memory.

    Largest containers first, each to the target with the most memory available.
    """
    target_names = [name for value in targets for name in _names(value)]
    only_names = _names(only) if only is not None else None
    if settings.output in (Output.LIVE, Output.PLAIN):
        click.echo(f"evacuating {host}: reading its containers and the targets' memory", err=True)
    hosts = host_settings(settings.ssh_config, settings.accept_new_host_keys, inventory_file)
    plan = plan_evacuation(
        host,
        hosts.expand(target_names),
        connection=hosts.connection,
        only=only_names,
        keep_source=keep_source,
        compression=compression,
        tcp_established=tcp_established,
    )
    return run_plan(plan, settings, hosts)
