"""The one fake SSH session of the unit tests.

A :class:`FakeSession` answers commands from a table (argv -> (status, stdout, stderr)) or
from a function, and records what ran with which privileged prefix. The engine's fake hosts
(:class:`~tests.unit.fakes.lab.LabSession`) answer from their lab instead, through
:meth:`FakeSession.reply`.
"""

from __future__ import annotations

from collections.abc import Callable

from celestial_ssh.errors import ConnectionFailed
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

    def answers(self) -> bool:
        return self.is_connected

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
        line = self.command_line(argv, privileged=privileged)
        assert self.is_connected, f"{self.host.name}: command on a closed session: {line}"
        self.ran.append((tuple(argv), self.privileged_prefix if privileged else ()))
        self.timeouts.append(timeout)
        if self.log is not None:
            self.log.append((self.host.name, line))
        result = self.reply(list(argv), line)
        if check and not result.ok:
            raise result.failure(f"{self.host.name}: {what or line} failed", hint=hint)
        return result

    def reply(self, argv: list[str], line: str) -> CommandResult:
        """What the host answers to ``argv`` (run as ``line``)."""
        if self.break_on is not None and tuple(argv) == self.break_on:
            self.is_connected = False
            raise ConnectionFailed(f"{self.host.name}: the SSH connection is closed")
        reply = self.responses.get(tuple(argv)) or self.answer(argv)
        if isinstance(reply, CommandResult):
            reply = (reply.exit_status, reply.stdout, reply.stderr)
        status, stdout, stderr = reply
        return CommandResult(self.host.name, line, status, stdout, stderr)
