"""Relaying a byte stream from a command on one host into a command on another.

The coordinator never stores the stream: each chunk is hashed, counted and forwarded as it
arrives, so memory use stays flat whatever the archive size.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from .errors import ConnectionFailed

CHUNK_BYTES = 1 << 20
PROGRESS_INTERVAL_S = 0.1
POLL_S = 0.5

ProgressSink = Callable[[int], None]


class ByteStream(Protocol):
    """A remote command with raw stdin/stdout: a paramiko channel or an ``ssh`` process."""

    @property
    def host_name(self) -> str: ...

    def set_read_timeout(self, seconds: float | None) -> None: ...

    def read(self, size: int) -> bytes: ...

    def write(self, data: bytes | memoryview) -> None: ...

    def close_stdin(self) -> None: ...


class Throttle(Protocol):
    def consume(self, n: int) -> None: ...


@dataclass(frozen=True)
class RelayResult:
    bytes: int
    sha256: str
    seconds: float


class RelayStopped(Exception):
    """``should_stop`` asked the relay to stop (a cancelled migration)."""


class RelayBroken(ConnectionFailed):
    """The stream stopped: ``side`` is ``source`` or ``target``."""

    def __init__(self, message: str, *, host: str, side: str):
        super().__init__(message, host=host)
        self.side = side


def relay(
    source: ByteStream,
    target: ByteStream,
    *,
    on_progress: ProgressSink | None = None,
    stall_timeout: float = 300.0,
    should_stop: Callable[[], bool] | None = None,
    throttle: Throttle | None = None,
) -> RelayResult:
    """Copy ``source``'s stdout into ``target``'s stdin until the source ends its output.

    Closes the target's stdin at the end. Raises :class:`RelayBroken` when either side's
    connection fails or the source sends nothing for ``stall_timeout`` seconds, and
    :class:`RelayStopped` as soon as ``should_stop()`` turns true. A ``throttle``
    (``--bwlimit``) is asked before each chunk is forwarded.
    """
    digest = hashlib.sha256()
    total = 0
    started = time.monotonic()
    last_report = 0.0
    # short reads: a stop request is noticed within POLL_S even while CRIU is still dumping
    source.set_read_timeout(POLL_S)
    last_data = time.monotonic()
    while True:
        if should_stop is not None and should_stop():
            raise RelayStopped("the transfer was stopped on request")
        try:
            data = source.read(CHUNK_BYTES)
        except TimeoutError as error:
            if time.monotonic() - last_data < stall_timeout:
                continue
            raise RelayBroken(
                f"{source.host_name}: no data for {stall_timeout:.0f} s while streaming",
                host=source.host_name,
                side="source",
            ) from error
        except (OSError, EOFError) as error:
            raise RelayBroken(
                f"{source.host_name}: the stream broke: {error}",
                host=source.host_name,
                side="source",
            ) from error
        if not data:
            break
        last_data = time.monotonic()
        digest.update(data)
        if throttle is not None:
            throttle.consume(len(data))
        try:
            target.write(data)
        except (OSError, EOFError) as error:
            raise RelayBroken(
                f"{target.host_name}: the connection broke while receiving "
                f"({error or type(error).__name__})",
                host=target.host_name,
                side="target",
            ) from error
        total += len(data)
        now = time.monotonic()
        if on_progress and now - last_report >= PROGRESS_INTERVAL_S:
            last_report = now
            on_progress(total)
    try:
        target.close_stdin()
    except (OSError, EOFError) as error:
        raise RelayBroken(
            f"{target.host_name}: the connection broke at the end of the stream",
            host=target.host_name,
            side="target",
        ) from error
    if on_progress:
        on_progress(total)
    return RelayResult(bytes=total, sha256=digest.hexdigest(), seconds=time.monotonic() - started)
