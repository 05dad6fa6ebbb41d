"""``doctor``: is a host ready to send or receive live migrations?

:func:`check_host` runs a fixed list of read-only checks on one host and returns a
:class:`HostReport`; :func:`doctor` does that for several hosts at once. Nothing is ever
raised for a host that is down or broken: each problem is a failing :class:`Check` with the
fix in words, so one report covers a whole fleet.

Levels: ``error`` checks decide :attr:`HostReport.ok` (migrations will fail without them);
``warning`` and ``info`` checks describe optional features (pre-copy, lazy pages) and
resources, and never make a host fail.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from . import commands, doctor_commands, tls_link
from .connection import ConnectionSettings, connection_settings, find_privileges
from .errors import CelestialError, ConnectionFailed
from .podman_json import parse_criu_version, version_tuple
from .readiness_parsers import (
    parse_cpuinfo_summary,
    parse_df,
    parse_kernel_version,
    parse_meminfo,
    parse_oci_runtime,
    parse_podman_version,
    tail_of,
)
from .ssh import CommandResult, SSHSession
from .units import human_kib

Level = Literal["error", "warning", "info"]

# the oldest CRIU podman's checkpoint/restore works with (as the migration engine demands)
MINIMUM_CRIU = (3, 11)
# (kernel, CRIU it needs): README "Requirements on real hosts"
KERNEL_NEEDS_CRIU: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = (
    ((6, 16), (4, 2)),
    ((6, 13), (4, 1)),
)
CRIU_FIX = (
    "Install CRIU >= 4.2 on kernels >= 6.16 (>= 4.1 on kernels >= 6.13), on root's PATH "
    "(see README 'Requirements on real hosts'); check with: criu check"
)
PRE_COPY_UNAVAILABLE = (
    "iterative pre-copy unavailable: the kernel lacks soft-dirty tracking; "
    "migrations use stop-and-copy"
)
LAZY_PAGES_UNAVAILABLE = (
    "lazy-pages restore unavailable: the kernel lacks non-cooperative userfaultfd"
)
LOW_MEMORY_KIB = 512 * 1024
LOW_DISK_KIB = 1024 * 1024
# CPU flags worth comparing between hosts: a process restored on a CPU without an
# instruction set it started on may crash (glibc picks code paths at start-up)
NOTABLE_CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "avx512f",
    "aes",
    "sha_ni",
    "fma",
    "bmi2",
    "asimd",
    "sve",
    "sha2",
)


@dataclass(frozen=True)
class Check:
    """One line of a host report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    level: Level = "error"

    @property
    def failed(self) -> bool:
        """Not ok and a requirement (warnings and informational lines never fail a host)."""
        return not self.ok and self.level == "error"

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        return {"error": "FAIL", "warning": "warn", "info": "no"}[self.level]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "status": self.status,
            "level": self.level,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass
