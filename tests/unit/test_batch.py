"""Batches and evacuations: plan validation, concurrency, stopping, dry runs, re-runs, CLI.

Most tests replace the engine with :class:`FakeMigration` (records how many run at once and
fails on demand); the dry-run tests drive the real engine against the engine's fake hosts
(:class:`~tests.unit.fakes.lab.FakeLab`) to show that nothing is frozen.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from celestial_ssh import batch, commands, migration
from celestial_ssh.batch import (
    BatchEvent,
    EntryStatus,
    EntryUpdate,
    Plan,
    PlanEntry,
    parse_mem_available,
    parse_plan,
    plan_evacuation,
    run_batch,
    spread_by_memory,
)
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.errors import (
    ConnectionFailed,
    HostConfigError,
    InvalidInput,
    MigrationFailed,
    PreflightFailed,
)
from celestial_ssh.events import Phase, PhaseFinished, PhaseStarted, TransferProgress
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.migration import Migration, MigrationOptions
from celestial_ssh.podman_json import parse_memory_usage, parse_size
from celestial_ssh.report import MigrationReport, Outcome
from celestial_ssh.ssh import CommandResult
from celestial_ssh_cli import batch_commands
from celestial_ssh_cli.batch_commands import batch_command, evacuate_command
from tests.unit.fakes import FakeFleet, FakeLab, FakeSession, connecting
from tests.unit.fakes.lab import SRC, TGT


def resolver(name: str) -> ResolvedHost:
    return ResolvedHost(name=name, hostname=f"{name}.example")


def plan_of(*containers: str, source: str = "lab-a", target: str = "lab-b") -> Plan:
    return Plan(
        entries=[
            PlanEntry(index=i, container=c, source=source, target=target)
            for i, c in enumerate(containers, start=1)
        ]
    )


# -- plan files --------------------------------------------------------------------------------
GOOD_PLAN = """\
defaults:
  compression: zstd
  keep_source: true
migrations:
  - container: web
    from: lab-a
    to: lab-b
  - container: db
    from: lab-a
    to: root@10.0.0.7:2222
    name: db-2
    compression: none
    tcp_established: true
