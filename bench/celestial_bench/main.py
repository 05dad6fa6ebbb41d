"""The command line: arguments, the whole measurement, and the results."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data_plane import data_plane
from .lab import Lab, ensure_image, image_name, ssh_agent, wait_for_quiet_lab
from .links import Link, distant_coordinator, slow_links
from .machine import machine
from .processes import check_rusage
from .report import print_report, write_results
from .runs import describe, help_text, run_once, runnable_modes
from .settings import (
    BENCH,
    CHECK_EVERY,
    CLI,
    DISTANT_DELAY,
    DISTANT_RATE,
    FALLBACK_ADDRESS,
    INTERVAL_MS,
    LAB_CONFIG,
    MODES,
    Mode,
    fallback_mode,
    log,
)
from .summary import decision_summary, summarise


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Benchmark celestial-ssh on the local lab.")
    parser.add_argument(
        "--sizes", default="64,256,1024", help="workload sizes in MiB (default 64,256,1024)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per size and mode (default 3)")
    parser.add_argument("--modes", default=None, help="comma-separated mode labels (default: all)")
    parser.add_argument(
        "--slow-links", default="50mbit,1gbit", help="throttled rates (default 50mbit,1gbit)"
    )
    parser.add_argument("--skip-slow", action="store_true", help="skip the slow-link scenario")
    parser.add_argument(
        "--slow-size", type=int, default=64, help="slow-link workload in MiB (default 64)"
    )
    parser.add_argument(
        "--skip-matrix", action="store_true", help="skip the main matrix (sizes x modes)"
    )
    parser.add_argument(
        "--skip-throughput", action="store_true", help="skip the data-plane measurement"
    )
    parser.add_argument(
        "--throughput-bytes",
        type=int,
        default=512 * 2**20,
        help="bytes per data-plane run (default 512 MiB)",
    )
    parser.add_argument(
        "--throughput-runs", type=int, default=3, help="data-plane runs per path (default 3)"
    )
    parser.add_argument(
        "--skip-distant", action="store_true", help="skip the distant-coordinator scenario"
    )
    parser.add_argument(
        "--distant-delay",
        default=DISTANT_DELAY,
        help=f"one-way delay between this machine and each host (default {DISTANT_DELAY})",
    )
    parser.add_argument(
        "--distant-rate",
        default=DISTANT_RATE,
        help=f"this machine's link to each host, each way (default {DISTANT_RATE}; "
        "'none': no limit)",
    )
    parser.add_argument(
        "--distant-runs", type=int, default=3, help="distant-coordinator runs per mode (default 3)"
    )
    parser.add_argument(
        "--distant-sizes",
        "--distant-size",
        dest="distant_sizes",
        default="256",
        help="distant workload sizes in MiB (default 256; e.g. 256,1024)",
    )
    parser.add_argument(
        "--fallback-address",
        default=FALLBACK_ADDRESS,
        help="--tls-address of the `fallback` mode: an address the target cannot listen on "
        f"(default {FALLBACK_ADDRESS})",
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="output directory")
    parser.add_argument(
        "--check-rusage", action="store_true", help="show what wait4's rusage counts, then exit"
    )
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.slow_links = [s.strip() for s in args.slow_links.split(",") if s.strip()]
    args.distant_sizes = [int(s) for s in args.distant_sizes.split(",") if s.strip()]
    if args.distant_rate.strip().lower() in ("", "none", "0"):
        args.distant_rate = None
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check_rusage:
        return check_rusage()
    if not LAB_CONFIG.is_file() or not CLI.exists():
        log(f"needs the lab ({LAB_CONFIG}) and the venv ({CLI}): run `make lab` first")
        return 2
    migrate_help = help_text("migrate") or ""
    wanted = args.modes.split(",") if args.modes else [m.label for m in MODES]
    known = {m.label: m for m in MODES}
    known["fallback"] = fallback_mode(args.fallback_address)
    unknown = [label for label in wanted if label not in known]
    if unknown:
        log(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    modes, notes = runnable_modes([known[label] for label in wanted], migrate_help)
    for label, note in notes.items():
        log(f"mode {label}: {note}")
    started = time.monotonic()
    document: dict[str, Any] = {
        # 2: the distant section has several sizes, a rate, a floor and steps read from the
        # reports; runs have before_freeze_s. Readers take schema 1 documents too.
        "schema": 2,
        "options": {
            "sizes": args.sizes,
            "runs": args.runs,
            "modes": [m.label for m in modes],
            "slow_links": [] if args.skip_slow else args.slow_links,
            "slow_size_mb": args.slow_size,
            "distant": None
            if args.skip_distant
            else {
                "delay": args.distant_delay,
                "rate": args.distant_rate,
                "runs": args.distant_runs,
                "sizes": args.distant_sizes,
            },
            "runs_throughput": args.throughput_runs,
            "interval_ms": INTERVAL_MS,
            "check_every": CHECK_EVERY,
        },
        "modes": [
            {
                "label": m.label,
                "kind": m.kind,
                "args": list(m.args),
                "command": m.text,
                "note": m.note,
            }
            for m in modes
        ],
        "notes": notes,
        "machine": machine(),
        "runs": [],
        "summary": [],
        "size_wall_s": {},
        "throughput": None,
        "slow_links": None,
        "distant": None,
        "decision": None,
        "interrupted": False,
    }
    lab = Lab()
    try:
        with ssh_agent(lab):
            measure_all(lab, args, modes, migrate_help, document)
    except KeyboardInterrupt:
        document["interrupted"] = True
        log("interrupted: cleaning up and writing what was measured")
    finally:
        lab.clean_up()
        document["summary"] = summarise(document["runs"], modes, args.sizes)
        document["decision"] = decision_summary(document["runs"], document["summary"])
        document["duration_s"] = round(time.monotonic() - started, 1)
        paths = write_results(document, args.results)
    print_report(document, paths)
    return 1 if document["interrupted"] else 0


def measure_all(
    lab: Lab,
    args: argparse.Namespace,
    modes: Sequence[Mode],
    migrate_help: str,
    document: dict[str, Any],
) -> None:
    """The matrix (interleaved, the order of the modes rotating), the data plane, slow links."""
    wait_for_quiet_lab()
    image = image_name()
    ensure_image(image)
    document["image"] = image
    for run in range(0 if args.skip_matrix else args.runs):
        for index, size in enumerate(args.sizes):
            shift = (run + index) % len(modes)
            for mode in [*modes[shift:], *modes[:shift]]:
                record = run_once(lab, mode, image=image, size_mb=size, run=run)
                document["runs"].append(record)
                key = str(size)
                spent = document["size_wall_s"].get(key, 0) + record["run_wall_s"]
                document["size_wall_s"][key] = round(spent, 1)
                log(describe(record))
    if not args.skip_throughput:
        document["throughput"] = data_plane(
            args.throughput_bytes, args.throughput_runs, LAB_CONFIG, lab.tool_env
        )
    if not args.skip_slow and args.slow_links:
        document["slow_links"] = slow_links(
            lab, image, args.slow_links, args.slow_size, migrate_help
        )
    if not args.skip_distant:
        document["distant"] = distant_coordinator(
            lab,
            image,
            Link(rate=args.distant_rate, delay=args.distant_delay),
            args.distant_runs,
            args.distant_sizes,
            migrate_help,
        )
