"""recover(): back to exactly one running copy after a coordinator died mid-migration.

Each host is a small stateful fake: the containers podman has (ID, name, status) and the
work directories in its TMPDIR. It answers the exact command lines the builders make, so a
removed container is gone from the next inspect and a restored one runs. The lock is a fake
``take_migration_lock``. Every command (and the lock) is logged in order, with the host.

Then the ``recover`` CLI command, with ``recover`` itself replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from celestial_ssh import commands, connection, recovery
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.errors import (
    ConnectionFailed,
    InvalidInput,
    LockHeld,
    PreflightFailed,
    RemoteCommandFailed,
)
from celestial_ssh.events import Notice
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.recovery import (
    RecoveryOutcome,
    RecoveryReport,
    RunningTwice,
    recover,
)
from celestial_ssh.shell import join
from celestial_ssh.ssh import SUDO_PREFIX, CommandResult
from celestial_ssh_cli import main as cli_main
from celestial_ssh_cli.failures import ExitCode, exit_code_for
from celestial_ssh_cli.main import cli
from tests.unit.fakes import FakeFleet, FakeSession

SRC, TGT = "lab-a", "lab-b"
CID = "c0ffee00" * 8
STRANGER = "5" * 64
TAG = CID[:12]
SRC_WORKDIR = f"/var/tmp/celestial-ssh.{TAG}.SRC0000000"
TGT_WORKDIR = f"/var/tmp/celestial-ssh.{TAG}.TGT0000000"
WAIT = recovery.WAIT_S
LOCK = "<take_migration_lock>"


def result(stdout: str = "", status: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult(host="", command="", exit_status=status, stdout=stdout, stderr=stderr)


@dataclass
class Container:
    id: str
    name: str
    status: str  # podman's State.Status: running, exited, created...

    def inspect(self) -> str:
        state = {"Status": self.status, "Running": self.status == "running", "Pid": 0}
        return json.dumps([{"Id": self.id, "Name": self.name, "State": state, "Image": "i"}])


Hook = Callable[[], CommandResult | None]


@dataclass
class Host:
    """One host's podman and TMPDIR, as the commands recover sends see them."""

    name: str
    lab: Lab
    containers: list[Container] = field(default_factory=list)
    workdirs: list[str] = field(default_factory=list)
    uid: str = "0"
    sudo_works: bool = True  # whether `sudo -n true` succeeds for a user who is not root
    # called when the command line holding the key runs; may change state, and return an
    # answer that replaces the normal one (None: answer normally)
    hooks: dict[str, Hook] = field(default_factory=dict)
    restore_runs: bool = True  # whether `podman container restore` leaves it running

    def find(self, ref: str) -> Container | None:
        return next((c for c in self.containers if ref in (c.id, c.name)), None)

    def execute(self, argv: list[str]) -> CommandResult:
        line = join(argv)
        for needle, hook in self.hooks.items():
            if needle in line:
                answer = hook()
                if answer is not None:
                    return answer
        if argv == commands.whoami():
            return result(self.uid + "\n")
        if argv == commands.sudo_works():
            if self.sudo_works:
                return result()
            return result(status=1, stderr="sudo: a password is required\n")
        if argv[:6] == ["podman", "container", "inspect", "--format", "json", "--"]:
            found = self.find(argv[6])
            if found is None:
                return result(status=125, stderr=f"Error: no such container {argv[6]}")
            return result(found.inspect())
        if argv == commands.list_workdirs(CID):
            return result("".join(f"{workdir}\n" for workdir in self.workdirs))
        for workdir in self.workdirs:
            if argv == commands.wait_for_checkpoint_end(workdir, timeout_s=WAIT):
                return result("0\n")
            if argv == commands.wait_for_restore_end(workdir, timeout_s=WAIT):
                return result()
            if argv == commands.remove_workdir(workdir):
                self.workdirs.remove(workdir)
                return result()
        for container in list(self.containers):
            if argv == commands.container_remove(container.id, force=True):
                self.containers.remove(container)
                return result()
            if argv == commands.restore_local(container.id):
                container.status = "running" if self.restore_runs else "exited"
                return result('{"podman_restore_duration": 1}')
        self.lab.unexpected.append((self.name, line))
        raise AssertionError(f"{self.name}: unexpected command {line!r}")


