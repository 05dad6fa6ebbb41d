"""How the engine reaches its two hosts: resolve them, apply the host-key policy, connect,
settle root or ``sudo -n`` once, and reconnect after a lost connection.

This is the one place the engine opens SSH sessions, so that it can be swapped for the
project's shared connection settings later; tests pass their own ``open_session``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Literal, Protocol, TypeVar, cast

from .. import commands
from ..errors import ConnectionFailed, InvalidInput, PreflightFailed
from ..hosts import ResolvedHost, resolve_host
from ..parallel import run_together
from ..ssh import SUDO_PREFIX, NoticeSink, SSHSession
from .options import MigrationOptions

T = TypeVar("T")
Side = Literal["source", "target"]


class SessionFactory(Protocol):
    """Makes an unconnected session to ``host`` (``SSHSession`` itself is one)."""

    def __call__(self, host: ResolvedHost, notice: NoticeSink | None = None) -> SSHSession: ...


class HostSessions:
    """The source's and the target's SSH sessions of one migration."""

    def __init__(
        self,
        source: str,
        target: str,
        options: MigrationOptions,
        notice: NoticeSink,
        open_session: SessionFactory | None = None,
    ):
        self._texts = {"source": source, "target": target}
        self._options = options
        self._notice = notice
        # None: this module's SSHSession, looked up when a session is made
        self._open_session = open_session
        self._live: dict[Side, SSHSession] = {}
        # sessions a reconnect replaced (see reconnected)
        self._retired: list[SSHSession] = []

    def _new_session(self, host: ResolvedHost) -> SSHSession:
        factory: SessionFactory = self._open_session or SSHSession
        return factory(host, notice=self._notice)

    def connect(self) -> tuple[ResolvedHost, ResolvedHost]:
        """Resolve both hosts, refuse the same host twice, and connect to both at once."""
        source_host, target_host = (
            self._resolve(self._texts["source"]),
            self._resolve(self._texts["target"]),
        )
        if (source_host.hostname, source_host.port) == (target_host.hostname, target_host.port):
            raise InvalidInput(
                f"source {self._texts['source']} and target {self._texts['target']} are the "
                f"same host ({source_host.hostname}:{source_host.port})",
                hint="Live migration moves a container between two different hosts.",
            )
        self._live["source"] = self._new_session(source_host)
        self._live["target"] = self._new_session(target_host)
        self.both(lambda session: session.connect())
        return source_host, target_host

    def _resolve(self, text: str) -> ResolvedHost:
        if self._options.host_resolver is not None:
            host = self._options.host_resolver(text)
        else:
            host = resolve_host(text, self._options.ssh_config)
        if self._options.accept_new_host_keys and host.strict_host_key_checking == "yes":
            host = host.with_strict_host_key_checking("accept-new")
        return host

    @property
    def is_open(self) -> bool:
        return len(self._live) == 2

    def pair(self) -> tuple[SSHSession, SSHSession]:
        """The current (source, target) sessions."""
        return self._live["source"], self._live["target"]

    def get(self, side: Side) -> SSHSession | None:
        return self._live.get(side)

    def both(self, action: Callable[[SSHSession], T]) -> tuple[T, T]:
        """Run ``action`` on the source and target sessions at once (halves the latency)."""
        source, target = self.pair()
        on_source, on_target = run_together(partial(action, source), partial(action, target))
        return cast(T, on_source), cast(T, on_target)

    def reconnected(self, side: Side, attempts: int = 3) -> SSHSession | None:
        """The session to ``side``, reconnecting (up to ``attempts`` tries, a second
        apart) if the connection died."""
        session = self._live[side]
        # asked, not assumed: a stream on another connection to the host may have seen the
        # end first, and paramiko would call this one alive until its own read fails
        if session.is_connected and session.answers():
            return session
        fresh = self._new_session(session.host)
        for attempt in range(attempts):
            if attempt:
                time.sleep(1.0)
            try:
                fresh.connect()
            except ConnectionFailed:
                continue
            fresh.privileged_prefix = session.privileged_prefix
            # a connection that only answered slowly may still carry the lock, the restore
            # or the listener: it is closed at the end, with the others
            self._retired.append(session)
            self._live[side] = fresh
            return fresh
        return None

    def close(self) -> None:
        for session in (*self._live.values(), *self._retired):
            session.close()


def settle_privileges(session: SSHSession, timeout: float) -> bool:
    """Whether ``session`` logs in as root; if not, make its privileged commands run
    through ``sudo -n``, or refuse the host when that does not work."""
    name = session.host.name
    uid = session.run(commands.whoami(), privileged=False, timeout=timeout)
    is_root = uid.ok and uid.stdout.strip() == "0"
    if not is_root:
        sudo = session.run(commands.sudo_works(), privileged=False, timeout=timeout)
        if not sudo.ok:
            raise PreflightFailed(
                f"{name}: user {session.host.user!r} is not root and 'sudo -n' does not "
                f"work ({(sudo.stderr or sudo.stdout).strip()[:200]})",
                host=name,
                hint="podman checkpoint/restore needs root: log in as root, or allow "
                f"passwordless sudo for {session.host.user!r} (celestial-ssh never "
                "types a sudo password).",
            )
        session.privileged_prefix = SUDO_PREFIX
    return is_root
