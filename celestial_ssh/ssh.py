"""SSH sessions to one host: strict host keys, commands with deadlines, raw streams.

The connection is fabric's :class:`~fabric.Connection` (gateways for ProxyJump, the
connect arguments) under our own host-key policy; commands and streams run on its paramiko
transport (see :mod:`celestial_ssh.connection` for why not through fabric's ``run``).

A session runs every command through the host's login shell, so each command is a string
built by :func:`celestial_ssh.shell.join` from quoted arguments. When the login user is not
root, privileged commands run under ``sudo -n`` (never a prompt, never a password).
Host keys are checked as OpenSSH checks them, by :mod:`celestial_ssh.host_keys`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import select
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import fabric  # type: ignore[import-untyped]
import paramiko

from .errors import (
    AuthenticationFailed,
    ConnectionFailed,
    HostKeyRejected,
    RemoteCommandFailed,
)
from .host_keys import (
    HostKeyPolicy,
    changed_host_key_message,
    find_known_host_entry,
    load_known_hosts,
)
from .hosts import ResolvedHost
from .shell import join

# Bigger windows than paramiko's 2 MB default keep a single stream from stalling on
# window updates; measured on loopback they move the data plane ~10% faster.
STREAM_WINDOW_BYTES = 16 * 1024 * 1024
STREAM_PACKET_BYTES = 32 * 1024
SUDO_PREFIX = ("sudo", "-n", "--")

NoticeSink = Callable[[str], None]


@dataclass(frozen=True)
class CommandResult:
    host: str
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @classmethod
    def of_stream(
        cls, host: str, command: str, exit_status: int, stderr: bytes | bytearray
    ) -> CommandResult:
        """The result of a streamed command (its stdout went to the stream, not here)."""
        return cls(
            host=host,
            command=command,
            exit_status=exit_status,
            stdout="",
            stderr=bytes(stderr).decode(errors="replace"),
        )

    def what_it_said(self) -> str:
        """For an error message: the tail of the command's stderr, else its exit status."""
        return self.stderr.strip()[-300:] or f"exit {self.exit_status}"

    def failure(self, message: str, *, hint: str | None = None) -> RemoteCommandFailed:
        """The error for this result (its output: stderr, or stdout when stderr is empty)."""
        return RemoteCommandFailed(
            message,
            host=self.host,
            command=self.command,
            exit_status=self.exit_status,
            stderr=self.stderr or self.stdout,
            hint=hint,
        )


def no_answer_within(timeout: float, host: str, command: str) -> ConnectionFailed:
    """The error for a remote command still running at its deadline (the caller kills it)."""
    return ConnectionFailed(
        f"{host}: no answer within {timeout:.0f} s from: {command[:200]}", host=host
    )


# AES-GCM first: paramiko does CTR and HMAC as two passes in Python, GCM in one OpenSSL
# call; on loopback that doubles what one channel moves. Servers without GCM still
# negotiate the next cipher in the list.
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def _fast_transport(sock: object, **kwargs: object) -> paramiko.Transport:
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    available = tuple(options.ciphers)
    options.ciphers = tuple(c for c in PREFERRED_CIPHERS if c in available) + tuple(
        c for c in available if c not in PREFERRED_CIPHERS
    )
    return transport


def _fabric_config() -> fabric.Config:
    """A fabric Config that reads nothing: hosts come resolved by ``ssh -G`` already, so
    neither ~/.ssh/config nor fabric's own config files may change them."""
    return fabric.Config(
        ssh_config=paramiko.SSHConfig(), lazy=True, overrides={"load_ssh_configs": False}
    )


