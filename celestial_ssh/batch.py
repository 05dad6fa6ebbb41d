"""Fleet moves: a batch of migrations from a plan file, and the evacuation of a host.

A plan is YAML::

    inventory: inventory.yml          # optional, relative to the plan file
    defaults:                         # optional: any setting of celestial_ssh.settings
      compression: zstd               # none | zstd | gzip | auto (the default, as in migrate)
    migrations:
      - container: web
        from: lab-a
        to: lab-b
        name: web-2                   # optional, per entry only
        keep_source: true             # optional, overrides the defaults
        tls: true                     # transport, direct, tls, bwlimit: override the
                                      # command line's flags for this entry

:func:`run_batch` runs the entries with bounded concurrency through the one migration
engine (:class:`~celestial_ssh.migration.Migration`), so every promise of a single
migration holds for each entry. It stops at the first failure unless told to go on
(migrations already running finish; the others are marked skipped). Re-running a plan is
safe: an entry whose container is gone from its source and runs on its target is reported
``already_moved``. A dry run connects and runs the preflight checks only; nothing is frozen.

:func:`evacuate` moves every running container off a host, spread over the targets by
their free memory, as a batch.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from . import commands, fleet_commands
from .errors import CelestialError, HostConfigError, InvalidInput, PreflightFailed
from .events import Event
from .hosts import HostSpec, ResolvedHost, resolve_host
from .migration import Migration, MigrationOptions, check_options
from .podman_json import (
    OutputError,
    parse_container_inspect,
    parse_container_list,
    parse_memory_usage,
)
from .readiness import parse_meminfo
from .report import MigrationReport, Outcome
from .settings import SETTINGS, option_fields, parse_setting
from .shell import validate_container_name
from .ssh import SUDO_PREFIX, SSHSession

DEFAULT_KEYS = tuple(SETTINGS)
# settings the command line also gives for the whole batch: the plan's word wins for its entries
DATA_PLANE_KEYS = ("transport", "direct", "tls", "bwlimit")
ENTRY_KEYS = ("container", "from", "to", "name", *DEFAULT_KEYS)
TOP_KEYS = ("inventory", "defaults", "migrations")


class EntryStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    MIGRATED = "migrated"
    FAILED = "failed"
    SKIPPED = "skipped"
    ALREADY_MOVED = "already_moved"
    WOULD_MIGRATE = "would_migrate"

    @property
    def is_final(self) -> bool:
        return self not in (EntryStatus.PENDING, EntryStatus.RUNNING)


# -- the plan ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlanEntry:
    """One migration of a plan; ``index`` counts from 1, ``line`` is the plan file's line."""

    index: int
    container: str
    source: str
    target: str
    new_name: str | None = None
    keep_source: bool = False
    compression: str = "none"
    tcp_established: bool = False
    line: int | None = None
    # what the plan says of DATA_PLANE_KEYS for this entry (checked values by key); the
    # rest comes from the batch's options
    data_plane: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def target_name(self) -> str:
        return self.new_name or self.container

    def where(self) -> str:
        at = f" (line {self.line})" if self.line else ""
        return f"migration #{self.index}{at}"

    def options(self, base: MigrationOptions | None = None) -> MigrationOptions:
        return replace(
            base or MigrationOptions(),
            new_name=self.new_name,
            keep_source=self.keep_source,
            compression=self.compression,
            tcp_established=self.tcp_established,
            **option_fields(self.data_plane),
        )


@dataclass
class Plan:
    entries: list[PlanEntry]
    inventory: str | None = None  # path, already made relative to the working directory
    path: str | None = None
    # how its host names were resolved when the plan was made (an evacuation), if they were
    resolver: Callable[[str], ResolvedHost] | None = field(default=None, repr=False)

    def host_resolver(self, ssh_config: str | None = None) -> Callable[[str], ResolvedHost]:
        """How the plan's host names become connection settings (cached per name)."""
        if self.resolver is not None:
            return self.resolver
        resolve: Callable[[str], ResolvedHost]
        if self.inventory is not None:
            from .inventory import load_inventory  # written alongside; imported when needed

            inventory = load_inventory(self.inventory)

            def resolve(name: str) -> ResolvedHost:
                return inventory.resolve(name, ssh_config)
        else:

            def resolve(name: str) -> ResolvedHost:
                return resolve_host(name, ssh_config)

        return _cached(resolve)


