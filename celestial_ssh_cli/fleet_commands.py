"""``celestial-ssh doctor HOST...`` and ``celestial-ssh ps HOST...``.

Results go to stdout: one JSON document with ``--json``, a table on a terminal, plain text
otherwise (one line per check or container, stable for grep). Errors go to stderr.

Exit codes (``failures.ExitCode``): 0 when every host is fine; 3 when a host cannot be
resolved, reached or authenticated to (this wins over 4); 4 when a doctor check fails on a
reachable host (or ``ps`` has no root access there). A host-to-host link that does not work
(``doctor --links``) is a warning and changes no exit code: migrations between those hosts
still work, relayed through this machine.
"""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor

import click
from rich.console import Console
from rich.table import Table

from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.link_check import LinkCheck, check_links
from celestial_ssh.listing import ContainerRow, list_containers
from celestial_ssh.readiness import HostReport, doctor
from celestial_ssh.units import megabytes_per_s

from .boundary import Command
from .failures import ExitCode, exit_code_for, message_for
from .options import host_settings, inventory_option, ssh_options, tls_port_option

# doctor's and ps's -i: HOST may name an inventory's host or group
_HOSTS_INVENTORY = "whose aliases and groups HOST may name; ssh_config applies under it."


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def doctor_exit_code(reports: list[HostReport]) -> ExitCode:
    if any(not report.reachable for report in reports):
        return ExitCode.CONNECTION
    if any(not report.ok for report in reports):
        return ExitCode.PREFLIGHT
    return ExitCode.OK


def _render_doctor_plain(reports: list[HostReport], verbose: bool) -> None:
    for report in reports:
        verdict = "ok" if report.ok else ("UNREACHABLE" if not report.reachable else "FAILED")
        click.echo(f"{report.host}: {verdict}")
        for check in report.checks:
            click.echo(f"  {check.status:<5} {check.name:<12} {check.detail}")
            if check.fix and (not check.ok or verbose):
                click.echo(f"  {'':<5} {'':<12} fix: {check.fix}")


def _render_doctor_table(reports: list[HostReport]) -> None:
    console = Console(stderr=False)
    styles = {"ok": "green", "FAIL": "bold red", "warn": "yellow", "no": "dim"}
    for report in reports:
        verdict = (
            "[green]ok[/]"
            if report.ok
            else ("[bold red]unreachable[/]" if not report.reachable else "[bold red]failed[/]")
        )
        table = Table(title=f"{report.host}: {verdict}", title_justify="left")
        table.add_column("check")
        table.add_column("status")
        table.add_column("detail", overflow="fold")
        table.add_column("fix", overflow="fold")
        for check in report.checks:
            style = styles.get(check.status, "")
            table.add_row(
                check.name,
                f"[{style}]{check.status}[/]" if style else check.status,
                check.detail,
                check.fix if not check.ok else "",
            )
        console.print(table)


def _rate(link: LinkCheck) -> str:
    rate = link.bytes_per_s
    if rate is not None:
        return megabytes_per_s(rate)
    return f"not timed ({link.rate_error})" if link.rate_error else "not timed"


def _link_status(link: LinkCheck) -> str:
    return "ok" if link.works else "warn"


def _render_links_plain(links: list[LinkCheck]) -> None:
    click.echo("links (host to host over TLS; where one does not work, migrations relay):")
    for link in links:
        pair = f"{link.source} -> {link.target}"
        detail = f"{link.tools}, to {link.address}: {_rate(link)}" if link.works else link.why
        click.echo(f"  {_link_status(link):<5} {pair:<24} {detail}")
        if link.fix:
            click.echo(f"  {'':<5} {'':<24} fix: {link.fix}")


def _render_links_table(links: list[LinkCheck]) -> None:
    table = Table(
        title="links: host to host over TLS (where one does not work, migrations relay)",
        title_justify="left",
    )
    for column in ("link", "status", "tools", "address", "rate"):
        table.add_column(column, overflow="fold")
    table.add_column("why / fix", overflow="fold")
    for link in links:
        status = "[green]ok[/]" if link.works else "[yellow]warn[/]"
        notes = "\n".join(
            f"{label}{text}" for label, text in (("", link.why), ("fix: ", link.fix)) if text
        )
        table.add_row(
            f"{link.source} -> {link.target}",
            status,
            link.tools,
            link.address or "-",
            _rate(link) if link.works else "-",
            notes,
        )
    Console(stderr=False).print(table)