def fabric_connection(
    host: ResolvedHost,
    notice: NoticeSink,
    key_files: Sequence[str] = (),
    gateway: fabric.Connection | None = None,
) -> fabric.Connection:
    """An unopened fabric Connection to ``host`` that checks host keys as OpenSSH does.

    fabric's constructor sets paramiko's AutoAddPolicy and loads no known_hosts: both are
    replaced here, before anything opens. The timeouts go in ``connect_kwargs`` because
    fabric turns ``connect_timeout`` into an int (a timeout under a second would vanish).
    """
    connect_kwargs: dict[str, object] = {
        "look_for_keys": not host.identities_only and not key_files,
        "allow_agent": not host.identities_only,
        "timeout": host.connect_timeout,
        "banner_timeout": host.connect_timeout,
        "auth_timeout": host.connect_timeout,
        "transport_factory": _fast_transport,
    }
    if key_files:
        connect_kwargs["key_filename"] = list(key_files)
    connection = fabric.Connection(
        host.hostname,
        user=host.user,
        port=host.port,
        config=_fabric_config(),
        # False, not None: None would make fabric look for a ProxyJump of its own
        gateway=gateway if gateway is not None else False,
        connect_kwargs=connect_kwargs,
    )
    host_keys = connection.client.get_host_keys()
    for path in (*host.known_hosts_files, "/etc/ssh/ssh_known_hosts"):
        load_known_hosts(host_keys, os.path.expanduser(path))
    connection.client.set_missing_host_key_policy(HostKeyPolicy(host, notice))
    return connection


def _local_agent_available() -> bool:
    path = os.environ.get("SSH_AUTH_SOCK")
    return path is not None and Path(path).is_socket()


class RemoteProcess:
    """A command running on a host with its stdin/stdout as raw byte streams."""

    def __init__(self, session: SSHSession, command: str, channel: paramiko.Channel):
        self.session = session
        self.command = command
        self.channel = channel
        self._stderr = bytearray()

    @property
    def host_name(self) -> str:
        return self.session.host.name

    def set_read_timeout(self, seconds: float | None) -> None:
        self.channel.settimeout(seconds)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes of stdout; ``b""`` at end of stream."""
        return bytes(self.channel.recv(size))

    def write(self, data: bytes | memoryview) -> None:
        self.channel.sendall(data)

    def close_stdin(self) -> None:
        self.channel.shutdown_write()

    def drain_stderr(self) -> None:
        while self.channel.recv_stderr_ready():
            self._stderr += self.channel.recv_stderr(65536)

    def is_running(self) -> bool:
        return not (self.channel.exit_status_ready() or self.channel.closed)

    def wait(self, timeout: float) -> CommandResult:
        """Wait for the exit status; ``-1`` when the connection died first."""
        deadline = time.monotonic() + timeout
        while not (self.channel.exit_status_ready() or self.channel.closed):
            self.drain_stderr()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                raise no_answer_within(timeout, self.host_name, self.command)
            self.channel.status_event.wait(min(remaining, 0.5))
        # drain whatever stdout is left so the channel can close cleanly
        with contextlib.suppress(OSError, EOFError):
            while self.channel.recv_ready():
                self.channel.recv(1 << 20)
        self.drain_stderr()
        status = self.channel.recv_exit_status() if self.channel.exit_status_ready() else -1
        return CommandResult.of_stream(self.host_name, self.command, status, self._stderr)

    @property
    def stderr(self) -> str:
        self.drain_stderr()
        return self._stderr.decode(errors="replace")

    def kill(self) -> None:
        """Close the channel: sshd then closes the command's pipes (it gets SIGPIPE/EOF)."""
        with contextlib.suppress(Exception):
            self.channel.close()


