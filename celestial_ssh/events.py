"""What a migration reports while it runs.

The engine never prints: it calls an ``EventSink`` with these small immutable records, and a
front end (the CLI's rich display, plain text, JSON lines, a researcher's callback) renders
them. Events arrive in order from the thread running the migration, and from the transfer
thread for :class:`TransferProgress`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Phase(enum.StrEnum):
    """The phases of a migration, in the order they run."""

    CONNECT = "connect"
    PREFLIGHT = "preflight"
    STAGE_IMAGE = "stage_image"
    CHECKPOINT = "checkpoint"
    TRANSFER = "transfer"
    RESTORE = "restore"
    VERIFY = "verify"
    CLEANUP = "cleanup"
    ROLLBACK = "rollback"

    @property
    def label(self) -> str:
        """What the phase does, for people ("Checkpoint on source")."""
        return _TITLES[self]


_TITLES = {
    Phase.CONNECT: "Connect to both hosts",
    Phase.PREFLIGHT: "Preflight checks",
    Phase.STAGE_IMAGE: "Stage image on target",
    Phase.CHECKPOINT: "Checkpoint on source",
    Phase.TRANSFER: "Stream checkpoint to target",
    Phase.RESTORE: "Restore on target",
    Phase.VERIFY: "Verify on target",
    Phase.CLEANUP: "Clean up",
    Phase.ROLLBACK: "Roll back to source",
}


@dataclass(frozen=True)
class PhaseStarted:
    phase: Phase
    detail: str = ""


@dataclass(frozen=True)
class PhaseFinished:
    phase: Phase
    duration_s: float
    detail: str = ""


@dataclass(frozen=True)
class PhaseSkipped:
    phase: Phase
    reason: str


@dataclass(frozen=True)
class PhaseFailed:
    phase: Phase
    duration_s: float
    error: str


@dataclass(frozen=True)
class TransferProgress:
    """Bytes moved so far for one stream (``what`` is ``image`` or ``checkpoint``).

    ``expected_bytes`` is an estimate (or ``None``): a checkpoint's size is only known
    once podman has written it.
    """

    what: str
    bytes_done: int
    expected_bytes: int | None
    finished: bool = False


@dataclass(frozen=True)
class Notice:
    """Something the user should read: ``level`` is ``info`` or ``warning``."""

    level: str
    message: str


Event = PhaseStarted | PhaseFinished | PhaseSkipped | PhaseFailed | TransferProgress | Notice
EventSink = Callable[[Event], None]


def discard_events(event: Event) -> None:
    """The sink used when the caller wants no events."""
