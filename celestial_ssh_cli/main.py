"""``celestial-ssh``: the command-line entry point."""

from __future__ import annotations

import json
from typing import Any

import click

from celestial_ssh import __version__
from celestial_ssh.commands import COMPRESSION_SETTINGS
from celestial_ssh.compression_choice import parse_rate
from celestial_ssh.data_plane import DATA_PATHS, TRANSPORTS
from celestial_ssh.errors import CelestialError
from celestial_ssh.link_probe import probe_path
from celestial_ssh.migration import Migration, MigrationOptions
from celestial_ssh.recovery import recover

from .batch_commands import batch_command, evacuate_command
from .boundary import Command, ErrorDocument, Params, run
from .display import Output, choose_display, choose_output, megabytes
from .failures import CommandFailed, exit_code_for, message_for
from .fleet_commands import doctor_command, ps_command
from .http_shim import serve
from .options import (
    data_plane_options,
    host_settings,
    inventory_option,
    ssh_options,
    tls_port_option,
)
from .report_file import report_rows
from .signals import cancel_on_signals

TLS_ADDRESS_HELP = (
    "The target's IP address that the source connects to for the TLS link, and the target "
    "listens on (default: the one this machine's SSH session to the target arrived on)."
)
TWO_HOSTS_INVENTORY = "whose aliases SOURCE and TARGET may name; ssh_config applies under it."


def _migration_lead(error: BaseException, params: Params) -> dict[str, Any]:
    """A failed migration's --json document: its partial report, when it got that far."""
    partial = error.report if isinstance(error, CelestialError) else None
    if partial is None:
        return {
            "status": "failed",
            "container": params["container"],
            "source": params["source"],
            "target": params["target"],
        }
    document = partial.to_dict()
    document["status"] = partial.status
    return document


MIGRATION_ERRORS = ErrorDocument(lead=_migration_lead)
# recover and probe: {"status": "failed", "error": ..., "exit_code": ...} on one line
ONE_LINE_ERRORS = ErrorDocument(one_line=True, error_text=str)


class _Group(click.Group):
    command_class = Command


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="celestial-ssh")
def cli() -> None:
    """Live-migrate running Podman containers between Linux hosts with CRIU, over SSH.

    Hosts are ssh_config aliases or [user@]host[:port]. Nothing needs to run on the hosts
    but sshd, podman and CRIU.
    """


@cli.command(error_document=MIGRATION_ERRORS)
@click.argument("source")
@click.argument("target")
@click.argument("container")
@ssh_options
@click.option("--name", "new_name", default=None, help="Name of the container on the target.")
@click.option(
    "--keep-source",
    is_flag=True,
    help="Leave the stopped copy on the source instead of removing it.",
)
@click.option(
    "--compress",
    "compression",
    type=click.Choice(COMPRESSION_SETTINGS),
    default="auto",
    show_default=True,
    help="Compression of the checkpoint archive; auto measures the link and samples the "
    "container's memory before the freeze (fast links: none, slow links: zstd).",
)
@data_plane_options
@tls_port_option(
    "The port the target listens on for the TLS link (0: any free one); pin it to "
    "open it in a firewall."
)
@click.option(
    "--tls-address",
    metavar="ADDRESS",
    default=None,
    help=TLS_ADDRESS_HELP,
)
@click.option(
    "--pre-copy",
    "precopy",
    is_flag=True,
    help="Copy memory while the container still runs (needs soft-dirty tracking in both "
    "kernels; falls back to stop-and-copy, with a warning, where it is missing).",
)
@click.option(
    "--tcp-established",
    is_flag=True,
    help="Checkpoint and restore established TCP connections.",
)
@inventory_option(TWO_HOSTS_INVENTORY)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Append a row with the timings and podman's stats to FILE.csv or FILE.json "
    "(also for failed migrations).",
)
def migrate_command(
    source: str,
    target: str,
    container: str,
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_output: bool,
    quiet: bool,
    verbose: bool,
    new_name: str | None,
    keep_source: bool,
    compression: str,
    tcp_established: bool,
    report_file: str | None,
    transport: str,
    data_path: str,
    direct: bool,
    bwlimit: float | None,
    precopy: bool,
    tls: bool = False,
    tls_port: int = 0,
    tls_address: str | None = None,
    inventory_file: str | None = None,
) -> None:
    """Move the running CONTAINER from SOURCE to TARGET, keeping its memory state."""
    rows = report_rows(report_file)
    try:
        hosts = host_settings(ssh_config, accept_new_host_keys, inventory_file)
    except CelestialError as error:
        # before the migration exists: the message alone, no JSON document
        raise CommandFailed(message_for(error), exit_code_for(error)) from error
    options = MigrationOptions(
        connection=hosts.connection,
        new_name=new_name,
        keep_source=keep_source,
        compression=compression,
        tcp_established=tcp_established,
        transport=transport,
        data_path=data_path,
        direct=direct,
        tls=tls,
        tls_port=tls_port,
        tls_address=tls_address,
        bwlimit_bytes_per_s=bwlimit,
        precopy=precopy,
    )
    output = choose_output(json_output=json_output, quiet=quiet)
    display = choose_display(output, verbose)
    migration = Migration(source, target, container, options, on_event=display)
    try:
        with (
            display,
            cancel_on_signals(migration, "stopping at the next safe point and rolling back"),
        ):
            report = migration.run()
    except (Exception, KeyboardInterrupt) as error:
        partial = error.report if isinstance(error, CelestialError) else None
        if rows is not None and partial is not None:
            rows.append(partial)
        raise
    if rows is not None:
        rows.append(report)
    if output is Output.JSON:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        display.summary(report)
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)