class SSHSession:
    """One authenticated SSH connection to one host, on a fabric :class:`~fabric.Connection`."""

    def __init__(self, host: ResolvedHost, notice: NoticeSink | None = None):
        self.host = host
        self._notice = notice or (lambda message: None)
        self._connection: fabric.Connection | None = None
        self._jump: SSHSession | None = None
        self.privileged_prefix: tuple[str, ...] = ()

    # -- connection -------------------------------------------------------------------
    @property
    def is_connected(self) -> bool:
        transport = self._connection.transport if self._connection else None
        return bool(transport and transport.is_active())

    def answers(self) -> bool:
        """Whether the other end still answers: one round trip (a channel opened and closed).

        ``is_connected`` only says paramiko has not yet seen the connection end; right
        after the far side died (its sshd killed, say) it can still say True for a while.
        """
        try:
            channel = self._transport().open_session(timeout=self.host.connect_timeout)
            channel.close()
        except (ConnectionFailed, paramiko.SSHException, OSError, EOFError):
            return False
        return True

    def connect(self) -> None:
        try:
            self._connect()
        except BaseException:
            self.close()  # the jump hops too: a failed connect leaves no connection open
            raise

    def _connect(self) -> None:
        host = self.host
        key_files = [path for path in host.identity_files if os.path.isfile(path)]
        gateway = self._open_jump_host() if host.proxy_jump else None
        connection = fabric_connection(host, self._notice, key_files, gateway)
        try:
            connection.open()
        except HostKeyRejected:
            connection.client.close()
            raise
        except paramiko.BadHostKeyException as error:
            connection.client.close()
            entry = find_known_host_entry(
                [os.path.expanduser(p) for p in host.known_hosts_files], host.known_hosts_name
            )
            raise HostKeyRejected(
                changed_host_key_message(host, error.key, entry), host=host.name
            ) from error
        except paramiko.AuthenticationException as error:
            connection.client.close()
            raise AuthenticationFailed(
                f"{host.name}: authentication as {host.user!r} failed ({error})",
                host=host.name,
                hint=f"Check that one of the keys ({', '.join(key_files) or 'agent, defaults'}) "
                f"is in {host.user}'s authorized_keys on {host.hostname}, or set IdentityFile.",
            ) from error
        except socket.gaierror as error:
            connection.client.close()
            config = host.ssh_config or "~/.ssh/config"
            raise ConnectionFailed(
                f"{host.name}: cannot resolve host name {host.hostname!r} ({error.strerror})",
                host=host.name,
                hint=f"It is neither a Host alias in {config} nor a name DNS knows. "
                "Check the spelling, or pass --ssh-config with the file that defines it.",
            ) from error
        except (OSError, paramiko.SSHException, EOFError) as error:
            # no transport yet behind a jump host: the jump's channel to the host failed
            # (refused, timed out), before any byte reached the host itself
            through_jump = gateway is not None and connection.client.get_transport() is None
            connection.client.close()
            if through_jump:
                raise ConnectionFailed(
                    f"{host.name}: jump host {(host.proxy_jump or '').split(',')[-1]} could not "
                    f"reach {host.hostname}:{host.port}: {error or type(error).__name__}",
                    host=host.name,
                ) from error
            raise ConnectionFailed(
                f"{host.name}: cannot connect to {host.hostname} port {host.port}: "
                f"{error or type(error).__name__}",
                host=host.name,
                hint="Check that the host is up, that sshd listens on that port, and that "
                "nothing blocks the way (try: ssh -v "
                f"{'-F ' + host.ssh_config + ' ' if host.ssh_config else ''}{host.name}).",
            ) from error
        transport = connection.client.get_transport()
        assert transport is not None
        transport.set_keepalive(10)
        self._connection = connection

    def _open_jump_host(self) -> fabric.Connection:
        """The connected session to the last ProxyJump hop: fabric's gateway for this one."""
        from .hosts import resolve_host

        # "ProxyJump a,b": b is the last hop before us, and b itself is reached through a
        *earlier_hops, jump_text = (self.host.proxy_jump or "").split(",")
        jump_host = resolve_host(jump_text, self.host.ssh_config)
        if earlier_hops:
            jump_host = dataclasses.replace(jump_host, proxy_jump=",".join(earlier_hops))
        jump_host = jump_host.with_strict_host_key_checking(self.host.strict_host_key_checking)
        self._jump = SSHSession(jump_host, self._notice)
        self._jump.connect()
        assert self._jump._connection is not None
        return self._jump._connection

    def close(self) -> None:
        if self._connection:
            self._connection.close()
            self._connection.client.close()  # also when the transport already died
            self._connection = None
        if self._jump:
            self._jump.close()
            self._jump = None

    def __enter__(self) -> SSHSession:
        if not self.is_connected:
            self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _transport(self) -> paramiko.Transport:
        transport = self._connection.transport if self._connection else None
        if transport is None or not transport.is_active():
            raise ConnectionFailed(
                f"{self.host.name}: the SSH connection is closed", host=self.host.name
            )
        return transport

    # -- commands ---------------------------------------------------------------------
    def command_line(self, argv: Sequence[str], *, privileged: bool = True) -> str:
        prefix = self.privileged_prefix if privileged else ()
        return join([*prefix, *argv])

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60.0,
        privileged: bool = True,
        check: bool = False,
        what: str | None = None,
        hint: str | None = None,
    ) -> CommandResult:
        """Run ``argv`` and collect its output; raise on a non-zero exit when ``check``."""
        command = self.command_line(argv, privileged=privileged)
        try:
            channel = self._transport().open_session(timeout=self.host.connect_timeout)
            channel.exec_command(command)
            channel.shutdown_write()
            result = self._collect(channel, command, timeout)
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise ConnectionFailed(
                f"{self.host.name}: the SSH connection failed while running "
                f"{command[:120]!r}: {error or type(error).__name__}",
                host=self.host.name,
            ) from error
        if check and not result.ok:
            raise result.failure(f"{self.host.name}: {what or command[:200]} failed", hint=hint)
        return result

    def _collect(self, channel: paramiko.Channel, command: str, timeout: float) -> CommandResult:
        stdout, stderr = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        while True:
            while channel.recv_ready():
                stdout += channel.recv(1 << 20)
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(1 << 20)
            if channel.eof_received and channel.exit_status_ready():
                break
            if channel.closed:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                channel.close()
                raise ConnectionFailed(
                    f"{self.host.name}: no answer within {timeout:.0f} s from: {command[:200]}",
                    host=self.host.name,
                )
            select.select([channel], [], [], min(remaining, 0.5))
        while channel.recv_ready():
            stdout += channel.recv(1 << 20)
        while channel.recv_stderr_ready():
            stderr += channel.recv_stderr(1 << 20)
        status = channel.recv_exit_status() if channel.exit_status_ready() else -1
        channel.close()
        if status == -1:
            raise ConnectionFailed(
                f"{self.host.name}: the connection closed before {command[:120]!r} finished",
                host=self.host.name,
            )
        return CommandResult(
            host=self.host.name,
            command=command,
            exit_status=status,
            stdout=stdout.decode(errors="replace"),
            stderr=stderr.decode(errors="replace"),
        )

    def host_key(self) -> tuple[str, str]:
        """The host key this session verified, as (type, base64): the data plane pins it."""
        key = self._transport().get_remote_server_key()
        return key.get_name(), key.get_base64()

    def start(
        self, argv: Sequence[str], *, privileged: bool = True, forward_agent: bool = False
    ) -> RemoteProcess:
        """Start ``argv`` with raw stdin/stdout for streaming data.

        ``forward_agent`` lends the coordinator's ssh-agent to the command (``--direct``:
        the source logs in to the target with the user's key, never copied anywhere).
        """
        command = self.command_line(argv, privileged=privileged)
        try:
            channel = self._transport().open_session(
                window_size=STREAM_WINDOW_BYTES,
                max_packet_size=STREAM_PACKET_BYTES,
                timeout=self.host.connect_timeout,
            )
            # without a local agent, a forwarded one would leave the remote ssh waiting forever
            if forward_agent and _local_agent_available():
                paramiko.agent.AgentRequestHandler(channel)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as error:
            raise ConnectionFailed(
                f"{self.host.name}: cannot start {command[:120]!r}: {error}", host=self.host.name
            ) from error
        return RemoteProcess(self, command, channel)