def _cached(resolve: Callable[[str], ResolvedHost]) -> Callable[[str], ResolvedHost]:
    cache: dict[str, ResolvedHost] = {}
    lock = threading.Lock()

    def cached(name: str) -> ResolvedHost:
        with lock:
            if name not in cache:
                cache[name] = resolve(name)
            return cache[name]

    return cached


class _Mapping(dict[Any, Any]):
    """A YAML mapping that remembers the lines of itself and of its keys."""

    line: int = 0
    key_lines: dict[Any, int]


class _PlanLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError as error:
            raise InvalidInput(
                f"line {key_node.start_mark.line + 1}: a mapping key must be a plain value"
            ) from error
        if key in mapping:
            raise InvalidInput(
                f"line {key_node.start_mark.line + 1}: {key!r} is given twice "
                f"(first on line {mapping.key_lines[key]})"
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


_PlanLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate a plan file; errors name the entry and the line."""
    plan_path = Path(path)
    try:
        text = plan_path.read_text()
    except OSError as error:
        raise InvalidInput(f"cannot read the plan {str(plan_path)!r}: {error}") from error
    return parse_plan(text, base_dir=plan_path.parent, name=str(plan_path))


def parse_plan(text: str, *, base_dir: str | os.PathLike[str] = ".", name: str = "plan") -> Plan:
    try:
        document = yaml.load(text, Loader=_PlanLoader)  # a SafeLoader subclass
    except InvalidInput as error:
        raise InvalidInput(f"{name}: {error.message}") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InvalidInput(f"{name}: not valid YAML{where}: {problem}") from error
    if not isinstance(document, _Mapping):
        raise InvalidInput(
            f"{name}: a plan is a mapping with 'migrations:' (and optionally 'inventory:' "
            "and 'defaults:')"
        )
    for key in document:
        if key not in TOP_KEYS:
            raise InvalidInput(
                f"{name}, line {document.key_lines[key]}: unknown key {key!r} "
                f"(expected {', '.join(TOP_KEYS)})"
            )
    inventory = document.get("inventory")
    inventory_path: str | None = None
    if inventory is not None:
        if not isinstance(inventory, str) or not inventory.strip():
            raise InvalidInput(
                f"{name}, line {document.key_lines['inventory']}: 'inventory' must be a path"
            )
        inventory_path = str(Path(base_dir) / Path(inventory).expanduser())
        if not Path(inventory_path).is_file():
            raise HostConfigError(
                f"{name}, line {document.key_lines['inventory']}: the inventory "
                f"{inventory_path!r} does not exist"
            )
    defaults = _defaults(document, name)
    migrations = document.get("migrations")
    line = document.key_lines.get("migrations", document.line)
    if not isinstance(migrations, list) or not migrations:
        raise InvalidInput(
            f"{name}, line {line}: 'migrations' must be a non-empty list of "
            "{container, from, to} entries"
        )
    entries: list[PlanEntry] = []
    seen: dict[tuple[str, str], PlanEntry] = {}
    for position, item in enumerate(migrations, start=1):
        entry = _entry(item, position, defaults, name, line)
        key = (entry.source, entry.container)
        if key in seen:
            raise InvalidInput(
                f"{name}, {entry.where()}: {entry.container!r} on {entry.source} is already "
                f"moved by {seen[key].where()}",
                hint="A container can be moved once per plan.",
            )
        seen[key] = entry
        entries.append(entry)
    return Plan(entries=entries, inventory=inventory_path, path=name)


def _defaults(document: _Mapping, name: str) -> dict[str, Any]:
    defaults = document.get("defaults")
    if defaults is None:
        return {}
    line = document.key_lines["defaults"]
    if not isinstance(defaults, _Mapping):
        raise InvalidInput(f"{name}, line {line}: 'defaults' must be a mapping")
    values: dict[str, Any] = {}
    for key, value in defaults.items():
        at = f"{name}, defaults, line {defaults.key_lines[key]}"
        if key == "name":
            raise InvalidInput(
                f"{at}: 'name' cannot be a default (two containers cannot share a name); "
                "give it per migration"
            )
        if key not in DEFAULT_KEYS:
            raise InvalidInput(f"{at}: unknown option {key!r} (expected {', '.join(DEFAULT_KEYS)})")
        values[key] = _option(key, value, at)
    return values


def _option(key: str, value: Any, at: str) -> Any:
    if key in SETTINGS:
        return parse_setting(key, value, at=at)
    if key == "name":
        if not isinstance(value, str):
            raise InvalidInput(f"{at}: 'name' must be a container name")
        try:
            return validate_container_name(value, what="new name")
        except InvalidInput as error:
            raise InvalidInput(f"{at}: {error.message}", hint=error.hint) from error
    raise InvalidInput(f"{at}: unknown option {key!r}")  # pragma: no cover


def _entry(item: Any, index: int, defaults: dict[str, Any], name: str, list_line: int) -> PlanEntry:
    if not isinstance(item, _Mapping):
        raise InvalidInput(
            f"{name}, migration #{index}: expected a mapping with container, from and to "
            f"(the list starts on line {list_line})"
        )
    at = f"{name}, migration #{index} (line {item.line})"
    for key in item:
        if key not in ENTRY_KEYS:
            raise InvalidInput(
                f"{at}: unknown key {key!r} on line {item.key_lines[key]} "
                f"(expected {', '.join(ENTRY_KEYS)})"
            )
    for required in ("container", "from", "to"):
        if required not in item:
            raise InvalidInput(f"{at}: {required!r} is missing")
        if not isinstance(item[required], str) or not item[required]:
            raise InvalidInput(
                f"{at}: {required!r} on line {item.key_lines[required]} must be a string"
            )
    try:
        container = validate_container_name(item["container"])
        source = HostSpec.parse(item["from"]).text
        target = HostSpec.parse(item["to"]).text
    except InvalidInput as error:
        raise InvalidInput(f"{at}: {error.message}", hint=error.hint) from error
    if source == target:
        raise InvalidInput(f"{at}: 'from' and 'to' are the same host ({source})")
    values = dict(defaults)
    for key in (*DEFAULT_KEYS, "name"):
        if key in item:
            values[key] = _option(key, item[key], f"{at}, line {item.key_lines[key]}")
    return PlanEntry(
        index=index,
        container=container,
        source=source,
        target=target,
        new_name=values.get("name"),
        keep_source=values.get("keep_source", False),
        compression=values.get("compression", "auto"),
        tcp_established=values.get("tcp_established", False),
        line=item.line,
        data_plane={key: values[key] for key in DATA_PLANE_KEYS if key in values},
    )


# -- what a batch reports ---------------------------------------------------------------------
@dataclass(frozen=True)
class EntryUpdate:
    """A batch entry changed status; ``report`` is set once a migration (or dry run) ended."""

    status: EntryStatus
    detail: str = ""
    report: MigrationReport | None = None


@dataclass(frozen=True)
class BatchEvent:
    """An event of entry ``index`` (1-based): the engine's own, or an :class:`EntryUpdate`."""

    index: int
    event: Event | EntryUpdate


BatchEventSink = Callable[[BatchEvent], None]


@dataclass
class EntryResult:
    entry: PlanEntry
    status: EntryStatus = EntryStatus.PENDING
    report: MigrationReport | None = None
    error: str | None = None
    exception: BaseException | None = field(default=None, repr=False)
    detail: str = ""

    @property
    def outcome(self) -> Outcome | None:
        return self.report.outcome if self.report is not None else None

    def to_dict(self) -> dict[str, Any]:
        entry = self.entry
        return {
            "index": entry.index,
            "container": entry.container,
            "source": entry.source,
            "target": entry.target,
            "name": entry.target_name,
            "status": str(self.status),
            "outcome": str(self.outcome) if self.outcome is not None else None,
            "detail": self.detail,
            "error": self.error,
            "report": self.report.to_dict() if self.report is not None else None,
        }


_OK_STATUSES = {
    EntryStatus.MIGRATED,
    EntryStatus.SKIPPED,
    EntryStatus.ALREADY_MOVED,
    EntryStatus.WOULD_MIGRATE,
}


@dataclass
class BatchReport:
    entries: list[EntryResult]
    dry_run: bool = False
    cancelled: bool = False
    total_s: float | None = None

    @property
    def succeeded(self) -> bool:
        """Nothing failed and nobody cancelled: every entry moved, was already moved, or
        (in a dry run) would move."""
        return not self.cancelled and all(entry.status in _OK_STATUSES for entry in self.entries)

    @property
    def failed(self) -> list[EntryResult]:
        return [entry for entry in self.entries if entry.status is EntryStatus.FAILED]

    def count(self, status: EntryStatus) -> int:
        return sum(1 for entry in self.entries if entry.status is status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "succeeded" if self.succeeded else "failed",
            "dry_run": self.dry_run,
            "cancelled": self.cancelled,
            "total_s": self.total_s,
            "counts": {
                str(status): self.count(status) for status in EntryStatus if status.is_final
            },
            "migrations": [entry.to_dict() for entry in self.entries],
        }


# -- running a batch --------------------------------------------------------------------------
def _open_session(host: ResolvedHost, timeout: float) -> SSHSession:
    """A connected session whose privileged commands work (as root, or through sudo -n)."""
    session = SSHSession(host)
    session.connect()
    uid = session.run(commands.whoami(), privileged=False, timeout=timeout)
    if not (uid.ok and uid.stdout.strip() == "0"):
        if not session.run(commands.sudo_works(), privileged=False, timeout=timeout).ok:
            session.close()
            raise PreflightFailed(
                f"{host.name}: user {host.user!r} is not root and 'sudo -n' does not work",
                host=host.name,
            )
        session.privileged_prefix = SUDO_PREFIX
    return session


def container_state(host: ResolvedHost, container: str, *, timeout: float = 60.0) -> str | None:
    """podman's status of ``container`` on ``host`` (``running``, ``exited``...), None if absent.

    Raises :class:`~celestial_ssh.errors.CelestialError` when the host cannot be asked or
    podman answers something else than "no such container".
    """
    session = _open_session(host, timeout)
    try:
        result = session.run(commands.container_inspect(container), timeout=timeout)
    finally:
        session.close()
    if result.ok:
        try:
            return parse_container_inspect(result.stdout).status
        except OutputError as error:
            raise PreflightFailed(f"{host.name}: {error}", host=host.name) from error
    text = (result.stderr + result.stdout).lower()
    if "no such" in text or "no container" in text:
        return None
    raise PreflightFailed(
        f"{host.name}: cannot inspect {container!r}: {result.stderr.strip()[-200:]}",
        host=host.name,
    )


class BatchRun:
    """One run of a plan. ``run()`` once; ``request_cancel()`` from anywhere (signal handler)."""

    def __init__(
        self,
        plan: Plan,
        *,
        parallel: int = 1,
        continue_on_error: bool = False,
        dry_run: bool = False,
        ssh_config: str | None = None,
        accept_new_host_keys: bool = False,
        on_event: BatchEventSink | None = None,
        cancel: threading.Event | None = None,
        host_resolver: Callable[[str], ResolvedHost] | None = None,
        transport: str = "auto",
        direct: bool = False,
        bwlimit_bytes_per_s: float | None = None,
        tls: bool = False,
    ):
        if parallel < 1:
            raise InvalidInput(f"parallel must be at least 1, not {parallel}")
        self.plan = plan
        self.parallel = parallel
        # a dry run checks every entry: one failed check must not hide the others
        self.continue_on_error = continue_on_error or dry_run
        self.dry_run = dry_run
        self.ssh_config = ssh_config
        self.accept_new_host_keys = accept_new_host_keys
        self._on_event = on_event
        self.cancel = cancel or threading.Event()
        self._resolver = host_resolver
        # how every migration's archive travels (the same for the whole batch)
        self.transport = transport
        self.direct = direct
        self.bwlimit_bytes_per_s = bwlimit_bytes_per_s
        self.tls = tls
        self._stop = threading.Event()  # a failure stops the entries not yet started
        self._lock = threading.Lock()
        self._running: dict[int, Migration] = {}
        self.results = [EntryResult(entry) for entry in plan.entries]

    # -- events and cancellation ------------------------------------------------------------
    def _emit(self, index: int, event: Event | EntryUpdate) -> None:
        if self._on_event is None:
            return
        with contextlib.suppress(Exception):  # a broken display must not break the batch
            self._on_event(BatchEvent(index, event))

    def request_cancel(self) -> None:
        """Stop starting entries, and ask every running migration to stop at a safe point."""
        self.cancel.set()
        with self._lock:
            running = list(self._running.values())
        for migration in running:
            migration.request_cancel()

    def _watch_cancel(self, done: threading.Event) -> None:
        while not done.is_set():
            if self.cancel.wait(0.1):
                self.request_cancel()
                return

    def _set(self, result: EntryResult, status: EntryStatus, detail: str = "") -> None:
        result.status = status
        result.detail = detail
        self._emit(result.entry.index, EntryUpdate(status, detail, result.report))

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> BatchReport:
        started = time.monotonic()
        self._check_options()
        resolver = self._resolver or self.plan.host_resolver(self.ssh_config)
        self._resolver = self._checked_resolver(resolver)
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(done,), daemon=True)
        watcher.start()
        try:
            with ThreadPoolExecutor(
                max_workers=self.parallel, thread_name_prefix="celestial-batch"
            ) as pool:
                futures = [pool.submit(self._run_entry, result) for result in self.results]
                for future in futures:
                    future.result()
        finally:
            done.set()
            watcher.join()
        return BatchReport(
            entries=self.results,
            dry_run=self.dry_run,
            cancelled=self.cancel.is_set(),
            total_s=round(time.monotonic() - started, 4),
        )

    def _options(self, entry: PlanEntry) -> MigrationOptions:
        """The batch's options, with what the plan says for ``entry`` over them."""
        return entry.options(
            MigrationOptions(
                ssh_config=self.ssh_config,
                accept_new_host_keys=self.accept_new_host_keys,
                host_resolver=self._resolver,
                preflight_only=self.dry_run,
                transport=self.transport,
                direct=self.direct,
                bwlimit_bytes_per_s=self.bwlimit_bytes_per_s,
                tls=self.tls,
            )
        )

    def _check_options(self) -> None:
        """Every entry's options, checked before anything connects: a plan that asks for
        --tls where the command line gave --bwlimit fails now, not halfway through."""
        for result in self.results:
            try:
                check_options(self._options(result.entry))
            except InvalidInput as error:
                raise InvalidInput(
                    f"{result.entry.where()}: {error.message}", hint=error.hint
                ) from error

    def _checked_resolver(
        self, resolver: Callable[[str], ResolvedHost]
    ) -> Callable[[str], ResolvedHost]:
        """Resolve every host of the plan now: a typo fails the batch before anything moves."""
        for result in self.results:
            entry = result.entry
            for host in (entry.source, entry.target):
                try:
                    resolver(host)
                except CelestialError as error:
                    raise type(error)(
                        f"{entry.where()}: {error.message}", host=host, hint=error.hint
                    ) from error
        return resolver

    def _run_entry(self, result: EntryResult) -> None:
        entry = result.entry
        if self.cancel.is_set():
            self._set(result, EntryStatus.SKIPPED, "cancelled before it started")
            return
        if self._stop.is_set():
            self._set(result, EntryStatus.SKIPPED, "not started: an earlier migration failed")
            return
        self._set(result, EntryStatus.RUNNING)
        try:
            if self._already_moved(entry):
                self._set(
                    result,
                    EntryStatus.ALREADY_MOVED,
                    f"{entry.target_name} already runs on {entry.target} and "
                    f"{entry.container} is gone from {entry.source}",
                )
                return
            self._migrate(result)
        except BaseException as error:  # every failure is the entry's result
            report = getattr(error, "report", None)
            result.report = report if isinstance(report, MigrationReport) else None
            result.exception = error
            result.error = (
                str(error) if isinstance(error, CelestialError) else repr(error)
            ).strip()
            if not self.continue_on_error:
                self._stop.set()
            first_line = result.error.splitlines()[0] if result.error else type(error).__name__
            self._set(result, EntryStatus.FAILED, first_line)
            if not isinstance(error, Exception):
                raise

    def _already_moved(self, entry: PlanEntry) -> bool:
        """Gone from the source and running on the target (by name): moved by an earlier run."""
        assert self._resolver is not None
        source = self._accepting(self._resolver(entry.source))
        if container_state(source, entry.container) is not None:
            return False
        target = self._accepting(self._resolver(entry.target))
        return container_state(target, entry.target_name) == "running"

    def _accepting(self, host: ResolvedHost) -> ResolvedHost:
        if self.accept_new_host_keys and host.strict_host_key_checking == "yes":
            return host.with_strict_host_key_checking("accept-new")
        return host

    def _migrate(self, result: EntryResult) -> None:
        entry = result.entry
        migration = Migration(
            entry.source,
            entry.target,
            entry.container,
            self._options(entry),
            on_event=lambda event: self._emit(entry.index, event),
        )
        with self._lock:
            self._running[entry.index] = migration
        if self.cancel.is_set():
            migration.request_cancel()
        try:
            report = migration.run()
        finally:
            with self._lock:
                self._running.pop(entry.index, None)
        result.report = report
        if self.dry_run:
            self._set(
                result,
                EntryStatus.WOULD_MIGRATE,
                f"would migrate {entry.container} from {entry.source} to {entry.target}",
            )
        else:
            self._set(
                result,
                EntryStatus.MIGRATED,
                f"downtime {report.downtime_s:.2f} s" if report.downtime_s is not None else "",
            )