@click.command("doctor", cls=Command)
@click.argument("hosts", nargs=-1, required=True)
@ssh_options
@inventory_option(_HOSTS_INVENTORY)
@click.option(
    "--links",
    is_flag=True,
    help="Also check the host-to-host TLS link (the default data path) both ways between "
    "every two HOSTs, as a migration would before its freeze, and time it (up to 32 MiB, "
    "about 2 s a pair, one pair at a time). A link that does not work is a warning, "
    "with why and the fix, and changes no exit code: migrations relay instead.",
)
@tls_port_option(
    "With --links: the port the target listens on (0: a random free one, as migrate "
    "picks unless you pin one with its --tls-port)."
)
def doctor_command(
    hosts: tuple[str, ...],
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_output: bool,
    quiet: bool,
    verbose: bool,
    inventory_file: str | None = None,
    links: bool = False,
    tls_port: int = 0,
) -> ExitCode:
    """Check that each HOST can send and receive live migrations.

    Checks SSH, root or sudo -n, podman, the OCI runtime, CRIU and `criu check`, pre-copy
    and lazy-pages support, the TLS link's program (python3 or socat), kernel, CPU, free
    memory, free disk in the landing dir and the tmpfs where archives that fit in memory
    land; with --links, the host-to-host link between every two hosts.
    Exits 0 when every host is ok, 4 when a check fails, 3 when a host is unreachable;
    links never change the exit code.
    """
    settings = host_settings(ssh_config, accept_new_host_keys, inventory_file)
    names = settings.expand(hosts)
    if links and len(set(names)) < 2:
        raise click.UsageError("--links needs at least two hosts")
    if tls_port and not links:
        raise click.UsageError("--tls-port is for --links; leave it out, or add --links")
    reports = doctor(names, connection=settings.connection)
    checked: list[LinkCheck] = []
    if links:
        # after the host checks: the links' work directories would be their leftovers
        unreachable = frozenset(report.host for report in reports if not report.reachable)
        checked = check_links(
            list(dict.fromkeys(names)),
            connection=settings.connection,
            tls_port=tls_port,
            unreachable=unreachable,
        )
    code = doctor_exit_code(reports)
    if json_output:
        document: dict[str, object] = {
            "ok": code is ExitCode.OK,
            "exit_code": int(code),
            "hosts": [report.to_dict() for report in reports],
        }
        if links:
            document["links_ok"] = all(link.works for link in checked)
            document["links"] = [link.to_dict() for link in checked]
        click.echo(json.dumps(document, indent=2))
    elif _is_terminal():
        _render_doctor_table(reports)
        if links:
            _render_links_table(checked)
    else:
        _render_doctor_plain(reports, verbose)
        if links:
            _render_links_plain(checked)
    return code


def _list_one(
    host: str, connection: ConnectionSettings
) -> tuple[list[ContainerRow], BaseException | None]:
    try:
        return list_containers(host, connection=connection), None
    except Exception as error:  # one host's failure is its own row; the others go on
        return [], error


def _memory(row: ContainerRow) -> str:
    return row.memory_usage or "-"


def _checkpointable(row: ContainerRow) -> str:
    return "yes" if row.checkpointable else f"no: {row.reason}"


@click.command("ps", cls=Command)
@click.argument("hosts", nargs=-1, required=True)
@ssh_options
@inventory_option(_HOSTS_INVENTORY)
def ps_command(
    hosts: tuple[str, ...],
    ssh_config: str | None,
    accept_new_host_keys: bool,
    json_output: bool,
    quiet: bool,
    verbose: bool,
    inventory_file: str | None = None,
) -> ExitCode:
    """List the containers of each HOST and whether each can be live-migrated.

    A container is checkpointable when it runs, is not --privileged, shares no namespace
    with the host (--network/--pid/--ipc host) and is not part of a pod.
    """
    settings = host_settings(ssh_config, accept_new_host_keys, inventory_file)
    names = settings.expand(hosts)
    with ThreadPoolExecutor(max_workers=min(16, len(names))) as pool:
        results = list(pool.map(lambda host: _list_one(host, settings.connection), names))
    codes = [exit_code_for(error) for _, error in results if error is not None]
    if ExitCode.CONNECTION in codes:
        code = ExitCode.CONNECTION
    elif codes:
        code = codes[0]
    else:
        code = ExitCode.OK
    if json_output:
        document = {
            "ok": code is ExitCode.OK,
            "exit_code": int(code),
            "hosts": [
                {
                    "host": host,
                    "ok": error is None,
                    "error": None if error is None else str(error),
                    "containers": [row.to_dict() for row in rows],
                }
                for host, (rows, error) in zip(names, results, strict=True)
            ],
        }
        click.echo(json.dumps(document, indent=2))
    elif _is_terminal():
        table = Table()
        for column in ("host", "name", "id", "image", "state", "memory", "checkpointable"):
            table.add_column(column, overflow="fold")
        for rows, _ in results:
            for row in rows:
                table.add_row(
                    row.host,
                    row.name,
                    row.id,
                    row.image,
                    row.state,
                    _memory(row),
                    "[green]yes[/]" if row.checkpointable else f"[yellow]no[/]: {row.reason}",
                )
        Console(stderr=False).print(table)
    else:
        for rows, _ in results:
            for row in rows:
                click.echo(
                    "\t".join(
                        (
                            row.host,
                            row.name,
                            row.id,
                            row.image,
                            row.state,
                            _memory(row),
                            _checkpointable(row),
                        )
                    )
                )
    for host, (_, error) in zip(names, results, strict=True):
        if error is not None:
            click.echo(f"{host}: " + message_for(error), err=True)
    return code
