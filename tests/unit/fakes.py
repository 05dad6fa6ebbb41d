"""Fake hosts for the tests of doctor, ps, recover and batches: one session, one connector.

A :class:`FakeSession` answers commands from a table (argv -> (status, stdout, stderr)) or
from a function, and records what ran with which privileged prefix. A :class:`FakeFleet`
holds the sessions by host name and hands out :class:`ConnectionSettings` whose resolver
and connector serve them: the library's entry points take those settings, so no test has
to patch a module's ``SSHSession`` or ``resolve_host``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.errors import ConnectionFailed, HostConfigError
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.shell import join
from celestial_ssh.ssh import CommandResult

Reply = tuple[int, str, str]  # exit status, stdout, stderr
Responses = dict[tuple[str, ...], Reply]


def host(name: str = "alpha", user: str = "root") -> ResolvedHost:
    return ResolvedHost(name=name, hostname=f"{name}.example", port=22, user=user)


def not_found(argv: list[str]) -> Reply:
    return 127, "", f"bash: {argv[0]}: command not found\n"


class FakeSession:
    """A session to one host: answers from ``responses`` (else ``answer``, else "command
    not found"); records (argv, privileged prefix) in ``ran`` and, if given, (host, command
    line) in the shared ``log``."""

    def __init__(
        self,
        host: ResolvedHost,
        responses: Responses | None = None,
        *,
        answer: Callable[[list[str]], Reply | CommandResult] | None = None,
        connect_error: Exception | None = None,
        break_on: tuple[str, ...] | None = None,
        log: list[tuple[str, str]] | None = None,
        timeouts: list[float] | None = None,
    ):
        self.host = host
        self.responses: Responses = {} if responses is None else responses
        self.answer = answer or not_found
        self.connect_error = connect_error
        self.break_on = break_on
        self.log = log
        self.is_connected = False
        self.closed = False
        self.privileged_prefix: tuple[str, ...] = ()
        self.ran: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
        self.timeouts: list[float] = [] if timeouts is None else timeouts

    def connect(self) -> None:
        if self.connect_error is not None:
            raise self.connect_error
        self.is_connected = True

    def close(self) -> None:
        self.closed = True
        self.is_connected = False

    def command_line(self, argv: list[str], *, privileged: bool = True) -> str:
        return join([*(self.privileged_prefix if privileged else ()), *argv])

    def run(
        self,
        argv: list[str],
        *,
        timeout: float = 60.0,
        privileged: bool = True,
        check: bool = False,
        what: str | None = None,
        hint: str | None = None,
    ) -> CommandResult:
        assert self.is_connected, f"{self.host.name}: command on a closed session"
        prefix = self.privileged_prefix if privileged else ()
        line = self.command_line(argv, privileged=privileged)
        self.ran.append((tuple(argv), prefix))
        self.timeouts.append(timeout)
        if self.log is not None:
            self.log.append((self.host.name, line))
        if self.break_on is not None and tuple(argv) == self.break_on:
            self.is_connected = False
            raise ConnectionFailed(f"{self.host.name}: the SSH connection is closed")
        reply = self.responses.get(tuple(argv)) or self.answer(list(argv))
        if isinstance(reply, CommandResult):
            reply = (reply.exit_status, reply.stdout, reply.stderr)
        status, stdout, stderr = reply
        result = CommandResult(self.host.name, line, status, stdout, stderr)
        if check and not result.ok:
            raise result.failure(f"{self.host.name}: {what or line} failed", hint=hint)
        return result


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