def run_batch(
    plan: Plan | str | os.PathLike[str],
    *,
    parallel: int = 1,
    continue_on_error: bool = False,
    dry_run: bool = False,
    ssh_config: str | None = None,
    on_event: BatchEventSink | None = None,
    cancel: threading.Event | None = None,
    accept_new_host_keys: bool = False,
    host_resolver: Callable[[str], ResolvedHost] | None = None,
    transport: str = "auto",
    direct: bool = False,
    bwlimit_bytes_per_s: float | None = None,
    tls: bool = False,
) -> BatchReport:
    """Run every migration of ``plan`` (a :class:`Plan` or a plan file); see :class:`BatchRun`.

    ``transport``, ``direct``, ``bwlimit_bytes_per_s`` and ``tls`` apply to every migration,
    as the :class:`~celestial_ssh.migration.MigrationOptions` fields of those names (each
    ``--tls`` listener takes a port of its own choosing).

    Returns the report of the whole batch: failed entries do not raise, they are in it.
    Raises :class:`~celestial_ssh.errors.InvalidInput` / ``HostConfigError`` for a bad
    plan or an unknown host, before anything is changed.
    """
    if not isinstance(plan, Plan):
        plan = load_plan(plan)
    return BatchRun(
        plan,
        parallel=parallel,
        continue_on_error=continue_on_error,
        dry_run=dry_run,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys,
        on_event=on_event,
        cancel=cancel,
        host_resolver=host_resolver,
        transport=transport,
        direct=direct,
        bwlimit_bytes_per_s=bwlimit_bytes_per_s,
        tls=tls,
    ).run()