class FakeLock:
    def __init__(self, lab: Lab):
        self.lab = lab
        self.killed_after: int | None = None

    def kill(self) -> None:
        if self.killed_after is None:
            self.killed_after = len(self.lab.log)


class Lab:
    def __init__(self) -> None:
        self.hosts = {SRC: Host(SRC, self), TGT: Host(TGT, self)}
        self.log: list[tuple[str, str]] = []
        self.timeouts: list[float] = []
        self.unexpected: list[tuple[str, str]] = []
        self.fleet = FakeFleet()
        for name in self.hosts:
            self.fleet.serve(name, self.session)
        self.unreachable: set[str] = set()
        self.locks: list[tuple[FakeLock | None, dict[str, Any]]] = []
        self.lock_answer: Callable[[Callable[[str], None]], FakeLock | None] | None = None
        self.events: list[Any] = []

    @property
    def source(self) -> Host:
        return self.hosts[SRC]

    @property
    def target(self) -> Host:
        return self.hosts[TGT]

    @property
    def sessions(self) -> list[FakeSession]:
        return self.fleet.connected

    @property
    def resolved(self) -> list[str]:
        return self.fleet.resolved

    # -- the stand-ins ---------------------------------------------------------------------
    def settings(self, **fields: Any) -> ConnectionSettings:
        return self.fleet.settings(**fields)

    def session(self, host: ResolvedHost) -> FakeSession:
        """A new connection to ``host``: it runs what that host's podman answers."""
        error = None
        if host.name in self.unreachable:
            error = ConnectionFailed(f"{host.name}: no route to host", host=host.name)
        return FakeSession(
            host,
            answer=self.hosts[host.name].execute,
            connect_error=error,
            log=self.log,
            timeouts=self.timeouts,
        )

    def take_lock(
        self,
        session: FakeSession,
        container: str,
        container_id: str,
        *,
        timeout_s: float,
        warn: Callable[[str], None],
    ) -> FakeLock | None:
        self.log.append((session.host.name, LOCK))
        call = {
            "host": session.host.name,
            "container": container,
            "id": container_id,
            "timeout_s": timeout_s,
            "connected": session.is_connected,
        }
        lock = self.lock_answer(warn) if self.lock_answer else FakeLock(self)
        self.locks.append((lock, call))
        return lock

    # -- what happened -----------------------------------------------------------------------
    def commands_on(self, host: str) -> list[str]:
        return [line for on, line in self.log if on == host]

    def ran(self, host: str, needle: str) -> bool:
        return any(needle in line for line in self.commands_on(host))

    def position(self, host: str, needle: str) -> int:
        for index, (on, line) in enumerate(self.log):
            if on == host and needle in line:
                return index
        raise AssertionError(f"nothing like {needle!r} ran on {host}")

    def positions(self, host: str, needle: str) -> list[int]:
        return [i for i, (on, line) in enumerate(self.log) if on == host and needle in line]

    def changes(self) -> list[tuple[str, str]]:
        """Every command that changes a host: removals and restores."""
        return [
            (host, line)
            for host, line in self.log
            if "podman container rm" in line or "container restore" in line or "rm -rf" in line
        ]


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    lab = Lab()
    monkeypatch.setattr(recovery, "take_migration_lock", lab.take_lock)
    yield lab
    assert lab.unexpected == [], "recover ran commands no test expected"
    assert all(session.closed for session in lab.sessions), "every session is closed"
    for lock, _call in lab.locks:
        assert lock is None or lock.killed_after == len(lab.log), "released after the last command"


def leftovers(lab: Lab) -> None:
    """The work directories a killed migration left, one on each host."""
    lab.source.workdirs.append(SRC_WORKDIR)
    lab.target.workdirs.append(TGT_WORKDIR)


def run(lab: Lab, container: str = "web", **kwargs: Any) -> RecoveryReport:
    return recover(
        SRC, TGT, container, connection=lab.settings(), on_event=lab.events.append, **kwargs
    )


def waits_of(workdir: str) -> list[str]:
    return [
        join(commands.wait_for_checkpoint_end(workdir, timeout_s=WAIT)),
        join(commands.wait_for_restore_end(workdir, timeout_s=WAIT)),
    ]