class HostReport:
    host: str
    checks: list[Check] = field(default_factory=list)
    reachable: bool = True
    # what the checks found, machine-readable: arch, kernel, criu_version, podman_version, ...
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reachable and not any(check.failed for check in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [check for check in self.checks if check.failed]

    def check(self, name: str) -> Check | None:
        return next((check for check in self.checks if check.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "ok": self.ok,
            "reachable": self.reachable,
            "checks": [check.to_dict() for check in self.checks],
            "facts": dict(self.facts),
        }


# -- the checks ------------------------------------------------------------------------
_STEP_CHECK_NAMES = {"runtime": "oci runtime"}


class _Checker:
    def __init__(self, session: SSHSession, report: HostReport, timeout: float):
        self.session = session
        self.report = report
        self.timeout = timeout

    def add(self, check: Check) -> None:
        self.report.checks.append(check)

    def run(self, argv: list[str], *, privileged: bool = True) -> CommandResult:
        return self.session.run(argv, timeout=self.timeout, privileged=privileged)

    def all(self) -> None:
        steps: list[Callable[[], bool]] = [
            self.privileges,
            self.podman,
            self.runtime,
            self.kernel,
            self.criu,
            self.tls,
            self.cpu,
            self.memory,
            self.disk,
            self.tmpfs,
            self.leftovers,
        ]
        for step in steps:
            try:
                if not step():
                    return
            except CelestialError as error:
                if not getattr(self.session, "is_connected", True):
                    self.report.reachable = False
                    self.add(
                        Check(
                            "ssh",
                            False,
                            f"the connection broke during the checks: {error.message}",
                            error.hint or "Check the host and the network, then run doctor again.",
                        )
                    )
                    return
                name = _STEP_CHECK_NAMES.get(step.__name__, step.__name__)
                self.add(Check(name, False, error.message, error.hint or ""))

    def privileges(self) -> bool:
        """Root, or ``sudo -n`` that works; the other checks need it (returns False if not)."""
        found = find_privileges(self.session, timeout=self.timeout)
        self.report.facts["privileges"] = found.how
        user = self.session.host.user
        if found.how == "root":
            self.add(Check("privileges", True, "logged in as root"))
            return True
        if found.how == "sudo":
            self.add(Check("privileges", True, f"{user} is not root; 'sudo -n' works"))
            return True
        said = tail_of(found.refusal, 1) if found.refusal else ""
        self.add(
            Check(
                "privileges",
                False,
                f"{user} is not root and 'sudo -n' does not work ({said or 'no output'})"
                "; the podman and CRIU checks were not run",
                "podman checkpoint/restore needs root: log in as root, or allow passwordless "
                f"sudo for {user!r} (celestial-ssh never types a sudo password).",
            )
        )
        return False

    def podman(self) -> bool:
        result = self.run(doctor_commands.podman_version())
        version = parse_podman_version(result.stdout) if result.ok else None
        self.report.facts["podman_version"] = version
        if result.exit_status == 127:
            self.add(
                Check(
                    "podman",
                    False,
                    "podman is not installed (or not on root's PATH)",
                    "Install podman on the host (e.g. apt-get install podman runc).",
                )
            )
            return True
        if version is None:
            self.add(
                Check(
                    "podman",
                    False,
                    f"'podman version' failed: {tail_of(result) or 'no output'}",
                    "Run 'podman info' on the host as root and fix what it reports.",
                )
            )
            return True
        self.add(Check("podman", True, f"podman {version}"))
        return True

    def runtime(self) -> bool:
        if self.report.facts.get("podman_version") is None:
            self.add(Check("oci runtime", False, "not checked: podman does not work", level="info"))
            return True
        result = self.run(commands.podman_info())
        runtime = parse_oci_runtime(result.stdout) if result.ok else None
        if runtime is None:
            self.report.facts["oci_runtime"] = None
            self.add(
                Check(
                    "oci runtime",
                    False,
                    f"'podman info' names no OCI runtime: {tail_of(result) or 'no output'}",
                    "Install runc or crun, and check 'podman info' on the host.",
                )
            )
            return True
        name, version = runtime
        self.report.facts["oci_runtime"] = {"name": name, "version": version}
        self.add(Check("oci runtime", True, f"{name} {version}".strip()))
        return True

    def kernel(self) -> bool:
        result = self.run(doctor_commands.kernel_release(), privileged=False)
        release = result.stdout.strip()
        self.report.facts["kernel"] = release or None
        if not result.ok or not release:
            self.add(Check("kernel", False, "'uname -r' failed", level="info"))
            return True
        self.add(Check("kernel", True, f"Linux {release}", level="info"))
        return True

    def _criu_needed(self) -> tuple[int, int] | None:
        kernel = parse_kernel_version(self.report.facts.get("kernel") or "")
        for minimum_kernel, needs in KERNEL_NEEDS_CRIU:
            if kernel[:2] >= minimum_kernel:
                return needs
        return None

    def criu(self) -> bool:
        result = self.run(commands.criu_version())
        version = parse_criu_version(result.stdout) if result.ok else None
        self.report.facts["criu_version"] = version
        features: dict[str, bool | None] = {"mem_dirty_track": None, "uffd-noncoop": None}
        self.report.facts["criu_features"] = features
        if version is None:
            self.add(
                Check(
                    "criu",
                    False,
                    "CRIU is not installed (or not on root's PATH)"
                    if result.exit_status == 127 or not result.ok
                    else f"cannot read the CRIU version from: {tail_of(result) or 'no output'}",
                    CRIU_FIX,
                )
            )
            self.add(Check("criu check", False, "not run: no CRIU", CRIU_FIX))
            self.add(Check("pre-copy", False, "not checked: no CRIU", level="info"))
            self.add(Check("lazy pages", False, "not checked: no CRIU", level="info"))
            return True
        needed = self._criu_needed()
        have = version_tuple(version)
        if have < MINIMUM_CRIU:
            self.add(Check("criu", False, f"CRIU {version} is too old for podman", CRIU_FIX))
        elif needed is not None and have[:2] < needed:
            self.add(
                Check(
                    "criu",
                    False,
                    f"CRIU {version} is too old for kernel {self.report.facts.get('kernel')} "
                    f"(needs >= {'.'.join(map(str, needed))})",
                    CRIU_FIX,
                )
            )
        else:
            self.add(Check("criu", True, f"CRIU {version}"))
        check = self.run(commands.criu_check())
        if check.ok:
            self.add(Check("criu check", True, (check.stdout.strip() or "passes")[:200]))
        else:
            self.add(
                Check(
                    "criu check",
                    False,
                    f"'criu check' fails with CRIU {version}: {tail_of(check) or 'no output'}",
                    "This kernel needs a newer CRIU: " + CRIU_FIX,
                )
            )
        dirty = self.run(doctor_commands.criu_feature(doctor_commands.FEATURE_MEM_DIRTY_TRACK))
        features["mem_dirty_track"] = dirty.ok
        if dirty.ok:
            self.add(
                Check(
                    "pre-copy",
                    True,
                    "iterative pre-copy available (soft-dirty tracking)",
                    level="warning",
                )
            )
        else:
            self.add(
                Check(
                    "pre-copy",
                    False,
                    PRE_COPY_UNAVAILABLE,
                    "Optional: a kernel built with CONFIG_MEM_SOFT_DIRTY=y enables it "
                    "(shorter freezes for large containers).",
                    level="warning",
                )
            )
        lazy = self.run(doctor_commands.criu_feature(doctor_commands.FEATURE_UFFD_NONCOOP))
        features["uffd-noncoop"] = lazy.ok
        lazy_detail = (
            "lazy-pages restore possible (non-cooperative userfaultfd)"
            if lazy.ok
            else LAZY_PAGES_UNAVAILABLE
        )
        self.add(Check("lazy pages", lazy.ok, lazy_detail, level="info"))
        return True

    def tls(self) -> bool:
        """Which program an end of the TLS link (``--data-path auto``, the default, and
        ``tls``) would run here, asked as the ends run (privileged: sudo's PATH may differ
        from the login's). Information only: without one, migrations relay."""
        found = self.run(tls_link.tls_tool())
        tool = tls_link.parse_tls_tool(found.stdout) if found.ok else None
        self.report.facts["tls_tool"] = tool
        if tool is not None:
            detail = f"{tool} found: the TLS link can stream to or from this host"
            self.add(Check("tls link", True, detail, level="info"))
            return True
        self.add(
            Check(
                "tls link",
                False,
                "neither python3 (3.6 or later, with ssl) nor socat: the TLS link cannot "
                "stream to or from this host; migrations relay through this machine",
                "Optional: install python3 or socat (e.g. apt-get install socat); "
                "'doctor --links' checks the link between hosts.",
                level="info",
            )
        )
        return True

    def cpu(self) -> bool:
        arch = self.run(commands.machine_arch(), privileged=False)
        summary = self.run(doctor_commands.cpu_summary(), privileged=False)
        machine = arch.stdout.strip() if arch.ok else ""
        cpu = parse_cpuinfo_summary(summary.stdout) if summary.ok else {}
        flags = cpu.get("flags") or []
        notable = [flag for flag in NOTABLE_CPU_FLAGS if flag in flags]
        self.report.facts["arch"] = machine or None
        self.report.facts["cpu"] = {
            "model": cpu.get("model") or None,
            "processors": cpu.get("processors") or None,
            "notable_flags": notable,
            "flags": len(flags),
        }
        if not machine:
            self.add(Check("cpu", False, "'uname -m' failed", level="info"))
            return True
        parts = [machine]
        if cpu.get("model"):
            parts.append(str(cpu["model"]))
        if cpu.get("processors"):
            parts.append(f"{cpu['processors']} CPUs")
        if notable:
            parts.append("flags: " + " ".join(notable))
        self.add(Check("cpu", True, ", ".join(parts), level="info"))
        return True

    def memory(self) -> bool:
        result = self.run(doctor_commands.memory_info(), privileged=False)
        values = parse_meminfo(result.stdout) if result.ok else {}
        available = values.get("MemAvailable")
        self.report.facts["mem_available_kib"] = available
        if available is None:
            self.add(Check("memory", False, "cannot read MemAvailable", level="info"))
            return True
        total = values.get("MemTotal")
        detail = f"{human_kib(available)} available" + (f" of {human_kib(total)}" if total else "")
        if available < LOW_MEMORY_KIB:
            self.add(
                Check(
                    "memory",
                    False,
                    detail,
                    "Little memory is free: a restore needs about the container's memory.",
                    level="warning",
                )
            )
        else:
            self.add(Check("memory", True, detail, level="info"))
        return True

    def tmpfs(self) -> bool:
        """Where an archive that fits in memory lands (information only: without a tmpfs,
        archives land on disk)."""
        result = self.run(doctor_commands.landing_tmpfs())
        lines = result.stdout.splitlines()
        directory = lines[0].strip() if lines else "/dev/shm"
        is_tmpfs = result.ok and len(lines) > 1 and lines[1].strip() == "tmpfs"
        parsed = parse_df("\n".join([directory, *lines[2:]])) if is_tmpfs else None
        self.report.facts["tmpfs_dir"] = directory if parsed else None
        self.report.facts["tmpfs_available_kib"] = parsed[1] if parsed else None
        if parsed is None:
            detail = f"{directory} is not a tmpfs here: archives land on disk"
        else:
            detail = (
                f"{human_kib(parsed[1])} free in {directory}: an archive that fits, with "
                "memory to spare for the restore, lands there"
            )
        self.add(Check("tmpfs", True, detail, level="info"))
        return True

    def leftovers(self) -> bool:
        """celestial-ssh work directories on the host: a migration's running now, or an
        interrupted one's (an archive on tmpfs holds memory until it is removed)."""
        result = self.run(commands.list_workdirs(sizes=True))
        try:
            found = commands.parse_workdir_sizes(result.stdout) if result.ok else None
        except ValueError:
            found = None
        if found is None:
            self.report.facts["workdirs"] = None
            detail = "cannot list the celestial-ssh work directories here"
            self.add(Check("leftovers", False, detail, level="info"))
            return True
        self.report.facts["workdirs"] = [{"path": path, "kib": kib} for path, kib in found]
        if not found:
            self.add(Check("leftovers", True, "no celestial-ssh work directories", level="info"))
            return True
        total = sum(kib for _, kib in found)
        count = f"{len(found)} work {'directory' if len(found) == 1 else 'directories'}"
        self.add(
            Check(
                "leftovers",
                False,
                f"{count} of celestial-ssh ({human_kib(total)}): "
                f"{', '.join(path for path, _ in found)}; a migration running now has one, "
                "else a migration was interrupted",
                "'celestial-ssh recover SOURCE TARGET CONTAINER' removes a container's (the "
                "name after 'celestial-ssh.' is the first 12 digits of its ID)",
                level="warning",
            )
        )
        return True

    def disk(self) -> bool:
        result = self.run(doctor_commands.landing_disk())
        parsed = parse_df(result.stdout) if result.ok else None
        if parsed is None:
            self.report.facts["landing_dir"] = None
            self.report.facts["disk_available_kib"] = None
            self.add(
                Check(
                    "disk",
                    False,
                    f"cannot read free space of the landing dir: {tail_of(result) or 'no output'}",
                    "Check that TMPDIR (or /var/tmp) exists on the host.",
                    level="warning",
                )
            )
            return True
        directory, available, mount = parsed
        self.report.facts["landing_dir"] = directory
        self.report.facts["disk_available_kib"] = available
        detail = f"{human_kib(available)} free in {directory} (on {mount})"
        if available < LOW_DISK_KIB:
            self.add(
                Check(
                    "disk",
                    False,
                    detail,
                    "The checkpoint archive lands here: free space or set TMPDIR for the "
                    "host's sshd sessions.",
                    level="warning",
                )
            )
        else:
            self.add(Check("disk", True, detail, level="info"))
        return True


def _unreachable(name: str, error: CelestialError) -> HostReport:
    report = HostReport(host=name, reachable=False)
    report.checks.append(
        Check(
            "ssh",
            False,
            error.message,
            error.hint or "Check the host name, the ssh_config and that sshd is up.",
        )
    )
    return report


def check_host(
    session_or_host: SSHSession | str,
    *,
    connection: ConnectionSettings | None = None,
    timeout: float = 30.0,
    ssh_config: str | None = None,
    accept_new_host_keys: bool = False,
) -> HostReport:
    """Check one host. A host text is resolved and connected through ``connection`` (and
    closed afterwards); a session is used as it is (connected first if needed) and left
    open. ``ssh_config`` and ``accept_new_host_keys`` are the older spelling of
    ``connection`` (given, they replace its fields)."""
    if isinstance(session_or_host, str):
        name = session_or_host
        settings = connection_settings(
            connection, ssh_config=ssh_config, accept_new_host_keys=accept_new_host_keys
        )
        try:
            session = settings.open(name)
        except CelestialError as error:
            return _unreachable(name, error)
        except OSError as error:  # pragma: no cover - paramiko wraps most of these
            return _unreachable(name, ConnectionFailed(f"{name}: {error}", host=name))
        owned = True
    else:
        session = session_or_host
        name = session.host.name
        owned = False
    try:
        if not session.is_connected:
            try:
                session.connect()
            except CelestialError as error:
                return _unreachable(name, error)
            except OSError as error:  # pragma: no cover - paramiko wraps most of these
                return _unreachable(name, ConnectionFailed(f"{name}: {error}", host=name))
        user = session.host.user
        report = HostReport(host=name)
        report.checks.append(
            Check("ssh", True, f"{user}@{session.host.hostname}:{session.host.port}")
        )
        _Checker(session, report, timeout).all()
        return report
    finally:
        if owned:
            session.close()


def doctor(
    hosts: list[str],
    ssh_config: str | None = None,
    accept_new_host_keys: bool = False,
    *,
    connection: ConnectionSettings | None = None,
    timeout: float = 30.0,
    max_workers: int = 16,
) -> list[HostReport]:
    """Check every host concurrently; the reports come back in the order of ``hosts``.

    ``connection`` says how the hosts are reached (``ssh_config`` and
    ``accept_new_host_keys`` are its older spelling and, given, replace its fields).
    """
    if not hosts:
        return []
    settings = connection_settings(
        connection, ssh_config=ssh_config, accept_new_host_keys=accept_new_host_keys
    )
    with ThreadPoolExecutor(max_workers=min(max_workers, len(hosts))) as pool:
        futures = [
            pool.submit(check_host, host, connection=settings, timeout=timeout) for host in hosts
        ]
        return [future.result() for future in futures]