# -- evacuation -------------------------------------------------------------------------------
def parse_mem_available(text: str) -> int:
    """``MemAvailable`` from /proc/meminfo, in bytes."""
    available_kib = parse_meminfo(text).get("MemAvailable")
    if available_kib is None:
        raise OutputError("no MemAvailable line in /proc/meminfo")
    return available_kib * 1024


@dataclass(frozen=True)
class Assignment:
    container: str
    target: str
    memory_bytes: int


def spread_by_memory(containers: dict[str, int], free: dict[str, int]) -> list[Assignment]:
    """Largest container first, each to the target with the most free memory left.

    ``containers`` maps names to memory in use, ``free`` targets (in preference order, for
    ties) to available bytes. The result is in the order the containers were placed.
    """
    if not free:
        raise InvalidInput("evacuation needs at least one target")
    remaining = dict(free)
    order = {target: position for position, target in enumerate(free)}
    placed = []
    for name, memory in sorted(containers.items(), key=lambda item: (-item[1], item[0])):
        target = max(remaining, key=lambda host: (remaining[host], -order[host]))
        remaining[target] -= memory
        placed.append(Assignment(container=name, target=target, memory_bytes=memory))
    return placed


def plan_evacuation(
    host: str,
    targets: Sequence[str],
    *,
    ssh_config: str | None = None,
    accept_new_host_keys: bool = False,
    host_resolver: Callable[[str], ResolvedHost] | None = None,
    only: Iterable[str] | None = None,
    keep_source: bool = False,
    compression: str = "none",
    tcp_established: bool = False,
    timeout: float = 120.0,
) -> Plan:
    """The plan that empties ``host``: its running containers spread over ``targets``.

    Reads the running containers (only those named in ``only``, if given) and their memory
    use on ``host``, and ``MemAvailable`` on every target; see :func:`spread_by_memory`.
    """
    source_text = HostSpec.parse(host).text
    target_list = list(dict.fromkeys(HostSpec.parse(target).text for target in targets))
    if not target_list:
        raise InvalidInput("evacuation needs at least one target host (--to)")
    if source_text in target_list:
        raise InvalidInput(f"{source_text} cannot be both the host evacuated and a target")
    commands.validate_compression_setting(compression)
    wanted = None
    if only is not None:
        wanted = [validate_container_name(name) for name in only]

    def plain(name: str) -> ResolvedHost:
        return resolve_host(name, ssh_config)

    resolver = _cached(host_resolver or plain)

    def accepting(name: str) -> ResolvedHost:
        resolved = resolver(name)
        if accept_new_host_keys and resolved.strict_host_key_checking == "yes":
            return resolved.with_strict_host_key_checking("accept-new")
        return resolved

    session = _open_session(accepting(source_text), timeout)
    try:
        listing = session.run(
            fleet_commands.running_containers(),
            timeout=timeout,
            check=True,
            what="listing the running containers",
        )
        running = [
            item.names[0]
            for item in parse_container_list(listing.stdout)
            if item.names and item.state.lower() == "running"
        ]
        if wanted is not None:
            missing = [name for name in wanted if name not in running]
            if missing:
                raise PreflightFailed(
                    f"{source_text}: no running container named {', '.join(missing)}",
                    host=source_text,
                )
            running = [name for name in running if name in wanted]
        stats = session.run(fleet_commands.container_stats(), timeout=timeout)
        usage = parse_memory_usage(stats.stdout) if stats.ok else {}
    finally:
        session.close()
    free: dict[str, int] = {}
    for target in target_list:
        target_session = _open_session(accepting(target), timeout)
        try:
            meminfo = target_session.run(
                fleet_commands.read_meminfo(),
                privileged=False,
                timeout=timeout,
                check=True,
                what="reading /proc/meminfo",
            )
        finally:
            target_session.close()
        try:
            free[target] = parse_mem_available(meminfo.stdout)
        except OutputError as error:
            raise PreflightFailed(f"{target}: {error}", host=target) from error
    assignments = spread_by_memory({name: usage.get(name, 0) for name in running}, free)
    entries = [
        PlanEntry(
            index=position,
            container=assignment.container,
            source=source_text,
            target=assignment.target,
            keep_source=keep_source,
            compression=compression,
            tcp_established=tcp_established,
        )
        for position, assignment in enumerate(assignments, start=1)
    ]
    return Plan(entries=entries, path=f"evacuation of {source_text}", resolver=resolver)


