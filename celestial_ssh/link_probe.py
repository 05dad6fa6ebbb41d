"""Measure the link between two hosts through the data path a migration would use.

``celestial-ssh probe`` and the benchmark use it to compare the data paths with plain
OpenSSH; ``--compress auto`` takes the same measurement (smaller) before each freeze.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from . import commands
from .connection import ConnectionSettings, HostResolver, connection_settings
from .data_plane import DATA_PATHS, DataPlane, LinkMeasurement
from .errors import CelestialError, InvalidInput, PreflightFailed
from .link_check import LinkCheck, RateProbe, check_input, check_sessions
from .ssh import SSHSession
from .units import megabytes


@dataclass(frozen=True)
class PathProbe:
    """What :func:`probe_path` measured: the path it took (tls, ssh or relay), why that
    one (``auto``: the host-to-host link worked, or why not), and the host-to-host check
    when one was made (auto, tls)."""

    measurement: LinkMeasurement
    data_path: str
    reason: str
    link: LinkCheck | None = None


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

    Relayed through this machine, unless ``direct`` (the source streams straight to the
    target over ``ssh``; a source that cannot log in there raises :class:`InvalidInput`) or
    ``tls`` (over the TLS link, to ``tls_address`` if given; a link that does not work
    raises :class:`PreflightFailed` with the fix). :func:`probe_path` takes ``auto``.

    ``connection`` says how the hosts are reached (``ssh_config`` and ``host_resolver`` are
    its older spelling and, given, replace its fields).
    """
    settings = connection_settings(connection, ssh_config=ssh_config, host_resolver=host_resolver)
    path = "tls" if tls else "ssh" if direct else "relay"
    if tls_address is not None and path != "tls":
        check_input(tls_address, 0)
        raise InvalidInput("--tls-address needs --tls", hint="Add --tls, or leave out the address.")
    return probe_path(
        source,
        target,
        data_path=path,
        nbytes=nbytes,
        transport=transport,
        tls_address=tls_address,
        connection=settings,
        timeout=timeout,
    ).measurement


def probe_path(
    source: str,
    target: str,
    *,
    data_path: str = "auto",
    nbytes: int = 256 * 1024 * 1024,
    transport: str = "auto",
    tls_address: str | None = None,
    tls_port: int = 0,
    connection: ConnectionSettings | None = None,
    timeout: float = 300.0,
) -> PathProbe:
    """Stream ``nbytes`` from ``source`` to ``target`` over ``data_path`` (one of
    :data:`~celestial_ssh.data_plane.DATA_PATHS`) and time it; changes nothing there.

    ``auto`` does what a migration's default does: it checks the TLS link from the source
    to the target (:func:`~celestial_ssh.link_check.check_sessions`: the same proof) and
    measures it when it works, else the relay through this machine, saying why. ``tls``
    raises :class:`PreflightFailed` (with the fix as its hint) when the link does not work.
    The TLS ends and the work directories run as a migration's would (root or ``sudo -n``);
    the relayed and ``ssh`` streams as the login user.
    """
    if nbytes <= 0:
        raise InvalidInput("the probe needs a positive number of bytes")
    if data_path not in DATA_PATHS:
        raise InvalidInput(f"data path {data_path!r} is not one of {', '.join(DATA_PATHS)}")
    check_input(tls_address, tls_port)
    for option, given in (("--tls-address", tls_address is not None), ("--tls-port", tls_port)):
        if given and data_path not in ("auto", "tls"):
            raise InvalidInput(
                f"{option} has no use with --data-path {data_path}",
                hint="It is the TLS link's (--data-path auto or tls); leave it out.",
            )
    settings = connection or ConnectionSettings()
    hosts = (settings.resolve(source), settings.resolve(target))
    opened: list[SSHSession] = []
    plane: DataPlane | None = None
    workdirs: dict[SSHSession, str] = {}
    try:
        for host in hosts:
            opened.append(settings.open(host))
        sessions = (opened[0], opened[1])
        plane = DataPlane.open(transport, sessions)
        if data_path == "relay":
            return PathProbe(_relayed(plane, sessions, nbytes, timeout), "relay", "asked for")
        if data_path == "ssh":
            made = sessions[0].run(
                commands.make_workdir(), timeout=60, check=True, what="a work directory"
            )
            workdirs[sessions[0]] = made.stdout.strip()
            return PathProbe(
                _direct(plane, sessions, workdirs[sessions[0]], nbytes, timeout), "ssh", "asked for"
            )
        link = check_sessions(
            *sessions,
            plane,
            tls_address=tls_address,
            tls_port=tls_port,
            rate=RateProbe(nbytes, max_seconds=timeout, timeout=timeout),
        )
        if link.measurement is not None:
            reason = "asked for" if data_path == "tls" else _proved(link)
            return PathProbe(link.measurement, "tls", reason, link)
        why = link.why if not link.works else f"timing the proved link failed: {link.rate_error}"
        if data_path == "tls":
            raise PreflightFailed(
                f"{source} cannot stream to {target} over TLS: {why}",
                host=target,
                hint=link.fix or None,
            )
        measured = _relayed(plane, sessions, nbytes, timeout)
        return PathProbe(measured, "relay", f"no host-to-host link: {why}", link)
    finally:
        for session, workdir in workdirs.items():
            with contextlib.suppress(CelestialError):
                session.run(commands.remove_workdir(workdir), timeout=30)
        if plane is not None:
            plane.close()
        for session in opened:
            session.close()


def _proved(link: LinkCheck) -> str:
    """``auto``'s reason for the TLS link, worded as a migration's report words it."""
    if link.proof is None:
        return "auto"
    proof = link.proof
    return f"auto: TLS link proved ({megabytes(proof.bytes)} in {proof.seconds:.2f} s)"


def _relayed(
    plane: DataPlane, sessions: tuple[SSHSession, SSHSession], nbytes: int, timeout: float
) -> LinkMeasurement:
    return plane.measure(*sessions, nbytes, max_seconds=timeout, timeout=timeout)


def _direct(
    plane: DataPlane,
    sessions: tuple[SSHSession, SSHSession],
    workdir: str,
    nbytes: int,
    timeout: float,
) -> LinkMeasurement:
    """``--data-path ssh``: the source logs in to the target and streams there itself."""
    source, target = sessions
    pinned = plane.prepare_direct(source, target, workdir, timeout=60)
    if not pinned.ok:
        raise InvalidInput(
            f"{source.host.name} cannot log in to {target.host.name} itself: "
            f"{pinned.stderr.strip()[-300:] or 'no reason given'}",
            hint="Forward your ssh-agent (ssh-add the key first), or give the source "
            "its own key that the target accepts.",
        )
    return plane.measure_direct(
        source, target, workdir, nbytes, max_seconds=timeout, timeout=timeout
    )
