"""How the engine words errors in its events, notices and messages (sizes: ``units``)."""

from __future__ import annotations

from ..errors import CelestialError


def one_line(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def describe(error: BaseException) -> str:
    """The whole message of our own errors (with a command's stderr tail), else one line."""
    if isinstance(error, CelestialError):
        return str(error).strip()
    return one_line(error)
