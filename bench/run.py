#!/usr/bin/env python3
"""`make bench`: how fast celestial-ssh moves a live workload, next to the floor and by hand.

On the local lab (``make lab``) it migrates memtick workloads of several sizes from lab-a to
lab-b in every mode of ``celestial_bench.settings.MODES`` (interleaved, rotating the order of
the modes every run), measures the downtime the workload itself saw (the largest gap between
two of its ``tick`` lines), the wall clock of the whole move and what the coordinator (this
machine) spent on it, then measures the SSH data plane and migrations over throttled links
(``bench/throttle.py``). See bench/README.md for the method; the code is the package
``bench/celestial_bench``.

Writes bench/results/latest.json (every raw run, the medians, the machine),
bench/results/latest.md (the tables) and a line per mode and size to bench/results/history.md.
Not a test: nothing here asserts anything about timings.
"""

from __future__ import annotations

import sys
from pathlib import Path

# run as a script, bench/ is on the path already; loaded by file (the unit tests), it is not
BENCH_DIR = str(Path(__file__).resolve().parent)
if BENCH_DIR not in sys.path:
    sys.path.insert(0, BENCH_DIR)

from celestial_bench.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