def evacuate(
    host: str,
    targets: Sequence[str],
    *,
    parallel: int = 1,
    continue_on_error: bool = False,
    dry_run: bool = False,
    ssh_config: str | None = None,
    on_event: BatchEventSink | None = None,
    cancel: threading.Event | None = None,
    accept_new_host_keys: bool = False,
    host_resolver: Callable[[str], ResolvedHost] | None = None,
    only: Iterable[str] | None = None,
    keep_source: bool = False,
    compression: str = "none",
    tcp_established: bool = False,
) -> BatchReport:
    """Move every running container off ``host`` (or only those named in ``only``).

    Each container goes to the target with the most free memory left (``MemAvailable``),
    largest first by its memory use (``podman stats``); then they move as a batch
    (:func:`plan_evacuation`, then :func:`run_batch`).
    """
    plan = plan_evacuation(
        host,
        targets,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys,
        host_resolver=host_resolver,
        only=only,
        keep_source=keep_source,
        compression=compression,
        tcp_established=tcp_established,
    )
    return run_batch(
        plan,
        parallel=parallel,
        continue_on_error=continue_on_error,
        dry_run=dry_run,
        ssh_config=ssh_config,
        accept_new_host_keys=accept_new_host_keys,
        on_event=on_event,
        cancel=cancel,
    )
