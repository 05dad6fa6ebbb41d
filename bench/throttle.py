"""A slow link in user space: a TCP proxy with a token-bucket rate limit in each direction.

This machine's kernel has neither ``netem`` nor ``tbf``, so the benchmark shapes bandwidth
here instead. Every connection accepted on ``--listen`` is forwarded to ``--connect``; all
bytes going one way share one bucket (like the two directions of one link), so parallel
connections split the rate between them.

    python bench/throttle.py --listen 127.0.0.14:2222 --connect 127.0.0.12:2222 --rate 50mbit

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


async def pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bucket: TokenBucket
) -> None:
    try:
        while True:
            data = await reader.read(CHUNK_BYTES)
            if not data:
                break
            await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Throttle:
    def __init__(self, upstream: tuple[str, int], bits_per_s: float) -> None:
        self.upstream = upstream
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
                pump(client_r, server_w, self.buckets["up"]),
                pump(server_r, client_w, self.buckets["down"]),
            )
        finally:
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()


async def serve(listen: tuple[str, int], upstream: tuple[str, int], bits_per_s: float) -> None:
    throttle = Throttle(upstream, bits_per_s)
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
    parser.add_argument("--rate", required=True, help="bits per second each way, e.g. 50mbit")
    args = parser.parse_args(argv)
    try:
        listen = parse_address(args.listen)
        upstream = parse_address(args.connect)
        rate = parse_rate(args.rate)
    except ValueError as error:
        parser.error(str(error))
    try:
        asyncio.run(serve(listen, upstream, rate))
    except OSError as error:
        print(f"throttle: cannot listen on {args.listen}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
