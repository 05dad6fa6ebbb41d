"""A token bucket that throttles the coordinator's relays to ``--bwlimit``.

The relays copy the image and the checkpoint archive from the source's SSH channel to the
target's through the coordinator, so limiting what the coordinator forwards limits what
both links carry, without any tool (``pv``, ``tc``) on the hosts.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

# a default burst of this much traffic: short enough that the limit holds over any window
# of a second or so (what a shared link's other users notice), long enough that a relay
# forwarding 1 MiB chunks does not stall between them at high rates
DEFAULT_BURST_S = 0.1
# ... and never less than this, so slow limits do not sleep for every small read
MIN_DEFAULT_BURST_BYTES = 64 * 1024


class TokenBucket:
    """Let bytes pass at ``rate_bytes_per_s`` on average, with bursts of ``burst_bytes``.

    The bucket holds up to ``burst_bytes`` tokens (full at creation) and gains
    ``rate_bytes_per_s`` tokens per second. :meth:`consume` takes its tokens at once, even
    more than the bucket holds, going into debt, and then sleeps until the debt is paid:
    a chunk larger than the burst waits in proportion to its size, and the long-run
    average rate is exact whatever the chunk sizes. Oversleeping only refills the bucket
    (up to the burst); undersleeping leaves debt the next call pays.

    Safe to share between threads (relays of parallel migrations under one global limit):
    the accounting is done under a lock, the sleeping outside it, and each caller's wait
    includes the debt of the callers before it.

    ``clock`` and ``sleep`` are injectable for deterministic tests; they must agree (the
    time ``sleep(s)`` takes shows on ``clock``), like :func:`time.monotonic` and
    :func:`time.sleep`.
    """

    def __init__(
        self,
        rate_bytes_per_s: float,
        burst_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if (
            isinstance(rate_bytes_per_s, bool)
            or not isinstance(rate_bytes_per_s, int | float)
            or not math.isfinite(rate_bytes_per_s)
            or rate_bytes_per_s <= 0
        ):
            raise ValueError(
                f"rate_bytes_per_s must be a positive finite number, not {rate_bytes_per_s!r}"
            )
        if burst_bytes is None:
            burst_bytes = max(MIN_DEFAULT_BURST_BYTES, int(rate_bytes_per_s * DEFAULT_BURST_S))
        elif isinstance(burst_bytes, bool) or not isinstance(burst_bytes, int) or burst_bytes <= 0:
            raise ValueError(f"burst_bytes must be a positive integer, not {burst_bytes!r}")
        self._rate = float(rate_bytes_per_s)
        self._burst = burst_bytes
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = float(burst_bytes)
        self._last = clock()
        self._waited_s = 0.0

    @property
    def rate_bytes_per_s(self) -> float:
        return self._rate

    @property
    def burst_bytes(self) -> int:
        return self._burst

    @property
    def waited_s(self) -> float:
        """Total time :meth:`consume` has asked to sleep: how much the limit slowed things."""
        return self._waited_s

    def consume(self, n: int) -> None:
        """Block until ``n`` more bytes may pass; call it before forwarding them."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, not {n!r}")
        if n == 0:
            return
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._last)
            self._last = now
            self._tokens = min(float(self._burst), self._tokens + elapsed * self._rate)
            self._tokens -= n
            wait = -self._tokens / self._rate if self._tokens < 0 else 0.0
            self._waited_s += wait
        if wait > 0:
            self._sleep(wait)
