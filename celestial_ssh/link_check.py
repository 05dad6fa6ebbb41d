"""Does the host-to-host TLS link work from one host to another, and how fast?

``--data-path auto`` (the default) proves a TLS link from the source to the target before
each freeze and relays through the coordinator when it cannot. :func:`check_link` asks the
same question without a container, before anyone migrates: it hands out throwaway
credentials as a migration does (:meth:`~celestial_ssh.data_plane.DataPlane.prepare_tls`),
runs the same proof (:data:`~celestial_ssh.tls_link.PROOF_BYTES`, with the same timeouts),
and optionally times a bigger stream. ``doctor --links`` asks it for every ordered pair of
hosts (:func:`check_links`), ``probe`` before it measures (``link_probe``).

A link that does not work is an answer (:class:`LinkCheck` with ``works`` False, why and
the fix), never an exception; bad input and a host SSH cannot reach raise, as ``probe`` does.
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import commands, tls_link
from .connection import ConnectionSettings, Privileges, find_privileges
from .data_plane import DataPlane, LinkMeasurement, TLSEnds
from .errors import CelestialError, RemoteCommandFailed
from .parallel import run_together
from .ssh import SSHSession


@dataclass(frozen=True)
class RateProbe:
    """What the link carries after its proof to time it: up to ``bytes`` of zeros for at
    most ``max_seconds``; every wait of it ends within ``timeout`` seconds."""

    bytes: int
    max_seconds: float
    timeout: float


# doctor --links: long enough to time a fast link past TCP's slow start, short enough that
# a slow one costs seconds per pair (at 100 Mbit/s, 32 MiB would take 2.7 s)
DOCTOR_RATE = RateProbe(bytes=32 << 20, max_seconds=2.0, timeout=30.0)


@dataclass(frozen=True)
class LinkCheck:
    """Whether ``source`` can stream to ``target`` over the TLS link, as ``auto`` would.

    ``works`` is what the proof said; ``source_tool``/``target_tool`` are the programs of
    each end (python3 or socat, None when the host has neither or was not asked),
    ``address`` where the target listens, ``port`` the pinned port (0: a random free one
    each time). ``measurement`` is the timed stream after the proof (None when none was
    asked, or it failed: ``rate_error`` says why). On failure ``why`` says what went wrong
    and ``fix`` what would make it work.
    """

    source: str
    target: str
    works: bool
    source_tool: str | None = None
    target_tool: str | None = None
    address: str | None = None
    port: int = 0
    proof: LinkMeasurement | None = None
    measurement: LinkMeasurement | None = None
    why: str = ""
    fix: str = ""
    rate_error: str = ""

    @property
    def bytes_per_s(self) -> float | None:
        return self.measurement.bytes_per_s if self.measurement is not None else None

    @property
    def tools(self) -> str:
        """``python3 -> socat``, for one line of text."""
        return f"{self.source_tool or '?'} -> {self.target_tool or '?'}"

    def to_dict(self) -> dict[str, Any]:
        rate = self.bytes_per_s
        return {
            "source": self.source,
            "target": self.target,
            "works": self.works,
            "source_tool": self.source_tool,
            "target_tool": self.target_tool,
            "address": self.address,
            "port": self.port or None,
            "bytes_per_s": round(rate) if rate is not None else None,
            "why": self.why,
            "fix": self.fix,
            "rate_error": self.rate_error,
        }


def check_link(
    source: str,
    target: str,
    *,
    connection: ConnectionSettings | None = None,
    tls_address: str | None = None,
    tls_port: int = 0,
    rate: RateProbe | None = DOCTOR_RATE,
    timeout: float = 60.0,
) -> LinkCheck:
    """Check the TLS link from ``source`` to ``target`` (host names) as ``--data-path auto``
    would before a freeze, and time it with ``rate`` when it works. Changes nothing on the
    hosts: the work directories it makes are removed again.

    Raises for bad input (``tls_address``, ``tls_port``) and for a host that cannot be
    resolved or reached (:class:`~celestial_ssh.errors.ConnectionFailed` and kin).
    """
    check_input(tls_address, tls_port)
    settings = connection or ConnectionSettings()
    hosts = (settings.resolve(source), settings.resolve(target))
    opened: list[SSHSession] = []
    try:
        for host in hosts:
            opened.append(settings.open(host))
        # prepare_tls and measure_tls start their commands on the control sessions
        # themselves, whatever the data plane's transport
        plane = DataPlane("paramiko")
        return check_sessions(
            opened[0],
            opened[1],
            plane,
            tls_address=tls_address,
            tls_port=tls_port,
            rate=rate,
            timeout=timeout,
        )
    finally:
        for session in opened:
            session.close()


def check_links(
    hosts: list[str],
    *,
    connection: ConnectionSettings | None = None,
    tls_port: int = 0,
    rate: RateProbe | None = DOCTOR_RATE,
    unreachable: frozenset[str] = frozenset(),
) -> list[LinkCheck]:
    """:func:`check_link` for every ordered pair of ``hosts`` (A->B and B->A), one pair at
    a time: two timed streams at once would share the hosts' links and halve each other's
    rate. A pair with a host in ``unreachable``, or one SSH cannot reach now, is a link
    that does not work, with the reason."""
    check_input(None, tls_port)
    pairs = itertools.combinations(dict.fromkeys(hosts), 2)
    # both ways of a pair together: A->B, B->A, A->C, C->A, ...
    ways = [way for a, b in pairs for way in ((a, b), (b, a))]
    return [
        _check_way(source, target, connection, tls_port, rate, unreachable)
        for source, target in ways
    ]


def _check_way(
    source: str,
    target: str,
    connection: ConnectionSettings | None,
    tls_port: int,
    rate: RateProbe | None,
    unreachable: frozenset[str],
) -> LinkCheck:
    down = [name for name in (source, target) if name in unreachable]
    if down:
        why = f"not checked: {' and '.join(down)} cannot be reached over SSH"
        return LinkCheck(source, target, works=False, why=why)
    try:
        return check_link(source, target, connection=connection, tls_port=tls_port, rate=rate)
    except CelestialError as error:
        return LinkCheck(
            source, target, works=False, why=f"not checked: {_said(error)}", fix=error.hint or ""
        )


def check_sessions(
    source: SSHSession,
    target: SSHSession,
    plane: DataPlane,
    *,
    tls_address: str | None = None,
    tls_port: int = 0,
    rate: RateProbe | None = None,
    timeout: float = 60.0,
) -> LinkCheck:
    """:func:`check_link` over sessions already open (left open). Privileged commands run
    as a migration's would: as root, or through ``sudo -n`` where that works (settled here)."""
    result = _Check(source, target, plane, tls_address, tls_port, timeout)
    try:
        return result.run(rate)
    finally:
        for session, workdir in result.workdirs.items():
            with contextlib.suppress(CelestialError):
                session.run(commands.remove_workdir(workdir), timeout=30)


