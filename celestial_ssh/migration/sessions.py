"""The source's and the target's SSH sessions of one migration: opened through the
project's one :class:`~celestial_ssh.connection.ConnectionSettings`, and reopened after a
lost connection."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Literal, TypeVar, cast

from ..connection import ConnectionSettings
from ..errors import ConnectionFailed, InvalidInput
from ..hosts import ResolvedHost
from ..parallel import run_together
from ..ssh import NoticeSink, SSHSession

T = TypeVar("T")
Side = Literal["source", "target"]

# between two attempts to reconnect to a host whose connection died
RECONNECT_PAUSE_S = 1.0


class HostSessions:
    """The source's and the target's sessions; privileges are settled by the preflight."""

    def __init__(
        self,
        source: str,
        target: str,
        settings: ConnectionSettings,
        notice: NoticeSink,
    ):
        self._texts: dict[Side, str] = {"source": source, "target": target}
        self._settings = settings
        self._notice = notice
        self._live: dict[Side, SSHSession] = {}
        # sessions a reconnect replaced (see reconnected)
        self._retired: list[SSHSession] = []

    def connect(self) -> tuple[ResolvedHost, ResolvedHost]:
        """Resolve both hosts, refuse the same host twice, and connect to both at once."""
        source_host = self._settings.resolve(self._texts["source"])
        target_host = self._settings.resolve(self._texts["target"])
        if (source_host.hostname, source_host.port) == (target_host.hostname, target_host.port):
            raise InvalidInput(
                f"source {self._texts['source']} and target {self._texts['target']} are the "
                f"same host ({source_host.hostname}:{source_host.port})",
                hint="Live migration moves a container between two different hosts.",
            )

        def open_side(side: Side, host: ResolvedHost) -> None:
            self._live[side] = self._settings.open(host, self._notice)

        run_together(
            partial(open_side, "source", source_host), partial(open_side, "target", target_host)
        )
        return source_host, target_host

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
        for attempt in range(attempts):
            if attempt:
                time.sleep(RECONNECT_PAUSE_S)
            try:
                fresh = self._settings.open(session.host, self._notice)
            except ConnectionFailed:
                continue
            # root or sudo was settled on the first connection; it holds for the new one
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
