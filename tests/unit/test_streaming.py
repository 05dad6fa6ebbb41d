"""relay(): the coordinator's copy loop between two remote commands, with fake processes.

The source is a script of reads: bytes, or an exception to raise (``TimeoutError`` is what a
real channel raises when nothing came within its timeout, so it also moves a fake clock on
by that timeout). No test sleeps.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable

import pytest

from celestial_ssh import streaming
from celestial_ssh.errors import ConnectionFailed
from celestial_ssh.streaming import POLL_S, RelayBroken, RelayStopped, relay

SILENCE = TimeoutError("timed out")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Channel:
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def settimeout(self, timeout: float | None) -> None:
        self.timeouts.append(timeout)


class Source:
    """A RemoteProcess whose stdout is ``reads``; ``b""`` (the end) once they run out."""

    def __init__(self, clock: Clock, reads: Iterable[bytes | BaseException]):
        self.host_name = "lab-a"
        self.channel = Channel()
        self.set_read_timeout = self.channel.settimeout
        self.clock = clock
        self.reads = iter(reads)
        self.read_count = 0

    def read(self, size: int) -> bytes:
        self.read_count += 1
        item = next(self.reads, b"")
        if isinstance(item, TimeoutError):
            self.clock.now += self.channel.timeouts[-1] or 0.0
        if isinstance(item, BaseException):
            raise item
        return item


class Target:
    """A RemoteProcess that keeps what it is sent; ``fail_write`` / ``fail_close`` break it."""

    def __init__(self, fail_write: BaseException | None = None, fail_close: bool = False):
        self.host_name = "lab-b"
        self.chunks: list[bytes] = []
        self.stdin_closed = False
        self.fail_write = fail_write
        self.fail_close = fail_close

    def write(self, data: bytes) -> None:
        if self.fail_write is not None:
            raise self.fail_write
        self.chunks.append(bytes(data))

    def close_stdin(self) -> None:
        if self.fail_close:
            raise EOFError
        self.stdin_closed = True


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(streaming, "time", clock)
    return clock


def copy(
    clock: Clock,
    reads: Iterable[bytes | BaseException],
    target: Target | None = None,
    **kwargs: object,
) -> tuple[Source, Target, streaming.RelayResult]:
    source, target = Source(clock, reads), target or Target()
    return source, target, relay(source, target, **kwargs)  # type: ignore[arg-type]


# -- copying ----------------------------------------------------------------------------------
def test_relay_copies_hashes_and_closes_the_target(clock: Clock) -> None:
    seen: list[int] = []
    source, target, moved = copy(clock, [b"abc", b"defg"], on_progress=seen.append)
    assert b"".join(target.chunks) == b"abcdefg"
    assert (moved.bytes, moved.sha256) == (7, hashlib.sha256(b"abcdefg").hexdigest())
    assert target.stdin_closed
    assert seen[-1] == 7
    assert source.read_count == 3  # two chunks and the end


def test_relay_reads_the_source_in_short_polls(clock: Clock) -> None:
    source, _target, _ = copy(clock, [b"x"], stall_timeout=300)
    assert POLL_S == 0.5
    assert source.channel.timeouts == [POLL_S], "not the stall timeout: a stop is seen in time"


# -- stalls -------------------------------------------------------------------------------------
def test_relay_waits_out_silences_shorter_than_the_stall_timeout(clock: Clock) -> None:
    # 1.5 s of silence twice (3 s in all) with a 2 s stall timeout: each chunk restarts it
    reads = [b"a", *[SILENCE] * 3, b"b", *[SILENCE] * 3, b"c"]
    _source, target, moved = copy(clock, reads, stall_timeout=2.0)
    assert b"".join(target.chunks) == b"abc" and moved.bytes == 3
    assert target.stdin_closed


def test_relay_breaks_after_the_stall_timeout_without_data(clock: Clock) -> None:
    reads = itertools.chain([b"header"], itertools.repeat(SILENCE))
    source = Source(clock, reads)
    target = Target()
    with pytest.raises(RelayBroken) as caught:
        relay(source, target, stall_timeout=2.0)  # type: ignore[arg-type]
    error = caught.value
    assert (error.side, error.host) == ("source", "lab-a")
    assert error.message == "lab-a: no data for 2 s while streaming"
    assert isinstance(error.__cause__, TimeoutError)
    assert source.read_count == 1 + 4  # the header, then four polls of 0.5 s
    assert clock.now - 1000.0 == pytest.approx(2.0)
    assert target.chunks == [b"header"] and not target.stdin_closed


# -- should_stop -----------------------------------------------------------------------------------
def test_relay_stops_as_soon_as_should_stop_turns_true(clock: Clock) -> None:
    target = Target()
    source = Source(clock, itertools.repeat(b"chunk"))
    with pytest.raises(RelayStopped):
        relay(source, target, should_stop=lambda: len(target.chunks) >= 2)  # type: ignore[arg-type]
    assert target.chunks == [b"chunk", b"chunk"]
    assert source.read_count == 2, "not one read after the stop"
    # a half-sent archive must not look complete: the target's stdin stays open
    assert not target.stdin_closed


def test_relay_notices_should_stop_while_the_source_is_silent(clock: Clock) -> None:
    # CRIU still dumping, nothing on the wire yet: the stop is seen within one poll
    polls = itertools.count()
    source = Source(clock, itertools.repeat(SILENCE))
    with pytest.raises(RelayStopped):
        relay(
            source,  # type: ignore[arg-type]
            Target(),  # type: ignore[arg-type]
            stall_timeout=300,
            should_stop=lambda: next(polls) >= 3,
        )
    assert source.read_count == 3
    assert clock.now - 1000.0 == pytest.approx(3 * POLL_S)


def test_relay_checks_should_stop_before_the_first_read(clock: Clock) -> None:
    source = Source(clock, [b"data"])
    with pytest.raises(RelayStopped):
        relay(source, Target(), should_stop=lambda: True)  # type: ignore[arg-type]
    assert source.read_count == 0


def test_a_stop_is_not_a_broken_connection() -> None:
    # the engine reports a stop as an interruption (exit 130), never as a connection error
    assert not issubclass(RelayStopped, ConnectionFailed)


def test_relay_without_should_stop_runs_to_the_end(clock: Clock) -> None:
    _source, target, moved = copy(clock, [b"a", SILENCE, b"b"], should_stop=None)
    assert moved.bytes == 2 and target.stdin_closed


# -- broken connections ----------------------------------------------------------------------------
BREAKS: dict[str, tuple[Callable[[Clock], tuple[Source, Target]], str, str]] = {
    "source": (
        lambda clock: (Source(clock, [b"a", OSError("Socket is closed")]), Target()),
        "source",
        "lab-a: the stream broke: Socket is closed",
    ),
    "target-write": (
        lambda clock: (Source(clock, [b"a"]), Target(fail_write=BrokenPipeError("EPIPE"))),
        "target",
        "lab-b: the connection broke while receiving (EPIPE)",
    ),
    "target-close": (
        lambda clock: (Source(clock, [b"a"]), Target(fail_close=True)),
        "target",
        "lab-b: the connection broke at the end of the stream",
    ),
}


@pytest.mark.parametrize(("make", "side", "message"), BREAKS.values(), ids=BREAKS.keys())
def test_relay_names_the_side_that_broke(
    clock: Clock, make: Callable[[Clock], tuple[Source, Target]], side: str, message: str
) -> None:
    source, target = make(clock)
    with pytest.raises(RelayBroken) as caught:
        relay(source, target)  # type: ignore[arg-type]
    assert caught.value.side == side
    assert caught.value.message == message


class CountingThrottle:
    def __init__(self) -> None:
        self.consumed: list[int] = []

    def consume(self, n: int) -> None:
        self.consumed.append(n)


def test_relay_asks_the_throttle_before_each_chunk(clock: Clock) -> None:
    throttle = CountingThrottle()
    _, target, result = copy(clock, [b"ab", SILENCE, b"cde"], throttle=throttle)
    assert throttle.consumed == [2, 3]
    assert b"".join(target.chunks) == b"abcde" and result.bytes == 5
