"""Fake hosts for the migration engine's tests: a :class:`FakeLab` stands in for both.

Its :meth:`FakeLab.settings` reach them (resolver and connector), so engines get the lab
through ``MigrationOptions(connection=...)``.

Each host answers commands from a dict of ``predicate -> answer``: a predicate is a
substring of the command line (or a callable taking it), the first match wins, and an
answer is a ``CommandResult``, a list of them (served in turn, the last one repeating), an
exception to raise, or a callable taking the command line and returning one of those (to
act at that moment, e.g. request a cancel). Every command line is recorded, in order, so
tests can check what ran where and when.

Defaults besides podman's and CRIU's answers: the source takes the migration lock (its
channel prints ``locked``), and the rollback's waits for a checkpoint or a restore that may
still run find it finished.
"""

from __future__ import annotations

import dataclasses
import io
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from celestial_ssh import commands, data_plane
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.errors import (
    ConnectionFailed,
)
from celestial_ssh.events import (
    Event,
    Notice,
    Phase,
    PhaseFailed,
    PhaseFinished,
    PhaseSkipped,
    PhaseStarted,
)
from celestial_ssh.hosts import HostSpec, ResolvedHost
from celestial_ssh.migration import MigrationOptions, context, sessions
from celestial_ssh.shell import join
from celestial_ssh.ssh import CommandResult
from celestial_ssh.streaming import RelayResult, RelayStopped

from .session import FakeSession

SRC, TGT = "lab-a", "lab-b"
ADDRESSES = {SRC: "10.0.0.5", TGT: "10.0.0.6"}
CID = "c0ffee00" * 8
IMAGE = "docker.io/library/nginx:1.25"
IMAGE_ID = "a8758716bb6aa4d90071160d27028fe4eaee7ce8166221a97d30440c8eac2be6"
# what make_workdir(CID) prints: tagged with the first 12 digits of the container's ID
WORKDIRS = {
    SRC: f"/var/tmp/celestial-ssh.{CID[:12]}.SRC0000000",
    TGT: f"/var/tmp/celestial-ssh.{CID[:12]}.TGT0000000",
}
ARCHIVE_BYTES = 5_000_000
ARCHIVE_SHA = "5" * 64
# distinctive pieces of the lock holder and of the rollback's two waits
LOCK = f"{commands.LOCK_DIR}/lock."
CHECKPOINT_WAIT = "never-started"
RESTORE_WAIT = "kill -0"

Answer = (
    CommandResult
    | list[CommandResult]
    | BaseException
    | Callable[[str], CommandResult | BaseException]
)
Predicate = str | Callable[[str], bool]


def result(stdout: str = "", status: int = 0, stderr: str = "") -> CommandResult:
    """An answer; the fake fills in host and command."""
    return CommandResult(host="", command="", exit_status=status, stdout=stdout, stderr=stderr)


def inspect(status: str = "running", name: str = "web", cid: str = CID) -> CommandResult:
    state = {"Status": status, "Running": status == "running", "Pid": 4242}
    document = {"Id": cid, "Name": name, "State": state, "Image": IMAGE_ID, "ImageName": IMAGE}
    return result(json.dumps([document]))


def listing(*containers: tuple[str, str, str]) -> CommandResult:
    return result(json.dumps([{"Id": i, "Names": [n], "State": s} for i, n, s in containers]))


def podman_info(arch: str = "amd64") -> CommandResult:
    return result(
        json.dumps(
            {
                "host": {"arch": arch, "cgroupVersion": "v2", "ociRuntime": {"name": "crun"}},
                "store": {"graphRoot": "/var/lib/containers/storage"},
                "version": {"Version": "4.3.1"},
            }
        )
    )


def image(image_id: str = IMAGE_ID) -> CommandResult:
    return result(json.dumps([{"Id": image_id, "Size": 191_000_000}]))


def stats(**numbers: int) -> CommandResult:
    return result(json.dumps({"container_statistics": [{"Id": CID, "criu_statistics": numbers}]}))


def memory_usage(name: str = "web", usage: str = "17.33MB / 25.33GB") -> CommandResult:
    """``podman stats --format json`` of one container."""
    return result(json.dumps([{"id": CID[:12], "name": name, "mem_usage": usage, "pids": "1"}]))


def source_bytes(
    count: int, digest: str = ARCHIVE_SHA, status: int = 0, stderr: str = ""
) -> CommandResult:
    """What the checkpoint script ends with: its last stderr line, size and SHA-256."""
    marker = f"{commands.SOURCE_BYTES_MARKER} {count} {digest}"
    return result(status=status, stderr=f"{stderr}{marker}\n")


