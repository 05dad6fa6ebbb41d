"""Reading a bandwidth: the ``RATE`` of ``--bwlimit`` (and of the probe's sizes)."""

from __future__ import annotations

import math
import re

_RATE = re.compile(
    r"(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?:(?P<prefix>[kmgt])(?P<binary>i)?)?(?P<unit>.*)",
    re.IGNORECASE,
)
_PREFIX_POWER = {"k": 1, "m": 2, "g": 3, "t": 4}
_BYTE_UNITS = ("", "/s", "B", "B/s", "Bps")
_BIT_UNITS = ("bit", "bits", "bit/s", "bits/s", "bps")


def parse_rate(text: str) -> float:
    """Bytes per second from a ``--bwlimit`` value such as ``50M``, ``50Mbit`` or ``10MiB/s``.

    The rule: a rate is a number, an optional prefix, an optional unit, an optional ``/s``.

    - Without a unit, or with ``B`` (``B/s``, ``Bps``), it counts **bytes** per second, like
      ``rsync --bwlimit`` and ``curl --limit-rate``: ``50M`` = ``50MB/s`` = 50,000,000 B/s.
    - With ``bit`` (``bits``, ``bit/s``, ``bps``) it counts **bits**: ``400Mbit`` = 50 MB/s.
    - Prefixes ``k``, ``M``, ``G``, ``T`` (any case) are powers of 1000; ``Ki``, ``Mi``,
      ``Gi``, ``Ti`` powers of 1024. (rsync and curl read ``K`` as 1024 and rsync reads a
      bare number as KiB; here a bare number is bytes and ``K`` is 1000, as written.)
    - A lone lowercase ``b`` (``50Mb``, ``50mb/s``) is refused: people mean bits as often as
      bytes by it, and a guess would be off eightfold.

    Raises :class:`ValueError` with the accepted forms on anything else, zero or negative.
    """
    stripped = text.strip()
    match = _RATE.fullmatch(stripped)
    if match is None:
        raise ValueError(
            f"invalid rate {text!r}: expected a positive number with an optional unit, "
            "e.g. 50M or 6.25MB/s (bytes per second), 50Mbit (bits), 10MiB/s"
        )
    number = float(match["number"])
    unit = match["unit"]
    multiplier = 1.0
    if match["prefix"]:
        base = 1024 if match["binary"] else 1000
        multiplier = float(base ** _PREFIX_POWER[match["prefix"].lower()])
    if unit in _BYTE_UNITS:
        pass
    elif unit.lower() in _BIT_UNITS:
        multiplier /= 8
    elif unit in ("b", "b/s"):
        raise ValueError(
            f"ambiguous rate {text!r}: write B for bytes (e.g. 50MB/s) or bit for bits "
            "(e.g. 50Mbit)"
        )
    else:
        raise ValueError(
            f"invalid rate {text!r}: unknown unit {unit!r}; use no unit or B for bytes per "
            "second (50M, 6.25MB/s, 10MiB/s) or bit for bits per second (50Mbit)"
        )
    rate = number * multiplier
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"invalid rate {text!r}: must be greater than zero")
    return rate
