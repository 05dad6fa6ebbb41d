"""How sizes and rates read in messages, events and checks: the one place they are worded."""

from __future__ import annotations


def megabytes(count: float) -> str:
    """``12.3 MB``: decimal megabytes, as transfers are reported."""
    return f"{count / 1e6:.1f} MB"


def megabytes_per_s(rate: float) -> str:
    """``12.3 MB/s``: a rate in bytes per second."""
    return f"{megabytes(rate)}/s"


def human_kib(kib: int) -> str:
    """A size given in KiB (as /proc and ``df -k`` give it): ``512 KiB``, ``1.5 GiB``."""
    value = float(kib)
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "KiB" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
