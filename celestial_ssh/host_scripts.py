"""The shell and awk programs that run on hosts, read from ``celestial_ssh/scripts/``.

Hosts do not have these files: a script's text travels in the command itself, as
``sh -c TEXT NAME ARG...``, and each script takes its parameters as positional arguments,
so the text is constant and every value reaches the host as one quoted word. Whole-line
comments and blank lines are for the reader of the file and are left out of the text sent.
"""

from __future__ import annotations

import functools
from importlib import resources

SCRIPTS_DIR = "scripts"


@functools.cache
def script_text(filename: str) -> str:
    """The text of ``scripts/<filename>`` as it is sent: without whole-line comments or
    blank lines (no script has a multi-line string, so no such line is data)."""
    text = resources.files("celestial_ssh").joinpath(SCRIPTS_DIR, filename).read_text()
    kept = [line for line in text.splitlines() if line.strip() and not _is_comment(line)]
    return "\n".join(kept)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def script_name(filename: str) -> str:
    """What a script calls itself (its ``$0``, in the shell's messages)."""
    return filename.rsplit(".", 1)[0].replace("_", "-")


def run_script(filename: str, *args: str) -> list[str]:
    """The argv that runs ``scripts/<filename>`` under the host's ``sh`` with ``args``."""
    return ["sh", "-c", script_text(filename), script_name(filename), *args]
