"""Ctrl-C and SIGTERM: ask what runs to stop at a safe point, never mid-restore.

Raising KeyboardInterrupt anywhere could abandon a restore that is still running on a
target; a cancel request lets the engine roll back (or finish) cleanly. The migration, or
the batch, then fails as interrupted, which exits 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Protocol

import click


class Cancellable(Protocol):
    """A migration, or a batch's cancel flag."""

    @property
    def cancel_requested(self) -> bool: ...

    def request_cancel(self) -> None: ...


class CancelFlag:
    """The flag a batch watches: no new migration starts; running ones stop safely."""

    def __init__(self) -> None:
        self.event = threading.Event()

    @property
    def cancel_requested(self) -> bool:
        return self.event.is_set()

    def request_cancel(self) -> None:
        self.event.set()


@contextlib.contextmanager
def cancel_on_signals(running: Cancellable, stopping: str) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM request a cancel; ``stopping`` says what follows."""

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if running.cancel_requested:
            click.echo(f"celestial-ssh: {name} again: still stopping safely, please wait", err=True)
        else:
            click.echo(f"celestial-ssh: {name}: {stopping}", err=True)
        running.request_cancel()

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
