"""bench/throttle.py, the user-space slow link: a real proxy on loopback, no timing asserts."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

import pytest

from .conftest import BENCH_DIR, load_bench_script

THROTTLE = BENCH_DIR / "throttle.py"
THROTTLE_ARGV = [sys.executable, str(THROTTLE)]


@pytest.fixture(scope="module")
def throttle() -> ModuleType:
    return load_bench_script("throttle.py", "bench_throttle")


@pytest.mark.parametrize(
    ("text", "seconds"), [("25ms", 0.025), ("25", 0.025), ("0.3s", 0.3), (" 0 ", 0.0)]
)
def test_delays_are_read_as_seconds(throttle: ModuleType, text: str, seconds: float) -> None:
    assert throttle.parse_delay(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "fast", "-5ms", "5 min"])
def test_a_delay_that_is_no_duration_is_refused(throttle: ModuleType, text: str) -> None:
    with pytest.raises(ValueError, match="not a delay"):
        throttle.parse_delay(text)


@pytest.mark.parametrize("extra", [[], ["--delay", "0ms"]])
def test_neither_rate_nor_delay_is_refused(extra: list[str]) -> None:
    done = subprocess.run(
        [*THROTTLE_ARGV, "--listen", "127.0.0.1:0", "--connect", "127.0.0.1:1", *extra],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "give --rate, --delay or both" in done.stderr


@pytest.fixture
def upstream() -> Iterator[socket.socket]:
    """A server that answers each connection with what it read, reversed, after EOF."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # so the thread sees `stop` (accept is not woken by a close)
    stop = threading.Event()

    def serve() -> None:
        with server:
            while not stop.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                conn.settimeout(30)
                with conn:
                    received = bytearray()
                    while chunk := conn.recv(1 << 16):
                        received += chunk
                    conn.sendall(bytes(reversed(received)))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join(timeout=10)


@pytest.mark.parametrize("extra", [["--delay", "20ms"], ["--delay", "5ms", "--rate", "1gbit"]])
def test_a_delayed_link_delivers_every_byte_in_order_and_the_end(
    upstream: socket.socket, extra: list[str]
) -> None:
    port = upstream.getsockname()[1]
    argv = [*THROTTLE_ARGV, "--listen", "127.0.0.1:0"]
    process = subprocess.Popen(
        [*argv, "--connect", f"127.0.0.1:{port}", *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        assert line.startswith("listening 127.0.0.1:")
        listen_port = int(line.strip().rpartition(":")[2])
        payload = os.urandom(3 * 1024 * 1024 + 17)
        with socket.create_connection(("127.0.0.1", listen_port), timeout=30) as client:
            client.sendall(payload)
            client.shutdown(socket.SHUT_WR)  # the upstream answers only after this EOF
            answer = bytearray()
            while chunk := client.recv(1 << 16):
                answer += chunk
        assert bytes(answer) == bytes(reversed(payload))
    finally:
        process.terminate()
        process.wait(timeout=30)
