"""run_together: independent steps at once, results in order, every step to its end."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from celestial_ssh.parallel import run_together


def test_results_come_back_in_the_order_given() -> None:
    assert run_together(lambda: 1, lambda: "two", lambda: None) == [1, "two", None]


def test_the_calls_run_at_the_same_time() -> None:
    # each waits for all the others: run one after another, the barrier would break
    meeting = threading.Barrier(3, timeout=10)
    assert run_together(*(lambda: meeting.wait() is not None for _ in range(3))) == [True] * 3


def test_the_first_failure_in_order_is_raised_after_every_call_ended() -> None:
    ended = threading.Event()
    first_may_fail = threading.Event()

    def slow_then_fails() -> None:
        first_may_fail.wait(10)
        raise ValueError("first")

    def finishes() -> str:
        first_may_fail.set()
        ended.set()
        return "done"

    def fails_too() -> None:
        raise KeyError("second")

    with pytest.raises(ValueError, match="first"):
        run_together(slow_then_fails, finishes, fails_too)
    assert ended.is_set()


def test_one_call_runs_in_the_callers_thread() -> None:
    assert run_together(threading.current_thread) == [threading.current_thread()]


def test_an_interrupt_while_waiting_goes_up_as_it_came() -> None:
    # an earlier call failed; the Ctrl-C that comes while the next is awaited must not be
    # taken for that call's error, nor hidden behind the first one
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    ended = threading.Event()

    def slow() -> None:
        time.sleep(0.5)
        ended.set()

    def fails() -> None:
        raise ValueError("first")

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(KeyboardInterrupt):
            run_together(fails, slow)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert ended.is_set(), "the slow call still ran to its end"
