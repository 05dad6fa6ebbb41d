"""Running a command and reaping it with wait4, to know what it cost on this machine."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .settings import INTERRUPT_GRACE_S, SCRATCH, log


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
