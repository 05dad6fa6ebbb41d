#!/usr/bin/env python3
"""`make bench`: how fast celestial-ssh moves a live workload, next to the floor and by hand.

On the local lab (``make lab``) it migrates memtick workloads of several sizes from lab-a to
lab-b in every mode of :data:`MODES` (interleaved, rotating the order of the modes every
run), measures the downtime the workload itself saw (the largest gap between two of its
``tick`` lines), the wall clock of the whole move and what the coordinator (this machine)
spent on it, then measures the SSH data plane and migrations over throttled links
(``bench/throttle.py``). See bench/README.md for the method.

Writes bench/results/latest.json (every raw run, the medians, the machine), a timestamped
copy, and bench/results/latest.md (the tables, for the README). Not a test: nothing here
asserts anything about timings.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import os
import platform
import re
import select
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
LAB_CONFIG = REPO / ".lab" / "ssh_config"
CLI = REPO / ".venv" / "bin" / "celestial-ssh"
MEMTICK_SOURCE = REPO / "lab" / "workload" / "memtick.c"
SOURCE, TARGET = "lab-a", "lab-b"
SLOW_TARGET = "lab-b-slow"
# a distant coordinator: both hosts behind a delaying proxy each
FAR_SOURCE, FAR_TARGET = "lab-a-far", "lab-b-far"
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()

# memtick arguments: a tick every 10 ms (the downtime's resolution); the checksum only at
# tick 0, because recomputing it over 1 GB would pause the workload and look like downtime
INTERVAL_MS = 10
CHECK_EVERY = 1_000_000_000
FIRST_TICK_TIMEOUT_S = 180.0
# how long an interrupted run may take to stop safely (a rollback restores the source)
INTERRUPT_GRACE_S = 300.0
MB = 1_000_000  # rates and archive sizes are in MB = 10^6 bytes; workloads in MiB (memtick)


@dataclass(frozen=True)
class Mode:
    """One way of moving the workload. ``kind`` is ``floor``, ``hand-made`` or ``tool``."""

    label: str
    kind: str
    args: tuple[str, ...] = ()
    note: str = ""

    @property
    def text(self) -> str:
        if self.kind != "tool":
            return self.label
        return " ".join(("celestial-ssh migrate", *self.args))


# The modes of the main matrix. Add or remove tool rows freely: ``args`` are extra
# `celestial-ssh migrate` options; a row whose options the installed CLI does not accept is
# skipped with a note. ``--modes`` picks rows by label.
MODES: tuple[Mode, ...] = (
    Mode(
        "floor",
        "floor",
        note="one shell: checkpoint to tmpfs, restore from it; no transfer, no SSH between",
    ),
    Mode("hand-made", "hand-made", note="checkpoint (zstd) to disk, scp via here, restore"),
    Mode("tool", "tool", note="the defaults: OpenSSH data plane, --compress auto"),
    Mode("tool-none", "tool", ("--compress", "none"), note="OpenSSH relayed through here"),
    Mode("tool-zstd", "tool", ("--compress", "zstd")),
    Mode("tool-paramiko", "tool", ("--transport", "paramiko", "--compress", "none")),
    Mode("tool-direct", "tool", ("--direct", "--compress", "none"), note="source -> target"),
    Mode("tool-tls", "tool", ("--tls", "--compress", "none"), note="source -> target, TLS"),
)

# `celestial-ssh probe` rows for the data-plane measurement (same rules as MODES)
PROBES: tuple[Mode, ...] = (
    Mode("probe", "probe"),
    Mode("probe-paramiko", "probe", ("--transport", "paramiko")),
    Mode("probe-openssh", "probe", ("--transport", "openssh")),
    Mode("probe-openssh-direct", "probe", ("--transport", "openssh", "--direct")),
    Mode("probe-tls", "probe", ("--tls",)),
)

SLOW_COMPRESSIONS: tuple[str, ...] = ("none", "zstd", "auto")
# the distant-coordinator section: what a round trip more or less costs
DISTANT_MODES: tuple[Mode, ...] = (
    Mode("far-relayed", "tool", ("--compress", "none"), note="relayed through here"),
    Mode("far-tls", "tool", ("--tls", "--compress", "none"), note="source -> target, TLS"),
)
# the timings the distant table shows (medians), besides total and downtime
DISTANT_STEPS: tuple[str, ...] = ("connect", "preflight", "tls_setup", "cleanup")
SLOW_FILLS: tuple[str, ...] = ("random", "compressible")


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- running commands ------------------------------------------------------------------------


@dataclass
class Measured:
    """A finished command with what it cost on this machine (itself and its descendants)."""

    argv: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    maxrss_kib: int
    stdout: str
    stderr: str
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def measured(
    argv: Sequence[str],
    *,
    timeout: float,
    stdin: int | None = None,
    env: dict[str, str] | None = None,
) -> Measured:
    """Run ``argv`` and reap it with ``wait4`` to get its resource usage.

    On Linux the rusage that wait4 returns for a child covers the child and every descendant
    it (transitively) waited for: CPU time is the sum over that tree, ``ru_maxrss`` the largest
    single process of it (not a sum). Descendants still running when the child exits
    (orphans) are not counted. `python bench/run.py --check-rusage` shows all three facts.

    On timeout the process gets SIGTERM (celestial-ssh then rolls back at a safe point), and
    SIGKILL 60 s later; both through a pidfd, so a recycled PID is never hit. A Ctrl-C
    (KeyboardInterrupt) is passed on as SIGINT, and re-raised once the process has ended
    (SIGKILL after :data:`INTERRUPT_GRACE_S`).
    """
    with (
        tempfile.TemporaryFile(dir=SCRATCH, prefix="bench-") as out,
        tempfile.TemporaryFile(dir=SCRATCH, prefix="bench-") as err,
    ):
        started = time.monotonic()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=out,
            stderr=err,
            env=env,
        )
        pidfd = os.pidfd_open(process.pid)
        expired = threading.Event()

        def signal_child(signum: int) -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError, OSError):
                signal.pidfd_send_signal(pidfd, signum)

        timers = [
            threading.Timer(timeout, signal_child, (signal.SIGTERM,)),
            threading.Timer(timeout + 60, signal_child, (signal.SIGKILL,)),
        ]
        for timer in timers:
            timer.daemon = True
            timer.start()
        try:
            try:
                _, status, usage = os.wait4(process.pid, 0)
            except KeyboardInterrupt:
                # a Ctrl-C at a terminal reaches the child as well, but a SIGINT sent to the
                # bench alone would leave the child migrating while the clean-up removes its
                # container: pass it on, and let the child stop safely before cleaning up
                log(f"interrupted: waiting for {Path(argv[0]).name} to stop safely")
                signal_child(signal.SIGINT)
                timers.append(threading.Timer(INTERRUPT_GRACE_S, signal_child, (signal.SIGKILL,)))
                timers[-1].daemon = True
                timers[-1].start()
                _reap_despite_interrupts(process.pid)
                raise
        finally:
            for timer in timers:
                timer.cancel()
        wall = time.monotonic() - started
        os.close(pidfd)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            argv=list(argv),
            returncode=process.returncode,
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            maxrss_kib=usage.ru_maxrss,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=expired.is_set(),
        )


def _reap_despite_interrupts(pid: int) -> None:
    """Wait for ``pid`` to end; a further Ctrl-C does not stop the wait (the child has it
    too, and the SIGKILL timer bounds the wait)."""
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except KeyboardInterrupt:
            continue
        except ChildProcessError:
            return


def ssh_argv(host: str, command: Sequence[str], config: Path) -> list[str]:
    return ["ssh", "-F", str(config), host, "--", shlex.join(command)]


def on_host(
    host: str,
    command: Sequence[str],
    *,
    config: Path = LAB_CONFIG,
    timeout: float = 120,
    check: bool = True,
    input_bytes: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(
        ssh_argv(host, command, config),
        input=input_bytes,
        stdin=None if input_bytes is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{host}: {shlex.join(command)} failed ({result.returncode}): "
            f"{result.stderr.decode(errors='replace').strip()}"
        )
    return result


def text_of(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode(errors="replace")


def e2e_running() -> list[str]:
    """Command lines of pytest runs that include the end-to-end tests (`make test`/`make e2e`)."""
    found = subprocess.run(["pgrep", "-af", "pytest"], capture_output=True, text=True, check=False)
    busy = []
    for line in found.stdout.splitlines():
        pid, _, command = line.partition(" ")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        words = command.split()
        if any(w.rstrip("/") == "tests" or "tests/e2e" in w for w in words):
            busy.append(line)
    return busy


def wait_for_quiet_lab() -> float:
    """Never measure while end-to-end tests run on the same lab; returns the seconds waited."""
    started = time.monotonic()
    noted = 0.0
    while busy := e2e_running():
        if time.monotonic() - noted > 120:
            log(f"end-to-end tests are running ({busy[0]}); waiting for them to finish")
            noted = time.monotonic()
        time.sleep(10)
    return time.monotonic() - started


# -- the workload image and container ---------------------------------------------------------


def image_name() -> str:
    """A bench-private image named after memtick.c's hash, so edits get their own image.

    The lab's own localhost/memtick:latest is built once by lab.sh and left alone: rebuilding it
    would give it a new ID and break everybody else's migrations of it (the target's copy
    would no longer match).
    """
    digest = hashlib.sha256(MEMTICK_SOURCE.read_bytes()).hexdigest()[:12]
    return f"localhost/bench-memtick:{digest}"


def image_id(host: str, image: str) -> str | None:
    result = on_host(
        host, ["podman", "image", "inspect", "--format", "{{.Id}}", image], check=False
    )
    if result.returncode != 0:
        return None
    return text_of(result).strip() or None


def ensure_image(image: str) -> None:
    """Build the image on lab-a the way lab/lab.sh does, and load the same one on lab-b.

    lab-b gets it before any run, so every mode restores onto a host that has the image (the
    tool would stage it otherwise, the baselines could not restore at all).
    """
    if image_id(SOURCE, image) is None:
        with tempfile.TemporaryDirectory(prefix="bench-build-", dir="/var/tmp") as build:
            subprocess.run(
                ["gcc", "-O2", "-static", "-o", f"{build}/memtick", str(MEMTICK_SOURCE)], check=True
            )
            subprocess.run(
                ["tar", "-C", build, "-cf", f"{build}/rootfs.tar", "memtick"], check=True
            )
            tarball = Path(build, "rootfs.tar").read_bytes()
        on_host(
            SOURCE,
            ["podman", "import", "--quiet", "--change", 'ENTRYPOINT ["/memtick"]', "-", image],
            input_bytes=tarball,
        )
        log(f"built {image} on {SOURCE} from {MEMTICK_SOURCE.relative_to(REPO)}")
    wanted = image_id(SOURCE, image)
    present = image_id(TARGET, image)
    if present == wanted:
        return
    if present is not None:
        on_host(TARGET, ["podman", "image", "rm", "--force", image])
    pipeline = (
        f"{shlex.join(ssh_argv(SOURCE, ['podman', 'image', 'save', image], LAB_CONFIG))} | "
        f"{shlex.join(ssh_argv(TARGET, ['podman', 'image', 'load', '--quiet'], LAB_CONFIG))}"
    )
    subprocess.run(["sh", "-c", pipeline], check=True, capture_output=True, timeout=300)
    if image_id(TARGET, image) != wanted:
        raise RuntimeError(f"{TARGET}: loading {image} did not keep its ID")
    log(f"loaded {image} on {TARGET}")


class Lab:
    """Every container and file the benchmark makes, so that it can remove all of them."""

    def __init__(self) -> None:
        self.containers: set[str] = set()
        self.files: set[str] = set()
        # the environment of every celestial-ssh run (with the bench's ssh-agent)
        self.tool_env: dict[str, str] | None = None

    def new_name(self, *parts: object) -> str:
        name = "-".join(["bench", *(str(p) for p in parts), uuid.uuid4().hex[:6]])
        self.containers.add(name)
        return name

    def new_file(self, directory: str, stem: str, suffix: str) -> str:
        path = f"{directory}/{stem}-{uuid.uuid4().hex[:8]}{suffix}"
        self.files.add(path)
        return path

    def remove_container(self, name: str) -> None:
        for host in (SOURCE, TARGET):
            on_host(host, ["podman", "rm", "--force", "--time", "0", name], check=False)
        self.containers.discard(name)

    def remove_files(self, *paths: str) -> None:
        # the lab hosts share this machine's filesystem, so the files are removed here
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self.files.discard(path)

    def clean_up(self) -> None:
        for name in sorted(self.containers):
            with contextlib.suppress(Exception):
                self.remove_container(name)
        self.remove_files(*sorted(self.files))


@contextlib.contextmanager
def ssh_agent(lab: Lab) -> Iterator[None]:
    """A bench-private ssh-agent holding the lab's key, lent to every celestial-ssh run.

    ``--direct`` makes the source log in to the target with the coordinator's forwarded
    agent; without one it falls back to relaying and the row would measure nothing new.
    The lab's ssh_config says IdentitiesOnly, so the agent changes nothing else.
    """
    keys = ssh_options_of(SOURCE, LAB_CONFIG).get("identityfile", [])
    socket_path = f"{SCRATCH}/bench-agent-{uuid.uuid4().hex[:8]}.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", socket_path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(socket_path) and time.monotonic() < deadline:
            time.sleep(0.05)
        env = {**os.environ, "SSH_AUTH_SOCK": socket_path}
        added = subprocess.run(
            ["ssh-add", "-q", *(os.path.expanduser(k) for k in keys)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if added.returncode == 0:
            lab.tool_env = env
        else:
            log(f"no ssh-agent for --direct ({added.stderr.strip()}); it may fall back to relaying")
        yield
    finally:
        lab.tool_env = None
        agent.terminate()
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)


def start_workload(lab: Lab, name: str, image: str, size_mb: int, fill: str = "random") -> None:
    argv = ["podman", "run", "--detach", "--name", name, image]
    argv += [str(size_mb), str(INTERVAL_MS), str(CHECK_EVERY)]
    if fill != "random":
        argv.append(fill)
    on_host(SOURCE, argv)
    deadline = time.monotonic() + FIRST_TICK_TIMEOUT_S
    while time.monotonic() < deadline:
        if parse_ticks(container_log(SOURCE, name, tail=2)):
            time.sleep(0.3)  # a few ticks before the freeze
            return
        time.sleep(0.2)
    raise RuntimeError(f"{name} printed no tick in {FIRST_TICK_TIMEOUT_S:.0f} s")


def container_log(host: str, name: str, tail: int | None = None) -> str:
    argv = ["podman", "logs"] + (["--tail", str(tail)] if tail else []) + [name]
    result = on_host(host, argv, check=False, timeout=120)
    return text_of(result) if result.returncode == 0 else ""


# -- the workload's own view: ticks and the largest gap ---------------------------------------


@dataclass(frozen=True)
class Tick:
    counter: int
    wall_ms: int
    checksum: str


_TICK = re.compile(r"^tick (\d+) (\d+) ([0-9a-f]{16})$")


def parse_ticks(text: str) -> list[Tick]:
    ticks = []
    for line in text.splitlines():
        match = _TICK.match(line.strip())
        if match:
            ticks.append(Tick(int(match.group(1)), int(match.group(2)), match.group(3)))
    return ticks


@dataclass
class Continuity:
    """What the workload's log says about one move."""

    downtime_s: float | None
    before: Tick | None
    after: Tick | None
    ticks_before_move: int
    ticks_after_move: int
    state_ok: bool
    problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "downtime_s": self.downtime_s,
            "gap_before": None if self.before is None else vars(self.before),
            "gap_after": None if self.after is None else vars(self.after),
            "ticks_before_move": self.ticks_before_move,
            "ticks_after_move": self.ticks_after_move,
            "state_ok": self.state_ok,
            "problem": self.problem,
        }


