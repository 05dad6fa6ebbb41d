"""How the coordinator reads a stream's first line: the ready greeting, the TLS port.

A fake stream records the size of every read: the ready line must come in one read when the
stream allows (a byte-wise read would hand a fault-injecting wrapper, or a slow channel, six
reads), and a line of unknown length must not consume what follows it.
"""

from __future__ import annotations

import pytest

from celestial_ssh.data_plane import await_line, await_ready
from celestial_ssh.errors import ConnectionFailed
from celestial_ssh.ssh import CommandResult


class Stream:
    host_name = "lab-b"
    command = "sh -c ..."

    def __init__(self, output: bytes, stderr: str = ""):
        self.output = output
        self.reads: list[int] = []
        self._stderr = stderr

    def set_read_timeout(self, seconds: float | None) -> None:
        pass

    def read(self, size: int) -> bytes:
        self.reads.append(size)
        chunk, self.output = self.output[:size], self.output[size:]
        return chunk

    def wait(self, timeout: float) -> CommandResult:
        return CommandResult("lab-b", self.command, 95, "", self._stderr)


def test_the_ready_line_is_read_in_one_go() -> None:
    stream = Stream(b"ready\nARCHIVE")
    await_ready(stream, timeout=5)  # type: ignore[arg-type]
    assert stream.reads == [6]
    assert stream.output == b"ARCHIVE"


@pytest.mark.parametrize("greeting", [b"readyX", b"hello\n", b"ready!\n"])
def test_another_greeting_is_refused(greeting: bytes) -> None:
    with pytest.raises(ConnectionFailed, match="lab-b: unexpected stream greeting"):
        await_ready(Stream(greeting), timeout=5)  # type: ignore[arg-type]


def test_a_line_of_unknown_length_leaves_what_follows() -> None:
    stream = Stream(b"celestial-ssh-listening 40123\nnext")
    assert await_line(stream, timeout=5) == b"celestial-ssh-listening 40123"  # type: ignore[arg-type]
    assert stream.output == b"next"


def test_a_line_without_an_end_is_refused_at_the_limit() -> None:
    with pytest.raises(ConnectionFailed, match="unexpected stream greeting"):
        await_line(Stream(b"x" * 100), timeout=5, limit=10)  # type: ignore[arg-type]


def test_a_stream_that_ends_first_says_why() -> None:
    stream = Stream(b"", stderr="socat: certificate verify failed\n")
    with pytest.raises(ConnectionFailed) as caught:
        await_line(stream, timeout=5, ended_before="it listened")  # type: ignore[arg-type]
    assert str(caught.value).startswith("lab-b: the stream ended before it listened")
    assert "certificate verify failed" in str(caught.value)