migrate_command.name = "migrate"


@cli.command("recover", error_document=ONE_LINE_ERRORS)
@click.argument("source")
@click.argument("target")
@click.argument("container")
@ssh_options
@inventory_option(TWO_HOSTS_INVENTORY)
def recover_command(
    source: str,
    target: str,
    container: str,
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_output: bool,
    quiet: bool,
    verbose: bool,
    inventory_file: str | None = None,
) -> None:
    """Bring CONTAINER back to exactly one running copy after an interrupted migration.

    Use it when a `migrate` between SOURCE and TARGET was killed (SIGKILL, lost laptop):
    it waits for whatever still runs on the hosts, then restores the source from its
    checkpoint unless the target already runs the container, and removes leftovers.
    """
    hosts = host_settings(ssh_config, accept_new_host_keys, inventory_file)
    report = recover(source, target, container, connection=hosts.connection)
    if json_output:
        click.echo(
            json.dumps(
                {
                    "status": "succeeded",
                    "container": container,
                    "outcome": str(report.outcome),
                    "running_on": report.running_on,
                    "actions": report.actions,
                },
                indent=2,
            )
        )
    elif not quiet:
        for action in report.actions:
            click.echo(f"- {action}", err=True)
        click.echo(f"{container} runs on {report.running_on} (exactly one copy)", err=True)


@cli.command("probe", error_document=ONE_LINE_ERRORS)
@click.argument("source")
@click.argument("target")
@ssh_options
@click.option(
    "--bytes",
    "size",
    default="256MiB",
    show_default=True,
    help="How much to stream (zeros), e.g. 64M, 1GiB.",
)
@click.option("--transport", type=click.Choice(TRANSPORTS), default="auto", show_default=True)
@click.option(
    "--data-path",
    type=click.Choice(DATA_PATHS),
    default="auto",
    show_default=True,
    help="The path to measure, as migrate takes it. auto: check the TLS link from SOURCE "
    "to TARGET as a migration would (the same proof) and measure it if it works, else "
    "the relay through this machine, saying why. tls: that link or fail (with the fix). "
    "ssh: the source logs in to the target. relay: through this machine.",
)
@click.option("--direct", is_flag=True, help="The same as --data-path ssh.")
@click.option("--tls", is_flag=True, help="The same as --data-path tls.")
@click.option("--tls-address", metavar="ADDRESS", default=None, help=TLS_ADDRESS_HELP)
@tls_port_option("The port the target listens on for the TLS link (0: any free one).")
@inventory_option(TWO_HOSTS_INVENTORY)
def probe_command(
    source: str,
    target: str,
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_output: bool,
    quiet: bool,
    verbose: bool,
    size: str,
    transport: str,
    direct: bool,
    data_path: str = "auto",
    tls: bool = False,
    tls_address: str | None = None,
    tls_port: int = 0,
    inventory_file: str | None = None,
) -> None:
    """Measure how fast the data path moves bytes from SOURCE to TARGET (changes nothing).

    By default (--data-path auto) the path a migration would take: host to host over TLS
    when that link works, else relayed through this machine; the output names the path
    measured and why.
    """
    try:
        nbytes = int(parse_rate(size))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--bytes") from error
    path = "tls" if tls else "ssh" if direct else data_path
    if data_path not in ("auto", path):
        raise click.UsageError(
            f"{'--tls' if tls else '--direct'} contradicts --data-path {data_path}"
        )
    hosts = host_settings(ssh_config, accept_new_host_keys, inventory_file)
    probed = probe_path(
        source,
        target,
        data_path=path,
        nbytes=nbytes,
        transport=transport,
        tls_address=tls_address,
        tls_port=tls_port,
        connection=hosts.connection,
    )
    measured = probed.measurement
    document: dict[str, Any] = {
        "status": "succeeded",
        "source": source,
        "target": target,
        "data_plane": measured.data_plane,
        "bytes": measured.bytes,
        "seconds": round(measured.seconds, 4),
        "bytes_per_s": round(measured.bytes_per_s),
        "data_path": probed.data_path,
        "data_path_reason": probed.reason,
    }
    if probed.link is not None:
        document["host_to_host"] = probed.link.to_dict()
    if json_output:
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(
        f"{source} -> {target} over {measured.data_plane}: {megabytes(measured.bytes, 0)} "
        f"in {measured.seconds:.2f} s = {megabytes(measured.bytes_per_s, 0)}/s"
    )
    if path == "auto":
        click.echo(f"data path: {probed.data_path} ({probed.reason})")
        if probed.link is not None and probed.link.fix:
            click.echo(f"fix: {probed.link.fix}")


def main() -> None:
    run(cli)


cli.add_command(serve)
cli.add_command(doctor_command)
cli.add_command(ps_command)
cli.add_command(batch_command)
cli.add_command(evacuate_command)