"""


def test_a_good_plan_is_read_with_defaults_and_overrides() -> None:
    plan = parse_plan(GOOD_PLAN)
    web, db = plan.entries
    assert (web.index, web.container, web.source, web.target) == (1, "web", "lab-a", "lab-b")
    assert (web.compression, web.keep_source, web.tcp_established, web.line) == (
        "zstd",
        True,
        False,
        5,
    )
    assert (db.index, db.target, db.new_name, db.compression, db.tcp_established) == (
        2,
        "root@10.0.0.7:2222",
        "db-2",
        "none",
        True,
    )
    options = db.options()
    assert (options.new_name, options.keep_source, options.compression) == ("db-2", True, "none")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("defaults:\n  name: x\nmigrations: []\n", "line 2: 'name' cannot be a default"),
        ("defaults:\n  speed: 3\nmigrations: []\n", "line 2: unknown option 'speed'"),
        ("migrations: []\n", "line 1: 'migrations' must be a non-empty list"),
        ("migration:\n  - {}\n", "line 1: unknown key 'migration'"),
        (
            "migrations:\n  - container: web\n    from: lab-a\n",
            "migration #1 (line 2): 'to' is missing",
        ),
        (
            "migrations:\n  - {container: a, from: x, to: y}\n"
            "  - container: web\n    from: lab-a\n    to: lab-b\n    colour: red\n",
            "migration #2 (line 3): unknown key 'colour' on line 6",
        ),
        (
            "migrations:\n  - container: web\n    from: lab-a\n    to: lab-b\n"
            "    compression: lz4\n",
            "migration #1 (line 2), line 5: compression 'lz4' is not one of",
        ),
        (
            "migrations:\n  - container: web\n    from: lab-a\n    to: lab-b\n"
            "    keep_source: yes please\n",
            "line 5: 'keep_source' must be true or false",
        ),
        (
            "migrations:\n  - container: 'web;reboot'\n    from: lab-a\n    to: lab-b\n",
            "migration #1 (line 2): ",
        ),
        (
            "migrations:\n  - container: web\n    from: lab-a\n    to: lab-a\n",
            "migration #1 (line 2): 'from' and 'to' are the same host",
        ),
        (
            "migrations:\n  - container: web\n    from: lab-a\n    from: lab-c\n    to: lab-b\n",
            "line 4: 'from' is given twice (first on line 3)",
        ),
        ("migrations:\n  - container: web\n   from: [\n", "not valid YAML at line"),
        (
            "defaults:\n  tls: 1\nmigrations: []\n",
            "defaults, line 2: 'tls' must be true or false, not 1",
        ),
        (
            "migrations:\n  - {container: a, from: x, to: y, transport: scp}\n",
            "migration #1 (line 2), line 2: transport 'scp' is not one of auto, openssh",
        ),
        (
            "migrations:\n  - {container: a, from: x, to: y, bwlimit: 50mb}\n",
            "migration #1 (line 2), line 2: 'bwlimit': ambiguous rate '50mb'",
        ),
        (
            "migrations:\n  - {container: a, from: x, to: y, bwlimit: [1]}\n",
            "'bwlimit' must be a rate such as 50Mbit, not [1]",
        ),
        ("- just a list\n", "a plan is a mapping"),
    ],
)
def test_bad_plans_name_the_entry_and_the_line(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_plan(text, name="plan.yml")
    assert expected in str(caught.value)
    assert str(caught.value).startswith("plan.yml")


def test_the_same_source_container_twice_is_refused() -> None:
    text = textwrap.dedent(
        """\
        migrations:
          - container: web
            from: lab-a
            to: lab-b
          - container: web
            from: lab-a
            to: lab-c
        """
    )
    with pytest.raises(InvalidInput) as caught:
        parse_plan(text, name="plan.yml")
    message = str(caught.value)
    assert "migration #2 (line 5)" in message
    assert "already moved by migration #1 (line 2)" in message


def test_the_inventory_is_relative_to_the_plan_file(tmp_path: Path) -> None:
    (tmp_path / "hosts.yml").write_text("hosts: {}\n")
    plan_file = tmp_path / "plan.yml"
    plan_file.write_text("inventory: hosts.yml\nmigrations:\n  - {container: a, from: x, to: y}\n")
    plan = batch.load_plan(plan_file)
    assert plan.inventory == str(tmp_path / "hosts.yml")
    plan_file.write_text("inventory: nope.yml\nmigrations:\n  - {container: a, from: x, to: y}\n")
    with pytest.raises(HostConfigError, match=r"line 1: the inventory .*nope\.yml"):
        batch.load_plan(plan_file)


def test_an_unknown_host_fails_the_batch_before_anything_moves(fleet: Fleet) -> None:
    def picky(name: str) -> ResolvedHost:
        if name == "lab-x":
            raise HostConfigError("no such host 'lab-x'", host=name)
        return resolver(name)

    plan = Plan(
        entries=[
            PlanEntry(index=1, container="a", source="lab-a", target="lab-b"),
            PlanEntry(index=2, container="b", source="lab-a", target="lab-x", line=9),
        ]
    )
    with pytest.raises(HostConfigError, match=r"migration #2 \(line 9\): no such host"):
        run_batch(plan, connection=fleet.connection(), host_resolver=picky)
    assert fleet.started == []


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLab]:
    """The fake hosts of the engine's tests, set up as its own ``lab`` fixture does."""
    lab = FakeLab()
    lab.plug_in(monkeypatch)
    yield lab
    assert lab.unexpected == [], "the engine ran commands no test expected"


# -- the engine's preflight_only option --------------------------------------------------------
def test_preflight_only_stops_after_the_checks_and_releases_the_lock(lab: FakeLab) -> None:
    engine = Migration(
        SRC, TGT, "web", lab.options(preflight_only=True), on_event=lab.events.append
    )
    report = engine.run()
    assert report.outcome is Outcome.NOT_STARTED
    assert report.container_id is not None
    assert lab.phases() == [
        ("started", Phase.CONNECT),
        ("finished", Phase.CONNECT),
        ("started", Phase.PREFLIGHT),
        ("finished", Phase.PREFLIGHT),
    ]
    assert not any("checkpoint" in command for _, command in lab.log)
    assert not any("mktemp" in command for _, command in lab.log)
    assert all(holder.killed for holder in lab.lock_holders())
    assert all(not session.is_connected for session in lab.sessions)