def analyse(ticks: Sequence[Tick], move_started_ms: int) -> Continuity:
    """The largest gap between consecutive ticks that ends after the move started.

    The state survived when the counter goes on by exactly one across that gap and
    everywhere else (a restarted workload would begin at 0 again) with one checksum throughout.
    """
    before_move = sum(1 for t in ticks if t.wall_ms < move_started_ms)
    best: tuple[int, int] | None = None
    for index in range(1, len(ticks)):
        if ticks[index].wall_ms < move_started_ms:
            continue
        gap = ticks[index].wall_ms - ticks[index - 1].wall_ms
        if best is None or gap > best[0]:
            best = (gap, index)
    if best is None:
        return Continuity(None, None, None, before_move, 0, False, "no tick after the move")
    gap_ms, index = best
    before, after = ticks[index - 1], ticks[index]
    problems = []
    jumps = [
        (a.counter, b.counter) for a, b in itertools.pairwise(ticks) if b.counter != a.counter + 1
    ]
    if jumps:
        problems.append(f"counter jumps {jumps[0][0]} -> {jumps[0][1]} ({len(jumps)} in all)")
    if len({t.checksum for t in ticks}) > 1:
        problems.append("the checksum changed")
    if before_move == 0:
        problems.append("no tick from before the move")
    after_move = len(ticks) - index
    if after_move < 2:
        problems.append("fewer than 2 ticks after the move")
    return Continuity(
        downtime_s=gap_ms / 1000,
        before=before,
        after=after,
        ticks_before_move=before_move,
        ticks_after_move=after_move,
        state_ok=not problems,
        problem="; ".join(problems) or None,
    )