# -- the decision table ---------------------------------------------------------------------------
def test_runs_on_the_target_only(lab: Lab) -> None:
    # the migration got through; the coordinator died before its cleanup
    lab.source.containers.append(Container(CID, "web", "exited"))
    lab.target.containers.append(Container(CID, "web", "running"))
    leftovers(lab)
    report = run(lab)
    assert report.outcome is RecoveryOutcome.ON_TARGET
    assert report.running_on == TGT
    assert (report.container, report.source, report.target) == ("web", SRC, TGT)
    # nothing restored and no container removed, on either host
    assert not any("container restore" in line or "container rm" in line for _, line in lab.log)
    assert lab.source.containers == [Container(CID, "web", "exited")], "the stopped copy stays"
    assert lab.target.containers == [Container(CID, "web", "running")]
    assert report.actions == [
        "web runs on lab-b: the migration had got through",
        "the stopped copy on lab-a was kept (podman rm web removes it)",
        f"removed {SRC_WORKDIR} on lab-a",
        f"removed {TGT_WORKDIR} on lab-b",
    ]


def test_runs_on_the_target_only_with_no_source_copy_left(lab: Lab) -> None:
    lab.target.containers.append(Container(CID, "web", "running"))
    report = run(lab)
    assert report.outcome is RecoveryOutcome.ON_TARGET
    assert report.actions == ["web runs on lab-b: the migration had got through"]
    assert lab.changes() == []


def test_runs_on_the_source_only_removes_the_target_copy(lab: Lab) -> None:
    # the restore on the target failed (or was killed) after the source was restored
    lab.source.containers.append(Container(CID, "web", "running"))
    lab.target.containers.append(Container(CID, "web", "created"))
    leftovers(lab)
    report = run(lab)
    assert report.outcome is RecoveryOutcome.ON_SOURCE
    assert report.running_on == SRC
    assert lab.commands_on(TGT).count(join(commands.container_remove(CID, force=True))) == 1
    assert lab.target.containers == []
    assert not any("container restore" in line for _, line in lab.log), "it runs already"
    assert lab.source.containers == [Container(CID, "web", "running")]
    assert report.actions[:2] == ["removed the non-running copy on lab-b", "web runs on lab-a"]


def test_runs_on_the_source_only_with_nothing_on_the_target(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "running"))
    report = run(lab)
    assert report.outcome is RecoveryOutcome.ON_SOURCE
    assert report.actions == ["web runs on lab-a"]
    assert lab.changes() == []


def test_runs_on_neither_removes_the_target_copy_then_restores_the_source(lab: Lab) -> None:
    # frozen by the checkpoint, the restore on the target left a stopped copy
    lab.source.containers.append(Container(CID, "web", "exited"))
    lab.target.containers.append(Container(CID, "web", "exited"))
    leftovers(lab)
    report = run(lab)
    assert report.outcome is RecoveryOutcome.RESTORED_ON_SOURCE
    assert report.running_on == SRC
    removal = lab.position(TGT, join(commands.container_remove(CID, force=True)))
    restore = lab.position(SRC, join(commands.restore_local(CID)))
    assert removal < restore, "never two copies: the target's goes first"
    # and the source is checked to run after its restore
    assert lab.positions(SRC, "podman container inspect")[-1] > restore
    assert lab.source.containers == [Container(CID, "web", "running")]
    assert lab.target.containers == []
    assert report.actions == [
        "removed the non-running copy on lab-b",
        "restored web on lab-a from its checkpoint",
        f"removed {SRC_WORKDIR} on lab-a",
        f"removed {TGT_WORKDIR} on lab-b",
    ]
    assert lab.source.workdirs == lab.target.workdirs == []


