"""Quoting for remote commands: every remote command is built from an argument list.

User input never reaches a remote shell unquoted: argument lists are joined with
:func:`shlex.join`, and multi-step scripts are passed whole, quoted, to ``sh -c`` so they run
under a POSIX shell whatever the login shell is.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from .errors import InvalidInput

# podman's own rule for names, plus full or short hex IDs (which it also matches)
_CONTAINER_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,252}$")
_REMOTE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")


def join(argv: Sequence[str]) -> str:
    """One command line from an argument list, each argument quoted for a POSIX shell."""
    return shlex.join(argv)


def quote(value: str) -> str:
    return shlex.quote(value)


def sh_script(script: str) -> list[str]:
    """Run a multi-line POSIX ``sh`` script as one argument list."""
    return ["sh", "-c", script]


def validate_container_name(value: str, *, what: str = "container") -> str:
    """A container name or ID as podman accepts them; anything else is refused up front."""
    if not _CONTAINER_NAME.fullmatch(value):
        raise InvalidInput(
            f"{what} {value!r} is not a valid container name or ID",
            hint="Names start with a letter or digit and hold only letters, digits, "
            "'_', '.' and '-' (podman's rule); nothing is run on either host.",
        )
    return value


def validate_remote_path(value: str) -> str:
    """A remote path we made (mktemp output): absolute, no spaces or shell syntax."""
    if not _REMOTE_PATH.fullmatch(value) or "/../" in value or value.endswith("/.."):
        raise InvalidInput(f"unexpected remote path {value!r}")
    return value