# what a hashing source announces once its archive is complete, size and SHA-256 (on the
# relayed script's stderr, on a host-to-host script's stdout)
EXPORTED = f"{commands.EXPORTED_MARKER} {ARCHIVE_BYTES} {ARCHIVE_SHA}\n"


def host_answers(host: str) -> dict[Predicate, Answer]:
    """What a healthy root host with podman 4.3 and CRIU 3.17 answers."""
    answers: dict[Predicate, Answer] = {
        "id -u": result("0\n"),
        "podman info": podman_info(),
        "criu --version": result("Version: 3.17.1\n"),
        "criu check": result("Looks good.\n"),
        join(commands.make_workdir(CID)): result(WORKDIRS[host] + "\n"),
        "rm -rf --": result(),
        # no work directories of an earlier run (list_workdirs prints nothing)
        join(commands.list_workdirs(CID)): result(),
    }
    if host == SRC:
        answers |= {
            "podman stats": memory_usage(),
            "podman container inspect": inspect("running"),
            "podman image inspect": image(),
            "podman image save": result(),
            # the stream's exit status, and the archive's digest as the source saw it
            "container checkpoint": source_bytes(ARCHIVE_BYTES),
            f"cat {WORKDIRS[SRC]}/checkpoint-stats.json": stats(frozen_time=29373),
            "podman container rm --": result(),
            LOCK: result("locked\n"),  # what the lock channel prints once it holds the lock
            CHECKPOINT_WAIT: result("0\n"),  # the checkpoint script has ended, status 0
        }
    else:
        answers |= {
            "podman container ls": listing(),
            # make_landing_workdir: room on tmpfs or not, the fake lands on disk
            "CELESTIAL_SSH_TMPFS": result(f"{WORKDIRS[TGT]}\n{commands.LANDING_DISK}\n"),
            "podman image inspect": image(),
            "podman image load": result(),
            "tee ": result(),  # land_archive's exit status
            "restore --import": stats(restore_time=117040),
            "podman container inspect": inspect("running"),
            "podman container rm --force": result(),  # rollback: the half-restored copy
            RESTORE_WAIT: result(),  # no restore is running any more
        }
    return answers


class FakeChannel:
    """What the engine touches of a paramiko channel: a read timeout, and stdout as a file."""

    def __init__(self, stdout: str):
        self.stdout = stdout.encode()
        self.timeout: float | None = None

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def makefile(self, mode: str = "r") -> io.BytesIO:
        assert "b" in mode
        return io.BytesIO(self.stdout)


class FakeProcess:
    def __init__(self, session: LabSession, command: str, outcome: CommandResult):
        self.session = session
        self.command = command
        self.outcome = outcome
        self.channel = FakeChannel(outcome.stdout)
        self.killed = False
        self.killed_after: int | None = None  # how many commands had run when it was killed
        # streams connected before the freeze greet with the ready line
        greeting = commands.READY_LINE if "echo ready" in command else b""
        if session.host.name in session.lab.silent_streams:
            greeting = b""
        # latin-1: a scripted answer can carry any bytes (e.g. a memory sample) as text
        self.stdout = greeting + outcome.stdout.encode("latin-1")
        self.written: list[bytes] = []
        # what it has said on stderr while it runs (a relayed checkpoint's announcement)
        self.said_on_stderr = ""

    @property
    def host_name(self) -> str:
        return self.session.host.name

    def set_read_timeout(self, timeout: float | None) -> None:
        self.channel.settimeout(timeout)

    def read(self, size: int) -> bytes:
        chunk, self.stdout = self.stdout[:size], self.stdout[size:]
        return chunk

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def close_stdin(self) -> None:
        self.stdin_closed = True

    def is_running(self) -> bool:
        return False

    @property
    def stderr(self) -> str:
        return self.said_on_stderr

    def wait(self, timeout: float) -> CommandResult:
        return self.outcome

    def kill(self) -> None:
        self.killed = True
        if self.killed_after is None:
            self.killed_after = len(self.session.lab.log)


class DeferredFakeProcess(FakeProcess):
    """The gated restore: connected before the freeze, it only runs (and so is only logged
    and answered, like a command run then) when the engine sends its go line."""

    def __init__(self, session: LabSession, command: str):
        self.session = session
        self.command = command
        self.outcome = result(status=commands.EXIT_NOT_STARTED)
        self.channel = FakeChannel("")
        self.killed = False
        self.killed_after = None
        self.stdout = commands.READY_LINE
        self.written = []
        self.said_on_stderr = ""
        self.went = False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        if data.startswith(b"go "):
            self.went = True
            self.session.lab.record(self.session.host.name, self.command)
            self.outcome = self.session._answer(self.command)
            self.stdout += self.outcome.stdout.encode("latin-1")


