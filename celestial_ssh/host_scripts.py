"""The shell and awk programs that run on hosts, read from ``celestial_ssh/scripts/``.

Hosts do not have these files: a script's text travels in the command itself, as
``sh -c TEXT NAME ARG...``, and each script takes its parameters as positional arguments,
so the text is constant and every value reaches the host as one quoted word. Whole-line
comments and blank lines are for the reader of the file and are left out of the text sent.

A script shares a shell function with others through a fragment, ``scripts/lib_*.sh``,
which only defines functions: the script's line ``# include: lib_NAME.sh`` is replaced by
the fragment's text where it stands (a file on the host could not be sourced: there is
none). A few commands too short to be worth a file run by :func:`run_line`, the same way.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

SCRIPTS_DIR = "scripts"
# "# include: lib_hash_stdin.sh": the fragment's text goes where this line stands
_INCLUDE = re.compile(r"^# include: (lib_[a-z0-9_]+\.sh)$")


@functools.cache
def script_text(filename: str) -> str:
    """The text of ``scripts/<filename>`` as it is sent: its includes replaced by their
    fragments, without whole-line comments or blank lines (no line of a script's
    multi-line strings is blank or starts with ``#``, so no such line is data)."""
    text = resources.files("celestial_ssh").joinpath(SCRIPTS_DIR, filename).read_text()
    kept = []
    for line in text.splitlines():
        include = _INCLUDE.fullmatch(line.strip())
        if include is not None:
            kept.append(script_text(include.group(1)))
        elif line.strip() and not _is_comment(line):
            kept.append(line)
    return "\n".join(kept)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def script_name(filename: str) -> str:
    """What a script calls itself (its ``$0``, in the shell's messages)."""
    return filename.rsplit(".", 1)[0].replace("_", "-")


def run_script(filename: str, *args: str) -> list[str]:
    """The argv that runs ``scripts/<filename>`` under the host's ``sh`` with ``args``."""
    return run_line(script_name(filename), script_text(filename), *args)


def run_python_script(filename: str, *args: str) -> list[str]:
    """The argv that runs the Python program ``scripts/<filename>`` under the host's
    ``python3`` with ``args`` (its ``sys.argv[1:]``), sent like a shell script (whole-line
    comments and blank lines left out: indentation does not depend on them). Isolated
    (``-I``): neither the environment nor the working directory can put modules of their
    own in its way, as root."""
    return ["python3", "-I", "-c", script_text(filename), *args]


def run_line(name: str, line: str, *args: str) -> list[str]:
    """The argv that runs the one-line script ``line`` as ``name`` with ``args`` (``$1``...):
    for commands a file's header would outweigh, the line constant like a file's text."""
    return ["sh", "-c", line, name, *args]
