"""Fake hosts for the tests of doctor, ps, recover and batches.

A :class:`FakeFleet` holds :class:`~tests.unit.fakes.session.FakeSession` s by host name
and hands out :class:`ConnectionSettings` whose resolver and connector serve them: the
library's entry points take those settings, so no test has to patch a module's
``SSHSession`` or ``resolve_host``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.errors import HostConfigError
from celestial_ssh.hosts import ResolvedHost

from .session import FakeSession, host


class FakeFleet:
    """Hosts by name. ``settings()`` reaches them: names it does not know fail to resolve,
    and every connection to a host gets a session from its factory (by default the one
    session added for it), connected, with the host as the settings resolved it."""

    def __init__(self) -> None:
        self.sessions: dict[str, FakeSession] = {}
        self.factories: dict[str, Callable[[ResolvedHost], FakeSession]] = {}
        self.resolved: list[str] = []
        self.connected: list[FakeSession] = []

    def add(self, session: FakeSession) -> FakeSession:
        self.sessions[session.host.name] = session
        return session

    def serve(self, name: str, factory: Callable[[ResolvedHost], FakeSession]) -> None:
        """Each connection to ``name`` gets a new session from ``factory``."""
        self.factories[name] = factory

    def resolve(self, name: str) -> ResolvedHost:
        self.resolved.append(name)
        if name in self.sessions:
            return self.sessions[name].host
        if name in self.factories:
            return host(name)
        raise HostConfigError(f"{name}: cannot resolve host name {name!r}", hint="spell it")

    def connect(self, resolved: ResolvedHost, notice: Any = None) -> FakeSession:
        factory = self.factories.get(resolved.name)
        session = factory(resolved) if factory else self.sessions[resolved.name]
        session.host = resolved
        session.connect()
        self.connected.append(session)
        return session

    def settings(self, base: ConnectionSettings | None = None, **fields: Any) -> ConnectionSettings:
        return dataclasses.replace(
            base or ConnectionSettings(**fields), host_resolver=self.resolve, connector=self.connect
        )

    def serve_cli(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
        """Make the CLI ``module``'s ``name`` (a library entry point) reach this fleet,
        with whatever connection settings the command line gave."""
        real = getattr(module, name)

        def with_fleet(*args: Any, connection: ConnectionSettings | None = None, **kwargs: Any):
            return real(*args, connection=self.settings(connection), **kwargs)

        monkeypatch.setattr(module, name, with_fleet)


def connecting(make: Callable[..., Any]) -> Callable[[ResolvedHost, Any], Any]:
    """A connector from a session class or factory (``make(host, notice=...)``)."""

    def connect(resolved: ResolvedHost, notice: Any = None) -> Any:
        session = make(resolved, notice=notice)
        session.connect()
        return session

    return connect