class LabSession(FakeSession):
    """A :class:`FakeSession` to one of the lab's hosts: answers from the lab, records
    every command line in its log, and can start streaming commands."""

    def __init__(self, lab: FakeLab, host: ResolvedHost, notice: Any = None):
        super().__init__(host, log=lab.log)
        self.lab = lab
        # the far end is gone, but this side has not noticed yet (is_connected still True)
        self.dead = False
        lab.sessions.append(self)

    def connect(self) -> None:
        self.lab.connects.append(self.host.name)
        self.lab.unreachable -= self.lab.back_on_reconnect
        if self.host.name in self.lab.unreachable:
            raise ConnectionFailed(f"{self.host.name}: no route to host", host=self.host.name)
        self.is_connected = True

    def answers(self) -> bool:
        return self.is_connected and not self.dead

    def reply(self, argv: list[str], line: str) -> CommandResult:
        return self._answer(line)

    def _answer(self, command: str) -> CommandResult:
        assert self.is_connected, f"{self.host.name}: command on a closed session: {command}"
        if self.dead:
            self.is_connected = False
            raise ConnectionFailed(
                f"{self.host.name}: the SSH connection failed while running {command!r}: ",
                host=self.host.name,
            )
        answer = self.lab.answer_for(self.host.name, command)
        if callable(answer):
            answer = answer(command)
        if isinstance(answer, BaseException):
            if isinstance(answer, ConnectionFailed):  # the connection (and host) went away
                self.is_connected = False
                self.lab.unreachable.add(self.host.name)
            raise answer
        return dataclasses.replace(answer, host=self.host.name, command=command)

    def host_key(self) -> tuple[str, str]:
        """What ``--direct`` pins on the source (the data plane asks for it)."""
        return "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyOf" + self.host.name

    def start(
        self, argv: list[str], *, privileged: bool = True, forward_agent: bool = False
    ) -> FakeProcess:
        command = self.command_line(argv, privileged=privileged)
        if "read -r go want_size" in command:
            deferred = DeferredFakeProcess(self, command)
            self.lab.processes.append(deferred)
            return deferred
        self.lab.record(self.host.name, command, started=True)
        process = FakeProcess(self, command, self._answer(command))
        self.lab.processes.append(process)
        return process


