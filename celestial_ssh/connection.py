"""One way to reach a host: resolve it, apply the host-key policy, connect, settle privileges.

Every entry point (migrate, batch, evacuate, doctor, ps, recover, probe) takes a
:class:`ConnectionSettings` and reaches its hosts through it; tests give it a fake
``connector`` instead of patching module globals.

What fabric gives us, and what it cannot
-----------------------------------------
:class:`~celestial_ssh.ssh.SSHSession` stands on fabric's ``Connection``: the lazily opened
``SSHClient``, ``gateway=`` another Connection for ProxyJump (a ``direct-tcpip`` channel
through the last hop), and ``connect_kwargs`` for keys, agent, timeouts and the AES-GCM-first
``transport_factory``. fabric's defaults are unsafe for us and are replaced before the
connection opens: its constructor sets paramiko's ``AutoAddPolicy`` (we set our
``StrictHostKeyChecking`` policy: yes / accept-new / no, with OpenSSH's messages) and it
loads no known_hosts (we load the user's and the system's files); it is given a Config that
reads no ssh_config or fabric config file, since ``ssh -G`` resolved the host already; and
its ``connect_timeout`` is an int, so our float timeouts go in ``connect_kwargs``.

Commands do not go through fabric's ``run``/``sudo``: they run through invoke's runner
threads, watchers and pty handling, with no raw byte streams (the data plane writes and
reads archives through a channel), no deadline that closes the channel, no per-stream
window sizes, and ``sudo`` that answers password prompts (we only ever run ``sudo -n``).
So :meth:`SSHSession.run` and :meth:`SSHSession.start` open channels on the Connection's
paramiko transport themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from . import commands
from .errors import PreflightFailed
from .hosts import ResolvedHost, resolve_host
from .ssh import SUDO_PREFIX, CommandResult, NoticeSink, SSHSession

HostResolver = Callable[[str], ResolvedHost]
# opens a connected session to a resolved host (tests give one that returns fakes)
Connector = Callable[[ResolvedHost, NoticeSink], SSHSession]


def _quiet(message: str) -> None:
    pass


def open_ssh_session(host: ResolvedHost, notice: NoticeSink) -> SSHSession:
    """The default connector: a real SSH connection."""
    session = SSHSession(host, notice)
    session.connect()
    return session


def accepting_new_host_keys(host: ResolvedHost) -> ResolvedHost:
    """``--accept-new-host-keys``: a host checked strictly learns a key it has none of yet
    (a key that changed is still refused; ``no`` stays ``no``)."""
    if host.strict_host_key_checking == "yes":
        return host.with_strict_host_key_checking("accept-new")
    return host


@dataclass(frozen=True)
class Privileges:
    """How privileged commands run on a host: ``root``, ``sudo`` (``sudo -n``), or None
    when neither works; then ``refusal`` is what sudo answered."""

    how: str | None
    refusal: CommandResult | None = None

    @property
    def ok(self) -> bool:
        return self.how is not None


def find_privileges(session: SSHSession, *, timeout: float = 60.0) -> Privileges:
    """Ask once whether the login user is root, else whether ``sudo -n`` works; in that
    case privileged commands of ``session`` run through it from now on."""
    uid = session.run(commands.whoami(), privileged=False, timeout=timeout)
    if uid.ok and uid.stdout.strip() == "0":
        return Privileges("root")
    sudo = session.run(commands.sudo_works(), privileged=False, timeout=timeout)
    if not sudo.ok:
        return Privileges(None, sudo)
    session.privileged_prefix = SUDO_PREFIX
    return Privileges("sudo")


def not_privileged(session: SSHSession, refusal: CommandResult | None) -> PreflightFailed:
    """The error for a user who is not root and cannot use ``sudo -n``."""
    name, user = session.host.name, session.host.user
    said = (refusal.stderr or refusal.stdout).strip()[:200] if refusal else ""
    return PreflightFailed(
        f"{name}: user {user!r} is not root and 'sudo -n' does not work ({said})",
        host=name,
        hint="podman checkpoint/restore needs root: log in as root, or allow "
        f"passwordless sudo for {user!r} (celestial-ssh never types a sudo password).",
    )


def settle_privileges(session: SSHSession, *, timeout: float = 60.0) -> Privileges:
    """:func:`find_privileges`, raising :class:`PreflightFailed` when neither works."""
    found = find_privileges(session, timeout=timeout)
    if not found.ok:
        raise not_privileged(session, found.refusal)
    return found


@dataclass(frozen=True)
class ConnectionSettings:
    """How an entry point reaches its hosts: the same for every host it touches."""

    ssh_config: str | None = None
    # how a host name becomes connection settings (e.g. Inventory.resolve); default ssh -G
    host_resolver: HostResolver | None = field(default=None, compare=False)
    accept_new_host_keys: bool = False
    connector: Connector | None = field(default=None, compare=False)

    def resolve(self, name: str) -> ResolvedHost:
        """``name`` resolved (by the resolver, else ``ssh -G``), with the host-key policy."""
        if self.host_resolver is not None:
            host = self.host_resolver(name)
        else:
            host = resolve_host(name, self.ssh_config)
        return accepting_new_host_keys(host) if self.accept_new_host_keys else host

    def open(self, host: str | ResolvedHost, notice: NoticeSink | None = None) -> SSHSession:
        """A connected session to ``host``; who runs privileged commands is not asked."""
        resolved = self.resolve(host) if isinstance(host, str) else host
        return (self.connector or open_ssh_session)(resolved, notice or _quiet)

    def connect(
        self,
        host: str | ResolvedHost,
        notice: NoticeSink | None = None,
        *,
        timeout: float = 60.0,
    ) -> SSHSession:
        """A connected session whose privileged commands work: as root, or through
        ``sudo -n``. Raises :class:`PreflightFailed` (and closes it) when neither does."""
        session = self.open(host, notice)
        try:
            settle_privileges(session, timeout=timeout)
        except BaseException:
            session.close()
            raise
        return session

    def with_resolver(self, resolver: HostResolver) -> ConnectionSettings:
        return replace(self, host_resolver=resolver)


def connection_settings(
    connection: ConnectionSettings | None = None,
    *,
    ssh_config: str | None = None,
    accept_new_host_keys: bool = False,
    host_resolver: HostResolver | None = None,
) -> ConnectionSettings:
    """The settings an entry point works with: ``connection``, with the keyword arguments
    entry points took before it (when given) over it."""
    settings = connection or ConnectionSettings()
    if ssh_config is not None:
        settings = replace(settings, ssh_config=ssh_config)
    if accept_new_host_keys:
        settings = replace(settings, accept_new_host_keys=True)
    if host_resolver is not None:
        settings = replace(settings, host_resolver=host_resolver)
    return settings
