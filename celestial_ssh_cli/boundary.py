"""The one boundary between a command and the shell: outcomes become output and an exit status.

Every command is a :class:`Command`. It returns (nothing, or the exit code a batch or a
fleet check computed) or raises: a library error, ``KeyboardInterrupt``, its own
:class:`~.failures.CommandFailed`, or a bug. Here, and only here, an exception becomes the
message on stderr, with ``--json`` (or ``--json-lines``) the JSON error document on stdout,
and the exit code of :func:`~.failures.exit_code_for`. click's own errors (bad usage: 2) pass
through to click, which prints them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

import click

from celestial_ssh.errors import CelestialError

from .failures import CommandFailed, ExitCode, exit_code_for, message_for

Params = Mapping[str, Any]


def _failed(error: BaseException, params: Params) -> dict[str, Any]:
    return {"status": "failed"}


def describe(error: BaseException) -> str:
    """The ``error`` field: the library's message, or the repr of anything else (a bug)."""
    return str(error) if isinstance(error, CelestialError) else repr(error)


@dataclasses.dataclass(frozen=True)
class ErrorDocument:
    """What a command's JSON output says when the command fails.

    ``lead(error, params)`` (default ``{"status": "failed"}``), then ``error`` and
    ``exit_code``; on one line with ``one_line`` or ``--json-lines``, else indented.
    """

    lead: Callable[[BaseException, Params], dict[str, Any]] = _failed
    one_line: bool = False
    error_text: Callable[[BaseException], str] = describe

    def render(self, error: BaseException, code: ExitCode, params: Params) -> str:
        document = self.lead(error, params)
        document["error"] = self.error_text(error)
        document["exit_code"] = int(code)
        one_line = self.one_line or bool(params.get("json_lines"))
        return json.dumps(document, indent=None if one_line else 2)


def wants_json(params: Params) -> bool:
    return bool(params.get("json_output") or params.get("json_lines"))


class Command(click.Command):
    """A click command whose outcome goes through the boundary (see the module)."""

    def __init__(
        self, *args: Any, error_document: ErrorDocument | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.error_document = error_document or ErrorDocument()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            outcome = super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, BrokenPipeError):
            raise  # click's own, and a closed stdout (`| head`), which click quiets
        except (Exception, KeyboardInterrupt) as error:
            ctx.exit(int(self.fail(error, ctx.params)))
        if isinstance(outcome, int):
            ctx.exit(int(outcome))
        return outcome

    def fail(self, error: BaseException, params: Params) -> ExitCode:
        """Say what went wrong (stdout: the JSON document; stderr: the message)."""
        code = exit_code_for(error)
        if wants_json(params):
            if isinstance(error, CommandFailed):
                if error.document is not None:
                    click.echo(json.dumps(error.document, indent=2))
            else:
                click.echo(self.error_document.render(error, code, params))
        click.echo(message_for(error), err=True)
        return code


def run(command: click.Command, prog_name: str | None = None) -> None:
    """What a console script runs: the command, standalone (it exits with its code)."""
    try:
        command.main(prog_name=prog_name)
    except KeyboardInterrupt:  # one that reaches past click (click maps its own to 1)
        sys.exit(int(ExitCode.INTERRUPTED))
