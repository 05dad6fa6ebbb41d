"""A slow link in user space: a TCP proxy with a token-bucket rate limit in each direction,
and optionally a one-way delay (a distant coordinator, a satellite hop).

This machine's kernel has neither ``netem`` nor ``tbf``, so the benchmark shapes bandwidth
here instead. Every connection accepted on ``--listen`` is forwarded to ``--connect``; all
bytes going one way share one bucket (like the two directions of one link), so parallel
connections split the rate between them.

    python bench/throttle.py --listen 127.0.0.14:2222 --connect 127.0.0.12:2222 --rate 50mbit
    python bench/throttle.py --listen 127.0.0.15:2222 --connect 127.0.0.11:2222 --delay 25ms

``--delay`` holds every chunk that long before passing it on, in each direction (so the
round trip grows by twice that), keeping the bytes in order; without ``--rate`` the
bandwidth is not limited.

It prints ``listening HOST:PORT`` on stdout once the socket is bound, then runs until SIGTERM
or SIGINT. Rates are bits per second with an optional ``k``/``m``/``g`` prefix and an optional
``bit``/``bps`` suffix (``50mbit``, ``1gbit``, ``800k``); decimal prefixes, as in ``tc``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import socket
import sys
import time

CHUNK_BYTES = 64 * 1024
_PREFIXES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def parse_rate(text: str) -> float:
    """``50mbit`` -> 50e6 (bits per second)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmg]?)(?:bit|bps|b)?\s*", text.lower())
    if not match:
        raise ValueError(f"not a rate: {text!r} (e.g. 50mbit, 1gbit, 800kbit)")
    rate = float(match.group(1)) * _PREFIXES[match.group(2)]
    if rate <= 0:
        raise ValueError(f"the rate must be positive: {text!r}")
    return rate


def parse_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


class TokenBucket:
    """Bytes may pass at ``rate`` per second after an initial ``burst``.

    A taker deducts what it sends at once and then sleeps off any debt, so concurrent takers
    queue up behind each other and the long-run rate stays exact.
    """

    def __init__(self, bytes_per_s: float, burst_bytes: float) -> None:
        self.rate = bytes_per_s
        self.burst = burst_bytes
        self.tokens = burst_bytes
        self.stamp = time.monotonic()

    async def take(self, count: int) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= count
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


# chunks a delayed direction holds at most (the reader waits beyond that): 64 MiB
DELAY_QUEUE_CHUNKS = 1024


def parse_delay(text: str) -> float:
    """``25ms`` -> 0.025, ``0.5s`` -> 0.5 (seconds; a bare number is milliseconds)."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*", text.lower())
    if not match:
        raise ValueError(f"not a delay: {text!r} (e.g. 25ms, 0.3s)")
    value = float(match.group(1))
    return value if match.group(2) == "s" else value / 1000


async def pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    bucket: TokenBucket | None,
    delay_s: float = 0.0,
) -> None:
    loop = asyncio.get_running_loop()
    held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(DELAY_QUEUE_CHUNKS)

    async def deliver() -> None:
        while data := (item := await held.get())[1]:
            await asyncio.sleep(max(0.0, item[0] - loop.time()))
            writer.write(data)
            await writer.drain()

    delivering = asyncio.create_task(deliver()) if delay_s > 0 else None

    async def hold(data: bytes) -> bool:
        """Queue ``data`` for delivery; False once delivery has stopped (the far end went)."""
        assert delivering is not None
        putting = asyncio.ensure_future(held.put((loop.time() + delay_s, data)))
        await asyncio.wait({putting, delivering}, return_when=asyncio.FIRST_COMPLETED)
        if not putting.done():
            putting.cancel()
            return False
        return True

    try:
        while True:
            data = await reader.read(CHUNK_BYTES)
            if not data:
                break
            if bucket is not None:
                await bucket.take(len(data))
            if delivering is None:
                writer.write(data)
                await writer.drain()
            elif not await hold(data):
                break
        if delivering is not None:
            await hold(b"")  # the end, delayed like the rest
            await delivering  # raises what stopped it, if anything did
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()
    finally:
        if delivering is not None and not delivering.done():
            delivering.cancel()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Throttle:
    def __init__(
        self, upstream: tuple[str, int], bits_per_s: float | None, delay_s: float = 0.0
    ) -> None:
        self.upstream = upstream
        self.delay_s = delay_s
        self.buckets: dict[str, TokenBucket | None] = {"up": None, "down": None}
        if bits_per_s is not None:
            bytes_per_s = bits_per_s / 8
            # 20 ms of traffic (at least a few chunks): smooth, yet no stall per chunk
            burst = max(4 * CHUNK_BYTES, bytes_per_s / 50)
            self.buckets = {
                "up": TokenBucket(bytes_per_s, burst),
                "down": TokenBucket(bytes_per_s, burst),
            }

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.upstream)
        except OSError as error:
            print(f"throttle: cannot reach {self.upstream}: {error}", file=sys.stderr, flush=True)
            client_w.close()
            return
        _nodelay(client_w)
        _nodelay(server_w)
        try:
            await asyncio.gather(
                pump(client_r, server_w, self.buckets["up"], self.delay_s),
                pump(server_r, client_w, self.buckets["down"], self.delay_s),
            )
        finally:
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()


async def serve(
    listen: tuple[str, int],
    upstream: tuple[str, int],
    bits_per_s: float | None,
    delay_s: float = 0.0,
) -> None:
    throttle = Throttle(upstream, bits_per_s, delay_s)
    server = await asyncio.start_server(throttle.handle, listen[0], listen[1], reuse_address=True)
    host, port = server.sockets[0].getsockname()[:2]
    print(f"listening {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT to accept on")
    parser.add_argument("--connect", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--rate", help="bits per second each way, e.g. 50mbit (default: no limit)")
    parser.add_argument(
        "--delay", default="0", help="one-way delay each way, e.g. 25ms (default 0)"
    )
    args = parser.parse_args(argv)
    try:
        listen = parse_address(args.listen)
        upstream = parse_address(args.connect)
        rate = parse_rate(args.rate) if args.rate is not None else None
        delay = parse_delay(args.delay)
    except ValueError as error:
        parser.error(str(error))
    if rate is None and delay == 0:
        parser.error("give --rate, --delay or both")
    try:
        asyncio.run(serve(listen, upstream, rate, delay))
    except OSError as error:
        print(f"throttle: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
