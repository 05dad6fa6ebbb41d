"""How the bytes travel: the data plane of one migration, chosen once after connecting.

- ``openssh``: each stream is an ``ssh`` subprocess (AES-GCM preferred), pinned to the host
  key the paramiko control session verified. Twice paramiko's throughput on our machines.
- ``paramiko``: each stream is a channel of the control session; needs no ``ssh`` client.
- ``auto`` (the default): ``openssh`` when this machine has an ``ssh`` client, else paramiko.

``--direct`` is orthogonal: the *source* runs ``ssh`` to the target and streams the archive
there itself, so the coordinator's own link (a laptop's Wi-Fi, a satellite hop) is not in
the path. The source authenticates with the coordinator's forwarded ssh-agent (or, without
one, with its own keys), and it trusts only the target key the coordinator verified.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Protocol, cast

from . import commands, tls_link
from .errors import ConnectionFailed, InvalidInput
from .openssh import (
    OpenSSHProcess,
    SSHEndpoint,
    openssh_client,
    pinned_known_hosts_line,
    ssh_argv,
)
from .parallel import run_together
from .ssh import CommandResult, SSHSession
from .streaming import ByteStream, relay

TRANSPORTS = ("auto", "openssh", "paramiko")
# the archive's path (MigrationOptions.data_path): auto (a TLS link from the source to the
# target, proved before the freeze, else relay) | tls (that link or nothing) | ssh (the
# source logs in to the target) | relay (through the coordinator)
DATA_PATHS = ("auto", "tls", "ssh", "relay")
# how often a wait for a stream's ready line looks at a cancel request
READY_POLL_S = 0.5
# a link probe stops after this long (at 50 Mbit/s, 32 MB would take five seconds)
PROBE_MAX_SECONDS = 0.5
DIRECT_KNOWN_HOSTS_NAME = "target.known_hosts"
TLS_CONNECT_TIMEOUT_S = tls_link.CONNECT_TIMEOUT_S


class StreamProcess(ByteStream, Protocol):
    """A running remote command: :class:`~celestial_ssh.ssh.RemoteProcess` or
    :class:`~celestial_ssh.openssh.OpenSSHProcess`."""

    command: str

    def is_running(self) -> bool: ...

    def wait(self, timeout: float) -> CommandResult: ...

    def kill(self) -> None: ...

    @property
    def stderr(self) -> str: ...


@dataclass(frozen=True)
class LinkMeasurement:
    """What a probe moved from the source to the target, and how fast."""

    bytes: int
    seconds: float
    data_plane: str

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class TLSEnds:
    """The TLS link's two ends, as :meth:`DataPlane.prepare_tls` found them: the address
    the target listens on, and the program each end runs (socat or python3)."""

    address: str
    source_tool: str
    target_tool: str


class DataPlane:
    """Starts the streaming commands of one migration on the chosen transport."""

    def __init__(self, kind: str, ssh_client: str | None = None):
        if kind not in ("openssh", "paramiko"):
            raise ValueError(f"unknown data plane {kind!r}")
        self.kind = kind
        self._ssh_client = ssh_client or "ssh"
        self._pin_dir: str | None = None
        self._pins: dict[int, str] = {}

    @classmethod
    def open(cls, requested: str, sessions: tuple[SSHSession, ...]) -> DataPlane:
        """The data plane for ``requested`` (one of :data:`TRANSPORTS`) over ``sessions``."""
        if requested not in TRANSPORTS:
            raise InvalidInput(
                f"transport {requested!r} is not one of {', '.join(TRANSPORTS)}",
            )
        if requested == "paramiko":
            return cls("paramiko")
        client = openssh_client()
        if client is None:
            if requested == "openssh":
                raise InvalidInput(
                    "--transport openssh needs the OpenSSH client (ssh) on this machine",
                    hint="Install openssh-client, or use --transport paramiko.",
                )
            return cls("paramiko")
        plane = cls("openssh", client)
        plane._pin_dir = tempfile.mkdtemp(prefix="celestial-ssh-pins.")
        for session in sessions:
            key_type, key = session.host_key()
            path = Path(plane._pin_dir) / f"{len(plane._pins)}.known_hosts"
            path.write_text(pinned_known_hosts_line(key_type, key))
            plane._pins[id(session)] = str(path)
        return plane

    @property
    def description(self) -> str:
        return {"openssh": "OpenSSH client", "paramiko": "paramiko"}[self.kind]

    def start(
        self,
        session: SSHSession,
        argv: list[str],
        *,
        privileged: bool = True,
        forward_agent: bool = False,
    ) -> StreamProcess:
        """Start ``argv`` on ``session``'s host with raw stdin/stdout."""
        if self.kind == "paramiko":
            if forward_agent:
                return session.start(argv, privileged=privileged, forward_agent=True)
            return session.start(argv, privileged=privileged)
        command = session.command_line(argv, privileged=privileged)
        host = session.host
        endpoint = SSHEndpoint(
            hostname=host.hostname,
            port=host.port,
            user=host.user,
            ssh_config=host.ssh_config,
            identity_files=host.identity_files,
            identities_only=host.identities_only,
            proxy_jump=host.proxy_jump,
            connect_timeout=host.connect_timeout,
        )
        argv_ssh = ssh_argv(
            endpoint,
            command,
            known_hosts_file=self._pins[id(session)],
            forward_agent=forward_agent,
            ssh=self._ssh_client,
        )
        return OpenSSHProcess(host.name, command, argv_ssh)

    def close(self) -> None:
        if self._pin_dir is not None:
            shutil.rmtree(self._pin_dir, ignore_errors=True)
            self._pin_dir = None

    # -- measuring the link ---------------------------------------------------------------
    def measure(
        self,
        source: SSHSession,
        target: SSHSession,
        nbytes: int,
        *,
        max_seconds: float = PROBE_MAX_SECONDS,
        timeout: float = 120.0,
    ) -> LinkMeasurement:
        """Stream up to ``nbytes`` of zeros (for at most ``max_seconds``) from ``source`` to
        ``target`` through this plane; both ends connect first, so no handshake is timed.

        Zeros are fine: neither SSH nor this plane compresses, so they cost what any byte does.
        """
        sender = self.start(source, commands.probe_sender(nbytes, max_seconds), privileged=False)
        receiver = self.start(target, commands.probe_receiver(), privileged=False)
        try:
            for process in (receiver, sender):
                await_ready(process, timeout=timeout)
            sender.write(commands.GO_LINE)
            moved = relay(sender, receiver, stall_timeout=timeout)
            sender.wait(timeout)
            receiver.wait(timeout)
        finally:
            sender.kill()
            receiver.kill()
        return LinkMeasurement(bytes=moved.bytes, seconds=moved.seconds, data_plane=self.kind)

    # -- --direct ---------------------------------------------------------------------
    def direct_link(
        self, source_workdir: str, target: SSHSession, target_command: list[str]
    ) -> list[str]:
        """The ``ssh`` command line the *source* runs to feed ``target_command`` on the target."""
        host = target.host
        return ssh_argv(
            SSHEndpoint(
                hostname=host.hostname,
                port=host.port,
                user=host.user,
                connect_timeout=host.connect_timeout,
            ),
            target.command_line(target_command),
            known_hosts_file=f"{source_workdir}/{DIRECT_KNOWN_HOSTS_NAME}",
        )

    def prepare_direct(
        self, source: SSHSession, target: SSHSession, source_workdir: str, *, timeout: float
    ) -> CommandResult:
        """Pin the target's key on the source and check that the source can log in there.

        Runs before the freeze; the caller falls back to relaying when this fails.
        """
        key_type, key = target.host_key()
        source.run(
            commands.write_private_file(
                f"{source_workdir}/{DIRECT_KNOWN_HOSTS_NAME}",
                pinned_known_hosts_line(key_type, key),
            ),
            timeout=timeout,
            check=True,
            what="pinning the target's host key on the source",
        )
        probe = self.start(
            source, self.direct_link(source_workdir, target, ["true"]), forward_agent=True
        )
        try:
            return probe.wait(timeout)
        finally:
            probe.kill()

    def measure_direct(
        self,
        source: SSHSession,
        target: SSHSession,
        source_workdir: str,
        nbytes: int,
        *,
        max_seconds: float = PROBE_MAX_SECONDS,
        timeout: float = 120.0,
    ) -> LinkMeasurement:
        """Like :meth:`measure`, from the source straight to the target (``--direct``);
        the source times it once its link to the target is up."""
        link = self.direct_link(source_workdir, target, commands.probe_receiver())
        process = self.start(
            source,
            commands.direct_probe(nbytes, max_seconds, source_workdir, link),
            forward_agent=True,
        )
        measured = _run_direct_probe(process, source.host.name, target.host.name, timeout)
        return LinkMeasurement(bytes=measured[0], seconds=measured[1], data_plane="direct")

    # -- the TLS link (--data-path auto or tls) ------------------------------------------
    def prepare_tls(
        self,
        source: SSHSession,
        target: SSHSession,
        source_workdir: str,
        target_workdir: str,
        *,
        timeout: float,
        address: str | None = None,
    ) -> TLSEnds:
        """Before the freeze: find each end's TLS program, give each end a throwaway TLS
        identity and the other end's certificate (over the verified SSH sessions), and
        find the address the target listens on: ``address``, else the one its SSH session
        arrived on. All at once: five round trips in the time of one."""
        given = tls_link.validate_address(address) if address is not None else None

        def listening_address() -> str:
            if given is not None:
                return given
            found = target.run(
                tls_link.ssh_server_address(),
                privileged=False,
                timeout=timeout,
                check=True,
                what="reading the address of the target's SSH session",
            )
            return tls_link.parse_address(found.stdout, target.host.name)

        def tool(session: SSHSession) -> str:
            found = session.run(
                tls_link.tls_tool(),
                timeout=timeout,
                check=True,
                what="looking for socat or python3",
            )
            return tls_link.required_tool(found.stdout, session.host.name)

        credentials = tls_link.make_credentials()
        found, source_tool, target_tool, *_ = run_together(
            listening_address,
            partial(tool, source),
            partial(tool, target),
            *(
                partial(
                    send_private_files,
                    session,
                    workdir,
                    tls_link.credential_files(own, peer),
                    timeout=timeout,
                )
                for session, workdir, own, peer in (
                    (source, source_workdir, credentials.source, credentials.target),
                    (target, target_workdir, credentials.target, credentials.source),
                )
            ),
        )
        return TLSEnds(
            address=cast(str, found),
            source_tool=cast(str, source_tool),
            target_tool=cast(str, target_tool),
        )

    def start_tls_listener(
        self,
        target: SSHSession,
        workdir: str,
        ends: TLSEnds,
        output: str,
        *,
        digest: str | None = None,
        port: int,
        stall_timeout_s: float,
        accept_timeout_s: float,
    ) -> tuple[StreamProcess, int]:
        """Start the target's TLS listener (on the control connection: no data passes
        through SSH) and return it with the port it listens on; it writes the SHA-256 of
        what lands to ``digest`` when given. Its stdin stays open until it is killed (the
        listener ends with it); paramiko's ``wait()`` leaves it open."""
        listener = target.start(
            tls_link.listen(
                workdir,
                ends.address,
                output,
                digest=digest,
                port=port,
                stall_timeout_s=stall_timeout_s,
                accept_timeout_s=accept_timeout_s,
                tool=ends.target_tool,
            )
        )
        try:
            line = await_line(listener, timeout=accept_timeout_s, ended_before="it listened")
            port = tls_link.parse_listening(line.decode(errors="replace"), target.host.name)
            return listener, port
        except BaseException:
            listener.kill()
            raise

    @staticmethod
    def tls_link(
        source_workdir: str,
        ends: TLSEnds,
        port: int,
        fifo: str,
        *,
        stall_timeout_s: float,
        connect_timeout_s: float = TLS_CONNECT_TIMEOUT_S,
    ) -> commands.DirectLink:
        """How the source's script reaches the target's TLS listener."""
        return commands.DirectLink(
            tuple(
                tls_link.link(
                    source_workdir,
                    ends.address,
                    port,
                    fifo,
                    stall_timeout_s=stall_timeout_s,
                    connect_timeout_s=connect_timeout_s,
                    tool=ends.source_tool,
                )
            ),
            ready_log=tls_link.link_log(source_workdir),
            ready_pattern=tls_link.HANDSHAKE_DONE,
            program=ends.source_tool,
        )

    def measure_tls(
        self,
        source: SSHSession,
        target: SSHSession,
        source_workdir: str,
        target_workdir: str,
        ends: TLSEnds,
        nbytes: int,
        *,
        port: int = 0,
        max_seconds: float = PROBE_MAX_SECONDS,
        timeout: float = 120.0,
        connect_timeout_s: float = TLS_CONNECT_TIMEOUT_S,
    ) -> LinkMeasurement:
        """Like :meth:`measure_direct`, over the TLS link; ``connect_timeout_s`` bounds
        what a firewall that drops the packets costs."""
        listener, bound = self.start_tls_listener(
            target,
            target_workdir,
            ends,
            "/dev/null",
            port=port,
            stall_timeout_s=timeout,
            accept_timeout_s=timeout,
        )
        link = self.tls_link(
            source_workdir,
            ends,
            bound,
            commands.direct_probe_fifo(source_workdir),
            stall_timeout_s=timeout,
            connect_timeout_s=connect_timeout_s,
        )
        try:
            measured = _run_direct_probe(
                source.start(commands.direct_probe(nbytes, max_seconds, source_workdir, link)),
                source.host.name,
                target.host.name,
                timeout,
            )
            listened = listener.wait(timeout)
        finally:
            listener.kill()
        if not listened.ok:
            raise InvalidInput(
                f"{target.host.name}: the TLS listener of the probe failed: "
                f"{listened.what_it_said()}"
            )
        return LinkMeasurement(bytes=measured[0], seconds=measured[1], data_plane="tls")