# -- a fake engine -----------------------------------------------------------------------------
class Fleet:
    """Stands in for Migration (``batch.runner.Migration``) and for the hosts' container
    states (through the connection settings it hands out)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.max_running = 0
        self.started: list[str] = []
        self.options: list[MigrationOptions] = []
        self.failures: dict[str, str] = {}  # container -> rolled_back | needs_recovery | ...
        self.delay = 0.05
        self.delays: dict[str, float] = {}  # container -> its own delay
        self.states: dict[tuple[str, str], str | None] = {}  # (host, name) -> status
        self.cancelled: list[str] = []
        self.instances: list[FakeMigration] = []
        self.hosts = FakeFleet()
        for name in ("lab-a", "lab-b", "lab-c"):
            self.hosts.serve(name, self.podman)

    def make(
        self,
        source: str,
        target: str,
        container: str,
        options: MigrationOptions | None = None,
        on_event: Callable[[Any], None] | None = None,
    ) -> FakeMigration:
        fake = FakeMigration(self, source, target, container, options or MigrationOptions())
        fake.on_event = on_event or (lambda event: None)
        self.instances.append(fake)
        return fake

    def podman(self, host: ResolvedHost) -> FakeSession:
        """A connection to ``host``: root, and its containers in the states of ``states``."""

        def inspect(argv: list[str]) -> tuple[int, str, str]:
            container = argv[-1]
            state = self.states.get((host.name, container), "running")
            if argv != commands.container_inspect(container):
                raise AssertionError(f"unexpected {argv} on {host.name}")
            if state is None:
                return 125, "", f"Error: no such container {container}"
            return 0, json.dumps([{"Id": "1" * 64, "State": {"Status": state}}]), ""

        return FakeSession(host, {tuple(commands.whoami()): (0, "0\n", "")}, answer=inspect)

    def connection(self, base: ConnectionSettings | None = None) -> ConnectionSettings:
        return self.hosts.settings(base)


class FakeMigration:
    def __init__(
        self, fleet: Fleet, source: str, target: str, container: str, options: MigrationOptions
    ):
        self.fleet = fleet
        self.source, self.target, self.container = source, target, container
        self.options = options
        self.on_event: Callable[[Any], None] = lambda event: None
        self.cancel = threading.Event()

    def request_cancel(self) -> None:
        self.cancel.set()
        self.fleet.cancelled.append(self.container)

    def run(self) -> MigrationReport:
        fleet = self.fleet
        with fleet.lock:
            fleet.running += 1
            fleet.max_running = max(fleet.max_running, fleet.running)
            fleet.started.append(self.container)
            fleet.options.append(self.options)
        report = MigrationReport(self.container, self.source, self.target)
        try:
            self.on_event(PhaseStarted(Phase.CHECKPOINT))
            self.on_event(TransferProgress("checkpoint", 1_000_000, None, finished=True))
            deadline = time.monotonic() + fleet.delays.get(self.container, fleet.delay)
            while time.monotonic() < deadline and not self.cancel.is_set():
                time.sleep(0.005)
            failure = fleet.failures.get(self.container)
            if self.cancel.is_set():
                failure = "interrupted"
            if failure == "preflight":
                error = PreflightFailed(f"lab-b already has a container named {self.container!r}")
                error.report = report
                raise error
            if failure == "connection":
                raise ConnectionFailed("lab-b: no route to host", host="lab-b")
            if failure in ("rolled_back", "needs_recovery", "interrupted"):
                report.outcome = (
                    Outcome.NEEDS_RECOVERY if failure == "needs_recovery" else Outcome.ROLLED_BACK
                )
                cls = (
                    migration.MigrationInterrupted if failure == "interrupted" else MigrationFailed
                )
                raise cls(f"migration of {self.container!r} failed", report=report)
            if self.options.preflight_only:
                return report
            report.outcome = Outcome.MIGRATED
            report.downtime_s = 0.5
            self.on_event(PhaseFinished(Phase.VERIFY, 0.1))
            return report
        finally:
            with fleet.lock:
                fleet.running -= 1


@pytest.fixture
def fleet(
    monkeypatch: pytest.MonkeyPatch, cli_connection: Callable[[ConnectionSettings], None]
) -> Iterator[Fleet]:
    fleet = Fleet()
    monkeypatch.setattr(batch.runner, "Migration", fleet.make)
    # the batch commands reach the fake hosts, with the ssh options they were given
    cli_connection(fleet.connection())
    yield fleet


# -- running a batch ---------------------------------------------------------------------------
@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_no_more_than_parallel_migrations_run_at_once(fleet: Fleet, parallel: int) -> None:
    names = [f"c{i}" for i in range(7)]
    report = run_batch(plan_of(*names), parallel=parallel, connection=fleet.connection())
    assert report.succeeded
    assert sorted(fleet.started) == names
    assert fleet.max_running == parallel
    assert [entry.status for entry in report.entries] == [EntryStatus.MIGRATED] * 7


def test_the_first_failure_stops_the_entries_not_started(fleet: Fleet) -> None:
    fleet.failures["c1"] = "rolled_back"
    report = run_batch(plan_of("c0", "c1", "c2", "c3"), connection=fleet.connection())
    assert fleet.started == ["c0", "c1"]
    assert [entry.status for entry in report.entries] == [
        EntryStatus.MIGRATED,
        EntryStatus.FAILED,
        EntryStatus.SKIPPED,
        EntryStatus.SKIPPED,
    ]
    assert not report.succeeded
    assert report.entries[1].outcome is Outcome.ROLLED_BACK
    assert "failed" in (report.entries[1].error or "")
    assert report.entries[2].detail == "not started: an earlier migration failed"


def test_a_failure_lets_the_running_ones_finish(fleet: Fleet) -> None:
    fleet.failures["c0"] = "preflight"
    # c0 fails well before c1 ends, so no worker is free for c2 before the failure is known
    fleet.delays.update(c0=0.05, c1=0.5)
    report = run_batch(plan_of("c0", "c1", "c2", "c3"), parallel=2, connection=fleet.connection())
    # c1 was running alongside c0 when it failed: it finishes; c2, c3 never start
    assert sorted(fleet.started) == ["c0", "c1"]
    statuses = [entry.status for entry in report.entries]
    assert statuses == [
        EntryStatus.FAILED,
        EntryStatus.MIGRATED,
        EntryStatus.SKIPPED,
        EntryStatus.SKIPPED,
    ]


def test_continue_on_error_runs_every_entry(fleet: Fleet) -> None:
    fleet.failures["c1"] = "rolled_back"
    report = run_batch(
        plan_of("c0", "c1", "c2", "c3"), continue_on_error=True, connection=fleet.connection()
    )
    assert fleet.started == ["c0", "c1", "c2", "c3"]
    assert [entry.status for entry in report.entries] == [
        EntryStatus.MIGRATED,
        EntryStatus.FAILED,
        EntryStatus.MIGRATED,
        EntryStatus.MIGRATED,
    ]
    document = report.to_dict()
    assert document["status"] == "failed"
    assert document["counts"]["migrated"] == 3
    assert document["migrations"][1]["report"]["outcome"] == "rolled_back"


def test_events_are_forwarded_with_the_entry_index(fleet: Fleet) -> None:
    seen: list[BatchEvent] = []
    run_batch(plan_of("c0", "c1"), connection=fleet.connection(), on_event=seen.append)
    for index in (1, 2):
        mine = [event.event for event in seen if event.index == index]
        updates = [event.status for event in mine if isinstance(event, EntryUpdate)]
        assert updates == [EntryStatus.RUNNING, EntryStatus.MIGRATED]
        assert any(isinstance(event, PhaseStarted) for event in mine)


def test_a_cancel_reaches_running_migrations_and_skips_the_rest(fleet: Fleet) -> None:
    fleet.delay = 5.0
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    report = run_batch(
        plan_of("c0", "c1", "c2"), parallel=2, cancel=cancel, connection=fleet.connection()
    )
    assert time.monotonic() - started < 3
    assert sorted(fleet.cancelled) == ["c0", "c1"]
    assert [entry.status for entry in report.entries] == [
        EntryStatus.FAILED,
        EntryStatus.FAILED,
        EntryStatus.SKIPPED,
    ]
    assert report.cancelled and not report.succeeded


def test_already_moved_containers_are_skipped(fleet: Fleet) -> None:
    fleet.states[("lab-a", "c0")] = None  # gone from the source
    fleet.states[("lab-b", "c0")] = "running"  # runs on the target
    fleet.states[("lab-a", "c1")] = None  # gone from the source, but not on the target
    fleet.states[("lab-b", "c1")] = None
    fleet.failures["c1"] = "preflight"  # so the engine's preflight says "no container"
    report = run_batch(
        plan_of("c0", "c1", "c2"), continue_on_error=True, connection=fleet.connection()
    )
    assert fleet.started == ["c1", "c2"]
    statuses = [entry.status for entry in report.entries]
    assert statuses == [EntryStatus.ALREADY_MOVED, EntryStatus.FAILED, EntryStatus.MIGRATED]
    assert "already runs on lab-b" in report.entries[0].detail


def test_already_moved_looks_for_the_new_name_on_the_target(fleet: Fleet) -> None:
    fleet.states[("lab-a", "web")] = None
    fleet.states[("lab-b", "web")] = None
    fleet.states[("lab-b", "web-2")] = "running"
    plan = Plan(
        entries=[
            PlanEntry(index=1, container="web", source="lab-a", target="lab-b", new_name="web-2")
        ]
    )
    report = run_batch(plan, connection=fleet.connection())
    assert report.entries[0].status is EntryStatus.ALREADY_MOVED


def test_dry_run_passes_preflight_only(fleet: Fleet) -> None:
    fleet.failures["c1"] = "preflight"
    report = run_batch(plan_of("c0", "c1", "c2"), dry_run=True, connection=fleet.connection())
    assert all(options.preflight_only for options in fleet.options)
    # a dry run checks every entry, even after a failed one
    assert [entry.status for entry in report.entries] == [
        EntryStatus.WOULD_MIGRATE,
        EntryStatus.FAILED,
        EntryStatus.WOULD_MIGRATE,
    ]


def test_dry_run_with_the_real_engine_freezes_nothing(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = Plan(entries=[PlanEntry(index=1, container="web", source=SRC, target=TGT)])
    report = run_batch(plan, dry_run=True, connection=lab.settings())
    assert report.entries[0].status is EntryStatus.WOULD_MIGRATE
    assert report.succeeded and report.dry_run
    assert report.entries[0].report is not None
    assert report.entries[0].report.outcome is Outcome.NOT_STARTED
    for word in ("checkpoint", "restore", "image save", "mktemp", "container rm"):
        assert not any(word in command for _, command in lab.log), word
    assert all(not session.is_connected for session in lab.sessions)


def test_parallel_must_be_positive() -> None:
    with pytest.raises(InvalidInput):
        run_batch(plan_of("c0"), parallel=0, host_resolver=resolver)


# -- evacuation --------------------------------------------------------------------------------
def test_sizes_and_memory_figures_are_read() -> None:
    assert parse_size("17.33MB") == 17_330_000
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("512kB") == 512_000
    assert parse_size("0B") == 0
    assert parse_size("lots") is None
    stats = json.dumps(
        [
            {"name": "web", "mem_usage": "17.33MB / 25.33GB"},
            {"name": "db", "mem_usage": "1.2GB / 25.33GB"},
            {"name": "odd", "mem_usage": "--"},
        ]
    )
    assert parse_memory_usage(stats) == {"web": 17_330_000, "db": 1_200_000_000}
    assert parse_memory_usage("not json") == {}
    assert parse_mem_available("MemTotal: 100 kB\nMemAvailable:   24270808 kB\n") == 24270808 * 1024


def test_containers_are_spread_by_free_memory_largest_first() -> None:
    gb = 10**9
    containers = {"small": 1 * gb, "big": 6 * gb, "mid": 3 * gb, "tiny": 0}
    placed = spread_by_memory(containers, {"b": 8 * gb, "c": 5 * gb})
    assert [(item.container, item.target) for item in placed] == [
        ("big", "b"),  # b: 8 -> 2
        ("mid", "c"),  # c: 5 -> 2
        ("small", "b"),  # tie at 2: the first target -> b: 1
        ("tiny", "c"),  # c has 2 > 1
    ]
    with pytest.raises(InvalidInput):
        spread_by_memory(containers, {})


def evacuation_hosts(answers: dict[str, dict[str, CommandResult]]) -> ConnectionSettings:
    """Hosts for plan_evacuation: each answers by the start of the command line."""

    def session(host: ResolvedHost, notice: Any = None) -> FakeSession:
        def answer(argv: list[str]) -> CommandResult:
            line = " ".join(argv)
            for start, reply in answers[host.name].items():
                if line.startswith(start):
                    return reply
            raise AssertionError(f"unexpected {line!r} on {host.name}")

        return FakeSession(host, answer=answer)

    return ConnectionSettings(host_resolver=resolver, connector=connecting(session))


def _ok(stdout: str) -> CommandResult:
    return CommandResult(host="", command="", exit_status=0, stdout=stdout, stderr="")


def test_plan_evacuation_reads_the_hosts_and_spreads() -> None:
    listing = [
        {"Id": "1" * 64, "Names": ["web"], "State": "running"},
        {"Id": "2" * 64, "Names": ["db"], "State": "running"},
        {"Id": "3" * 64, "Names": ["batchjob"], "State": "running"},
    ]
    stats = [
        {"name": "web", "mem_usage": "100MB / 8GB"},
        {"name": "db", "mem_usage": "2GB / 8GB"},
        {"name": "batchjob", "mem_usage": "1GB / 8GB"},
    ]
    hosts = evacuation_hosts(
        {
            "lab-a": {
                "id -u": _ok("0\n"),
                "podman container ls": _ok(json.dumps(listing)),
                "podman stats": _ok(json.dumps(stats)),
            },
            "lab-b": {"id -u": _ok("0\n"), "cat /proc/meminfo": _ok("MemAvailable: 2500000 kB\n")},
            "lab-c": {"id -u": _ok("0\n"), "cat /proc/meminfo": _ok("MemAvailable: 2000000 kB\n")},
        }
    )
    plan = plan_evacuation("lab-a", ["lab-b", "lab-c"], connection=hosts)
    assert [(e.index, e.container, e.source, e.target) for e in plan.entries] == [
        (1, "db", "lab-a", "lab-b"),  # b: 2.56 GB free -> 0.56
        (2, "batchjob", "lab-a", "lab-c"),  # c: 2.05 -> 1.05
        (3, "web", "lab-a", "lab-c"),
    ]
    only = plan_evacuation("lab-a", ["lab-b"], connection=hosts, only=["web"])
    assert [entry.container for entry in only.entries] == ["web"]
    with pytest.raises(PreflightFailed, match="no running container named ghost"):
        plan_evacuation("lab-a", ["lab-b"], connection=hosts, only=["ghost"])
    with pytest.raises(InvalidInput, match="both the host evacuated and a target"):
        plan_evacuation("lab-a", ["lab-a"], connection=hosts)


# -- the CLI -----------------------------------------------------------------------------------
@pytest.fixture
def cli() -> click.Group:
    group = click.Group("celestial-ssh")
    group.add_command(batch_command)
    group.add_command(evacuate_command)
    return group


def write_plan(tmp_path: Path, *names: str) -> str:
    lines = ["migrations:"]
    for name in names:
        lines += [f"  - container: {name}", "    from: lab-a", "    to: lab-b"]
    path = tmp_path / "plan.yml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (None, 0),
        ("rolled_back", 5),
        ("needs_recovery", 6),
        ("preflight", 4),
        ("connection", 3),
    ],
)
def test_batch_exit_codes(
    cli: click.Group, fleet: Fleet, tmp_path: Path, failure: str | None, code: int
) -> None:
    if failure:
        fleet.failures["c1"] = failure
    result = CliRunner().invoke(cli, ["batch", write_plan(tmp_path, "c0", "c1", "c2"), "--json"])
    assert result.exit_code == code, result.output
    document = json.loads(result.stdout)
    assert document["exit_code"] == code
    assert len(document["migrations"]) == 3


def test_the_worst_failure_decides_the_exit_code(
    cli: click.Group, fleet: Fleet, tmp_path: Path
) -> None:
    fleet.failures |= {"c0": "preflight", "c1": "needs_recovery", "c2": "rolled_back"}
    plan = write_plan(tmp_path, "c0", "c1", "c2")
    result = CliRunner().invoke(cli, ["batch", plan, "--continue-on-error", "-q"])
    assert result.exit_code == 6


def test_already_moved_and_skipped_exit_zero(
    cli: click.Group, fleet: Fleet, tmp_path: Path
) -> None:
    fleet.states[("lab-a", "c0")] = None
    fleet.states[("lab-b", "c0")] = "running"
    result = CliRunner().invoke(cli, ["batch", write_plan(tmp_path, "c0", "c1")])
    assert result.exit_code == 0, result.output
    assert "already_moved" in result.stderr
    assert "1 migrated" in result.stderr


def test_a_bad_plan_exits_2(cli: click.Group, fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "plan.yml"
    path.write_text("migrations:\n  - container: web\n    from: lab-a\n")
    result = CliRunner().invoke(cli, ["batch", str(path)])
    assert result.exit_code == 2
    assert "migration #1 (line 2): 'to' is missing" in result.stderr
    assert fleet.started == []


def test_json_lines_prints_events_as_they_happen_and_reports_are_appended(
    cli: click.Group, fleet: Fleet, tmp_path: Path
) -> None:
    fleet.failures["c1"] = "rolled_back"
    report_file = tmp_path / "runs.csv"
    result = CliRunner().invoke(
        cli,
        [
            "batch",
            write_plan(tmp_path, "c0", "c1"),
            "--json-lines",
            "--continue-on-error",
            "--report",
            str(report_file),
        ],
    )
    assert result.exit_code == 5
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert documents[-1]["type"] == "summary"
    kinds = {document["type"] for document in documents}
    assert {"entry", "phase_started", "transfer", "summary"} <= kinds
    finished = [d for d in documents if d["type"] == "entry" and d["status"] == "failed"]
    assert finished[0]["container"] == "c1" and finished[0]["report"]["outcome"] == "rolled_back"
    rows = report_file.read_text().splitlines()
    assert len(rows) == 3  # header + both migrations, the failed one included


def test_dry_run_writes_no_report_rows(cli: click.Group, fleet: Fleet, tmp_path: Path) -> None:
    report_file = tmp_path / "runs.json"
    result = CliRunner().invoke(
        cli, ["batch", write_plan(tmp_path, "c0"), "--dry-run", "--report", str(report_file)]
    )
    assert result.exit_code == 0, result.output
    assert "would_migrate" in result.stderr
    assert not report_file.exists()


def test_evacuate_cli_runs_the_plan_it_made(
    cli: click.Group, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []

    def fake_plan(host: str, targets: list[str], **kwargs: Any) -> Plan:
        made.append({"host": host, "targets": targets, **kwargs})
        return plan_of("web", "db", source=host, target=targets[0])

    monkeypatch.setattr(batch_commands, "plan_evacuation", fake_plan)
    result = CliRunner().invoke(
        cli, ["evacuate", "lab-a", "--to", "lab-b,lab-c", "--only", "web,db", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert made[0]["targets"] == ["lab-b", "lab-c"]
    assert made[0]["only"] == ["web", "db"]
    assert sorted(fleet.started) == ["db", "web"]
    assert json.loads(result.stdout)["counts"]["migrated"] == 2


EVACUATION_INVENTORY = """\
all:
  hosts:
    lab-a: {ansible_host: 10.9.0.1}
  children:
    targets:
      hosts:
        lab-b: {ansible_host: 10.9.0.2, ansible_ssh_common_args: -o ForwardX11=yes}
        lab-c: {ansible_host: 10.9.0.3}