class FakeLab:
    """Both hosts, what they answer, and everything that happened."""

    def __init__(self) -> None:
        self.answers = {SRC: host_answers(SRC), TGT: host_answers(TGT)}
        self.log: list[tuple[str, str]] = []  # (host, command line), in order
        self.started: list[tuple[str, str]] = []  # the streaming commands among them
        self.unexpected: list[tuple[str, str]] = []
        self.sessions: list[LabSession] = []
        self.processes: list[FakeProcess] = []
        self.connects: list[str] = []
        self.unreachable: set[str] = set()
        # hosts reachable again at the next connection (e.g. a reconnect after a loss)
        self.back_on_reconnect: set[str] = set()
        self.relays: list[tuple[str, str]] = []
        self.should_stops: list[Callable[[], bool] | None] = []
        self.throttles: list[Any] = []
        self.silent_streams: set[str] = set()  # hosts whose streams die before the ready line
        self.relay_error: BaseException | None = None
        self.during_relay: Callable[[], None] | None = None  # runs halfway through a stream
        self.events: list[Event] = []
        # whether the default data path (auto) is left to try a TLS link (see options)
        self.proves_tls = False
        self._lock = threading.Lock()

    # -- scripting ---------------------------------------------------------------------
    def answer(self, host: str, predicate: Predicate, answer: Answer) -> None:
        """Answer ``predicate`` on ``host`` with ``answer``, before any other rule."""
        rest = {key: value for key, value in self.answers[host].items() if key != predicate}
        self.answers[host] = {predicate: answer, **rest}

    def answer_for(self, host: str, command: str) -> Answer:
        with self._lock:
            for predicate, answer in self.answers[host].items():
                matches = predicate(command) if callable(predicate) else predicate in command
                if not matches:
                    continue
                if isinstance(answer, list):
                    return answer.pop(0) if len(answer) > 1 else answer[0]
                return answer
            self.unexpected.append((host, command))
        raise AssertionError(f"{host}: unexpected command {command!r}")

    def lose_connections_unnoticed(self, host: str) -> None:
        """The far end of every session to ``host`` is gone; the sessions have not noticed."""
        for session in self.sessions:
            if session.host.name == host:
                session.dead = True

    # -- the stand-ins the engine gets ---------------------------------------------------
    def plug_in(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make this lab's relay stand in for the real one (also the link probe's), and
        reconnect without a pause."""
        monkeypatch.setattr(context, "relay", self.relay)
        monkeypatch.setattr(data_plane, "relay", self.relay)  # the link probe's stream
        monkeypatch.setattr(sessions, "RECONNECT_PAUSE_S", 0.0)

    def settings(self, base: ConnectionSettings | None = None) -> ConnectionSettings:
        """Connection settings that reach this lab's hosts (``base``'s other fields kept)."""
        return dataclasses.replace(
            base or ConnectionSettings(), host_resolver=self.resolve, connector=self.connect
        )

    def options(self, options: MigrationOptions | None = None, **fields: Any) -> MigrationOptions:
        """``options`` (or ``MigrationOptions(**fields)``) reaching this lab's hosts. The
        default data path (auto) becomes relay unless :attr:`proves_tls` is set: these
        fake hosts run no TLS link unless a test scripts one."""
        options = options or MigrationOptions(**fields)
        if options.chosen_data_path() == "auto" and not self.proves_tls:
            options = dataclasses.replace(options, data_path="relay")
        return dataclasses.replace(options, connection=self.settings(options.connection))

    def connect(self, host: ResolvedHost, notice: Any = None) -> LabSession:
        """The lab's connector: a new session to ``host``, connected."""
        session = LabSession(self, host, notice)
        session.connect()
        return session

    def resolve(self, text: str, ssh_config: str | None = None) -> ResolvedHost:
        spec = HostSpec.parse(text)
        return ResolvedHost(
            name=text,
            hostname=ADDRESSES.get(spec.host, spec.host),
            port=spec.port or 22,
            user=spec.user or "root",
        )

    def relay(
        self,
        source: FakeProcess,
        target: FakeProcess,
        *,
        on_progress: Callable[[int], None] | None = None,
        stall_timeout: float = 300.0,
        should_stop: Callable[[], bool] | None = None,
        throttle: Any = None,
    ) -> RelayResult:
        self.relays.append((source.command, target.command))
        self.throttles.append(throttle)
        self.should_stops.append(should_stop)
        if on_progress:
            on_progress(ARCHIVE_BYTES // 2)
        if self.during_relay is not None:
            self.during_relay()
        if should_stop is not None and should_stop():  # as the real relay does between reads
            raise RelayStopped("the transfer was stopped on request")
        if self.relay_error is not None:
            raise self.relay_error
        if on_progress:
            on_progress(ARCHIVE_BYTES)
        return RelayResult(bytes=ARCHIVE_BYTES, sha256=ARCHIVE_SHA, seconds=0.5)

    # -- what happened -----------------------------------------------------------------
    def record(self, host: str, command: str, started: bool = False) -> None:
        with self._lock:
            self.log.append((host, command))
            if started:
                self.started.append((host, command))

    def streams(self) -> list[tuple[str, str]]:
        """The started commands that stream data: all but the lock holder."""
        return [(host, command) for host, command in self.started if LOCK not in command]

    def lock_holders(self) -> list[FakeProcess]:
        return [process for process in self.processes if LOCK in process.command]

    def commands_on(self, host: str) -> list[str]:
        return [command for on, command in self.log if on == host]

    def ran(self, host: str, needle: str) -> bool:
        return any(needle in command for command in self.commands_on(host))

    def position(self, host: str, needle: str) -> int:
        """Where the first command on ``host`` holding ``needle`` is in the whole log."""
        for index, (on, command) in enumerate(self.log):
            if on == host and needle in command:
                return index
        raise AssertionError(f"nothing like {needle!r} ran on {host}")

    def phases(self) -> list[tuple[str, Phase]]:
        """The phase events only, as (kind, phase): kind is started/finished/skipped/failed."""
        kinds = {
            PhaseStarted: "started",
            PhaseFinished: "finished",
            PhaseSkipped: "skipped",
            PhaseFailed: "failed",
        }
        return [
            (kinds[type(event)], event.phase)
            for event in self.events
            if isinstance(event, PhaseStarted | PhaseFinished | PhaseSkipped | PhaseFailed)
        ]

    def notices(self) -> list[str]:
        return [event.message for event in self.events if isinstance(event, Notice)]