def wait_for_tick_after(host: str, name: str, wall_ms: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ticks = parse_ticks(container_log(host, name, tail=1))
        if ticks and ticks[-1].wall_ms > wall_ms:
            return True
        time.sleep(0.2)
    return False


def workload_view(
    name: str, *, target: str, move_started_ms: int, move_ended_ms: int, source_log: str
) -> tuple[Continuity, str]:
    """Read the target's log, which should hold the pre-migration lines too.

    podman's checkpoint archive carries the container's log file, so the restored container's
    `podman logs` starts at tick 0. If it ever does not, the source's lines are merged in.
    """
    wait_for_tick_after(target, name, move_ended_ms)
    target_ticks = parse_ticks(container_log(target, name))
    source_of_log = "target"
    ticks = target_ticks
    if not any(t.wall_ms < move_started_ms for t in target_ticks):
        after_move = container_log(SOURCE, name)  # the source copy exists for the baselines
        merged = {t.counter: t for t in parse_ticks(after_move or source_log)}
        merged.update({t.counter: t for t in target_ticks})
        ticks = [merged[c] for c in sorted(merged)]
        source_of_log = "source+target" if after_move else "source-before-move+target"
    return analyse(ticks, move_started_ms), source_of_log


# -- the modes --------------------------------------------------------------------------------


@dataclass
class Move:
    """What one mode did: its steps, its cost here, and the tool's report if any."""

    ok: bool
    steps: dict[str, float] = field(default_factory=dict)
    cpu_s: float = 0.0
    maxrss_kib: int = 0
    error: str | None = None
    archive_bytes: int | None = None
    report: dict[str, Any] | None = None
    exit_code: int | None = None

    def add(self, step: str, result: Measured) -> bool:
        self.steps[step] = round(result.wall_s, 4)
        self.cpu_s += result.cpu_s
        self.maxrss_kib = max(self.maxrss_kib, result.maxrss_kib)
        if not result.ok:
            self.ok = False
            why = "timed out" if result.timed_out else f"exit {result.returncode}"
            self.error = f"{step}: {why}: {short_error(result.stderr)}"
        return result.ok


def short_error(text: str, limit: int = 300) -> str:
    """One line of an error: a traceback's last line, else the text with spaces collapsed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    if lines[0].startswith("Traceback"):
        return lines[-1][:limit]
    joined = " ".join(lines)
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


# what makes a lab host's podman its own (lab/lab.sh sets these in each sshd's SetEnv)
PODMAN_HOST_VARIABLES = ("CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF", "TMPDIR")
FLOOR_MARK = "checkpointed-at "


def podman_environment(host: str, config: Path) -> list[str]:
    """``NAME=value`` for each variable that selects ``host``'s podman state."""
    printed = text_of(on_host(host, ["env"], config=config))
    values = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    return [f"{name}={values[name]}" for name in PODMAN_HOST_VARIABLES if name in values]


def floor_script(name: str, archive: str, target_environment: Sequence[str]) -> str:
    """Checkpoint on this host, then restore as the target in the same shell: no SSH between."""
    checkpoint = ["podman", "container", "checkpoint", "--export", archive]
    checkpoint += ["--compress", "none", name]
    restore = ["env", *target_environment, "podman", "container", "restore", "--import", archive]
    return (
        f"{shlex.join(checkpoint)} >/dev/null && "
        f"echo {shlex.quote(FLOOR_MARK)}$(date +%s.%N) && "
        f"{shlex.join(restore)} >/dev/null"
    )


def move_floor(lab: Lab, name: str, config: Path) -> Move:
    # The floor is what podman and CRIU need on this machine with nothing in between: one
    # shell checkpoints to tmpfs and restores that file. Two SSH commands would put a
    # connection set-up (~0.3 s) and a login shell into the workload's gap.
    archive = lab.new_file("/dev/shm", f"{name}-floor", ".tar")
    move = Move(ok=True)
    try:
        script = floor_script(name, archive, podman_environment(TARGET, config))
        started = time.time()
        result = measured(ssh_argv(SOURCE, ["sh", "-c", script], config), timeout=1800)
        ended = started + result.wall_s
        move.add("ssh + checkpoint + restore", result)
        marks = [line for line in result.stdout.splitlines() if line.startswith(FLOOR_MARK)]
        if marks:
            checkpointed = float(marks[-1].removeprefix(FLOOR_MARK))
            move.steps = {
                "ssh + checkpoint": round(checkpointed - started, 4),
                "restore": round(ended - checkpointed, 4),
            }
        if result.ok:
            move.archive_bytes = os.path.getsize(archive)
    finally:
        lab.remove_files(archive)
    return move


def move_by_hand(lab: Lab, name: str, config: Path) -> Move:
    # the lab hosts share one filesystem: a distinct name at each step, as on real hosts
    on_source = lab.new_file("/var/tmp", f"{name}-a", ".tar.zst")
    here = lab.new_file("/var/tmp", f"{name}-local", ".tar.zst")
    on_target = lab.new_file("/var/tmp", f"{name}-b", ".tar.zst")
    move = Move(ok=True)
    scp = ["scp", "-q", "-F", str(config)]
    try:
        checkpoint = ["podman", "container", "checkpoint", "--export", on_source, name]
        steps: list[tuple[str, list[str]]] = [
            ("checkpoint", ssh_argv(SOURCE, checkpoint, config)),
            ("scp source->here", [*scp, f"{SOURCE}:{on_source}", here]),
            ("scp here->target", [*scp, here, f"{TARGET}:{on_target}"]),
            (
                "restore",
                ssh_argv(TARGET, ["podman", "container", "restore", "--import", on_target], config),
            ),
        ]
        for step, argv in steps:
            if not move.add(step, measured(argv, timeout=900)):
                break
            if step == "checkpoint":
                move.archive_bytes = os.path.getsize(on_source)
    finally:
        lab.remove_files(on_source, here, on_target)
    return move


def move_with_tool(
    lab: Lab,
    name: str,
    args: Sequence[str],
    config: Path,
    target: str = TARGET,
    source: str = SOURCE,
) -> Move:
    argv = [str(CLI), "migrate", "-F", str(config), "--json", *args, source, target, name]
    result = measured(argv, timeout=1800, env=lab.tool_env)
    move = Move(ok=True, exit_code=result.returncode)
    move.add("celestial-ssh migrate", result)
    with contextlib.suppress(ValueError):
        document = json.loads(result.stdout)
        if isinstance(document, dict):
            move.report = document
            move.archive_bytes = document.get("archive_bytes")
            if document.get("status") not in (None, "succeeded"):
                move.ok = False
                move.error = short_error(f"{document.get('outcome')}: {document.get('error')}")
    if result.ok and move.report is None:
        move.ok = False
        move.error = f"no JSON report on stdout: {result.stdout[-300:]!r}"
    return move


# -- one run of one mode ----------------------------------------------------------------------


def run_once(
    lab: Lab,
    mode: Mode,
    *,
    image: str,
    size_mb: int,
    run: int,
    config: Path = LAB_CONFIG,
    target: str = TARGET,
    source: str = SOURCE,
    fill: str = "random",
    extra_args: Sequence[str] = (),
) -> dict[str, Any]:
    waited = wait_for_quiet_lab()
    name = lab.new_name(size_mb, mode.label, f"r{run}")
    record: dict[str, Any] = {
        "run": run,
        "size_mb": size_mb,
        "mode": mode.label,
        "kind": mode.kind,
        "args": [*mode.args, *extra_args],
        "fill": fill,
        "container": name,
        "waited_for_e2e_s": round(waited, 1),
    }
    phase_started = time.monotonic()
    try:
        start_workload(lab, name, image, size_mb, fill)
        source_log = container_log(SOURCE, name)
        record["started_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        move_started_ms = int(time.time() * 1000)
        clock = time.monotonic()
        if mode.kind == "floor":
            move = move_floor(lab, name, config)
        elif mode.kind == "hand-made":
            move = move_by_hand(lab, name, config)
        else:
            move = move_with_tool(lab, name, [*mode.args, *extra_args], config, target, source)
        total = time.monotonic() - clock
        move_ended_ms = int(time.time() * 1000)
        record.update(
            ok=move.ok,
            error=move.error,
            total_s=round(total, 3),
            steps=move.steps,
            cpu_s=round(move.cpu_s, 3),
            peak_rss_kib=move.maxrss_kib,
            archive_bytes=move.archive_bytes,
            exit_code=move.exit_code,
        )
        if move.report is not None:
            report = move.report
            record.update(
                tool_downtime_s=report.get("downtime_s"),
                tool_total_s=report.get("total_s"),
                timings=report.get("timings"),
                compression=report.get("compression"),
                compression_choice=report.get("compression_choice"),
                transport=report.get("transport"),
                warnings=report.get("warnings"),
                bytes_transferred=report.get("bytes_transferred"),
                image_staged=report.get("image_staged"),
                outcome=report.get("outcome"),
                report=report,
            )
        if move.ok:
            # the slow alias is the same podman as lab-b: read the log over the fast path
            view, log_source = workload_view(
                name,
                target=TARGET,
                move_started_ms=move_started_ms,
                move_ended_ms=move_ended_ms,
                source_log=source_log,
            )
            record.update(
                downtime_s=view.downtime_s, log_source=log_source, workload=view.to_dict()
            )
            if not view.state_ok:
                record.update(ok=False, error=f"workload state: {view.problem}")
    except Exception as error:
        record.update(ok=False, error=f"{type(error).__name__}: {error}")
    finally:
        with contextlib.suppress(Exception):
            lab.remove_container(name)
    record["run_wall_s"] = round(time.monotonic() - phase_started, 2)
    return record


def describe(record: dict[str, Any]) -> str:
    head = f"run {record['run']} {record['size_mb']:>5} MB {record['mode']:<20}"
    if not record.get("ok"):
        return f"{head} FAILED: {record.get('error')}"
    text = f"{head} downtime {record['downtime_s']:6.2f} s  total {record['total_s']:6.2f} s"
    if record.get("tool_downtime_s") is not None:
        text += f"  (tool says downtime {record['tool_downtime_s']:.2f} s)"
    return text + f"  cpu {record['cpu_s']:.2f} s  rss {record['peak_rss_kib'] / 1024:.0f} MiB"


# -- what the installed CLI accepts -----------------------------------------------------------


def help_text(*command: str) -> str | None:
    result = subprocess.run(
        [str(CLI), *command, "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    return result.stdout if result.returncode == 0 else None


def unsupported(args: Sequence[str], help_out: str) -> str | None:
    """Why the CLI whose ``--help`` printed ``help_out`` would refuse ``args``, or None."""
    for index, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        if not re.search(rf"(?<![\w-]){re.escape(arg)}(?![\w-])", help_out):
            return f"the installed CLI has no {arg}"
        choices = re.search(rf"{re.escape(arg)}\s+\[([^\]]+)\]", help_out)
        if choices and index + 1 < len(args) and not args[index + 1].startswith("--"):
            allowed = choices.group(1).split("|")
            if args[index + 1] not in allowed:
                return f"the installed CLI's {arg} takes {'|'.join(allowed)}, not {args[index + 1]}"
    return None


# -- data plane -------------------------------------------------------------------------------


def measure_pipeline(shell: str, count: int, runs: int) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        wait_for_quiet_lab()
        result = measured(["sh", "-c", shell], timeout=600)
        samples.append(
            {
                "ok": result.ok,
                "seconds": round(result.wall_s, 3),
                "bytes_per_s": round(count / result.wall_s) if result.ok else None,
                "cpu_s": round(result.cpu_s, 3),
                "error": None if result.ok else result.stderr.strip()[-300:],
            }
        )
    return summarise_rates(samples)


def summarise_rates(samples: list[dict[str, Any]]) -> dict[str, Any]:
    good = [s for s in samples if s["ok"]]
    return {
        "runs": samples,
        "median_s": median([s["seconds"] for s in good]),
        "median_bytes_per_s": median([s["bytes_per_s"] for s in good]),
        "median_cpu_s": median([s["cpu_s"] for s in good]),
    }


def data_plane(count: int, runs: int, config: Path, env: dict[str, str] | None) -> dict[str, Any]:
    cfg = shlex.quote(str(config))
    section: dict[str, Any] = {"bytes": count, "notes": []}
    log(f"data plane: plain OpenSSH, {size_text(count)}, {runs} runs each")
    section["openssh_push"] = {
        "what": f"head -c {count} /dev/zero | ssh {TARGET} 'cat >/dev/null' (here -> {TARGET})",
        **measure_pipeline(
            f"head -c {count} /dev/zero | ssh -F {cfg} {TARGET} 'cat >/dev/null'", count, runs
        ),
    }
    section["openssh_relay"] = {
        "what": f"ssh {SOURCE} 'head -c N /dev/zero' | ssh {TARGET} 'cat >/dev/null' "
        f"({SOURCE} -> here -> {TARGET}, the path of a relayed migration)",
        **measure_pipeline(
            f"ssh -F {cfg} {SOURCE} 'head -c {count} /dev/zero' | "
            f"ssh -F {cfg} {TARGET} 'cat >/dev/null'",
            count,
            runs,
        ),
    }
    connects = []
    for _ in range(runs):
        result = measured(ssh_argv(TARGET, ["true"], config), timeout=60)
        if result.ok:
            connects.append(result.wall_s)
    section["ssh_connect_s"] = median(connects)
    if section["ssh_connect_s"] is not None:
        section["notes"].append(
            f"an ssh connection's set-up (`ssh {TARGET} true`) takes "
            f"{section['ssh_connect_s']:.2f} s here; *w/o connect* takes it off the OpenSSH rows"
        )
    baseline = section["openssh_push"]["median_bytes_per_s"]
    probe_help = help_text("probe")
    section["probe"] = []
    if probe_help is None:
        section["notes"].append("celestial-ssh has no `probe` command: tool data plane skipped")
        return section
    for row in PROBES:
        why = unsupported(row.args, probe_help)
        if why:
            section["notes"].append(f"{row.label} skipped: {why}")
            continue
        log(f"data plane: {row.label}")
        samples = []
        for _ in range(runs):
            wait_for_quiet_lab()
            argv = [str(CLI), "probe", "-F", str(config), "--json", "--bytes", str(count)]
            result = measured([*argv, *row.args, SOURCE, TARGET], timeout=600, env=env)
            sample: dict[str, Any] = {
                "ok": False,
                "seconds": None,
                "bytes_per_s": None,
                "cpu_s": round(result.cpu_s, 3),
                "peak_rss_kib": result.maxrss_kib,
                "error": None,
            }
            try:
                document = json.loads(result.stdout)
                sample.update(
                    ok=result.ok,
                    seconds=document["seconds"],
                    bytes_per_s=document["bytes_per_s"],
                    report=document,
                )
            except (ValueError, KeyError, TypeError):
                sample["error"] = (result.stderr or result.stdout).strip()[-300:]
            samples.append(sample)
        summary = summarise_rates(samples)
        rate = summary["median_bytes_per_s"]
        section["probe"].append(
            {
                "label": row.label,
                "args": list(row.args),
                **summary,
                "ratio_to_openssh": round(rate / baseline, 3) if rate and baseline else None,
            }
        )
    return section


# -- slow links -------------------------------------------------------------------------------


def ssh_options_of(host: str, config: Path) -> dict[str, list[str]]:
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True
    ).stdout
    options: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        options.setdefault(key.lower(), []).append(value)
    return options


def sshd_address(host: str) -> tuple[str, int]:
    """Where ``host``'s sshd listens, as the lab's ssh_config says."""
    options = ssh_options_of(host, LAB_CONFIG)
    return options["hostname"][0], int(options["port"][0])


def known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def write_proxied_config(directory: Path, proxied: dict[str, tuple[str, tuple[str, int]]]) -> Path:
    """An ssh_config with an alias per proxy: ``alias -> (lab host, proxy address)``, each
    with its lab host's user, key and host key but the proxy's address.

    The host's known_hosts line is copied under the proxy's address, so strict host-key
    checking holds without HostKeyAlias (which the tool may not honour).
    """
    lines: list[str] = []
    body: list[str] = []
    for alias, (host, listen) in proxied.items():
        options = ssh_options_of(host, LAB_CONFIG)
        real = known_host_name(options["hostname"][0], int(options["port"][0]))
        copied = []
        for path in " ".join(options.get("userknownhostsfile", [])).split():
            with contextlib.suppress(FileNotFoundError):
                for line in Path(os.path.expanduser(path)).read_text().splitlines():
                    names, _, rest = line.partition(" ")
                    if real in names.split(","):
                        copied.append(f"{known_host_name(*listen)} {rest}")
        if not copied:
            raise RuntimeError(f"no known_hosts line for {real} to copy for {alias}")
        lines += copied
        body += [
            f"Host {alias}",
            f"    HostName {listen[0]}",
            f"    Port {listen[1]}",
            f"    User {options['user'][0]}",
            *(f"    IdentityFile {path}" for path in options.get("identityfile", [])),
            f"    IdentitiesOnly {options.get('identitiesonly', ['no'])[0]}",
            f"    UserKnownHostsFile {directory / 'known_hosts'}",
            "    StrictHostKeyChecking yes",
            "    BatchMode yes",
            "",
        ]
    (directory / "known_hosts").write_text("\n".join(lines) + "\n")
    config = directory / "ssh_config"
    config.write_text("\n".join([*body, "Host *", f"    Include {LAB_CONFIG}", ""]))
    return config


def free_loopback(port: int) -> tuple[str, int]:
    for last in range(14, 60):
        address = f"127.0.0.{last}"
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return address, port
    raise RuntimeError(f"no free loopback address for port {port} in 127.0.0.14-59")


@contextlib.contextmanager
def throttled(
    listen: tuple[str, int],
    upstream: tuple[str, int],
    rate: str | None = None,
    delay: str | None = None,
) -> Iterator[None]:
    """Run bench/throttle.py as a child; stop it by its PID."""
    argv = [sys.executable, str(BENCH / "throttle.py"), "--listen", f"{listen[0]}:{listen[1]}"]
    argv += ["--connect", f"{upstream[0]}:{upstream[1]}"]
    argv += ["--rate", rate] if rate else []
    argv += ["--delay", delay] if delay else []
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 10)
        line = process.stdout.readline() if ready else ""
        if not line.startswith("listening"):
            raise RuntimeError(f"throttle did not start: {line!r} (exit {process.poll()})")
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def slow_links(
    lab: Lab, image: str, rates: Sequence[str], size_mb: int, migrate_help: str
) -> dict[str, Any]:
    section: dict[str, Any] = {"size_mb": size_mb, "runs": [], "notes": []}
    compressions = []
    for compression in SLOW_COMPRESSIONS:
        why = unsupported(("--compress", compression), migrate_help)
        if why:
            section["notes"].append(f"--compress {compression} skipped: {why}")
        else:
            compressions.append(compression)
    upstream = sshd_address(TARGET)
    with tempfile.TemporaryDirectory(prefix="bench-slow-", dir="/var/tmp") as scratch:
        listen = free_loopback(upstream[1])
        config = write_proxied_config(Path(scratch), {SLOW_TARGET: (TARGET, listen)})
        section["proxy"] = f"{listen[0]}:{listen[1]} -> {upstream[0]}:{upstream[1]}"
        for rate in rates:
            with throttled(listen, upstream, rate):
                check = subprocess.run(
                    ssh_argv(SLOW_TARGET, ["true"], config), capture_output=True, text=True
                )
                if check.returncode != 0:
                    raise RuntimeError(f"ssh {SLOW_TARGET} failed: {check.stderr.strip()}")
                for fill in SLOW_FILLS:
                    for compression in compressions:
                        mode = Mode(f"slow-{rate}-{fill}-{compression}", "tool")
                        log(f"slow link {rate}: {size_mb} MiB {fill}, --compress {compression}")
                        record = run_once(
                            lab,
                            mode,
                            image=image,
                            size_mb=size_mb,
                            run=0,
                            config=config,
                            target=SLOW_TARGET,
                            fill=fill,
                            extra_args=("--compress", compression),
                        )
                        record.update(rate=rate, requested_compression=compression)
                        section["runs"].append(record)
                        log(describe(record))
    return section


def runnable_modes(modes: Sequence[Mode], migrate_help: str) -> tuple[list[Mode], dict[str, str]]:
    """The modes the installed CLI takes, and why each other one is skipped (by label)."""
    kept: list[Mode] = []
    skipped: dict[str, str] = {}
    for mode in modes:
        why = unsupported(mode.args, migrate_help) if mode.kind == "tool" else None
        if why:
            skipped[mode.label] = why
        else:
            kept.append(mode)
    return kept, skipped


def distant_coordinator(
    lab: Lab, image: str, delay: str, runs: int, size_mb: int, migrate_help: str
) -> dict[str, Any]:
    """Both hosts behind bench/throttle.py --delay (the coordinator far from them, the hosts
    near each other): what the remote commands' round trips add to a migration."""
    section: dict[str, Any] = {"delay": delay, "size_mb": size_mb, "runs": [], "notes": []}
    modes, skipped = runnable_modes(DISTANT_MODES, migrate_help)
    section["notes"] += [f"{label} skipped: {why}" for label, why in skipped.items()]
    upstreams = {host: sshd_address(host) for host in (SOURCE, TARGET)}
    with (
        contextlib.ExitStack() as proxies,
        tempfile.TemporaryDirectory(prefix="bench-far-", dir="/var/tmp") as scratch,
    ):
        proxied = {}
        for alias, host in ((FAR_SOURCE, SOURCE), (FAR_TARGET, TARGET)):
            listen = free_loopback(upstreams[host][1])  # free: the proxies before are bound
            proxies.enter_context(throttled(listen, upstreams[host], delay=delay))
            proxied[alias] = (host, listen)
        section["proxies"] = {
            alias: f"{listen[0]}:{listen[1]} -> {host}" for alias, (host, listen) in proxied.items()
        }
        config = write_proxied_config(Path(scratch), proxied)
        for run in range(runs):
            for mode in modes[run % len(modes) :] + modes[: run % len(modes)]:
                log(f"distant coordinator ({delay} each way): {size_mb} MiB, {mode.text}")
                record = run_once(
                    lab,
                    mode,
                    image=image,
                    size_mb=size_mb,
                    run=run,
                    config=config,
                    source=FAR_SOURCE,
                    target=FAR_TARGET,
                )
                record["delay"] = delay
                section["runs"].append(record)
                log(describe(record))
    section["summary"] = distant_summary(section["runs"], modes)
    return section


def distant_summary(runs: Sequence[dict[str, Any]], modes: Sequence[Mode]) -> list[dict[str, Any]]:
    """Per mode, the medians of the runs that succeeded."""
    rows = []
    for mode in modes:
        head, good = mode_row(mode, [r for r in runs if r["mode"] == mode.label])
        row: dict[str, Any] = {
            **head,
            "total_s": median([r.get("total_s") for r in good]),
            "downtime_s": median([r.get("downtime_s") for r in good]),
        }
        for step in DISTANT_STEPS:
            row[f"{step}_s"] = median([(r.get("timings") or {}).get(step) for r in good])
        rows.append(row)
    return rows


def distant_table(section: dict[str, Any], markdown: bool) -> str:
    rows = [
        [
            row["command"],
            f"{row['runs'] - row['failures']}/{row['runs']}",
            fmt(row["total_s"]),
            *(fmt(row[f"{step}_s"]) for step in DISTANT_STEPS),
            fmt(row["downtime_s"]),
        ]
        for row in section["summary"]
    ]
    headers = ["mode", "ok", "total s", *(f"{step} s" for step in DISTANT_STEPS), "downtime s"]
    return render(headers, rows, markdown, left=1)


# -- summaries and output ---------------------------------------------------------------------


def median(values: Sequence[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def mode_row(
    mode: Mode, mine: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The columns every summary row of ``mode`` starts with, and its runs that succeeded."""
    good = [r for r in mine if r.get("ok")]
    head = {
        "mode": mode.label,
        "command": mode.text,
        "runs": len(mine),
        "failures": len(mine) - len(good),
    }
    return head, good


def summarise(
    runs: list[dict[str, Any]], modes: Sequence[Mode], sizes: Sequence[int]
) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        medians: dict[str, float | None] = {}
        size_rows = []
        for mode in modes:
            mine = [r for r in runs if r["size_mb"] == size and r["mode"] == mode.label]
            if not mine:
                continue
            head, good = mode_row(mode, mine)
            row: dict[str, Any] = {
                "size_mb": size,
                **head,
                "downtime_s": median([r.get("downtime_s") for r in good]),
                "tool_downtime_s": median([r.get("tool_downtime_s") for r in good]),
                "total_s": median([r.get("total_s") for r in good]),
                "cpu_s": median([r.get("cpu_s") for r in good]),
                "peak_rss_mib": median([r.get("peak_rss_kib", 0) / 1024 for r in good]),
                "chosen": ", ".join(
                    sorted({f"{r.get('transport')}/{r.get('compression')}" for r in good})
                )
                if mode.kind == "tool"
                else None,
                "archive_mb": median([(r.get("archive_bytes") or 0) / MB for r in good]) or None,
                "wall_s_all_runs": round(sum(r.get("run_wall_s", 0) for r in mine), 1),
            }
            medians[mode.label] = row["downtime_s"]
            size_rows.append(row)
        for row in size_rows:
            for ref, key in (("floor", "vs_floor"), ("hand-made", "vs_hand_made")):
                base = medians.get(ref)
                row[key] = (
                    round(row["downtime_s"] / base, 2) if row["downtime_s"] and base else None
                )
        rows.extend(size_rows)
    return rows


def all_notes(document: dict[str, Any]) -> list[str]:
    """Skipped modes, the tool's warnings (once per mode), and every failed run."""
    notes = [f"{label}: {note}" for label, note in document["notes"].items()]
    seen: set[tuple[str, str]] = set()
    for record in document["runs"]:
        for warning in record.get("warnings") or []:
            text = str(warning).replace(record["container"], "CONTAINER")
            if (record["mode"], text) not in seen:
                seen.add((record["mode"], text))
                notes.append(f"{record['mode']}: the tool warned: {text}")
    notes += failure_notes(document["runs"])
    return notes


def failure_notes(runs: Sequence[dict[str, Any]]) -> list[str]:
    notes = []
    for record in runs:
        if not record.get("ok"):
            notes.append(
                f"{record['mode']}, {record['size_mb']} MB, run {record['run']} failed: "
                f"{record.get('error')}"
            )
    return notes


def size_text(count: int) -> str:
    if count % 2**20 == 0:
        return f"{count // 2**20} MiB ({count / MB:.0f} MB)"
    return f"{count / MB:.0f} MB"


def fmt(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    return f"{value}{suffix}"


def render(
    headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool, left: int = 2
) -> str:
    """A markdown table, or a plain one whose first ``left`` columns are text."""
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    for row in rows:
        out.append(
            "  ".join(
                c.rjust(w) if i >= left else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)


def main_table(summary: list[dict[str, Any]], markdown: bool) -> str:
    headers = [
        "size",
        "mode",
        "downtime s",
        "tool says s",
        "total s",
        "÷ floor",
        "÷ hand-made",
        "transport/compr.",
        "coord. CPU s",
        "peak RSS MB",
        "archive MB",
        "runs",
        "failed",
    ]
    rows = [
        [
            f"{row['size_mb']} MB",
            f"`{row['command']}`" if markdown and row["command"] != row["mode"] else row["mode"],
            fmt(row["downtime_s"]),
            fmt(row["tool_downtime_s"]),
            fmt(row["total_s"]),
            fmt(row["vs_floor"], suffix="x"),
            fmt(row["vs_hand_made"], suffix="x"),
            row["chosen"] or "-",
            fmt(row["cpu_s"]),
            fmt(row["peak_rss_mib"], 0),
            fmt(row["archive_mb"], 0),
            str(row["runs"]),
            str(row["failures"]),
        ]
        for row in summary
    ]
    return render(headers, rows, markdown)


def throughput_table(section: dict[str, Any], markdown: bool) -> str:
    base = section["openssh_push"]["median_bytes_per_s"]
    connect = section.get("ssh_connect_s") or 0.0
    rows = []
    for key, label in (
        ("openssh_push", "OpenSSH here -> lab-b"),
        ("openssh_relay", "OpenSSH lab-a -> here -> lab-b"),
    ):
        item = section[key]
        rate = item["median_bytes_per_s"]
        rows.append(
            [
                label,
                fmt(rate and rate / MB, 0),
                fmt(net_rate(section["bytes"], item["median_s"], connect), 0),
                fmt(item["median_s"]),
                fmt(item["median_cpu_s"]),
                fmt(rate / base if rate and base else None, 2, "x"),
            ]
        )
    for item in section.get("probe", []):
        rate = item["median_bytes_per_s"]
        rows.append(
            [
                item["label"] + (" " + " ".join(item["args"]) if item["args"] else ""),
                fmt(rate and rate / MB, 0),
                "-",
                fmt(item["median_s"]),
                fmt(item["median_cpu_s"]),
                fmt(item["ratio_to_openssh"], 2, "x"),
            ]
        )
    headers = ["path", "MB/s", "MB/s w/o connect", "seconds", "CPU s here", "÷ OpenSSH"]
    return render(headers, rows, markdown, left=1)


def net_rate(count: int, seconds: float | None, connect_s: float) -> float | None:
    """MB/s once the ssh connection is up (its set-up, `ssh host true`, taken off)."""
    if not seconds or seconds <= connect_s:
        return None
    return count / (seconds - connect_s) / MB


def slow_table(section: dict[str, Any], markdown: bool) -> str:
    rows = []
    for record in section["runs"]:
        rows.append(
            [
                record["rate"],
                record["fill"],
                record["requested_compression"],
                record.get("compression") or "-",
                fmt(record.get("downtime_s")),
                fmt(record.get("tool_downtime_s")),
                fmt(record.get("total_s")),
                fmt((record.get("archive_bytes") or 0) / MB or None, 1),
                "ok" if record.get("ok") else "FAILED (see below)",
            ]
        )
    headers = [
        "link",
        "memory",
        "--compress",
        "chosen",
        "downtime s",
        "tool says s",
        "total s",
        "archive MB",
        "result",
    ]
    return render(headers, rows, markdown, left=3)


def machine() -> dict[str, Any]:
    def first_line(argv: list[str], stderr: bool = False) -> str | None:
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        except OSError:
            return None
        text = (result.stderr if stderr else result.stdout).strip()
        return text.splitlines()[0] if text else None

    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.partition(":")[2].strip()
                break
    memory_kib = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    versions: dict[str, Any] = {}
    for host in (SOURCE, TARGET):
        versions[host] = {
            "podman": first_line(ssh_argv(host, ["podman", "--version"], LAB_CONFIG)),
            "criu": first_line(ssh_argv(host, ["criu", "--version"], LAB_CONFIG)),
            "ssh": first_line(ssh_argv(host, ["ssh", "-V"], LAB_CONFIG), stderr=True),
        }
    paramiko_version = None
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        paramiko_version = version("paramiko")
    commit = first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = first_line(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "kernel": os.uname().release,
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / 2**20, 1) if memory_kib else None,
        "os": first_line(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "paramiko": paramiko_version,
        "openssh_client": first_line(["ssh", "-V"], stderr=True),
        "hosts": versions,
        "celestial_ssh": (first_line([str(CLI), "--version"]) or "?").rpartition(" ")[2],
        "git_commit": (commit or "?") + ("-dirty" if dirty else ""),
    }


def machine_line(info: dict[str, Any]) -> str:
    host = info["hosts"][SOURCE]
    criu = (host["criu"] or "?").removeprefix("Version: ")
    return (
        f"{info['date']}, {info['cpu_model']} ({info['cores']} cores), {info['memory_gib']} GiB, "
        f"kernel {info['kernel']}, {host['podman']}, CRIU {criu}, "
        f"{info['openssh_client']}, celestial-ssh {info['celestial_ssh']} ({info['git_commit']})"
    )


def markdown_report(document: dict[str, Any]) -> str:
    opts = document["options"]
    parts = [
        "# celestial-ssh benchmark",
        "",
        f"{machine_line(document['machine'])}.",
        "",
        f"Workloads: memtick with {', '.join(str(s) for s in opts['sizes'])} MiB of random memory, "
        f"a tick every {INTERVAL_MS} ms; lab-a -> lab-b on the local lab (two sshd on loopback, "
        f"one machine). Median of {opts['runs']} run(s) per cell, modes interleaved. "
        "*downtime* is the largest gap between two ticks the workload printed (±10 ms); "
        "*total* the wall clock of the whole move; *÷ floor* / *÷ hand-made* compare downtimes; "
        "*coord. CPU* and *peak RSS* are this machine's (the CLI, or ssh/scp for the baselines, "
        "with their children; RSS is the largest single process).",
        "",
        main_table(document["summary"], markdown=True),
    ]
    parts += [f"\n- {note}" for note in all_notes(document)]
    if document.get("throughput"):
        section = document["throughput"]
        parts += [
            "",
            f"## Data plane ({size_text(section['bytes'])}, median of {opts['runs_throughput']})",
            "",
        ]
        parts.append(throughput_table(section, markdown=True))
        parts += [f"\n- {note}" for note in section["notes"]]
    if document.get("slow_links"):
        section = document["slow_links"]
        parts += [
            "",
            f"## Slow links ({section['size_mb']} MiB workload, one run each, user-space throttle)",
            "",
        ]
        parts.append(slow_table(section, markdown=True))
        parts += [f"\n- {note}" for note in section["notes"] + failure_notes(section["runs"])]
    if document.get("distant"):
        section = document["distant"]
        parts += [
            "",
            f"## Distant coordinator ({section['delay']} each way to each host, "
            f"{section['size_mb']} MiB workload, medians)",
            "",
        ]
        parts.append(distant_table(section, markdown=True))
        parts += [f"\n- {note}" for note in section["notes"] + failure_notes(section["runs"])]
    return "\n".join(parts) + "\n"


def write_results(document: dict[str, Any], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = json.dumps(document, indent=2, sort_keys=False) + "\n"
    paths = [directory / "latest.json", directory / f"bench-{stamp}.json", directory / "latest.md"]
    paths[0].write_text(text)
    paths[1].write_text(text)
    paths[2].write_text(markdown_report(document))
    return paths


# -- rusage self-check ------------------------------------------------------------------------


def check_rusage() -> int:
    """Show what wait4's rusage covers: waited descendants yes (max RSS, summed CPU), orphans no."""
    burn = (
        "import time\nb = bytearray(200 * 1024 * 1024)\nt = time.process_time()\n"
        "while time.process_time() - t < 0.5:\n    pass\n"
    )
    py = sys.executable
    nested = f"{shlex.quote(py)} -c {shlex.quote(burn)}"
    cases = {
        "child runs a grandchild and waits for it": [
            py,
            "-c",
            f"import subprocess; subprocess.run([{py!r}, '-c', {burn!r}])",
        ],
        "child -> sh -> python great-grandchild": [
            py,
            "-c",
            f"import subprocess; subprocess.run(['sh', '-c', {nested!r}])",
        ],
        "grandchild still running when the child exits": [
            py,
            "-c",
            f"import subprocess; p = subprocess.Popen([{py!r}, '-c', {burn!r}]); p.returncode = 0",
        ],
    }
    for label, argv in cases.items():
        result = measured(argv, timeout=60)
        print(
            f"{label:<48} wall {result.wall_s:5.2f} s  cpu {result.cpu_s:5.2f} s  "
            f"maxrss {result.maxrss_kib / 1024:5.0f} MiB"
        )
    print("(each grandchild burns 0.5 s of CPU in 200 MiB; counted only when waited for)")
    time.sleep(1)
    return 0


# -- main -------------------------------------------------------------------------------------


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
        default="25ms",
        help="one-way delay between this machine and each host (default 25ms)",
    )
    parser.add_argument(
        "--distant-runs", type=int, default=3, help="distant-coordinator runs per mode (default 3)"
    )
    parser.add_argument(
        "--distant-size", type=int, default=16, help="distant workload in MiB (default 16)"
    )
    parser.add_argument("--results", type=Path, default=BENCH / "results", help="output directory")
    parser.add_argument(
        "--check-rusage", action="store_true", help="show what wait4's rusage counts, then exit"
    )
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.slow_links = [s.strip() for s in args.slow_links.split(",") if s.strip()]
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
    unknown = [label for label in wanted if label not in known]
    if unknown:
        log(f"unknown mode(s) {', '.join(unknown)}; known: {', '.join(known)}")
        return 2
    modes, skipped = runnable_modes([known[label] for label in wanted], migrate_help)
    notes = {label: f"skipped: {why}" for label, why in skipped.items()}
    for label, why in skipped.items():
        log(f"mode {label} skipped: {why}")
    started = time.monotonic()
    document: dict[str, Any] = {
        "schema": 1,
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
                "runs": args.distant_runs,
                "size_mb": args.distant_size,
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
            lab, image, args.distant_delay, args.distant_runs, args.distant_size, migrate_help
        )


def print_report(document: dict[str, Any], paths: Sequence[Path]) -> None:
    opts = document["options"]
    print(f"\ncelestial-ssh benchmark: {machine_line(document['machine'])}\n")
    print(main_table(document["summary"], markdown=False))
    for note in all_notes(document):
        print(f"  {note}")
    if document["throughput"]:
        print(f"\nData plane, {size_text(document['throughput']['bytes'])}:")
        print(throughput_table(document["throughput"], markdown=False))
        for note in document["throughput"]["notes"]:
            print(f"  {note}")
    if document["slow_links"]:
        print(f"\nSlow links, {opts['slow_size_mb']} MiB:")
        print(slow_table(document["slow_links"], markdown=False))
        section = document["slow_links"]
        for note in section["notes"] + failure_notes(section["runs"]):
            print(f"  {note}")
    if document.get("distant"):
        section = document["distant"]
        print(f"\nDistant coordinator, {section['delay']} each way, {section['size_mb']} MiB:")
        print(distant_table(section, markdown=False))
        for note in section["notes"] + failure_notes(section["runs"]):
            print(f"  {note}")
    print(
        f"\nwall clock per size (all runs, with workload start and clean-up, s): "
        f"{document['size_wall_s']}; whole benchmark {document['duration_s']:.0f} s"
    )
    shown = [str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p) for p in paths]
    print("results: " + ", ".join(shown))


if __name__ == "__main__":
    sys.exit(main())
