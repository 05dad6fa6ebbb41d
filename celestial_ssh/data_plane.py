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
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import commands
from .errors import InvalidInput
from .openssh import (
    OpenSSHProcess,
    SSHEndpoint,
    openssh_client,
    pinned_known_hosts_line,
    ssh_argv,
)
from .shell import join
from .ssh import CommandResult, SSHSession
from .streaming import ByteStream, relay

TRANSPORTS = ("auto", "openssh", "paramiko")
DIRECT_KNOWN_HOSTS_NAME = "target.known_hosts"


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
        self, source: SSHSession, target: SSHSession, nbytes: int, *, timeout: float = 120.0
    ) -> LinkMeasurement:
        """Stream ``nbytes`` of zeros from ``source`` to ``target`` through this plane.

        Zeros are fine: neither SSH nor this plane compresses, so they cost what any byte does.
        """
        sender = self.start(source, ["head", "-c", str(int(nbytes)), "/dev/zero"], privileged=False)
        receiver = self.start(target, ["sh", "-c", "cat > /dev/null"], privileged=False)
        try:
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
        timeout: float = 120.0,
    ) -> LinkMeasurement:
        """Like :meth:`measure`, from the source straight to the target (``--direct``)."""
        link = self.direct_link(source_workdir, target, ["sh", "-c", "cat > /dev/null"])
        script = join(["head", "-c", str(int(nbytes)), "/dev/zero"]) + " | "
        script += join(link)
        started = time.monotonic()
        process = self.start(source, ["sh", "-c", script], forward_agent=True)
        try:
            result = process.wait(timeout)
        finally:
            with contextlib.suppress(Exception):
                process.kill()
        seconds = time.monotonic() - started
        if not result.ok:
            raise InvalidInput(
                f"{source.host.name}: the direct link to {target.host.name} failed: "
                f"{result.stderr.strip()[-300:]}"
            )
        return LinkMeasurement(bytes=nbytes, seconds=seconds, data_plane="direct")
