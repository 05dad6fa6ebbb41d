"""The migration engine: one container, from a source host to a target host, over SSH.

State machine (what is true after each step, and what rollback does from there)::

    CONNECTED      both SSH sessions are up              -> nothing to undo
    CHECKED        preflight passed on both hosts        -> nothing to undo
    STAGED         the image is on the target            -> remove the image we loaded
    PREPARED       private work directories exist        -> remove them
    ---------------------------------------------------- freeze -------------------------
    FROZEN         `podman checkpoint` has started       -> source: wait until the checkpoint
                                                            script has ended, then restore
                                                            locally from the checkpoint
                                                            podman keeps in its storage (or
                                                            nothing, if the dump failed and
                                                            CRIU resumed it)
    LANDED         the archive is on the target,         -> same
                   size and SHA-256 match
    RESTORING      `podman restore --import` was sent    -> wait until that restore has ended;
                                                            if it got through (our copy runs),
                                                            complete the migration; else
                                                            remove our copy there if it
                                                            exists, then restore the source;
                                                            if the target cannot be reached,
                                                            restore nothing (NEEDS_RECOVERY)
    RUNNING        the target runs it, verified          -> point of no return: never roll
                                                            back from here
    CLEANED        source copy and archives removed      -> warnings only

The promise: after ``migrate`` returns or raises, the container runs on exactly one host.
Rollback never starts a source copy while a target copy might be running. A cancel request
(:meth:`Migration.request_cancel`) is honoured up to LANDED; a restore once sent is finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from typing import NoReturn, TypeVar, cast

from . import commands, tls_link
from .commands import CheckpointOptions
from .compression_choice import choose_compression, compressibility, sample_memory_command
from .data_plane import TRANSPORTS, DataPlane, LinkMeasurement, StreamProcess, await_ready
from .errors import (
    CelestialError,
    ConnectionFailed,
    InvalidInput,
    MigrationFailed,
    MigrationInterrupted,
    PreflightFailed,
    RemoteCommandFailed,
)
from .events import (
    Event,
    EventSink,
    Notice,
    Phase,
    PhaseFailed,
    PhaseFinished,
    PhaseSkipped,
    PhaseStarted,
    TransferProgress,
    discard_events,
)
from .hosts import ResolvedHost, resolve_host
from .locking import take_migration_lock
from .parallel import run_together
from .podman_json import (
    ContainerInfo,
    OutputError,
    PodmanInfo,
    flatten_stats,
    parse_container_inspect,
    parse_container_list,
    parse_criu_version,
    parse_image_id,
    parse_memory_usage,
    parse_podman_info,
    parse_stats,
    version_tuple,
)
from .precopy import (
    PrecopyPolicy,
    PrecopySupport,
    combine_support,
    dirty_tracking_check,
    pages_written,
    parse_dirty_tracking,
    pre_checkpoint_export,
    run_precopy_rounds,
)
from .rate_limit import TokenBucket
from .report import STEP_TIMINGS, MigrationReport, Outcome
from .shell import validate_container_name
from .ssh import SUDO_PREFIX, CommandResult, RemoteProcess, SSHSession
from .streaming import RelayResult, RelayStopped, relay

T = TypeVar("T")


class MigrationCancelled(Exception):
    """Raised inside the engine when :meth:`Migration.request_cancel` was called."""


MINIMUM_CRIU = (3, 11)
# keys of the host checks in _host_facts (callers' own questions use other names)
_PODMAN_INFO = "podman info"
_CRIU_VERSION = "criu --version"
_CRIU_CHECK = "criu check"
# what --compress auto streams to measure the link: long enough that the SSH handshake of a
# new stream is a small part of it, short enough to cost well under a second on fast links
PROBE_BYTES = 32 * 1024 * 1024
NOMINAL_ARCHIVE_BYTES = 256 * 1024 * 1024
DIRECT_PROGRESS_INTERVAL_S = 0.25
# the landing watch normally ends when its channel closes; this bounds it if that is missed
DIRECT_PROGRESS_LIMIT_S = 24 * 3600
DIRECT_END_POLL_S = 0.01
READY_TIMEOUT_S = 60.0
PREVIOUS_ARCHIVE_NAME = "previous.tar"
# one round: podman's pre-checkpoints are full dumps each time (see _copy_memory_while_running)
PRECOPY_POLICY = PrecopyPolicy(max_rounds=1)


class State(enum.Enum):
    NEW = "new"
    CONNECTED = "connected"
    CHECKED = "checked"
    STAGED = "staged"
    PREPARED = "prepared"
    FROZEN = "frozen"
    LANDED = "landed"
    RESTORING = "restoring"
    RUNNING = "running"
    CLEANED = "cleaned"


@dataclass(frozen=True)
class MigrationOptions:
    """How to migrate. Every field has a default that suits a one-shot move."""

    ssh_config: str | None = None
    new_name: str | None = None
    keep_source: bool = False
    # none | zstd | gzip | auto (auto measures the link and samples the container's memory
    # before the freeze; the library's default sends no probe traffic unless asked)
    compression: str = "none"
    # the data plane: auto (OpenSSH client when there is one) | openssh | paramiko
    transport: str = "auto"
    # the source streams straight to the target when it can log in there (agent forwarding
    # or its own keys); otherwise the archive is relayed through this machine
    direct: bool = False
    # the source streams straight to the target over mutually authenticated TLS (socat on
    # both hosts; throwaway keys given to each end over SSH) instead of SSH; implies direct
    # and never falls back to relaying. tls_port 0: the target picks a free port
    tls: bool = False
    tls_port: int = 0
    # --tls: the target's address the source connects to (None: the one the coordinator's
    # SSH session to the target arrived on)
    tls_address: str | None = None
    # cap on the relayed stream, bytes per second (None: as fast as the link goes)
    bwlimit_bytes_per_s: float | None = None
    # iterative pre-copy; needs soft-dirty tracking on both hosts, else stop-and-copy
    precopy: bool = False
    tcp_established: bool = False
    accept_new_host_keys: bool = False
    command_timeout_s: float = 120.0
    stream_stall_timeout_s: float = 300.0
    restore_timeout_s: float = 900.0
    # how a host name becomes connection settings; default: ssh_config via `ssh -G`
    # (an inventory passes its own, e.g. Inventory.resolve)
    host_resolver: Callable[[str], ResolvedHost] | None = field(default=None, compare=False)
    # stop right after the preflight checks (lock released, sessions closed): a dry run;
    # the report's outcome stays NOT_STARTED and nothing is changed on either host
    preflight_only: bool = False

    def checkpoint_options(self, compression: str | None = None) -> CheckpointOptions:
        chosen = compression or self.compression
        if chosen == "auto":
            chosen = "none"
        return CheckpointOptions(compression=chosen, tcp_established=self.tcp_established)


def check_options(options: MigrationOptions) -> None:
    """Refuse options that are wrong, or that contradict each other, before anything
    connects (:class:`~celestial_ssh.errors.InvalidInput`)."""
    if options.new_name is not None:
        validate_container_name(options.new_name, what="new name")
    commands.validate_compression_setting(options.compression)
    if options.transport not in TRANSPORTS:
        raise InvalidInput(f"transport {options.transport!r} is not one of {', '.join(TRANSPORTS)}")
    limit = options.bwlimit_bytes_per_s
    if limit is not None and limit <= 0:
        raise InvalidInput("the bandwidth limit must be a positive rate")
    tls_link.validate_port(options.tls_port)
    if options.tls_port and not options.tls:
        raise InvalidInput("--tls-port needs --tls", hint="Add --tls, or leave out the port.")
    tls_link.check_address_option(options.tls_address, tls=options.tls)
    if limit is not None and (options.direct or options.tls):
        raise InvalidInput(
            f"--bwlimit cannot be combined with {'--tls' if options.tls else '--direct'}",
            hint="The limit is applied where the stream passes this machine; a direct "
            "stream never does. Leave out one of them.",
        )


@dataclass
class HostFacts:
    name: str
    is_root: bool
    podman: PodmanInfo
    criu_version: str


@dataclass
class _Progress:
    """Where the migration stands; rollback reads it."""

    state: State = State.NEW
    source_info: ContainerInfo | None = None
    target_ids_before: set[str] = field(default_factory=set)
    staged_image_id: str | None = None
    source_workdir: str | None = None
    target_workdir: str | None = None
    freeze_started: float | None = None
    restore_ended: bool = False  # a lost restore was waited for: no need to wait twice


class Migration:
    """One live migration. ``run()`` once; read ``report`` afterwards (also on failure)."""

    def __init__(
        self,
        source: str,
        target: str,
        container: str,
        options: MigrationOptions | None = None,
        on_event: EventSink | None = None,
    ):
        self.options = options or MigrationOptions()
        self._emit_to = on_event or discard_events
        self.report = MigrationReport(
            container=container,
            source=source,
            target=target,
            compression=self.options.compression,
        )
        self._source_text = source
        self._target_text = target
        self._container = container
        self._progress = _Progress()
        self._source: SSHSession | None = None
        self._target: SSHSession | None = None
        self._started = 0.0
        self._cancel = threading.Event()
        self._lock: RemoteProcess | None = None
        self._plane: DataPlane | None = None
        self._direct = False
        # --tls: the address the target listens on, once both ends hold their credentials
        self._tls_address: str | None = None
        self._tls_listener: StreamProcess | None = None
        # sessions a reconnect replaced (see _reconnected)
        self._retired_sessions: list[SSHSession] = []
        self._compression = self.options.compression
        self._precopy = False
        self._previous_archive: str | None = None
        self._restorer: StreamProcess | None = None
        self._landing_watch: StreamProcess | None = None
        # a checkpoint whose archive was complete (at that monotonic time) while podman still
        # tidied up the source; once the restore was sent, its end and how long it tidied up
        self._checkpoint_ending: tuple[StreamProcess, float] | None = None
        self._checkpoint_end: Future[tuple[CommandResult | CelestialError, float]] | None = None
        # `podman stats` of the container, read during preflight (for the archive estimate)
        self._memory_in_use: CommandResult | None = None
        # `podman image inspect` of the container's image on the target, read then too
        self._target_image: CommandResult | None = None

    # -- events -----------------------------------------------------------------------
    def _emit(self, event: Event) -> None:
        with contextlib.suppress(Exception):  # a broken display must not break a migration
            self._emit_to(event)

    def _notice(self, message: str, level: str = "info") -> None:
        if level == "warning":
            self.report.warnings.append(message)
        self._emit(Notice(level=level, message=message))

    def _time_step(self, step: str, started: float) -> None:
        """Record how long ``step`` (one of STEP_TIMINGS, which reports have columns for)
        took since ``started``."""
        if step not in STEP_TIMINGS:
            raise ValueError(f"{step!r} is not one of the report's step timings")
        self.report.timings[step] = round(time.monotonic() - started, 4)

    @contextlib.contextmanager
    def _phase(self, phase: Phase, detail: str = "") -> Iterator[dict[str, str]]:
        """Time a phase, report it, and record its duration in the report."""
        self._emit(PhaseStarted(phase, detail))
        started = time.monotonic()
        outcome: dict[str, str] = {"detail": ""}
        try:
            yield outcome
        except BaseException as error:
            duration = time.monotonic() - started
            self.report.timings[phase.value] = round(duration, 4)
            self._emit(PhaseFailed(phase, duration, _one_line(error)))
            raise
        duration = time.monotonic() - started
        self.report.timings[phase.value] = round(duration, 4)
        self._emit(PhaseFinished(phase, duration, outcome["detail"]))

    # -- the whole run ----------------------------------------------------------------
    def run(self) -> MigrationReport:
        self._started = time.monotonic()
        try:
            # a cancel request is honoured between steps and inside the stream; restore and
            # verify always run to the end once started (stopping them could leave two
            # running copies or none)
            for step in (
                self._validate_input,
                self._connect,
                self._preflight,
                self._stage_image,
                self._prepare,
                self._checkpoint_and_transfer,
            ):
                self._raise_if_cancelled()
                step()
                if self.options.preflight_only and self._progress.state is State.CHECKED:
                    self._close()  # releases the lock; nothing was staged or frozen
                    return self.report
            # last chance to cancel: once the restore is sent it is never abandoned
            self._raise_if_cancelled()
            self._restore()
            self._verify()
            if self._cancel.is_set():
                self._notice(
                    "the cancel request came while restoring on the target; the restore "
                    "was finished rather than abandoned, so the migration completed",
                    level="warning",
                )
        except BaseException as error:
            if not self._restore_got_through(error):
                self._fail(error)  # always raises
        finally:
            self.report.total_s = round(time.monotonic() - self._started, 4)
        try:
            self._cleanup()
        finally:
            self.report.total_s = round(time.monotonic() - self._started, 4)
            self._close()
        return self.report

    def _fail(self, error: BaseException) -> None:
        progress = self._progress
        if self._restorer is not None and progress.state is not State.RESTORING:
            # never told to go, it ends without touching anything
            self._restorer.kill()
        interrupted = isinstance(error, (KeyboardInterrupt, MigrationCancelled, RelayStopped))
        if progress.state in (State.RUNNING, State.CLEANED):
            # past the point of no return: the target runs it; never roll back from here
            self.report.outcome = Outcome.MIGRATED
            self._notice(
                f"interrupted after the container was verified on {self._target_text}: the "
                f"stopped copy on {self._source_text} and temporary files may remain",
                level="warning",
            )
            self.report.total_s = round(time.monotonic() - self._started, 4)
            self._close()
            if interrupted:
                raise MigrationInterrupted(
                    f"interrupted after {self._container!r} was verified running on "
                    f"{self._target_text}; the migration itself succeeded",
                    report=self.report,
                    cause=error,
                ) from error
            raise error
        try:
            if progress.state.value in _FROZEN_STATES:
                self._roll_back(error)
            else:
                self._undo_before_freeze()
                self.report.outcome = Outcome.NOT_STARTED
        finally:
            self.report.total_s = round(time.monotonic() - self._started, 4)
            self._close()
        self.report.error = _one_line(error)
        if progress.state.value not in _FROZEN_STATES and not interrupted:
            if isinstance(error, CelestialError):
                error.report = self.report
                raise error
            raise error
        where = {
            Outcome.ROLLED_BACK: f"it runs again on {self._source_text}, from its checkpoint",
            Outcome.NOT_STARTED: f"it was never stopped and still runs on {self._source_text}",
            Outcome.NEEDS_RECOVERY: "its state could not be confirmed",
        }[self.report.outcome]
        hint = None
        if self.report.outcome is Outcome.NEEDS_RECOVERY:
            hint = (
                f"Check both hosts (podman ps -a on {self._source_text} and "
                f"{self._target_text}); the checkpoint is kept in podman's storage on "
                f"{self._source_text}: 'podman container restore {self._container}' there "
                "brings it back if the target does not run it."
            )
        cls = MigrationInterrupted if interrupted else MigrationFailed
        verb = "was interrupted" if interrupted else "failed"
        raise cls(
            f"migration of {self._container!r} from {self._source_text} to "
            f"{self._target_text} {verb}: {_describe(error)}\n"
            f"The container was not lost: {where}.",
            report=self.report,
            cause=error,
            hint=hint,
        ) from error

    # -- cancellation -----------------------------------------------------------------
    def request_cancel(self) -> None:
        """Ask a running migration to stop at the next safe point and roll back.

        Safe to call from a signal handler or another thread. Before the freeze nothing is
        changed; during the checkpoint or the stream the source is restored; a restore that
        has started is finished (the migration then completes).
        """
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def _raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise MigrationCancelled("cancelled on request")

    # -- phases -----------------------------------------------------------------------
    def _validate_input(self) -> None:
        validate_container_name(self._container)
        check_options(self.options)

    def _connect(self) -> None:
        with self._phase(Phase.CONNECT) as outcome:
            source_host, target_host = self._resolve_hosts()
            if (source_host.hostname, source_host.port) == (target_host.hostname, target_host.port):
                raise InvalidInput(
                    f"source {self._source_text} and target {self._target_text} are the same "
                    f"host ({source_host.hostname}:{source_host.port})",
                    hint="Live migration moves a container between two different hosts.",
                )
            self._source = SSHSession(source_host, notice=self._notice)
            self._target = SSHSession(target_host, notice=self._notice)
            self._both(lambda session: session.connect())
            self._plane = DataPlane.open(self.options.transport, self._sessions())
            self.report.transport = self._plane.kind
            self._progress.state = State.CONNECTED
            outcome["detail"] = (
                f"{source_host.user}@{source_host.hostname}:{source_host.port} -> "
                f"{target_host.user}@{target_host.hostname}:{target_host.port}, "
                f"data over {self._plane.description}"
            )

    def _resolve_hosts(self) -> tuple[ResolvedHost, ResolvedHost]:
        hosts = []
        for text in (self._source_text, self._target_text):
            if self.options.host_resolver is not None:
                host = self.options.host_resolver(text)
            else:
                host = resolve_host(text, self.options.ssh_config)
            if self.options.accept_new_host_keys and host.strict_host_key_checking == "yes":
                host = host.with_strict_host_key_checking("accept-new")
            hosts.append(host)
        return hosts[0], hosts[1]

    def _both(self, action: Callable[[SSHSession], T]) -> tuple[T, T]:
        """Run ``action`` on the source and target sessions at once (halves the latency)."""
        source, target = self._sessions()
        on_source, on_target = run_together(partial(action, source), partial(action, target))
        return cast(T, on_source), cast(T, on_target)

    def _sessions(self) -> tuple[SSHSession, SSHSession]:
        assert self._source is not None and self._target is not None
        return self._source, self._target

    def _preflight(self) -> None:
        with self._phase(Phase.PREFLIGHT) as outcome:
            source, target = self._sessions()
            # what the checks below need from each host is asked in the same round as the
            # host's own facts: one round trip instead of one per question
            source_asks: dict[str, list[str]] = {
                "inspect": commands.container_inspect(self._container),
                "memory": commands.container_stats(self._container),
            }
            target_asks: dict[str, list[str]] = {"containers": commands.container_list_all()}
            if self.options.tls:
                source_asks["socat"] = target_asks["socat"] = tls_link.socat_available()
            (source_facts, source_answers), (target_facts, target_answers) = self._both(
                lambda session: self._host_facts(
                    session, source_asks if session is source else target_asks
                )
            )
            if source_facts.podman.arch != target_facts.podman.arch:
                raise PreflightFailed(
                    f"{self._source_text} is {source_facts.podman.arch} but "
                    f"{self._target_text} is {target_facts.podman.arch}",
                    hint="A checkpoint only restores on the same CPU architecture.",
                )
            if self.options.precopy:
                self._check_precopy()
            if self.options.tls:
                self._check_socat(source, source_answers["socat"])
                self._check_socat(target, target_answers["socat"])
            info = self._inspect_source(source_answers["inspect"])
            self._take_lock(source, info)
            # another coordinator may have moved the container between the first look and
            # the lock: look again, holding it; at once, staging's first question and the
            # work directories an earlier, interrupted run may have left
            timeout = self.options.command_timeout_s
            relooked, self._target_image, *leftovers = run_together(
                partial(source.run, commands.container_inspect(info.id), timeout=timeout),
                partial(
                    target.run,
                    commands.image_inspect(info.image_name or info.image_id),
                    timeout=timeout,
                ),
                partial(source.run, commands.list_workdirs(info.id), timeout=timeout),
                partial(target.run, commands.list_workdirs(info.id), timeout=timeout),
            )
            info = self._inspect_source(relooked)
            self._check_target_is_free(target_answers["containers"], info)
            self._warn_about_leftovers(info, dict(zip((source, target), leftovers, strict=True)))
            self._memory_in_use = source_answers["memory"]
            self._progress.source_info = info
            self.report.container_id = info.id
            self.report.image = info.image_name or info.image_id
            self.report.target_container = self.options.new_name or info.name
            self._progress.state = State.CHECKED
            outcome["detail"] = (
                f"{info.name} ({info.id[:12]}) running; podman {source_facts.podman.version}/"
                f"{target_facts.podman.version}, CRIU {source_facts.criu_version}/"
                f"{target_facts.criu_version}"
            )

    def _check_precopy(self) -> None:
        """``--pre-copy`` needs soft-dirty tracking on both hosts; say so and fall back."""

        def support(session: SSHSession) -> PrecopySupport:
            checked = session.run(dirty_tracking_check(), timeout=self.options.command_timeout_s)
            return parse_dirty_tracking(checked.exit_status, checked.stderr + checked.stdout)

        source_support, target_support = self._both(support)
        both = combine_support(source_support, target_support, self._source_text, self._target_text)
        if both.supported:
            self._precopy = True
            return
        self.report.precopy = f"stop-and-copy ({both.reason})"
        self._notice(
            f"--pre-copy is not available: {both.reason}; using stop-and-copy", level="warning"
        )

    def _copy_memory_while_running(self) -> None:
        """Pre-copy: dump the memory while the container runs and land it on the target,
        so the freeze only moves the pages dirtied since.

        podman redumps all memory on every ``--pre-checkpoint`` (it keeps no parent images
        between pre-dumps), so more rounds only pay where the convergence rule says so;
        the default is one round (:data:`PRECOPY_POLICY`).
        """
        info = self._progress.source_info
        source_workdir, target_workdir = (
            self._progress.source_workdir,
            self._progress.target_workdir,
        )
        assert info is not None and source_workdir and target_workdir
        source, target = self._sessions()
        previous = f"{source_workdir}/{PREVIOUS_ARCHIVE_NAME}"
        started = time.monotonic()

        def dump_round(number: int) -> int:
            dumped = source.run(
                pre_checkpoint_export(info.id, previous, compression=self._compression),
                timeout=self.options.restore_timeout_s,
                check=True,
                what=f"pre-copy round {number} of {info.name}",
            )
            return pages_written(dumped.stdout)

        try:
            rounds = run_precopy_rounds(PRECOPY_POLICY, dump_round)
        except OutputError as error:
            raise PreflightFailed(
                f"{self._source_text}: cannot read the pre-copy statistics: {error}",
                host=self._source_text,
            ) from error
        plane = self._data_plane()
        sender = plane.start(source, ["cat", "--", previous])
        landing = f"{target_workdir}/{PREVIOUS_ARCHIVE_NAME}"
        receiver = plane.start(target, commands.receive_file(landing))
        try:
            moved = self._relay(sender, receiver, "pre-copy")
            for process, host in ((sender, self._source_text), (receiver, self._target_text)):
                ended = process.wait(self.options.command_timeout_s)
                if not ended.ok:
                    raise RemoteCommandFailed(
                        f"{host}: moving the pre-copy archive failed",
                        host=host,
                        command=ended.command,
                        exit_status=ended.exit_status,
                        stderr=ended.stderr,
                    )
        except BaseException:
            sender.kill()
            receiver.kill()
            raise
        self._previous_archive = landing
        self.report.bytes_transferred += moved.bytes
        self._time_step("pre_copy", started)
        pages = ", ".join(str(count) for count in rounds.pages_per_round)
        self.report.precopy = (
            f"{rounds.rounds} round(s) while running ({pages} pages, "
            f"{_megabytes(moved.bytes)}); stopped because {rounds.stop_reason}"
        )
        self._notice(f"pre-copy: {self.report.precopy}")

    def _host_facts(
        self, session: SSHSession, asks: Mapping[str, Sequence[str]]
    ) -> tuple[HostFacts, dict[str, CommandResult]]:
        """The host's podman and CRIU, checked; and the answers to ``asks``, run at the
        same time (they need root, so they wait for the sudo check)."""
        name = session.host.name
        timeout = self.options.command_timeout_s
        uid = session.run(commands.whoami(), privileged=False, timeout=timeout)
        is_root = uid.ok and uid.stdout.strip() == "0"
        if not is_root:
            sudo = session.run(commands.sudo_works(), privileged=False, timeout=timeout)
            if not sudo.ok:
                raise PreflightFailed(
                    f"{name}: user {session.host.user!r} is not root and 'sudo -n' does not "
                    f"work ({(sudo.stderr or sudo.stdout).strip()[:200]})",
                    host=name,
                    hint="podman checkpoint/restore needs root: log in as root, or allow "
                    f"passwordless sudo for {session.host.user!r} (celestial-ssh never "
                    "types a sudo password).",
                )
            session.privileged_prefix = SUDO_PREFIX
        # the host's own checks first: their failure is the one to report
        questions = {
            _PODMAN_INFO: commands.podman_info(),
            _CRIU_VERSION: commands.criu_version(),
            _CRIU_CHECK: commands.criu_check(),
            **asks,
        }
        answers = dict(
            zip(
                questions,
                run_together(
                    *(partial(session.run, argv, timeout=timeout) for argv in questions.values())
                ),
                strict=True,
            )
        )
        info_result = answers.pop(_PODMAN_INFO)
        if info_result.exit_status == 127:
            raise PreflightFailed(
                f"{name}: podman is not installed",
                host=name,
                hint="Install podman on the host (e.g. apt-get install podman runc).",
            )
        if not info_result.ok:
            raise PreflightFailed(
                f"{name}: 'podman info' failed: {info_result.stderr.strip()[-300:]}", host=name
            )
        try:
            podman = parse_podman_info(info_result.stdout)
        except (OutputError, KeyError) as error:
            raise PreflightFailed(
                f"{name}: cannot read 'podman info': {error}", host=name
            ) from error
        version_result = answers.pop(_CRIU_VERSION)
        criu_version = parse_criu_version(version_result.stdout)
        if not version_result.ok or criu_version is None:
            raise PreflightFailed(
                f"{name}: CRIU is not installed (or not on root's PATH)",
                host=name,
                hint="Install CRIU >= 4.2 on kernels >= 6.16 (see README 'Requirements'); "
                "check with: criu check",
            )
        if version_tuple(criu_version) < MINIMUM_CRIU:
            raise PreflightFailed(f"{name}: CRIU {criu_version} is too old", host=name)
        check = answers.pop(_CRIU_CHECK)
        if not check.ok:
            tail = "\n".join((check.stderr + check.stdout).strip().splitlines()[-4:])
            raise PreflightFailed(
                f"{name}: 'criu check' fails with CRIU {criu_version}:\n{tail}",
                host=name,
                hint="This kernel needs a newer CRIU (README 'Requirements'); nothing was "
                "changed on either host.",
            )
        facts = HostFacts(name=name, is_root=is_root, podman=podman, criu_version=criu_version)
        return facts, answers

    def _warn_about_leftovers(
        self, info: ContainerInfo, listings: dict[SSHSession, CommandResult]
    ) -> None:
        """Work directories of this container from an earlier run that never cleaned up (a
        killed coordinator): not in this run's way, but an archive on tmpfs holds memory
        until it is removed, so say where they are and what removes them."""
        for session, listing in listings.items():
            found = listing.stdout.split() if listing.ok else []
            if not found:
                continue
            self._notice(
                f"{session.host.name}: {len(found)} work "
                f"{'directory' if len(found) == 1 else 'directories'} of an earlier, "
                f"unfinished migration of {info.name} ({', '.join(found)}); "
                f"'celestial-ssh recover {self._source_text} {self._target_text} "
                f"{self._container}' removes them once this one is done",
                level="warning",
            )

    def _check_socat(self, session: SSHSession, found: CommandResult) -> None:
        if not found.ok:
            raise PreflightFailed(
                f"{session.host.name}: --tls needs socat, which is not installed there",
                host=session.host.name,
                hint="Install socat on both hosts (e.g. apt-get install socat), or leave out "
                "--tls; nothing was changed on either host.",
            )

    def _inspect_source(self, result: CommandResult) -> ContainerInfo:
        if not result.ok:
            raise PreflightFailed(
                f"{self._source_text}: no container {self._container!r}",
                host=self._source_text,
                hint=f"List the candidates with: celestial-ssh ps {self._source_text} "
                f"(or ssh {self._source_text} podman ps).",
            )
        info = parse_container_inspect(result.stdout)
        if not info.is_running:
            raise PreflightFailed(
                f"{self._source_text}: container {self._container!r} is {info.status}, not running",
                host=self._source_text,
                hint="Only a running container can be live-migrated; start it first, or "
                "move a stopped one with podman save/load.",
            )
        return info

    def _take_lock(self, source: SSHSession, info: ContainerInfo) -> None:
        self._lock = take_migration_lock(
            source,
            self._container,
            info.id,
            timeout_s=self.options.command_timeout_s,
            warn=lambda message: self._notice(message, level="warning"),
        )

    def _check_target_is_free(self, listing: CommandResult, info: ContainerInfo) -> None:
        if not listing.ok:
            raise listing.failure(f"{self._target_text}: listing containers failed")
        containers = parse_container_list(listing.stdout)
        wanted = self.options.new_name or info.name
        for item in containers:
            if item.id == info.id:
                raise PreflightFailed(
                    f"{self._target_text} already has a container with ID {info.id[:12]} "
                    f"({', '.join(item.names)}, {item.state})",
                    host=self._target_text,
                    hint="It may be a copy left by an earlier migration; remove it or "
                    "restore under another name with --name.",
                )
            if wanted in item.names:
                raise PreflightFailed(
                    f"{self._target_text} already has a container named {wanted!r} "
                    f"({item.id[:12]}, {item.state})",
                    host=self._target_text,
                    hint="Pick another name on the target with --name NEW_NAME.",
                )
        self._progress.target_ids_before = {item.id for item in containers}

    def _stage_image(self) -> None:
        info = self._progress.source_info
        assert info is not None
        source, target = self._sessions()
        timeout = self.options.command_timeout_s
        image = info.image_name or info.image_id
        on_target = self._target_image  # asked during preflight
        assert on_target is not None
        if on_target.ok:
            target_id = parse_image_id(on_target.stdout)
            if target_id == info.image_id:
                self._emit(PhaseSkipped(Phase.STAGE_IMAGE, f"{image} already on target"))
                return
            mismatch = PreflightFailed(
                f"{self._target_text} has an image {image!r} with another ID "
                f"({target_id[:12]}, the container uses {info.image_id[:12]})",
                host=self._target_text,
                hint="Restore needs the very image the container was created from: remove "
                "or retag the target's image, or push the same image to both hosts.",
            )
            with self._phase(Phase.STAGE_IMAGE, image):
                raise mismatch
        with self._phase(Phase.STAGE_IMAGE, image) as outcome:
            size_result = source.run(commands.image_inspect(image), timeout=timeout)
            expected = _image_size(size_result.stdout) if size_result.ok else None
            self._progress.state = State.STAGED
            self._progress.staged_image_id = info.image_id
            loader = self._data_plane().start(target, commands.image_load())
            saver = self._data_plane().start(source, commands.image_save(image))
            try:
                # the image moves before the freeze, unthrottled (--bwlimit caps migrations'
                # archives)
                moved = self._relay(saver, loader, "image", expected, throttled=False)
            except BaseException:
                # never leave a load running behind the undo's `podman image rm`
                saver.kill()
                loader.kill()
                raise
            saved = saver.wait(timeout)
            loaded = loader.wait(timeout)
            for result, what in ((saved, "podman save"), (loaded, "podman load")):
                if not result.ok:
                    raise result.failure(f"{result.host}: {what} of {image} failed")
            self._emit(TransferProgress("image", moved.bytes, expected, finished=True))
            self.report.bytes_transferred += moved.bytes
            self.report.image_staged = True
            outcome["detail"] = f"{image}, {_megabytes(moved.bytes)}"

    def _prepare(self) -> None:
        timeout = self.options.command_timeout_s
        info = self._progress.source_info
        target = self._sessions()[1]
        if self.report.image_staged and info is not None:
            # staging may have taken minutes: preflight's reading is stale by now
            self._memory_in_use = self._sessions()[0].run(
                commands.container_stats(info.id), timeout=timeout
            )
        # the target's work directory is where the archive lands: on tmpfs if it fits
        landing = None
        if info is not None and (estimate := self._archive_estimate(info)):
            landing = commands.make_landing_workdir(info.id, estimate)

        def make(session: SSHSession) -> str:
            if session is target and landing:
                argv = landing
            else:
                argv = commands.make_workdir(info.id) if info else commands.make_workdir()
            made = session.run(
                argv, timeout=timeout, check=True, what="creating a private work directory"
            )
            if argv is not landing:
                if session is target:
                    self.report.landing = commands.LANDING_DISK
                return made.stdout.strip()
            try:
                workdir, self.report.landing = commands.parse_landing_workdir(made.stdout)
            except ValueError as error:
                raise PreflightFailed(
                    f"{self._target_text}: {error}", host=self._target_text
                ) from error
            return workdir

        source_dir, target_dir = self._both(make)
        self._progress.source_workdir = source_dir
        self._progress.target_workdir = target_dir
        self._progress.state = State.PREPARED
        if self.options.tls:
            self._prepare_tls()
        elif self.options.direct:
            self._prepare_direct()
        if self.options.compression == "auto":
            self._choose_compression()
        self.report.compression = self._compression
        if self._precopy:
            self._copy_memory_while_running()

    def _archive_estimate(self, info: ContainerInfo) -> int | None:
        """How large the archive may get, from the container's memory in use as preflight
        read it (None when podman could not say: the archive then lands on disk)."""
        sample = self._memory_in_use
        if sample is None:
            return None
        usage = parse_memory_usage(sample.stdout) if sample.ok else {}
        memory = usage.get(info.id[:12]) or usage.get(info.id) or usage.get(info.name)
        if not memory:
            return None
        # pre-copy lands a second archive beside the final one
        return commands.archive_size_estimate(memory) * (2 if self._precopy else 1)

    def _data_plane(self) -> DataPlane:
        assert self._plane is not None
        return self._plane

    def _prepare_direct(self) -> None:
        """Check, before the freeze, that the source can stream straight to the target."""
        source, target = self._sessions()
        assert self._progress.source_workdir is not None
        started = time.monotonic()
        try:
            probe = self._data_plane().prepare_direct(
                source, target, self._progress.source_workdir, timeout=30.0
            )
            ok, why = probe.ok, probe.stderr.strip().splitlines()[-1:] or ["no reason given"]
        except CelestialError as error:
            ok, why = False, [_one_line(error)]
        self._time_step("direct_check", started)
        if ok:
            self._direct = True
            self.report.transport = f"direct ({self._data_plane().kind} to the source)"
            return
        self._notice(
            f"{self._source_text} cannot log in to {self._target_text} itself ({why[0]}); "
            "the archive is relayed through this machine instead of --direct",
            level="warning",
        )

    def _prepare_tls(self) -> None:
        """``--tls``: hand each end its credentials before the freeze. No fallback: the
        user asked for this link, and whatever fails here fails before anything changed."""
        source, target = self._sessions()
        assert self._progress.source_workdir and self._progress.target_workdir
        started = time.monotonic()
        self._tls_address = self._data_plane().prepare_tls(
            source,
            target,
            self._progress.source_workdir,
            self._progress.target_workdir,
            timeout=self.options.command_timeout_s,
            address=self.options.tls_address,
        )
        self._time_step("tls_setup", started)
        self._direct = True
        self.report.transport = f"direct TLS (socat, to {self._tls_address})"

    def _choose_compression(self) -> None:
        """``--compress auto``: measure the link and how well the memory compresses."""
        source, target = self._sessions()
        info = self._progress.source_info
        assert info is not None
        plane = self._data_plane()
        started = time.monotonic()

        def measure_link() -> LinkMeasurement:
            if self._tls_address is not None:
                assert self._progress.source_workdir and self._progress.target_workdir
                return plane.measure_tls(
                    source,
                    target,
                    self._progress.source_workdir,
                    self._progress.target_workdir,
                    self._tls_address,
                    PROBE_BYTES,
                    port=self.options.tls_port,
                )
            if self._direct:
                assert self._progress.source_workdir is not None
                return plane.measure_direct(
                    source, target, self._progress.source_workdir, PROBE_BYTES
                )
            return plane.measure(source, target, PROBE_BYTES)

        try:
            # both at once: each pays a connection set-up
            measured, sampled = run_together(
                measure_link, partial(self._memory_sample, source, info.pid)
            )
            link, sample = cast(LinkMeasurement, measured), cast(bytes, sampled)
        except (CelestialError, OSError) as error:
            self._compression = "none"
            self._notice(
                f"--compress auto could not measure the link ({_one_line(error)}); "
                "sending the archive uncompressed",
                level="warning",
            )
            return
        estimate = compressibility(sample)
        choice = choose_compression(
            link_bytes_per_s=self._effective_rate(link.bytes_per_s),
            ratio=estimate.ratio,
            # every predicted time grows linearly with the size, so the choice does not
            # depend on it; a nominal size keeps the reason's seconds readable
            archive_bytes_estimate=NOMINAL_ARCHIVE_BYTES,
        )
        self._compression = choice.compression
        self.report.compression_choice = choice.reason
        self._time_step("compression_choice", started)
        self._notice(f"--compress auto chose {choice.reason}")

    def _effective_rate(self, measured: float) -> float:
        limit = self.options.bwlimit_bytes_per_s
        return min(measured, limit) if limit else measured

    def _memory_sample(self, source: SSHSession, pid: int) -> bytes:
        if pid <= 0:
            return b""
        reader = self._data_plane().start(source, sample_memory_command(pid))
        chunks = []
        try:
            reader.set_read_timeout(10.0)
            while chunk := reader.read(1 << 20):
                chunks.append(chunk)
            reader.wait(30.0)
        finally:
            reader.kill()
        return b"".join(chunks)

    def _checkpoint_and_transfer(self) -> None:
        info = self._progress.source_info
        source_workdir, target_workdir = (
            self._progress.source_workdir,
            self._progress.target_workdir,
        )
        assert info is not None and source_workdir and target_workdir
        self._emit(PhaseStarted(Phase.CHECKPOINT, f"{info.name} on {self._source_text}"))
        self._emit(PhaseStarted(Phase.TRANSFER, f"to {self._target_text}"))
        exporter, lander = self._connect_streams(source_workdir, target_workdir)
        started = time.monotonic()
        self._progress.freeze_started = started
        self._progress.state = State.FROZEN
        try:
            exporter.write(commands.GO_LINE)
            exported = None
            if lander is None:
                moved_bytes, exported = self._watch_direct_stream(exporter)
                relayed_sum, stream_s = None, time.monotonic() - started
            else:
                moved = self._relay(exporter, lander, "checkpoint")
                moved_bytes, relayed_sum, stream_s = moved.bytes, moved.sha256, moved.seconds
            if exported is None:
                checkpointed = exporter.wait(self.options.restore_timeout_s)
        except BaseException as error:
            exporter.kill()
            self._kill_receivers(lander)
            duration = time.monotonic() - started
            self._emit(PhaseFailed(Phase.CHECKPOINT, duration, _one_line(error)))
            self._emit(PhaseFailed(Phase.TRANSFER, duration, _one_line(error)))
            raise
        if exported is not None:
            self._archive_complete(exporter, exported, started)
            return
        checkpoint_s = time.monotonic() - started
        self.report.timings[Phase.CHECKPOINT.value] = round(checkpoint_s, 4)
        if not checkpointed.ok:
            self._kill_receivers(lander)
            self._emit(PhaseFailed(Phase.CHECKPOINT, checkpoint_s, checkpointed.stderr.strip()))
            self._emit(PhaseFailed(Phase.TRANSFER, checkpoint_s, "the checkpoint failed"))
            if checkpointed.exit_status == -1:
                raise ConnectionFailed(
                    f"{self._source_text}: the connection died during the checkpoint",
                    host=self._source_text,
                )
            if checkpointed.exit_status == commands.EXIT_DIRECT_LINK_FAILED:
                raise ConnectionFailed(
                    f"{self._source_text}: the direct stream to {self._target_text} broke",
                    host=self._target_text,
                )
            raise RemoteCommandFailed(
                f"{self._source_text}: podman checkpoint of {info.name} failed",
                host=self._source_text,
                command=checkpointed.command,
                exit_status=checkpointed.exit_status,
                stderr="\n".join(
                    line
                    for line in checkpointed.stderr.splitlines()
                    if not line.startswith(commands.SOURCE_BYTES_MARKER)
                ),
                hint="If the container uses established TCP connections, try --tcp-established.",
            )
        source_bytes = commands.parse_source_bytes(checkpointed.stderr)
        if self._direct:
            if source_bytes is None:
                raise ConnectionFailed(
                    f"{self._source_text} did not report the archive's size, and no copy "
                    "passed this machine to count it; it was not restored",
                    host=self._source_text,
                )
            moved_bytes = source_bytes
        elif source_bytes is None:
            self._notice(
                f"{self._source_text} did not report the archive's size; the "
                "coordinator's own count of the stream is used instead",
                level="warning",
            )
        elif source_bytes != moved_bytes:
            self._reject_archive(
                lander,
                checkpoint_s,
                f"the archive was cut short between {self._source_text} and this machine "
                f"({source_bytes} bytes sent by the source, {moved_bytes} arrived here); "
                "it was not restored",
            )
        source_sum = commands.parse_source_sum(checkpointed.stderr)
        if source_sum is None and relayed_sum is not None:
            self._notice(
                f"{self._source_text} did not report the archive's SHA-256; the "
                "coordinator's own digest of the stream is used instead",
                level="warning",
            )
        if source_sum is not None and relayed_sum is not None and source_sum != relayed_sum:
            self._reject_archive(
                lander,
                checkpoint_s,
                f"the archive was damaged between {self._source_text} and this machine "
                f"(SHA-256 {source_sum[:16]}... on the source, {relayed_sum[:16]}... here); "
                "it was not restored",
            )
        self._emit(PhaseFinished(Phase.CHECKPOINT, checkpoint_s, _megabytes(moved_bytes)))
        if lander is not None:
            landed = lander.wait(self.options.command_timeout_s)
            if not landed.ok:
                transfer_s = time.monotonic() - started
                self._emit(PhaseFailed(Phase.TRANSFER, transfer_s, landed.stderr.strip()))
                raise RemoteCommandFailed(
                    f"{self._target_text}: receiving the checkpoint archive failed",
                    host=self._target_text,
                    command=landed.command,
                    exit_status=landed.exit_status,
                    stderr=landed.stderr,
                )
        self._wait_for_tls_landing(started)
        self._landed(moved_bytes, relayed_sum, started, stream_s)

    def _wait_for_tls_landing(self, started: float) -> None:
        """With ``--tls``: wait until the target's socat has written the last byte."""
        if self._tls_listener is None:
            return
        # the source's socat has sent its last byte; the target's may still be writing
        landed = self._tls_listener.wait(self.options.command_timeout_s)
        if not landed.ok:
            transfer_s = time.monotonic() - started
            self._emit(PhaseFailed(Phase.TRANSFER, transfer_s, landed.stderr.strip()))
            raise ConnectionFailed(
                f"{self._target_text}: receiving the checkpoint archive over TLS failed "
                f"({landed.stderr.strip()[-300:] or f'exit {landed.exit_status}'})",
                host=self._target_text,
            )

    def _landed(
        self, moved_bytes: int, relayed_sum: str | None, started: float, stream_s: float
    ) -> None:
        transfer_s = time.monotonic() - started
        self.report.timings[Phase.TRANSFER.value] = round(transfer_s, 4)
        self._emit(TransferProgress("checkpoint", moved_bytes, moved_bytes, finished=True))
        rate = moved_bytes / stream_s if stream_s > 0 else 0.0
        self._emit(
            PhaseFinished(
                Phase.TRANSFER, transfer_s, f"{_megabytes(moved_bytes)} at {_megabytes(rate)}/s"
            )
        )
        self.report.bytes_transferred += moved_bytes
        self.report.archive_bytes = moved_bytes
        self.report.archive_sha256 = relayed_sum
        self._progress.state = State.LANDED

    def _archive_complete(self, exporter: StreamProcess, exported: int, started: float) -> None:
        """The source said the archive is complete (and, over ``ssh``, landed) while podman
        still tidies up there (network, storage: 0.15-0.5 s on our lab): the restore need
        not wait for that. The checkpoint's exit is collected once the restore was sent."""
        checkpoint_s = time.monotonic() - started
        self.report.timings[Phase.CHECKPOINT.value] = round(checkpoint_s, 4)
        self._emit(PhaseFinished(Phase.CHECKPOINT, checkpoint_s, _megabytes(exported)))
        # a rollback from here waits for the checkpoint's end by its status file
        self._wait_for_tls_landing(started)
        self._checkpoint_ending = (exporter, time.monotonic())
        self._landed(exported, None, started, checkpoint_s)

    def _kill_receivers(self, lander: StreamProcess | None) -> None:
        """Stop whatever receives the archive on the target: the relayed lander, or the
        ``--tls`` listener."""
        for receiving in (lander, self._tls_listener):
            if receiving is not None:
                receiving.kill()

    def _connect_streams(
        self, source_workdir: str, target_workdir: str
    ) -> tuple[StreamProcess, StreamProcess | None]:
        """Before the freeze: connect the checkpoint stream (and, when relaying, the landing
        side) and wait until each says it is ready. Returns (exporter, lander or None)."""
        info = self._progress.source_info
        assert info is not None
        source, target = self._sessions()
        plane = self._data_plane()
        started: list[StreamProcess] = []
        try:
            if self._tls_address is not None:
                exporter = self._connect_tls_stream(source_workdir, target_workdir, started)
                self._start_direct_landing_side(target_workdir, started)
                return exporter, None
            if self._direct:
                land = commands.land_archive(target_workdir, hashed=False, announce=True)
                checkpoint = commands.checkpoint_stream(
                    info.id, source_workdir, self._checkpoint_options(), announce=True
                )
                exporter = plane.start(
                    source,
                    commands.direct_checkpoint_stream(
                        checkpoint,
                        source_workdir,
                        plane.direct_link(source_workdir, target, land),
                    ),
                    forward_agent=True,
                )
                started.append(exporter)
                self._await_ready(exporter, self._target_text)
                self._start_direct_landing_side(target_workdir, started)
                return exporter, None
            lander = plane.start(target, commands.land_archive(target_workdir, announce=True))
            started.append(lander)
            exporter = plane.start(
                source,
                commands.checkpoint_stream(
                    info.id, source_workdir, self._checkpoint_options(), gated=True, hashed=True
                ),
            )
            started.append(exporter)
            self._await_ready(lander, self._target_text)
            self._await_ready(exporter, self._source_text)
            self._restorer = self._start_restorer(target_workdir, started)
            return exporter, lander
        except BaseException as error:
            for process in started:
                process.kill()
            duration = 0.0
            self._emit(PhaseFailed(Phase.CHECKPOINT, duration, _one_line(error)))
            self._emit(PhaseFailed(Phase.TRANSFER, duration, _one_line(error)))
            raise

    def _connect_tls_stream(
        self, source_workdir: str, target_workdir: str, started: list[StreamProcess]
    ) -> StreamProcess:
        """``--tls``: the target listens, the source connects and completes the handshake;
        both run on the control connections (no data passes through SSH)."""
        info = self._progress.source_info
        assert info is not None and self._tls_address is not None
        source, target = self._sessions()
        plane = self._data_plane()
        stall = self.options.stream_stall_timeout_s
        listener, port = plane.start_tls_listener(
            target,
            target_workdir,
            self._tls_address,
            f"{target_workdir}/{commands.ARCHIVE_NAME}",
            port=self.options.tls_port,
            stall_timeout_s=stall,
            accept_timeout_s=READY_TIMEOUT_S,
        )
        started.append(listener)
        self._tls_listener = listener
        link = plane.tls_link(
            source_workdir,
            self._tls_address,
            port,
            commands.direct_link_fifo(source_workdir),
            stall_timeout_s=stall,
        )
        checkpoint = commands.checkpoint_stream(
            info.id, source_workdir, self._checkpoint_options(), announce=True
        )
        exporter = source.start(commands.direct_checkpoint_stream(checkpoint, source_workdir, link))
        started.append(exporter)
        self._await_ready(exporter, self._target_text)
        return exporter

    def _start_direct_landing_side(self, target_workdir: str, started: list[StreamProcess]) -> None:
        """A direct stream's target side, before the freeze: the gated restore, and the
        watch that reports how much has landed."""
        _, target = self._sessions()
        self._restorer = self._start_restorer(target_workdir, started)
        self._landing_watch = target.start(
            commands.landed_bytes_watch(
                target_workdir, DIRECT_PROGRESS_INTERVAL_S, DIRECT_PROGRESS_LIMIT_S
            )
        )
        started.append(self._landing_watch)
        self._await_ready(self._landing_watch, self._target_text)

    def _start_restorer(self, target_workdir: str, started: list[StreamProcess]) -> StreamProcess:
        """The restore command, connected now and started by a go line once the archive
        has landed: no new SSH command (0.15 s on our lab hosts) falls into the downtime."""
        _, target = self._sessions()
        restorer = self._data_plane().start(
            target,
            commands.gated_restore_import(
                target_workdir,
                name=self.options.new_name,
                options=self._checkpoint_options(),
                import_previous=self._previous_archive,
            ),
        )
        started.append(restorer)
        self._await_ready(restorer, self._target_text)
        return restorer

    def _await_ready(self, process: StreamProcess, host: str) -> None:
        """Read the stream's ready line; nothing is frozen yet, so any failure is clean."""
        await_ready(
            process,
            timeout=READY_TIMEOUT_S,
            host=host,
            ended_before="the freeze",
            check=self._raise_if_cancelled,
        )

    def _reject_archive(
        self, lander: StreamProcess | None, checkpoint_s: float, message: str
    ) -> NoReturn:
        """The relayed archive is not what the source sent: never restore it."""
        if lander is not None:
            lander.kill()
        self._emit(PhaseFailed(Phase.CHECKPOINT, checkpoint_s, "archive mismatch"))
        self._emit(PhaseFailed(Phase.TRANSFER, checkpoint_s, "archive mismatch"))
        raise ConnectionFailed(message, host=self._source_text)

    def _checkpoint_options(self) -> CheckpointOptions:
        options = self.options.checkpoint_options(self._compression)
        if self._previous_archive is not None:
            options = dataclasses.replace(options, with_previous=True)
        return options

    def _relay(
        self,
        sender: StreamProcess,
        receiver: StreamProcess,
        what: str,
        expected: int | None = None,
        *,
        throttled: bool = True,
    ) -> RelayResult:
        """Relay ``sender`` into ``receiver``, reporting progress as ``what``; a cancel
        request stops it, and ``--bwlimit`` caps it when ``throttled``."""
        limit = self.options.bwlimit_bytes_per_s
        return relay(
            sender,
            receiver,
            on_progress=lambda done: self._emit(TransferProgress(what, done, expected)),
            stall_timeout=self.options.stream_stall_timeout_s,
            should_stop=self._cancel.is_set,
            throttle=TokenBucket(limit) if limit and throttled else None,
        )

    def _watch_direct_stream(self, exporter: StreamProcess) -> tuple[int, int | None]:
        """Wait for a ``--direct`` stream, reporting how much has landed on the target.

        Its end is noticed within ``DIRECT_END_POLL_S`` (that wait is downtime); the landed
        size comes from the landing watch started before the freeze, read in another thread.
        The announcing checkpoint ends the wait earlier, once the source says its archive
        is complete (and, over ``ssh``, that its link has ended: see
        :class:`~celestial_ssh.commands.StreamAnnouncements`). Returns the bytes landed by
        the last look and the size the restore may go with (None: wait for the script's
        end); honours a cancel and the stall timeout.
        """
        watch = self._landing_watch
        assert watch is not None
        landed = [0, time.monotonic()]  # bytes, when they last changed
        done = threading.Event()
        said = commands.StreamAnnouncements(link_must_end=self._tls_address is None)
        announced = threading.Event()

        def listen() -> None:
            lines = b""
            while not (announced.is_set() or done.is_set() or said.link_failed):
                try:
                    chunk = exporter.read(4096)
                except TimeoutError:
                    continue
                except (OSError, EOFError):
                    return  # the script's end is seen by the loop below
                if not chunk:
                    return
                *complete, lines = (lines + chunk).split(b"\n")
                for line in complete:
                    said.add(line.decode(errors="replace"))
                if said.restorable_size is not None:
                    announced.set()

        def look() -> None:
            watch.set_read_timeout(DIRECT_PROGRESS_INTERVAL_S * 4)
            unfinished = b""
            while not done.is_set():
                try:
                    chunk = watch.read(4096)
                except TimeoutError:
                    continue
                except (OSError, EOFError):
                    return  # progress only: the stream and its stall check go on
                if not chunk:
                    return
                size, unfinished = commands.parse_landed_sizes(unfinished + chunk)
                if size is not None and size != landed[0] and not done.is_set():
                    landed[:] = [size, time.monotonic()]
                    self._emit(TransferProgress("checkpoint", size, None))

        watcher = threading.Thread(target=look, daemon=True)
        watcher.start()
        exporter.set_read_timeout(DIRECT_PROGRESS_INTERVAL_S)  # read only by listen()
        threading.Thread(target=listen, daemon=True).start()
        try:
            while exporter.is_running() and not announced.is_set():
                if self._cancel.is_set():
                    raise RelayStopped("the transfer was stopped on request")
                if time.monotonic() - landed[1] > self.options.stream_stall_timeout_s:
                    raise ConnectionFailed(
                        f"no data landed on {self._target_text} for "
                        f"{self.options.stream_stall_timeout_s:.0f} s while streaming",
                        host=self._target_text,
                    )
                time.sleep(DIRECT_END_POLL_S)
        finally:
            done.set()
            watch.kill()
        return int(landed[0]), said.restorable_size if announced.is_set() else None

    def _restore(self) -> None:
        assert self._progress.target_workdir and self.report.archive_bytes is not None
        _, target = self._sessions()
        with self._phase(Phase.RESTORE, f"on {self._target_text}") as outcome:
            if self.options.new_name is not None:
                # a restore under a new name gets a new ID: remember what was there before,
                # so a rollback removes only what the restore itself made
                listing = target.run(
                    commands.container_list_all(),
                    timeout=self.options.command_timeout_s,
                    check=True,
                    what="listing containers",
                )
                self._progress.target_ids_before = {
                    item.id for item in parse_container_list(listing.stdout)
                }
            self._progress.state = State.RESTORING
            result = self._run_restore()
            if not result.ok:
                self._collect_checkpoint_end()  # before any rollback looks at the source
                what = {
                    commands.EXIT_ARCHIVE_CHECKSUM_MISMATCH: "the archive arrived damaged "
                    "(SHA-256 mismatch); it was not restored",
                    commands.EXIT_ARCHIVE_SIZE_MISMATCH: "the archive arrived incomplete; "
                    "it was not restored",
                }.get(result.exit_status, "podman restore failed")
                raise RemoteCommandFailed(
                    f"{self._target_text}: {what}",
                    host=self._target_text,
                    command=result.command,
                    exit_status=result.exit_status,
                    stderr=result.stderr,
                )
            self.report.restore_stats = flatten_stats(parse_stats(result.stdout))
            self.report.downtime_s = round(
                time.monotonic() - (self._progress.freeze_started or time.monotonic()), 4
            )
            outcome["detail"] = f"downtime {self.report.downtime_s:.2f} s"
        self._collect_checkpoint_end()

    def _run_restore(self) -> CommandResult:
        """Start the restore that has waited on the target since before the freeze."""
        restorer = self._restorer
        assert restorer is not None and self.report.archive_bytes is not None
        timeout = self.options.restore_timeout_s
        output = bytearray()
        try:
            restorer.write(
                commands.restore_go_line(self.report.archive_bytes, self.report.archive_sha256)
            )
            self._watch_checkpoint_end()
            restorer.set_read_timeout(timeout)
            while chunk := restorer.read(1 << 16):
                output += chunk
        except (OSError, EOFError) as error:
            raise ConnectionFailed(
                f"{self._target_text}: the connection failed during the restore: "
                f"{error or type(error).__name__}",
                host=self._target_text,
            ) from error
        result = restorer.wait(timeout)
        if result.exit_status == -1:
            raise ConnectionFailed(
                f"{self._target_text}: the connection closed before the restore finished",
                host=self._target_text,
            )
        return dataclasses.replace(result, stdout=output.decode(errors="replace"))

    def _watch_checkpoint_end(self) -> None:
        """Once the restore was sent: wait, in a thread, for a checkpoint whose archive was
        complete before podman had ended, so that neither the restore's answer nor the
        downtime waits for the source."""
        ending, self._checkpoint_ending = self._checkpoint_ending, None
        if ending is None:
            return
        exporter, completed_at = ending

        end: Future[tuple[CommandResult | CelestialError, float]] = Future()

        def wait() -> None:
            try:
                said: CommandResult | CelestialError = exporter.wait(self.options.command_timeout_s)
            except CelestialError as error:
                said = error
            end.set_result((said, time.monotonic() - completed_at))

        # a daemon thread (not a pool's): a source that never answers must not hold up exit
        threading.Thread(target=wait, daemon=True).start()
        self._checkpoint_end = end

    def _collect_checkpoint_end(self) -> None:
        """What that checkpoint said at its end.

        The restore has been sent: whatever podman says now, the archive it made is on the
        target, and its process on the source ended with the dump. A failure while it
        tidied up is reported, never rolled back (that could make two running copies).
        """
        end, self._checkpoint_end = self._checkpoint_end, None
        if end is None:
            return
        source = self._source_text
        said: CommandResult | CelestialError | None = None
        with contextlib.suppress(TimeoutError):
            said, tidied_s = end.result(timeout=self.options.command_timeout_s + 5.0)
            self.report.timings["source_tidy_up"] = round(tidied_s, 4)
        if isinstance(said, CommandResult) and said.ok:
            return
        if said is None or isinstance(said, CelestialError) or said.exit_status == -1:
            why = _one_line(said) if isinstance(said, CelestialError) else "no answer"
            self._notice(
                f"{source}: the end of podman's checkpoint was not seen ({why}); its archive "
                f"was complete and the restore went ahead; check the stopped copy on {source} "
                "with 'podman ps -a'",
                level="warning",
            )
            return
        if said.exit_status == commands.EXIT_DIRECT_LINK_FAILED:
            self._notice(
                f"{source}: its end of the TLS link reported a failure after the whole "
                "archive had landed; the restore went ahead",
                level="warning",
            )
            return
        lines = [
            line
            for line in said.stderr.splitlines()
            if line.strip() and not line.startswith(commands.SOURCE_BYTES_MARKER)
        ]
        detail = lines[-1].strip() if lines else f"exit {said.exit_status}"
        self._notice(
            f"{source}: podman reported a failure after its checkpoint archive was "
            f"complete ({detail[-300:]}); the restore went ahead; check the stopped "
            f"copy on {source} with 'podman ps -a'",
            level="warning",
        )

    def _verify(self) -> None:
        _, target = self._sessions()
        name = self.report.target_container or self._container
        with self._phase(Phase.VERIFY, f"{name} on {self._target_text}") as outcome:
            result = target.run(
                commands.container_inspect(name),
                timeout=self.options.command_timeout_s,
                check=True,
                what=f"inspecting {name}",
            )
            info = parse_container_inspect(result.stdout)
            if not info.is_running:
                raise PreflightFailed(
                    f"{self._target_text}: restored container {name!r} is {info.status}, "
                    "not running",
                    host=self._target_text,
                )
            self._progress.state = State.RUNNING
            self.report.outcome = Outcome.MIGRATED
            outcome["detail"] = f"{name} ({info.id[:12]}) running"

    def _cleanup(self) -> None:
        source, target = self._sessions()
        progress = self._progress
        timeout = self.options.command_timeout_s
        with self._phase(Phase.CLEANUP) as outcome:
            done = []
            info = progress.source_info
            remove_copy = info is not None and not self.options.keep_source

            def tidy_source_workdir() -> CommandResult | None:
                workdir = progress.source_workdir
                if not workdir:
                    return None
                stats = source.run(
                    ["cat", f"{workdir}/{commands.CHECKPOINT_STATS_NAME}"], timeout=timeout
                )
                if stats.ok:
                    self.report.checkpoint_stats = flatten_stats(parse_stats(stats.stdout))
                return source.run(commands.remove_workdir(workdir), timeout=timeout)

            def remove_source_copy() -> CommandResult | None:
                if not remove_copy:
                    return None
                assert info is not None
                return source.run(commands.container_remove(info.id), timeout=timeout)

            def remove_target_workdir() -> CommandResult | None:
                workdir = progress.target_workdir
                return (
                    target.run(commands.remove_workdir(workdir), timeout=timeout)
                    if workdir
                    else None
                )

            # three independent steps, at once (notices follow, in a fixed order)
            workdir_removed, removed, target_workdir_removed = run_together(
                tidy_source_workdir, remove_source_copy, remove_target_workdir
            )
            if removed is not None and removed.ok:
                done.append(f"removed the stopped source copy on {self._source_text}")
            elif removed is not None:
                self._notice(
                    f"could not remove the stopped copy on {self._source_text}: "
                    f"{removed.stderr.strip()[-200:]}",
                    level="warning",
                )
            elif info:
                done.append(f"kept the stopped source copy on {self._source_text}")
            for session, workdir, result in (
                (source, progress.source_workdir, workdir_removed),
                (target, progress.target_workdir, target_workdir_removed),
            ):
                if result is not None and not result.ok:
                    self._notice(
                        f"could not remove {workdir} on {session.host.name}", level="warning"
                    )
            progress.source_workdir = progress.target_workdir = None
            progress.state = State.CLEANED
            outcome["detail"] = "; ".join(done) or "archives removed"

    # -- failure handling -------------------------------------------------------------
    def _undo_before_freeze(self) -> None:
        """Leave both hosts as they were: nothing was frozen yet."""
        progress = self._progress
        # one try to reconnect where a connection died: what it made there should go too
        for side, workdir in (
            ("source", progress.source_workdir),
            ("target", progress.target_workdir),
        ):
            if workdir:
                with contextlib.suppress(CelestialError):
                    session = self._reconnected(side, attempts=1)
                    if session is not None:
                        session.run(commands.remove_workdir(workdir), timeout=30)
        progress.source_workdir = progress.target_workdir = None
        if progress.staged_image_id:
            with contextlib.suppress(CelestialError):
                target = self._reconnected("target", attempts=1)
                if target is not None:
                    target.run(commands.image_remove(progress.staged_image_id), timeout=60)
            progress.staged_image_id = None

    def _restore_got_through(self, error: BaseException) -> bool:
        """After losing the answer of a restore: did it succeed on the target after all?

        If it did, the target copy may already be serving; removing it to restore the
        source would throw that away, so the migration is completed instead.
        """
        if self._progress.state is not State.RESTORING or isinstance(error, RemoteCommandFailed):
            return False
        info = self._progress.source_info
        name = self.report.target_container
        try:
            target = self._reconnected("target")
            if target is None or info is None or name is None:
                return False
            self._wait_for_target_restore(target)
            result = target.run(commands.container_inspect(name), timeout=60)
            if not result.ok:
                return False
            copy = parse_container_inspect(result.stdout)
        except (CelestialError, OutputError):
            return False
        ours = copy.id == info.id or (
            self.options.new_name is not None and copy.id not in self._progress.target_ids_before
        )
        if not (ours and copy.is_running):
            return False
        self._progress.state = State.RUNNING
        self.report.outcome = Outcome.MIGRATED
        if self.report.downtime_s is None and self._progress.freeze_started is not None:
            self.report.downtime_s = round(time.monotonic() - self._progress.freeze_started, 4)
        self._notice(
            f"lost the answer of the restore ({_one_line(error)}), but {name} runs on "
            f"{self._target_text}: the migration got through",
            level="warning",
        )
        return True

    def _roll_back(self, cause: BaseException) -> None:
        """From any state after the freeze: make the source run the container again."""
        progress = self._progress
        info = progress.source_info
        assert info is not None
        self._emit(PhaseStarted(Phase.ROLLBACK, f"because: {_one_line(cause)}"))
        started = time.monotonic()
        try:
            if progress.state in (State.RESTORING, State.RUNNING):
                target = self._reconnected("target")
                if target is None:
                    self.report.outcome = Outcome.NEEDS_RECOVERY
                    self._notice(
                        f"cannot reach {self._target_text} to see whether the restore "
                        "started there, so the source copy was NOT restored (that could "
                        "make two running copies)",
                        level="warning",
                    )
                    return
                self._wait_for_target_restore(target)
                self._remove_target_copy(target, info)
            self._restore_source(info)
            self.report.outcome = Outcome.ROLLED_BACK
            self._remove_leftovers()
        except CelestialError as error:
            self.report.outcome = Outcome.NEEDS_RECOVERY
            self._notice(f"rollback failed: {_one_line(error)}", level="warning")
        finally:
            duration = time.monotonic() - started
            self.report.timings[Phase.ROLLBACK.value] = round(duration, 4)
            if self.report.outcome is Outcome.ROLLED_BACK:
                self._emit(
                    PhaseFinished(Phase.ROLLBACK, duration, f"running on {self._source_text}")
                )
            else:
                self._emit(PhaseFailed(Phase.ROLLBACK, duration, "needs recovery"))

    def _reconnected(self, side: str, attempts: int = 3) -> SSHSession | None:
        """The session to ``side``, reconnecting (up to ``attempts`` tries, a second
        apart) if the connection died."""
        session = self._source if side == "source" else self._target
        assert session is not None
        # asked, not assumed: a stream on another connection to the host may have seen the
        # end first, and paramiko would call this one alive until its own read fails
        if session.is_connected and session.answers():
            return session
        fresh = SSHSession(session.host, notice=self._notice)
        for attempt in range(attempts):
            if attempt:
                time.sleep(1.0)
            try:
                fresh.connect()
            except ConnectionFailed:
                continue
            fresh.privileged_prefix = session.privileged_prefix
            # a connection that only answered slowly may still carry the lock, the restore
            # or the listener: it is closed at the end, with the others
            self._retired_sessions.append(session)
            if side == "source":
                self._source = fresh
            else:
                self._target = fresh
            return fresh
        return None

    def _remove_target_copy(self, target: SSHSession, info: ContainerInfo) -> None:
        """Remove the copy our restore made on the target, and only that one."""
        listing = target.run(
            commands.container_list_all(), timeout=60, check=True, what="listing containers"
        )
        new_name = self.options.new_name
        for item in parse_container_list(listing.stdout):
            # without --name the restore keeps the source's ID, so the ID alone says "ours";
            # with --name it gets a new ID, and only a container that was not there just
            # before the restore can be ours (a stranger with that name is left alone)
            ours = item.id == info.id or (
                new_name is not None
                and new_name in item.names
                and item.id not in self._progress.target_ids_before
            )
            if ours:
                target.run(
                    commands.container_remove(item.id, force=True),
                    timeout=120,
                    check=True,
                    what=f"removing the half-restored copy {item.id[:12]}",
                )
                self._notice(f"removed the copy restored on {self._target_text}")

    def _wait_for_target_restore(self, target: SSHSession) -> None:
        """A restore whose answer we lost may still be running: let it end first."""
        workdir = self._progress.target_workdir
        if not workdir or self._progress.restore_ended:
            return
        self._wait_remote(target, commands.wait_for_restore_end, workdir, "the restore")
        self._progress.restore_ended = True

    def _wait_for_source_checkpoint(self, source: SSHSession) -> None:
        """After a lost connection the checkpoint may still run: decide only once it ended."""
        workdir = self._progress.source_workdir
        if workdir:
            self._wait_remote(source, commands.wait_for_checkpoint_end, workdir, "the checkpoint")

    def _wait_remote(
        self,
        session: SSHSession,
        build: Callable[..., list[str]],
        workdir: str,
        what: str,
    ) -> None:
        timeout = int(self.options.restore_timeout_s)
        waited = session.run(build(workdir, timeout_s=timeout), timeout=timeout + 30)
        if not waited.ok:
            raise ConnectionFailed(
                f"{session.host.name}: {what} is still running after {timeout} s",
                host=session.host.name,
            )

    def _restore_source(self, info: ContainerInfo) -> None:
        source = self._reconnected("source")
        if source is None:
            raise ConnectionFailed(
                f"cannot reconnect to {self._source_text} to restore the container",
                host=self._source_text,
            )
        self._wait_for_source_checkpoint(source)
        state = self._inspect(source, info.id)
        if state.is_running:
            self._notice(f"the container still runs on {self._source_text} (it was never frozen)")
            return
        source.run(
            commands.restore_local(info.id),
            timeout=self.options.restore_timeout_s,
            check=True,
            what=f"restoring {info.name} from its checkpoint",
        )
        state = self._inspect(source, info.id)
        if not state.is_running:
            raise PreflightFailed(
                f"{self._source_text}: {info.name} was restored but is {state.status}",
                host=self._source_text,
            )
        self._notice(f"restored {info.name} on {self._source_text} from its checkpoint")

    def _inspect(self, session: SSHSession, container: str) -> ContainerInfo:
        result = session.run(
            commands.container_inspect(container),
            timeout=60,
            check=True,
            what=f"inspecting {container[:12]} on {session.host.name}",
        )
        return parse_container_inspect(result.stdout)

    def _remove_leftovers(self) -> None:
        progress = self._progress
        for side, workdir in (
            ("source", progress.source_workdir),
            ("target", progress.target_workdir),
        ):
            session = self._source if side == "source" else self._target
            if workdir and session:
                live = self._reconnected(side)
                if live is not None:
                    with contextlib.suppress(CelestialError):
                        live.run(commands.remove_workdir(workdir), timeout=30)
        progress.source_workdir = progress.target_workdir = None

    def _close(self) -> None:
        if self._restorer is not None and self._restorer.is_running():
            self._restorer.kill()
        if self._tls_listener is not None:
            self._tls_listener.kill()
        if self._landing_watch is not None:
            self._landing_watch.kill()
        if self._plane is not None:
            self._plane.close()
        if self._lock is not None:
            self._lock.kill()
            self._lock = None
        for session in (self._source, self._target, *self._retired_sessions):
            if session:
                session.close()


_FROZEN_STATES = {
    State.FROZEN.value,
    State.LANDED.value,
    State.RESTORING.value,
}


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _describe(error: BaseException) -> str:
    """The whole message of our own errors (with a command's stderr tail), else one line."""
    if isinstance(error, CelestialError):
        return str(error).strip()
    return _one_line(error)


def _megabytes(count: float) -> str:
    return f"{count / 1e6:.1f} MB"


def _image_size(text: str) -> int | None:
    import json

    try:
        return int(json.loads(text)[0]["Size"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def migrate(
    source: str,
    target: str,
    container: str,
    options: MigrationOptions | None = None,
    on_event: EventSink | None = None,
) -> MigrationReport:
    """Live-migrate ``container`` from ``source`` to ``target``; see :class:`Migration`.

    Raises a :class:`~celestial_ssh.errors.CelestialError`; errors after the freeze are
    :class:`~celestial_ssh.errors.MigrationFailed` and carry the partial report.
    """
    return Migration(source, target, container, options, on_event).run()
