"""One flat exception tree for everything celestial-ssh reports to its callers.

Every error says which host it concerns and what to do about it; the CLI maps each class to
an exit code in one place (``celestial_ssh_cli.failures``). Errors raised once a migration has
started carry the partial :class:`~celestial_ssh.report.MigrationReport`, like invoke's
``UnexpectedExit`` carries its result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import MigrationReport


class CelestialError(Exception):
    """Root of every error celestial-ssh raises on purpose."""

    def __init__(self, message: str, *, host: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.host = host
        self.hint = hint
        # the partial result, when the error happened inside a migration
        self.report: MigrationReport | None = None

    def __str__(self) -> str:
        text = self.message
        if self.hint:
            text = f"{text}\n{self.hint}"
        return text


class InvalidInput(CelestialError):
    """An argument is malformed (a container name with shell metacharacters, a bad host)."""


class HostConfigError(CelestialError):
    """A host cannot be resolved from the ssh_config or the inventory."""


class ConnectionFailed(CelestialError):
    """A host is unreachable, refused the connection, or the SSH session broke."""


class AuthenticationFailed(ConnectionFailed):
    """The host refused every key offered."""


class HostKeyRejected(ConnectionFailed):
    """The host's key is unknown or changed and strict host-key checking is on."""


class RemoteCommandFailed(CelestialError):
    """A command on a host exited non-zero; carries the command, exit code and output tail."""

    def __init__(
        self,
        message: str,
        *,
        host: str,
        command: str,
        exit_status: int,
        stderr: str,
        hint: str | None = None,
    ):
        super().__init__(message, host=host, hint=hint)
        self.command = command
        self.exit_status = exit_status
        self.stderr = stderr

    def __str__(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-8:])
        text = f"{self.message} (exit {self.exit_status})"
        if tail:
            text += "\n" + "\n".join(f"  {line}" for line in tail.splitlines())
        if self.hint:
            text += f"\n{self.hint}"
        return text


class PreflightFailed(CelestialError):
    """A check before the freeze failed; nothing was changed on either host."""


class LockHeld(PreflightFailed):
    """Another migration of the same container is running."""


class MigrationFailed(CelestialError):
    """The migration failed after it had started changing hosts.

    ``report.outcome`` tells where the container runs now: ``rolled_back`` (on the source,
    from its checkpoint), or ``needs_recovery`` (the tool could not make sure; the message
    says what to run).
    """

    def __init__(
        self,
        message: str,
        *,
        report: MigrationReport,
        cause: BaseException | None = None,
        host: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message, host=host, hint=hint)
        self.report = report
        self.cause = cause


class MigrationInterrupted(MigrationFailed):
    """The coordinator was interrupted (Ctrl-C, SIGTERM); the migration was rolled back."""
