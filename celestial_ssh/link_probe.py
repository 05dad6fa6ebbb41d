"""Measure the link between two hosts through the data plane a migration would use.

``celestial-ssh probe`` and the benchmark use it to compare the data plane with plain
OpenSSH; ``--compress auto`` takes the same measurement (smaller) before each freeze.
"""

from __future__ import annotations

import contextlib

from . import commands, tls_link
from .connection import ConnectionSettings, HostResolver, connection_settings
from .data_plane import DataPlane, LinkMeasurement
from .errors import CelestialError, InvalidInput
from .ssh import SSHSession


def probe_link(
    source: str,
    target: str,
    *,
    nbytes: int = 256 * 1024 * 1024,
    transport: str = "auto",
    direct: bool = False,
    tls: bool = False,
    tls_address: str | None = None,
    connection: ConnectionSettings | None = None,
    timeout: float = 300.0,
    ssh_config: str | None = None,
    host_resolver: HostResolver | None = None,
) -> LinkMeasurement:
    """Stream ``nbytes`` from ``source`` to ``target`` and time it; changes nothing there.

    With ``direct`` the source streams straight to the target (as ``migrate --direct``
    does); a source that cannot log in there raises :class:`InvalidInput`. With ``tls`` it
    streams there over TLS (as ``migrate --tls``; socat on both hosts), to ``tls_address``
    if given (else the address the SSH session to the target arrived on).

    ``connection`` says how the hosts are reached (``ssh_config`` and ``host_resolver`` are
    its older spelling and, given, replace its fields). Commands run as the login user, as
    they always did here: the probe asks nothing about sudo.
    """
    if nbytes <= 0:
        raise InvalidInput("the probe needs a positive number of bytes")
    tls_link.check_address_option(tls_address, tls=tls)
    settings = connection_settings(connection, ssh_config=ssh_config, host_resolver=host_resolver)
    hosts = (settings.resolve(source), settings.resolve(target))
    opened: list[SSHSession] = []
    plane: DataPlane | None = None
    workdirs: dict[SSHSession, str] = {}

    def make_workdir(session: SSHSession) -> str:
        made = session.run(commands.make_workdir(), timeout=60, check=True, what="a work directory")
        workdirs[session] = made.stdout.strip()
        return workdirs[session]

    try:
        for host in hosts:
            opened.append(settings.open(host))
        sessions = (opened[0], opened[1])
        plane = DataPlane.open(transport, sessions)
        if tls:
            source_dir, target_dir = (make_workdir(session) for session in sessions)
            address = plane.prepare_tls(
                *sessions, source_dir, target_dir, timeout=60, address=tls_address
            )
            return plane.measure_tls(
                *sessions,
                source_dir,
                target_dir,
                address,
                nbytes,
                max_seconds=timeout,
                timeout=timeout,
            )
        if not direct:
            return plane.measure(*sessions, nbytes, max_seconds=timeout, timeout=timeout)
        workdir = make_workdir(sessions[0])
        pinned = plane.prepare_direct(*sessions, workdir, timeout=60)
        if not pinned.ok:
            raise InvalidInput(
                f"{source} cannot log in to {target} itself: "
                f"{pinned.stderr.strip()[-300:] or 'no reason given'}",
                hint="Forward your ssh-agent (ssh-add the key first), or give the source "
                "its own key that the target accepts.",
            )
        return plane.measure_direct(
            *sessions, workdir, nbytes, max_seconds=timeout, timeout=timeout
        )
    finally:
        for session, workdir in workdirs.items():
            with contextlib.suppress(CelestialError):
                session.run(commands.remove_workdir(workdir), timeout=30)
        if plane is not None:
            plane.close()
        for session in opened:
            session.close()