class _Check:
    """One check's steps; each failing step ends it with its own why and fix."""

    def __init__(
        self,
        source: SSHSession,
        target: SSHSession,
        plane: DataPlane,
        address: str | None,
        port: int,
        timeout: float,
    ):
        self.source, self.target, self.plane = source, target, plane
        self.address, self.port, self.timeout = address, port, timeout
        self.names = (source.host.name, target.host.name)
        self.workdirs: dict[SSHSession, str] = {}
        self.tools: tuple[str | None, str | None] = (None, None)

    def failed(self, why: str, fix: str, ends: TLSEnds | None = None) -> LinkCheck:
        return LinkCheck(
            *self.names,
            works=False,
            source_tool=self.tools[0],
            target_tool=self.tools[1],
            address=ends.address if ends else self.address,
            port=self.port,
            why=why,
            fix=fix,
        )

    def run(self, rate: RateProbe | None) -> LinkCheck:
        sessions = (self.source, self.target)
        found: list[Privileges] = run_together(
            *(partial(find_privileges, session, timeout=self.timeout) for session in sessions)
        )
        for session, privileges in zip(sessions, found, strict=True):
            if not privileges.ok:
                user, name = session.host.user, session.host.name
                return self.failed(
                    f"{name}: {user} is not root and 'sudo -n' does not work, and the ends "
                    "of the TLS link run as root",
                    f"Log in to {name} as root, or allow passwordless sudo for {user!r} there.",
                )
        try:
            answers = run_together(*(partial(self._prepare_end, session) for session in sessions))
        except CelestialError as error:
            return self.failed(_said(error), error.hint or "")
        self.tools = (answers[0], answers[1])
        missing = [name for name, tool in zip(self.names, self.tools, strict=True) if not tool]
        if missing:
            hosts = " and ".join(missing)
            return self.failed(
                f"{hosts} {'have' if len(missing) > 1 else 'has'} no program for an end of "
                "the TLS link (python3 3.6 or later with its ssl module, or socat)",
                f"Install python3 or socat on {hosts} (e.g. apt-get install socat).",
            )
        try:
            ends = self.plane.prepare_tls(
                *sessions,
                self.workdirs[self.source],
                self.workdirs[self.target],
                timeout=self.timeout,
                address=self.address,
            )
        except CelestialError as error:
            return self.failed(_said(error), error.hint or "")
        try:
            proof = self._measure(ends, tls_link.PROOF_BYTES, timeout=tls_link.PROOF_TIMEOUT_S)
        except CelestialError as error:
            return self.failed(*self._unproved(error, ends), ends)
        measurement, rate_error = None, ""
        if rate is not None:
            try:
                measurement = self._measure(
                    ends, rate.bytes, max_seconds=rate.max_seconds, timeout=rate.timeout
                )
            except CelestialError as error:
                rate_error = _said(error)
        return LinkCheck(
            *self.names,
            works=True,
            source_tool=ends.source_tool,
            target_tool=ends.target_tool,
            address=ends.address,
            port=self.port,
            proof=proof,
            measurement=measurement,
            rate_error=rate_error,
        )

    def _prepare_end(self, session: SSHSession) -> str | None:
        """A private work directory on ``session``'s host (kept in :attr:`workdirs`), and
        the program its end of the link would run."""
        made = session.run(
            commands.make_workdir(), timeout=self.timeout, check=True, what="a work directory"
        )
        self.workdirs[session] = made.stdout.strip()
        found = session.run(tls_link.tls_tool(), timeout=self.timeout)
        return tls_link.parse_tls_tool(found.stdout) if found.ok else None

    def _measure(
        self,
        ends: TLSEnds,
        nbytes: int,
        *,
        timeout: float,
        max_seconds: float | None = None,
    ) -> LinkMeasurement:
        more = {"max_seconds": max_seconds} if max_seconds is not None else {}
        return self.plane.measure_tls(
            self.source,
            self.target,
            self.workdirs[self.source],
            self.workdirs[self.target],
            ends,
            nbytes,
            port=self.port,
            timeout=timeout,
            connect_timeout_s=tls_link.PROOF_CONNECT_TIMEOUT_S,
            **more,
        )

    def _unproved(self, error: CelestialError, ends: TLSEnds) -> tuple[str, str]:
        """Why the proof failed, and the fix: the target's listener could not listen, or
        the source could not reach it (or finish the handshake)."""
        source, target = self.names
        pinned = f"port {self.port}" if self.port else "a random free port"
        if _blamed(error) == target:
            why = f"{target} could not listen on {ends.address} ({pinned}): {_said(error)}"
            fix = (
                f"Give --tls-address one of {target}'s own addresses that {source} can "
                "reach (NAT between the hosts is not supported)"
            )
            if self.port:
                fix += f", or a --tls-port that is free on {target}"
            return why, fix + "."
        why = (
            f"{source} could not stream to {target} at {ends.address} ({pinned}) over TLS: "
            f"{_said(error)}"
        )
        port = (
            f"TCP port {self.port}"
            if self.port
            else "the TCP port the target picks, a random free one each time (pin it with "
            "--tls-port PORT and open that one)"
        )
        fix = (
            f"Let {source} reach {ends.address} on {port}: open it in {target}'s firewall "
            f"and any between; or give --tls-address an address of {target} that {source} "
            "can reach."
        )
        return why, fix


def check_input(address: str | None, port: int) -> None:
    """Refuse a ``--tls-address`` or ``--tls-port`` no link could use, before connecting."""
    if address is not None:
        tls_link.validate_address(address)
    tls_link.validate_port(port)


def _said(error: CelestialError) -> str:
    """The error's message on one line (its hint is the fix, given apart); a failed
    command's last lines of stderr, where the cause usually is, after it."""
    text = " | ".join(line.strip() for line in error.message.splitlines() if line.strip())
    if isinstance(error, RemoteCommandFailed):
        said = [line.strip() for line in error.stderr.splitlines() if line.strip()]
        text += f" ({' | '.join(said[-3:]) or f'exit {error.exit_status}'})"
    return text or type(error).__name__


def _blamed(error: CelestialError) -> str | None:
    """The host an error is about: its own ``host``, else the name its message starts with."""
    if error.host:
        return error.host
    name, colon, _ = error.message.partition(":")
    return name if colon else None