"""


def test_evacuate_with_an_inventory_reaches_every_host_through_it(
    cli: click.Group, fleet: Fleet, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(EVACUATION_INVENTORY)
    planned_with: list[ConnectionSettings] = []

    def fake_plan(host: str, targets: list[str], **kwargs: Any) -> Plan:
        assert targets == ["lab-b", "lab-c"]  # the group, expanded
        planned_with.append(kwargs["connection"])
        return plan_of("web", "db", source=host, target=targets[0])

    monkeypatch.setattr(batch_commands, "plan_evacuation", fake_plan)
    result = CliRunner().invoke(
        cli, ["evacuate", "lab-a", "--to", "targets", "--inventory", str(inventory), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(fleet.started) == ["db", "web"]
    # the plan and every migration resolve the hosts through the inventory, not ssh_config
    [connection] = planned_with
    assert connection.resolve("lab-b").hostname == "10.9.0.2"
    resolvers = [options.connection_settings().host_resolver for options in fleet.options]
    assert all(resolver is not None for resolver in resolvers)
    assert [resolver("lab-b").hostname for resolver in resolvers if resolver] == ["10.9.0.2"] * 2
    # and its warnings are shown, as migrate shows them
    assert f"warning: {inventory}:7: ansible_ssh_common_args is not used" in result.stderr


def test_evacuate_cli_reports_an_unreachable_host(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(host: str, targets: list[str], **kwargs: Any) -> Plan:
        raise ConnectionFailed(f"{host}: no route to host", host=host)

    monkeypatch.setattr(batch_commands, "plan_evacuation", unreachable)
    result = CliRunner().invoke(cli, ["evacuate", "lab-a", "--to", "lab-b"])
    assert result.exit_code == 3
    assert "no route to host" in result.stderr


def test_batch_data_plane_options_reach_every_migration(
    cli: click.Group, fleet: Fleet, tmp_path: Path
) -> None:
    plan = write_plan(tmp_path, "c0", "c1")
    result = CliRunner().invoke(
        cli, ["batch", plan, "--transport", "paramiko", "--bwlimit", "10M", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert [(o.transport, o.direct, o.bwlimit_bytes_per_s) for o in fleet.options] == [
        ("paramiko", False, 10e6),
        ("paramiko", False, 10e6),
    ]


def test_evacuate_direct_reaches_every_migration(
    cli: click.Group, fleet: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_plan(host: str, targets: list[str], **kwargs: Any) -> Plan:
        return plan_of("web", "db", source=host, target=targets[0])

    monkeypatch.setattr(batch_commands, "plan_evacuation", fake_plan)
    result = CliRunner().invoke(cli, ["evacuate", "lab-a", "--to", "lab-b", "--direct", "-q"])
    assert result.exit_code == 0, result.output
    assert [(o.transport, o.direct) for o in fleet.options] == [("auto", True), ("auto", True)]


@pytest.mark.parametrize("command", ["batch", "evacuate"])
def test_tls_reaches_every_migration_of_a_batch(
    cli: click.Group,
    fleet: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: str,
) -> None:
    def fake_plan(host: str, targets: list[str], **kwargs: Any) -> Plan:
        return plan_of("web", "db", source=host, target=targets[0])

    monkeypatch.setattr(batch_commands, "plan_evacuation", fake_plan)
    args = (
        ["batch", write_plan(tmp_path, "c0", "c1")]
        if command == "batch"
        else ["evacuate", "lab-a", "--to", "lab-b"]
    )
    result = CliRunner().invoke(cli, [*args, "--tls", "-q"])
    assert result.exit_code == 0, result.output
    # each listener picks its own port: parallel migrations to one target never collide
    assert [(o.tls, o.tls_port) for o in fleet.options] == [(True, 0), (True, 0)]


def test_a_batch_takes_no_fixed_tls_port(cli: click.Group, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["batch", write_plan(tmp_path, "c0"), "--tls-port", "4433"])
    assert result.exit_code == 2
    assert "No such option '--tls-port'" in result.stderr


def test_the_library_default_data_plane_for_batches(fleet: Fleet, tmp_path: Path) -> None:
    run_batch(write_plan(tmp_path, "c0"), connection=fleet.connection())
    [options] = fleet.options
    assert (options.transport, options.direct, options.bwlimit_bytes_per_s) == ("auto", False, None)
    assert not options.tls


def test_a_plan_entry_compresses_as_migrate_does_unless_told() -> None:
    plan = parse_plan(
        "defaults:\n  compression: auto\nmigrations:\n"
        "  - {container: a, from: x, to: y}\n"
        "  - {container: b, from: x, to: y, compression: gzip}\n"
    )
    assert [entry.compression for entry in plan.entries] == ["auto", "gzip"]
    [entry] = parse_plan("migrations:\n  - {container: a, from: x, to: y}\n").entries
    assert entry.options().compression == "auto"


def test_evacuate_compresses_as_migrate_does_unless_told(
    cli: click.Group, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def fake_plan(host: str, targets: list[str], **kwargs: Any) -> Plan:
        asked.append(kwargs["compression"])
        return Plan(entries=[])

    monkeypatch.setattr(batch_commands, "plan_evacuation", fake_plan)
    for extra in ([], ["--compress", "zstd"], ["--compress", "auto"]):
        CliRunner().invoke(cli, ["evacuate", "lab-a", "--to", "lab-b", "-q", *extra])
    assert asked == ["auto", "zstd", "auto"]
    refused = CliRunner().invoke(cli, ["evacuate", "lab-a", "--to", "lab-b", "--compress", "lz4"])
    assert refused.exit_code == 2
    assert "'lz4' is not one of 'none', 'zstd', 'gzip', 'auto'" in refused.stderr


def test_plan_evacuation_refuses_an_unknown_compression() -> None:
    with pytest.raises(InvalidInput, match="'lz4' is not one of none, zstd, gzip, auto"):
        plan_evacuation("lab-a", ["lab-b"], compression="lz4")


# -- the data plane in a plan ---------------------------------------------------------------
DATA_PLANE_PLAN = """\
defaults: {transport: paramiko}
migrations:
  - {container: c0, from: lab-a, to: lab-b}
  - {container: c1, from: lab-a, to: lab-b, tls: true, transport: openssh}
  - {container: c2, from: lab-a, to: lab-b, tls: false, bwlimit: 50Mbit}
  - {container: c3, from: lab-a, to: lab-b, direct: true, bwlimit: 6000000}