def test_runs_on_neither_with_nothing_on_the_target_restores_the_source(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    report = run(lab)
    assert report.outcome is RecoveryOutcome.RESTORED_ON_SOURCE
    assert lab.changes() == [(SRC, join(commands.restore_local(CID)))]


def test_a_source_restore_that_does_not_run_is_an_error(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    lab.source.restore_runs = False
    with pytest.raises(PreflightFailed, match="lab-a: web was restored but does not run"):
        run(lab)


def test_a_failing_source_restore_is_reported(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    lab.source.hooks["container restore"] = lambda: result(status=125, stderr="Error: no ckpt")
    with pytest.raises(RemoteCommandFailed) as caught:
        run(lab)
    assert caught.value.exit_status == 125
    assert "restoring web from its checkpoint" in str(caught.value)


def test_running_on_both_changes_nothing(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "running"))
    lab.target.containers.append(Container(CID, "web", "running"))
    leftovers(lab)
    with pytest.raises(RunningTwice) as caught:
        run(lab)
    error = caught.value
    assert error.message == "'web' runs on both lab-a and lab-b; nothing was changed"
    assert "stop the other" in (error.hint or "")
    assert exit_code_for(error) is ExitCode.NEEDS_RECOVERY
    assert lab.changes() == [], "nothing removed or restored, not even the work directories"
    assert lab.source.workdirs == [SRC_WORKDIR] and lab.target.workdirs == [TGT_WORKDIR]
    assert [n for n in lab.events if isinstance(n, Notice) and n.level == "info"] == []


def test_on_neither_host_is_an_error(lab: Lab) -> None:
    lab.target.containers.append(Container(STRANGER, "db", "running"))
    with pytest.raises(PreflightFailed) as caught:
        run(lab)
    assert caught.value.message == "no container 'web' on lab-a or lab-b: nothing to recover"
    assert exit_code_for(caught.value) is ExitCode.PREFLIGHT
    assert lab.locks == [], "no lock taken"
    assert lab.changes() == []
    assert {line for _, line in lab.log} == {"id -u", join(commands.container_inspect("web"))}


# -- it waits for what may still run, then decides ------------------------------------------------
def test_it_waits_for_every_leftover_checkpoint_and_restore_before_deciding(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    lab.target.containers.append(Container(CID, "web", "exited"))
    second = f"/var/tmp/celestial-ssh.{TAG}.SRC1111111"
    lab.source.workdirs += [SRC_WORKDIR, second]
    lab.target.workdirs.append(TGT_WORKDIR)
    run(lab)
    for host, workdirs in ((SRC, [SRC_WORKDIR, second]), (TGT, [TGT_WORKDIR])):
        waits = [
            line for line in lab.commands_on(host) if "never-started" in line or "kill -0" in line
        ]
        assert waits == [wait for workdir in workdirs for wait in waits_of(workdir)]
        last_wait = max(lab.position(host, wait) for wait in waits)
        # the second look at each host, and every change, come after all the waits
        assert lab.positions(SRC, "podman container inspect")[1] > last_wait
        assert lab.positions(TGT, "podman container inspect")[1] > last_wait
        assert all(lab.log.index(change) > last_wait for change in lab.changes())
    # the waits may take as long as a restore: their SSH timeout is longer than their own
    wait_timeouts = {
        lab.timeouts[i] for i, (_, line) in enumerate(lab.log) if "never-started" in line
    }
    assert wait_timeouts == {WAIT + 30}


def test_a_restore_that_ends_during_the_wait_is_seen(lab: Lab) -> None:
    # at the first look the target's copy is still being restored; it runs once the
    # restore ends: the decision is made on that, so the source is NOT restored
    lab.source.containers.append(Container(CID, "web", "exited"))
    restoring = Container(CID, "web", "created")
    lab.target.containers.append(restoring)
    leftovers(lab)

    def restore_ends() -> None:
        restoring.status = "running"

    lab.target.hooks["kill -0"] = restore_ends
    report = run(lab)
    assert report.outcome is RecoveryOutcome.ON_TARGET
    assert not any("container restore" in line or "container rm" in line for _, line in lab.log)
    assert lab.target.containers == [Container(CID, "web", "running")]


def test_a_checkpoint_that_ends_during_the_wait_is_seen(lab: Lab) -> None:
    # still running at the first look (the checkpoint had not frozen it yet); stopped once
    # the checkpoint ends: the source is restored from it
    checkpointing = Container(CID, "web", "running")
    lab.source.containers.append(checkpointing)
    leftovers(lab)

    def checkpoint_ends() -> CommandResult:
        checkpointing.status = "exited"
        return result("0\n")

    lab.source.hooks["never-started"] = checkpoint_ends
    report = run(lab)
    assert report.outcome is RecoveryOutcome.RESTORED_ON_SOURCE
    assert lab.ran(SRC, join(commands.restore_local(CID)))


@pytest.mark.parametrize("needle", ["never-started", "kill -0"], ids=["checkpoint", "restore"])
def test_something_still_running_after_the_wait_stops_recover(lab: Lab, needle: str) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    lab.target.containers.append(Container(CID, "web", "exited"))
    leftovers(lab)
    lab.target.hooks[needle] = lambda: result(status=1)
    with pytest.raises(ConnectionFailed) as caught:
        run(lab)
    assert caught.value.message == (
        f"lab-b: a checkpoint or restore in {TGT_WORKDIR} is still running after {WAIT} s"
    )
    assert lab.changes() == [], "nothing decided, nothing removed"


# -- leftover work directories --------------------------------------------------------------------
def test_only_this_containers_leftover_workdirs_are_removed(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "running"))
    leftovers(lab)
    report = run(lab)
    # listed by the container's ID (the name given was "web"), on both hosts
    for host in (SRC, TGT):
        assert lab.commands_on(host).count(join(commands.list_workdirs(CID))) == 2
    assert lab.changes() == [
        (SRC, join(commands.remove_workdir(SRC_WORKDIR))),
        (TGT, join(commands.remove_workdir(TGT_WORKDIR))),
    ]
    assert lab.source.workdirs == lab.target.workdirs == []
    assert report.actions[-2:] == [
        f"removed {SRC_WORKDIR} on lab-a",
        f"removed {TGT_WORKDIR} on lab-b",
    ]


def test_a_workdir_that_cannot_be_removed_is_skipped(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "running"))
    leftovers(lab)
    lab.source.hooks["rm -rf"] = lambda: result(status=1, stderr="rm: Read-only file system")
    report = run(lab)
    assert report.outcome is RecoveryOutcome.ON_SOURCE
    assert report.actions == ["web runs on lab-a", f"removed {TGT_WORKDIR} on lab-b"]


# -- the lock, sessions, sudo, events -------------------------------------------------------------
def test_the_lock_is_taken_on_the_source_before_the_waits(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    leftovers(lab)
    run(lab)
    [(lock, call)] = lab.locks
    assert call == {
        "host": SRC,
        "container": "web",
        "id": CID,
        "timeout_s": 60,
        "connected": True,
    }
    assert lab.position(SRC, LOCK) < min(lab.position(host, "never-started") for host in (SRC, TGT))
    assert lock is not None and lock.killed_after == len(lab.log)


def test_a_lock_held_by_a_running_migration_stops_recover(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    leftovers(lab)

    def held(warn: Callable[[str], None]) -> FakeLock:
        raise LockHeld("lab-a: another migration of 'web' (c0ffee00c0ff) is running", host=SRC)

    lab.lock_answer = held
    with pytest.raises(LockHeld):
        run(lab)
    assert exit_code_for(LockHeld("x")) is ExitCode.PREFLIGHT
    assert lab.changes() == []
    assert not any("never-started" in line for _, line in lab.log), "no wait either"


def test_a_source_without_flock_warns_and_recovers(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))

    def no_flock(warn: Callable[[str], None]) -> None:
        warn("lab-a has no flock(1): two coordinators could race on 'web'")

    lab.lock_answer = no_flock
    report = run(lab)
    assert report.outcome is RecoveryOutcome.RESTORED_ON_SOURCE
    assert Notice("warning", "lab-a has no flock(1): two coordinators could race on 'web'") in (
        lab.events
    )


def test_actions_are_also_sent_as_info_notices(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    leftovers(lab)
    report = run(lab)
    assert lab.events == [Notice("info", action) for action in report.actions]


def test_a_non_root_user_gets_sudo(lab: Lab) -> None:
    lab.target.uid = "1000"
    lab.source.containers.append(Container(CID, "web", "running"))
    lab.target.containers.append(Container(CID, "web", "exited"))
    run(lab)
    prefix = join(list(SUDO_PREFIX)) + " "
    target = lab.commands_on(TGT)
    assert target[:2] == ["id -u", "sudo -n true"]  # asked without sudo
    assert all(line.startswith(prefix) for line in target[2:])
    assert not any(line.startswith("sudo") for line in lab.commands_on(SRC))


def test_a_non_root_user_without_sudo_stops_recover_before_anything_runs(lab: Lab) -> None:
    lab.target.uid = "1000"
    lab.target.sudo_works = False
    lab.source.containers.append(Container(CID, "web", "exited"))
    with pytest.raises(PreflightFailed, match="is not root and 'sudo -n' does not work") as caught:
        run(lab)
    assert "sudo: a password is required" in caught.value.message
    assert lab.changes() == [] and lab.locks == []


def test_a_container_id_is_taken_as_well_as_a_name(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    report = run(lab, container=CID)
    assert report.outcome is RecoveryOutcome.RESTORED_ON_SOURCE


def test_the_target_copy_is_found_by_id_under_another_name(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    lab.target.containers.append(Container(CID, "web-restored", "created"))
    report = run(lab)
    assert report.outcome is RecoveryOutcome.RESTORED_ON_SOURCE
    assert lab.target.containers == []


def test_ssh_options_reach_the_hosts(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "running"))
    run(lab, accept_new_host_keys=True)
    assert lab.resolved == [SRC, TGT]
    assert [s.host.strict_host_key_checking for s in lab.sessions] == ["accept-new"] * 2


def test_strict_host_keys_stay_strict_by_default(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "running"))
    run(lab)
    assert [s.host.strict_host_key_checking for s in lab.sessions] == ["yes", "yes"]


def test_an_unreachable_host_stops_recover_before_anything_runs(lab: Lab) -> None:
    lab.unreachable.add(TGT)
    with pytest.raises(ConnectionFailed):
        run(lab)
    assert exit_code_for(ConnectionFailed("x")) is ExitCode.CONNECTION
    assert lab.changes() == [] and lab.locks == []


@pytest.mark.parametrize("container", ["web;reboot", "$(reboot)", "-rf", ""])
def test_hostile_names_are_refused_before_resolving(lab: Lab, container: str) -> None:
    with pytest.raises(InvalidInput):
        run(lab, container=container)
    assert lab.resolved == [] and lab.sessions == [] and lab.log == []


def test_running_on_is_none_without_an_outcome() -> None:
    report = RecoveryReport(container="web", source=SRC, target=TGT)
    assert report.running_on is None
    report.outcome = RecoveryOutcome.RUNNING_TWICE
    assert report.running_on is None


# -- library bugs, pinned -------------------------------------------------------------------------
def test_the_only_copy_left_is_never_removed(lab: Lab) -> None:
    # migrated, the source copy removed by the cleanup; later the target's copy stopped
    lab.target.containers.append(Container(CID, "web", "exited"))
    with pytest.raises(PreflightFailed, match="there is no checkpoint left to restore"):
        run(lab)
    assert lab.target.containers == [Container(CID, "web", "exited")]


def test_a_stranger_with_the_name_on_the_target_is_never_removed(lab: Lab) -> None:
    lab.source.containers.append(Container(CID, "web", "exited"))
    lab.target.containers.append(Container(STRANGER, "web", "exited"))
    report = run(lab)
    assert report.outcome is RecoveryOutcome.RESTORED_ON_SOURCE
    assert lab.target.containers == [Container(STRANGER, "web", "exited")]


# -- the recover command --------------------------------------------------------------------------
class FakeRecover:
    """Stands in for recover(): records its arguments, returns or raises ``outcome``."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.outcome: RecoveryReport | BaseException | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> RecoveryReport:
        self.calls.append((args, kwargs))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert self.outcome is not None
        return self.outcome


@pytest.fixture
def recovering(monkeypatch: pytest.MonkeyPatch) -> FakeRecover:
    fake = FakeRecover()
    monkeypatch.setattr(cli_main, "recover", fake)
    return fake


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["recover", *args], catch_exceptions=False)


def recovered(outcome: RecoveryOutcome, *actions: str) -> RecoveryReport:
    return RecoveryReport("web", SRC, TGT, outcome=outcome, actions=list(actions))


def test_recover_command_success(recovering: FakeRecover) -> None:
    recovering.outcome = recovered(
        RecoveryOutcome.ON_TARGET, "web runs on lab-b", f"removed {TGT_WORKDIR}"
    )
    outcome = invoke(SRC, TGT, "web")
    assert outcome.exit_code == ExitCode.OK == 0
    assert outcome.stdout == ""
    assert outcome.stderr.splitlines() == [
        "- web runs on lab-b",
        f"- removed {TGT_WORKDIR}",
        "web runs on lab-b (exactly one copy)",
    ]
    assert recovering.calls == [
        ((SRC, TGT, "web"), {"connection": ConnectionSettings(None, accept_new_host_keys=False)})
    ]


def test_recover_command_passes_the_ssh_options(recovering: FakeRecover, tmp_path: Path) -> None:
    recovering.outcome = recovered(RecoveryOutcome.ON_SOURCE)
    config = str(tmp_path / "ssh_config")
    outcome = invoke(SRC, TGT, "web", "-F", config, "--accept-new-host-keys")
    assert outcome.exit_code == 0
    assert recovering.calls == [
        ((SRC, TGT, "web"), {"connection": ConnectionSettings(config, accept_new_host_keys=True)})
    ]


def test_recover_command_json(recovering: FakeRecover) -> None:
    recovering.outcome = recovered(RecoveryOutcome.RESTORED_ON_SOURCE, "restored web on lab-a")
    outcome = invoke(SRC, TGT, "web", "--json")
    assert outcome.exit_code == 0
    assert json.loads(outcome.stdout) == {
        "status": "succeeded",
        "container": "web",
        "outcome": "restored_on_source",
        "running_on": SRC,
        "actions": ["restored web on lab-a"],
    }
    assert outcome.stderr == ""


def test_recover_command_quiet(recovering: FakeRecover) -> None:
    recovering.outcome = recovered(RecoveryOutcome.ON_SOURCE, "web runs on lab-a")
    outcome = invoke(SRC, TGT, "web", "--quiet")
    assert (outcome.exit_code, outcome.stdout, outcome.stderr) == (0, "", "")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        pytest.param(
            RunningTwice("'web' runs on both lab-a and lab-b; nothing was changed"),
            ExitCode.NEEDS_RECOVERY,
            id="RunningTwice",
        ),
        pytest.param(
            PreflightFailed("no container 'web' on lab-a or lab-b: nothing to recover"),
            ExitCode.PREFLIGHT,
            id="PreflightFailed",
        ),
        pytest.param(LockHeld("lab-a: another migration"), ExitCode.PREFLIGHT, id="LockHeld"),
        pytest.param(
            ConnectionFailed("lab-b: a restore is still running"),
            ExitCode.CONNECTION,
            id="ConnectionFailed",
        ),
        pytest.param(InvalidInput("container 'a;b' is bad"), ExitCode.USAGE, id="InvalidInput"),
        pytest.param(
            RemoteCommandFailed(
                "lab-a: restoring web failed", host=SRC, command="c", exit_status=125, stderr=""
            ),
            ExitCode.PREFLIGHT,
            id="RemoteCommandFailed",
        ),
    ],
)
def test_recover_command_exit_codes(recovering: FakeRecover, error: Exception, code: int) -> None:
    recovering.outcome = error
    outcome = invoke(SRC, TGT, "web")
    assert outcome.exit_code == code
    assert outcome.stdout == ""
    assert f"celestial-ssh: error: {error.message}" in outcome.stderr  # type: ignore[attr-defined]
    as_json = invoke(SRC, TGT, "web", "--json")
    assert as_json.exit_code == code
    assert json.loads(as_json.stdout) == {
        "status": "failed",
        "error": str(error),
        "exit_code": int(code),
    }


def test_recover_command_reports_a_bug_as_exit_1(recovering: FakeRecover) -> None:
    recovering.outcome = ValueError("boom")
    outcome = invoke(SRC, TGT, "web")
    assert outcome.exit_code == ExitCode.ERROR == 1
    assert "celestial-ssh: internal error (this is a bug" in outcome.stderr
    assert outcome.stderr.rstrip().endswith("ValueError: boom")


def test_recover_command_interrupted_exits_130(recovering: FakeRecover) -> None:
    recovering.outcome = KeyboardInterrupt()
    outcome = invoke(SRC, TGT, "web")
    assert outcome.exit_code == ExitCode.INTERRUPTED == 130


def test_recover_command_refuses_a_hostile_name_before_connecting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the real recover(): it refuses the name before resolving any host
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no host may be resolved or connected")

    monkeypatch.setattr(connection, "resolve_host", refuse)
    monkeypatch.setattr(connection, "open_ssh_session", refuse)
    outcome = invoke(SRC, TGT, "web;reboot")
    assert outcome.exit_code == ExitCode.USAGE == 2
    assert "container 'web;reboot' is not a valid container name or ID" in outcome.stderr


def test_recover_command_usage_errors() -> None:
    outcome = invoke(SRC, TGT)
    assert outcome.exit_code == 2
    assert "Missing argument 'CONTAINER'" in outcome.stderr
