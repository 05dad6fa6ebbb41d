"""Migration settings written in a document (a batch plan, a request to the HTTP shim): the
names a document uses, the check of each value, and the MigrationOptions field it sets.

The command line has flags for the same things (click checks those); a document names them
as plan files always have (``keep_source``, ``compression``), one per key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import commands
from .compression_choice import parse_rate
from .data_plane import DATA_PATHS, TRANSPORTS
from .errors import InvalidInput

# a document's name -> the MigrationOptions field it sets
SETTINGS: dict[str, str] = {
    "keep_source": "keep_source",
    "compression": "compression",
    "tcp_established": "tcp_established",
    "transport": "transport",
    "data_path": "data_path",
    "direct": "direct",
    "tls": "tls",
    "bwlimit": "bwlimit_bytes_per_s",
}
_FLAGS = ("keep_source", "tcp_established", "direct", "tls")


def parse_setting(key: str, value: object, *, at: str) -> Any:
    """``value`` for setting ``key``, checked (``bwlimit`` becomes bytes per second);
    ``at`` says where it was written, for the error."""
    if key in _FLAGS:
        if not isinstance(value, bool):
            raise InvalidInput(f"{at}: {key!r} must be true or false, not {value!r}")
        return value
    if key == "compression":
        return commands.validate_compression_setting(value, at=at)
    if key == "transport":
        if value not in TRANSPORTS:
            raise InvalidInput(f"{at}: transport {value!r} is not one of {', '.join(TRANSPORTS)}")
        return value
    if key == "data_path":
        if value not in DATA_PATHS:
            raise InvalidInput(f"{at}: data_path {value!r} is not one of {', '.join(DATA_PATHS)}")
        return value
    if key == "bwlimit":
        if value is None or value == "none":
            return None  # no limit (even if the command line gave one)
        # a bare number is bytes per second, as on the command line
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise InvalidInput(f"{at}: 'bwlimit' must be a rate such as 50Mbit, not {value!r}")
        try:
            return parse_rate(str(value))
        except ValueError as error:
            raise InvalidInput(f"{at}: 'bwlimit': {error}") from None
    raise InvalidInput(f"{at}: unknown setting {key!r} (expected {', '.join(SETTINGS)})")


def option_fields(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The MigrationOptions fields that ``settings`` (checked values, by document name) set."""
    return {SETTINGS[key]: value for key, value in settings.items()}