"""


def test_a_plan_sets_the_data_plane_per_entry() -> None:
    c0, c1, c2, c3 = parse_plan(DATA_PLANE_PLAN).entries
    assert c0.data_plane == {"transport": "paramiko"}
    assert c1.data_plane == {"transport": "openssh", "tls": True}
    assert c2.data_plane == {"transport": "paramiko", "tls": False, "bwlimit": 6.25e6}
    assert c3.data_plane == {"transport": "paramiko", "direct": True, "bwlimit": 6e6}
    options = c1.options()
    assert (options.transport, options.tls, options.direct) == ("openssh", True, False)


def plan_file(tmp_path: Path, *migrations: str) -> str:
    """A plan file of flow-style migrations (``"container: c0, from: lab-a, to: lab-b"``)."""
    plan = tmp_path / "plan.yml"
    plan.write_text("migrations:\n" + "".join(f"  - {{{line}}}\n" for line in migrations))
    return str(plan)


def test_the_plan_wins_over_the_command_line_for_its_entries(
    cli: click.Group, fleet: Fleet, tmp_path: Path
) -> None:
    plan = plan_file(
        tmp_path,
        "container: c0, from: lab-a, to: lab-b",
        "container: c1, from: lab-a, to: lab-b, tls: false, transport: paramiko",
        "container: c2, from: lab-a, to: lab-b, direct: true, bwlimit: null",
        "container: c3, from: lab-a, to: lab-b, tls: true, bwlimit: none",
    )
    result = CliRunner().invoke(cli, ["batch", plan, "--bwlimit", "10M", "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(
        (o.transport, o.tls, o.direct, o.bwlimit_bytes_per_s or 0) for o in fleet.options
    ) == [
        ("auto", False, False, 10e6),  # from the command line
        ("auto", False, True, 0),  # the plan's direct, and no limit (it cannot apply)
        ("auto", True, False, 0),  # the same for its TLS stream
        ("paramiko", False, False, 10e6),  # the plan's word, the command line's limit
    ]


def test_contradicting_settings_fail_the_batch_before_anything_moves(
    cli: click.Group, fleet: Fleet, tmp_path: Path
) -> None:
    plan = plan_file(
        tmp_path,
        "container: c0, from: lab-a, to: lab-b",
        "container: c1, from: lab-a, to: lab-b, tls: true",
    )
    result = CliRunner().invoke(cli, ["batch", plan, "--bwlimit", "10M"])
    assert result.exit_code == 2, result.output
    assert "migration #2 (line 3): --bwlimit cannot be combined with --tls" in result.stderr
    assert fleet.options == []
