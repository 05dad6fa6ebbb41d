"""Independent remote commands at once: each SSH command costs a round trip (and the
remote shell's start-up), so steps that do not depend on each other are not queued.

Used before the freeze (preflight, credentials) and after the move (clean-up), where the
wait is the user's total time and, on a high-latency link, mostly round trips.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def run_together(*calls: Callable[[], Any]) -> list[Any]:
    """Run ``calls`` at once and return their results in order.

    Every call runs to its end, whatever the others do (a half-done step would be
    harder to undo than a finished one); then the first failure, in the order given,
    is raised.
    """
    if len(calls) == 1:
        return [calls[0]()]
    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
        results: list[Any] = []
        first_error: BaseException | None = None
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as error:
                if not future.done():
                    raise  # an interrupt while waiting (Ctrl-C): the pool still lets the
                    # calls end, then it goes up as it came
                results.append(None)
                first_error = first_error or error
    if first_error is not None:
        raise first_error
    return results
