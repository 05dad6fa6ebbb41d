"""TokenBucket, the ``--bwlimit`` throttle, on a fake clock whose sleep moves it on.

No test sleeps except one short sanity check against the real clock.
"""

from __future__ import annotations

import threading
import time

import pytest

from celestial_ssh.rate_limit import (
    DEFAULT_BURST_S,
    MIN_DEFAULT_BURST_BYTES,
    TokenBucket,
)


class FakeTime:
    """A monotonic clock and a sleep that advances it by ``factor`` times what was asked."""

    def __init__(self, factor: float = 1.0) -> None:
        self.now = 5000.0
        self.factor = factor
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds * self.factor

    def bucket(self, rate: float, burst: int | None = None) -> TokenBucket:
        return TokenBucket(rate, burst, clock=self.clock, sleep=self.sleep)


def test_the_first_burst_passes_without_waiting() -> None:
    t = FakeTime()
    bucket = t.bucket(1000, burst=10_000)
    for _ in range(10):
        bucket.consume(1000)
    assert t.sleeps == []
    bucket.consume(500)
    assert t.sleeps == [pytest.approx(0.5)]
    assert bucket.waited_s == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("rate", "chunk", "burst"),
    [
        (1e3, 1, 10),
        (125e3, 1500, None),
        (1e6, 1 << 20, None),  # every chunk larger than the burst
        (50e6, 16 * 1024, None),
        (1.25e9, 1 << 20, None),
        (333.3, 7, 100),
    ],
)
def test_average_rate_over_many_consumes_is_the_configured_rate(
    rate: float, chunk: int, burst: int | None
) -> None:
    t = FakeTime()
    bucket = t.bucket(rate, burst)
    start = t.now
    consumes = 50_000
    for _ in range(consumes):
        bucket.consume(chunk)
    total = consumes * chunk
    assert bucket.burst_bytes < total / 100  # the initial burst is under 1% of the traffic
    assert total / (t.now - start) == pytest.approx(rate, rel=0.01)
    # after the initial burst, the rate is exact
    assert (total - bucket.burst_bytes) / (t.now - start) == pytest.approx(rate, rel=1e-6)


def test_a_sender_slower_than_the_limit_is_never_throttled() -> None:
    t = FakeTime()
    bucket = t.bucket(1e6, burst=100_000)
    for _ in range(1000):
        bucket.consume(50_000)
        t.now += 0.1  # 500 kB/s of its own
    assert t.sleeps == []


def test_processing_time_counts_towards_the_wait() -> None:
    t = FakeTime()
    # a burst of one chunk: the tokens earned while working fit in the bucket (with a
    # smaller one they would overflow, and that capacity is lost, as a burst limit means)
    bucket = t.bucket(1e6, burst=10_000)
    start = t.now
    for _ in range(100):
        bucket.consume(10_000)
        t.now += 0.004  # the relay's own work between chunks
    # 1 MB at 1 MB/s takes 1 s whatever part of it was spent working
    assert t.now - start == pytest.approx(1.0, abs=0.011)
    assert bucket.waited_s == pytest.approx(0.6, abs=0.011)


def test_an_idle_bucket_refills_only_up_to_the_burst() -> None:
    t = FakeTime()
    bucket = t.bucket(1000, burst=5000)
    bucket.consume(5000)
    t.now += 3600  # an hour idle
    bucket.consume(5000)
    assert t.sleeps == []
    bucket.consume(1000)
    assert t.sleeps == [pytest.approx(1.0)]


def test_a_chunk_larger_than_the_burst_waits_in_proportion() -> None:
    t = FakeTime()
    bucket = t.bucket(1e6, burst=64 * 1024)
    bucket.consume(10 << 20)
    assert t.sleeps == [pytest.approx(((10 << 20) - 64 * 1024) / 1e6)]
    bucket.consume(10 << 20)
    assert t.sleeps[-1] == pytest.approx((10 << 20) / 1e6)


def test_oversleeping_does_not_buy_a_bigger_burst() -> None:
    t = FakeTime(factor=3.0)
    bucket = t.bucket(1000, burst=2000)
    bucket.consume(2000)
    bucket.consume(1000)  # asks for 1 s, sleeps 3 s: 2 s of credit, capped at the burst
    assert t.sleeps == [pytest.approx(1.0)]
    bucket.consume(2000)
    assert len(t.sleeps) == 1
    bucket.consume(1)
    assert len(t.sleeps) == 2


def test_undersleeping_is_paid_by_the_next_consume() -> None:
    t = FakeTime(factor=0.5)
    bucket = t.bucket(1000, burst=1)
    start = t.now
    for _ in range(1000):
        bucket.consume(100)
    # every sleep returns early, yet the average holds
    assert 100_000 / (t.now - start) == pytest.approx(1000, rel=0.01)


def test_consuming_nothing_never_waits() -> None:
    t = FakeTime()
    bucket = t.bucket(1, burst=1)
    bucket.consume(1)
    for _ in range(5):
        bucket.consume(0)
    assert t.sleeps == []


def test_a_clock_going_backwards_does_not_add_tokens() -> None:
    t = FakeTime()
    bucket = t.bucket(1000, burst=1000)
    bucket.consume(1000)
    t.now -= 50
    bucket.consume(1000)
    assert t.sleeps == [pytest.approx(1.0)]


def test_default_burst() -> None:
    assert DEFAULT_BURST_S == 0.1
    assert TokenBucket(1e3).burst_bytes == MIN_DEFAULT_BURST_BYTES == 64 * 1024
    assert TokenBucket(100e6).burst_bytes == 10_000_000
    bucket = TokenBucket(12.5e6, 4096)
    assert (bucket.rate_bytes_per_s, bucket.burst_bytes) == (12.5e6, 4096)


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf"), True, "1M", None])
def test_rate_must_be_positive_and_finite(rate: object) -> None:
    with pytest.raises(ValueError, match="rate_bytes_per_s"):
        TokenBucket(rate)  # type: ignore[arg-type]


@pytest.mark.parametrize("burst", [0, -1, 1.5, True, "64k"])
def test_burst_must_be_a_positive_integer(burst: object) -> None:
    with pytest.raises(ValueError, match="burst_bytes"):
        TokenBucket(1000, burst)  # type: ignore[arg-type]


@pytest.mark.parametrize("n", [-1, 1.5, True, "10"])
def test_consume_takes_a_byte_count(n: object) -> None:
    with pytest.raises(ValueError, match="n must be"):
        TokenBucket(1000).consume(n)  # type: ignore[arg-type]


def test_threads_sharing_a_bucket_share_the_rate() -> None:
    # the clock stands still: each consume's wait is the debt of every byte before it,
    # so the sum of waits is the same whatever order the threads run in
    t = FakeTime(factor=0.0)
    bucket = TokenBucket(1000, 1000, clock=t.clock, sleep=t.sleep)
    per_thread, threads_n, chunk = 50, 4, 100

    def worker() -> None:
        for _ in range(per_thread):
            bucket.consume(chunk)

    threads = [threading.Thread(target=worker) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    n = per_thread * threads_n
    expected = sum(max(0, k * chunk - 1000) / 1000 for k in range(1, n + 1))
    assert bucket.waited_s == pytest.approx(expected)
    assert sum(t.sleeps) == pytest.approx(expected)


def test_real_clock_sanity() -> None:
    bucket = TokenBucket(1e6, 1000)
    start = time.monotonic()
    bucket.consume(1000)
    bucket.consume(50_000)
    elapsed = time.monotonic() - start
    assert 0.045 <= elapsed < 1.0