def _run_direct_probe(
    process: StreamProcess, source: str, target: str, timeout: float
) -> tuple[int, float]:
    """Drive a started :func:`~celestial_ssh.commands.direct_probe`: (bytes, seconds)."""
    try:
        await_ready(process, timeout=timeout)
        process.write(commands.GO_LINE)
        output = bytearray()
        process.set_read_timeout(timeout)
        while chunk := process.read(4096):
            output += chunk
        result = process.wait(timeout)
    finally:
        with contextlib.suppress(Exception):
            process.kill()
    measured = commands.parse_probe_result(output.decode(errors="replace"))
    if not result.ok or measured is None:
        raise InvalidInput(f"{source}: the direct link to {target} failed: {result.what_it_said()}")
    return measured


def send_private_files(
    session: SSHSession, workdir: str, files: dict[str, str], *, timeout: float
) -> None:
    """Write ``files`` (name -> text) into ``workdir`` on ``session``'s host, mode 0600,
    through stdin (never a command line, which other users of the host may read)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            entry = tarfile.TarInfo(name)
            entry.size, entry.mode, entry.mtime = len(data), 0o600, int(time.time())
            archive.addfile(entry, io.BytesIO(data))
    receiver = session.start(commands.receive_private_files(workdir))
    try:
        receiver.write(buffer.getvalue())
        receiver.close_stdin()
        result = receiver.wait(timeout)
    finally:
        receiver.kill()
    if not result.ok:
        raise result.failure(f"{session.host.name}: writing the TLS credentials failed")


def await_line(
    process: StreamProcess,
    *,
    timeout: float,
    host: str | None = None,
    ended_before: str = "it was ready",
    check: Callable[[], None] | None = None,
    limit: int = 256,
    size: int | None = None,
) -> bytes:
    """Read one line (up to ``limit`` bytes) from a stream, without its newline.

    A line of known ``size`` (newline included) is read in as few reads as the stream
    allows; any other line a byte at a time, so nothing after it is consumed.

    Reads in short slices so ``check`` (e.g. a cancel request, which it raises) is seen
    within half a second. Any failure is a :class:`ConnectionFailed` naming ``host``
    (default: the stream's own host) and saying the stream ended before ``ended_before``.
    """
    host = host or process.host_name
    received = b""
    deadline = time.monotonic() + timeout
    process.set_read_timeout(READY_POLL_S)
    while not received.endswith(b"\n"):
        if check is not None:
            check()
        try:
            chunk: bytes | None = process.read(size - len(received) if size else 1)
        except TimeoutError:
            chunk = None
        except (OSError, EOFError) as error:
            raise ConnectionFailed(f"{host}: the stream broke: {error}", host=host) from error
        if chunk == b"":
            ended = process.wait(10)
            raise ConnectionFailed(
                f"{host}: the stream ended before {ended_before} ({ended.what_it_said()})",
                host=host,
            )
        received += chunk or b""
        if len(received) >= (size or limit + 1) and not received.endswith(b"\n"):
            raise ConnectionFailed(
                f"{host}: unexpected stream greeting {received[:60]!r}", host=host
            )
        if time.monotonic() > deadline:
            raise ConnectionFailed(
                f"{host}: the stream was not ready within {timeout:.0f} s", host=host
            )
    return received[:-1]


def await_ready(
    process: StreamProcess,
    *,
    timeout: float,
    host: str | None = None,
    ended_before: str = "it was ready",
    check: Callable[[], None] | None = None,
) -> None:
    """Read a stream's ready line (:data:`celestial_ssh.commands.READY_LINE`); failures
    as for :func:`await_line`."""
    host = host or process.host_name
    line = await_line(
        process,
        timeout=timeout,
        host=host,
        ended_before=ended_before,
        check=check,
        size=len(commands.READY_LINE),
    )
    if line + b"\n" != commands.READY_LINE:
        raise ConnectionFailed(f"{host}: unexpected stream greeting {line!r}", host=host)
