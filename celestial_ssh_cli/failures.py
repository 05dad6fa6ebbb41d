"""What an exception means to the user: its exit code and its message.

:mod:`.boundary` applies these to every command; the HTTP shim and ``migrate-container
--via-http`` map HTTP statuses with the same codes.
"""

from __future__ import annotations

import enum
import traceback
from typing import Any

from celestial_ssh.errors import (
    CelestialError,
    ConnectionFailed,
    HostConfigError,
    InvalidInput,
    MigrationFailed,
    MigrationInterrupted,
    PreflightFailed,
)
from celestial_ssh.recovery import RunningTwice
from celestial_ssh.report import Outcome


class ExitCode(enum.IntEnum):
    """Documented in the README; scripts depend on them, so they never change meaning."""

    OK = 0
    ERROR = 1  # an internal error: a bug, please report it
    USAGE = 2  # bad arguments or input; nothing was run
    CONNECTION = 3  # cannot resolve, reach or authenticate to a host, or its key is refused
    PREFLIGHT = 4  # a check failed before the freeze; both hosts are unchanged
    ROLLED_BACK = 5  # failed after the freeze; the container runs again on the source
    NEEDS_RECOVERY = 6  # the tool could not make sure where the container runs; read the message
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; rolled back like ROLLED_BACK


class CommandFailed(Exception):
    """A failure the command line finds itself (not the library): the whole message for
    stderr, the exit code, and the document --json prints (None: nothing on stdout)."""

    def __init__(self, message: str, code: ExitCode, document: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.document = document


def exit_code_for(error: BaseException) -> ExitCode:
    if isinstance(error, CommandFailed):
        return error.code
    if isinstance(error, RunningTwice):
        return ExitCode.NEEDS_RECOVERY
    if isinstance(error, MigrationFailed):
        if error.report is not None and error.report.outcome is Outcome.NEEDS_RECOVERY:
            return ExitCode.NEEDS_RECOVERY
        if isinstance(error, MigrationInterrupted):
            return ExitCode.INTERRUPTED
        return ExitCode.ROLLED_BACK
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(error, InvalidInput):
        return ExitCode.USAGE
    if isinstance(error, (ConnectionFailed, HostConfigError)):
        return ExitCode.CONNECTION
    if isinstance(error, (PreflightFailed, CelestialError)):
        return ExitCode.PREFLIGHT
    return ExitCode.ERROR


def message_for(error: BaseException) -> str:
    """A paragraph for the user: what happened, on which host, and what to do."""
    if isinstance(error, CommandFailed):
        return error.message
    if isinstance(error, CelestialError):
        return f"celestial-ssh: error: {error}"
    if isinstance(error, KeyboardInterrupt):
        return "celestial-ssh: interrupted"
    return (
        "celestial-ssh: internal error (this is a bug; please report it with the lines "
        "below):\n" + "".join(traceback.format_exception(error)).rstrip()
    )


def http_status_for(error: BaseException) -> int:
    """The HTTP shim's status code for an error (``celestial-ssh serve``).

    409: a preflight check failed, nothing changed; 502: a host cannot be resolved, reached or
    authenticated to; 400: bad input, nothing was run; 500: everything else, including a
    migration that failed after the freeze (the report says where the container runs now).
    """
    if isinstance(error, InvalidInput):
        return 400
    if isinstance(error, PreflightFailed):
        return 409
    if isinstance(error, (ConnectionFailed, HostConfigError)):
        return 502
    return 500


def exit_code_for_http(status: int | None, document: object = None) -> ExitCode:
    """The exit code for an answer of the HTTP shim (``migrate-container --via-http``).

    The same codes as for the error behind the answer (see :func:`http_status_for`):
    2xx -> 0; 400 -> 2 (nothing was run); 401 -> 3 (token refused); 409 -> 4 (a preflight
    check failed, nothing changed); 502 -> 3; 500 -> from the report's ``outcome``:
    ``rolled_back`` 5, ``needs_recovery`` 6, ``not_started`` 4 (a failure before the freeze,
    like :func:`exit_code_for` of a ``CelestialError``), otherwise 1. ``status`` None means
    the shim could not be reached: 3. Other codes: 4xx -> 2, 503/504 -> 3, else 1.
    """
    if status is None:
        return ExitCode.CONNECTION
    if 200 <= status < 300:
        return ExitCode.OK
    if status == 401:
        return ExitCode.CONNECTION
    if status == 409:
        return ExitCode.PREFLIGHT
    if status in (502, 503, 504):
        return ExitCode.CONNECTION
    if status == 500:
        report = document.get("report") if isinstance(document, dict) else None
        outcome = report.get("outcome") if isinstance(report, dict) else None
        return {
            Outcome.ROLLED_BACK.value: ExitCode.ROLLED_BACK,
            Outcome.NEEDS_RECOVERY.value: ExitCode.NEEDS_RECOVERY,
            Outcome.NOT_STARTED.value: ExitCode.PREFLIGHT,
        }.get(str(outcome), ExitCode.ERROR)
    if 400 <= status < 500:
        return ExitCode.USAGE
    return ExitCode.ERROR
