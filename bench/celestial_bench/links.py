"""Migrations through bench/throttle.py: slow links and a distant coordinator."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .lab import Lab, ssh_argv, ssh_options_of, sshd_address
from .runs import describe, run_once, runnable_modes, unsupported
from .settings import (
    BENCH,
    DISTANT_MODES,
    FAR_SOURCE,
    FAR_TARGET,
    LAB_CONFIG,
    SLOW_COMPRESSIONS,
    SLOW_FILLS,
    SLOW_TARGET,
    SOURCE,
    TARGET,
    Mode,
    log,
)
from .summary import distant_summary, shown_steps


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


@dataclass(frozen=True)
class Link:
    """The coordinator's link to each host: a rate each way (None: not limited) and a
    one-way delay, as bench/throttle.py takes them."""

    rate: str | None
    delay: str

    @property
    def text(self) -> str:
        return f"{self.rate} and {self.delay} each way" if self.rate else f"{self.delay} each way"


def distant_coordinator(
    lab: Lab, image: str, link: Link, runs: int, sizes: Sequence[int], migrate_help: str
) -> dict[str, Any]:
    """Both hosts behind bench/throttle.py (the coordinator far from them behind a slow link,
    the hosts near each other): what round trips and the coordinator's own link cost a
    migration, and whether the default data path avoids that link."""
    section: dict[str, Any] = {
        "delay": link.delay,
        "rate": link.rate,
        "link": link.text,
        "sizes": list(sizes),
        "runs": [],
        "notes": [],
    }
    modes, notes = runnable_modes(DISTANT_MODES, migrate_help)
    section["notes"] += [f"{label}: {note}" for label, note in notes.items()]
    upstreams = {host: sshd_address(host) for host in (SOURCE, TARGET)}
    with (
        contextlib.ExitStack() as proxies,
        tempfile.TemporaryDirectory(prefix="bench-far-", dir="/var/tmp") as scratch,
    ):
        proxied = {}
        for alias, host in ((FAR_SOURCE, SOURCE), (FAR_TARGET, TARGET)):
            listen = free_loopback(upstreams[host][1])  # free: the proxies before are bound
            # each proxy has a bucket per direction: a relayed archive comes down the source's
            # and goes up the target's, the two directions of one link of this rate
            proxies.enter_context(throttled(listen, upstreams[host], link.rate, link.delay))
            proxied[alias] = (host, listen)
        section["proxies"] = {
            alias: f"{listen[0]}:{listen[1]} -> {host}" for alias, (host, listen) in proxied.items()
        }
        config = write_proxied_config(Path(scratch), proxied)
        for run in range(runs):
            for index, size_mb in enumerate(sizes):
                shift = (run + index) % len(modes)
                for mode in [*modes[shift:], *modes[:shift]]:
                    log(f"distant coordinator ({link.text}): {size_mb} MiB, {mode.text}")
                    # the floor is one shell on lab-a (the lab's own alias, not the proxy's)
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
                    record.update(delay=link.delay, rate=link.rate)
                    section["runs"].append(record)
                    log(describe(record))
    section["summary"] = distant_summary(section["runs"], modes, sizes)
    section["steps"] = shown_steps(section["runs"])
    return section
