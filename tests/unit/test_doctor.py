"""doctor: the checks over a fake session, the builders, and the CLI's exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner

from celestial_ssh import commands, doctor_commands, tls_link
from celestial_ssh.errors import ConnectionFailed, InvalidInput
from celestial_ssh.readiness import (
    CRIU_FIX,
    PRE_COPY_UNAVAILABLE,
    Check,
    HostReport,
    check_host,
    doctor,
    parse_cpuinfo_summary,
    parse_df,
    parse_oci_runtime,
    parse_podman_version,
)
from celestial_ssh.ssh import SUDO_PREFIX
from celestial_ssh_cli import fleet_commands as cli_fleet_commands
from celestial_ssh_cli.failures import ExitCode
from celestial_ssh_cli.fleet_commands import doctor_command, ps_command
from tests.unit.fakes import FakeFleet, FakeSession, host

PODMAN_VERSION = json.dumps({"Client": {"Version": "4.3.1", "OsArch": "linux/amd64"}})
PODMAN_INFO = json.dumps(
    {
        "host": {
            "arch": "amd64",
            "ociRuntime": {
                "name": "runc",
                "version": "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\nspec: 1.0.2-dev",
            },
        },
        "version": {"Version": "4.3.1"},
        "store": {"graphRoot": "/var/lib/containers/storage"},
    }
)
CPU_SUMMARY = (
    "processors\t: 8\n"
    "model name\t: Intel(R) Xeon(R) Processor\n"
    "flags\t\t: fpu sse4_2 avx avx2 aes\n"
)
MEMINFO = "MemTotal:       24771000 kB\nMemAvailable:   24232720 kB\n"
TMPFS_DF = (
    "/dev/shm\n"
    "tmpfs\n"
    "Filesystem     1024-blocks  Used Available Capacity Mounted on\n"
    "tmpfs            12365856 183216  12182640       2% /dev/shm\n"
)
DF = (
    "/var/tmp\n"
    "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
    "/dev/vda         264212084 23394356  82996556      22% /\n"
)


def key(argv: list[str]) -> tuple[str, ...]:
    return tuple(argv)


def healthy_responses() -> dict[tuple[str, ...], tuple[int, str, str]]:
    return {
        key(commands.whoami()): (0, "0\n", ""),
        key(doctor_commands.podman_version()): (0, PODMAN_VERSION, ""),
        key(commands.podman_info()): (0, PODMAN_INFO, ""),
        key(doctor_commands.kernel_release()): (0, "6.18.44-fc\n", ""),
        key(commands.criu_version()): (0, "Version: 4.2.1\n", ""),
        key(commands.criu_check()): (0, "Looks good.\n", ""),
        key(doctor_commands.criu_feature("mem_dirty_track")): (
            1,
            "",
            "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n",
        ),
        key(doctor_commands.criu_feature("uffd-noncoop")): (0, "uffd-noncoop is supported\n", ""),
        key(tls_link.tls_tool()): (0, "python3\n", ""),
        key(commands.machine_arch()): (0, "x86_64\n", ""),
        key(doctor_commands.cpu_summary()): (0, CPU_SUMMARY, ""),
        key(doctor_commands.memory_info()): (0, MEMINFO, ""),
        key(doctor_commands.landing_disk()): (0, DF, ""),
        key(doctor_commands.landing_tmpfs()): (0, TMPFS_DF, ""),
        key(commands.list_workdirs(sizes=True)): (0, "", ""),  # no work directories
    }


@pytest.fixture
def fleet() -> FakeFleet:
    """Hosts by name; names not added fail to resolve."""
    return FakeFleet()


def add(fleet: FakeFleet, name: str, **kwargs: Any) -> FakeSession:
    responses = kwargs.pop("responses", None)
    return fleet.add(
        FakeSession(
            host(name, kwargs.pop("user", "root")),
            healthy_responses() if responses is None else responses,
            **kwargs,
        )
    )


# -- builders --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("builder", "expected"),
    [
        (doctor_commands.podman_version, ["podman", "version", "--format", "json"]),
        (doctor_commands.kernel_release, ["uname", "-r"]),
        (
            doctor_commands.memory_info,
            ["grep", "-E", "^(MemTotal|MemAvailable):", "/proc/meminfo"],
        ),
        (
            doctor_commands.container_stats,
            ["podman", "stats", "--no-stream", "--format", "json"],
        ),
    ],
)
def test_builders_are_exact(builder: Callable[[], list[str]], expected: list[str]) -> None:
    assert builder() == expected


def test_criu_feature_builder_refuses_shell_syntax() -> None:
    assert doctor_commands.criu_feature("mem_dirty_track") == [
        "criu",
        "check",
        "--feature",
        "mem_dirty_track",
    ]
    with pytest.raises(InvalidInput):
        doctor_commands.criu_feature("x; rm -rf /")


def test_landing_disk_uses_the_landing_dir_of_migrations() -> None:
    argv = doctor_commands.landing_disk()
    assert argv[:2] == ["sh", "-c"]
    assert '"${TMPDIR:-/var/tmp}"' in argv[2] and "df -Pk" in argv[2]
    assert commands.make_workdir()[2].count("${TMPDIR:-/var/tmp}") == 1


def test_container_inspect_many_validates_every_name() -> None:
    assert doctor_commands.container_inspect_many(["a", "b"])[-3:] == ["--", "a", "b"]
    with pytest.raises(InvalidInput):
        doctor_commands.container_inspect_many(["a", "$(reboot)"])
    with pytest.raises(ValueError):
        doctor_commands.container_inspect_many([])


# -- parsers ---------------------------------------------------------------------------
def test_parsers() -> None:
    assert parse_podman_version(PODMAN_VERSION) == "4.3.1"
    assert parse_podman_version('{"Client": {"Version": "4"}, "Server": {"Version": "5"}}') == "5"
    assert parse_podman_version("not json") is None
    assert parse_oci_runtime(PODMAN_INFO) == ("runc", "1.1.5+ds1")
    assert parse_oci_runtime("{}") is None
    assert parse_df(DF) == ("/var/tmp", 82996556, "/")
    assert parse_df("garbage") is None
    cpu = parse_cpuinfo_summary(CPU_SUMMARY)
    assert cpu == {
        "model": "Intel(R) Xeon(R) Processor",
        "flags": ["fpu", "sse4_2", "avx", "avx2", "aes"],
        "processors": 8,
    }
    arm = parse_cpuinfo_summary("processors\t: 4\nFeatures\t: fp asimd sha2\n")
    assert arm["flags"] == ["fp", "asimd", "sha2"] and arm["model"] == ""


# -- check_host ------------------------------------------------------------------------
def test_healthy_host(fleet: FakeFleet) -> None:
    session = add(fleet, "alpha")
    report = check_host("alpha", connection=fleet.settings())
    assert report.ok and report.reachable and report.failures == []
    names = [check.name for check in report.checks]
    assert names == [
        "ssh",
        "privileges",
        "podman",
        "oci runtime",
        "kernel",
        "criu",
        "criu check",
        "pre-copy",
        "lazy pages",
        "tls link",
        "cpu",
        "memory",
        "disk",
        "tmpfs",
        "leftovers",
    ]
    leftovers = report.check("leftovers")
    assert leftovers is not None and leftovers.ok and leftovers.level == "info"
    assert report.facts["workdirs"] == []
    pre_copy = report.check("pre-copy")
    assert pre_copy is not None
    assert (pre_copy.ok, pre_copy.level, pre_copy.detail) == (
        False,
        "warning",
        PRE_COPY_UNAVAILABLE,
    )
    assert not pre_copy.failed
    assert report.facts["criu_version"] == "4.2.1"
    assert report.facts["criu_features"] == {"mem_dirty_track": False, "uffd-noncoop": True}
    assert report.facts["oci_runtime"] == {"name": "runc", "version": "1.1.5+ds1"}
    assert report.facts["arch"] == "x86_64"
    assert report.facts["disk_available_kib"] == 82996556
    assert "23.1 GiB available" in (report.check("memory") or Check("", False, "")).detail
    assert session.closed, "a session doctor opened is closed again"
    assert session.privileged_prefix == ()


@pytest.mark.parametrize("tool", ["python3", "socat"])
def test_the_tls_link_names_the_program_of_this_end(fleet: FakeFleet, tool: str) -> None:
    session = add(fleet, "alpha", user="deploy")
    session.responses[key(commands.whoami())] = (0, "1000\n", "")
    session.responses[key(commands.sudo_works())] = (0, "", "")
    session.responses[key(tls_link.tls_tool())] = (0, f"{tool}\n", "")
    report = check_host("alpha", connection=fleet.settings())
    tls = report.check("tls link")
    assert tls is not None and tls.ok and tls.level == "info"
    assert tls.detail == f"{tool} found: the TLS link can stream to or from this host"
    assert report.facts["tls_tool"] == tool
    assert dict(session.ran)[key(tls_link.tls_tool())] == SUDO_PREFIX, "asked as the ends run"


def test_a_host_without_python3_or_socat_is_told_the_tls_link_cannot_use_it(
    fleet: FakeFleet,
) -> None:
    session = add(fleet, "alpha")
    session.responses[key(tls_link.tls_tool())] = (0, "", "")
    report = check_host("alpha", connection=fleet.settings())
    tls = report.check("tls link")
    assert tls is not None and not tls.ok and tls.level == "info"
    assert tls.detail == (
        "neither python3 (3.6 or later, with ssl) nor socat: the TLS link cannot stream to "
        "or from this host; migrations relay through this machine"
    )
    assert "install python3 or socat" in tls.fix and "doctor --links" in tls.fix
    assert report.ok, "the TLS link is optional: doctor does not fail without it"
    assert report.facts["tls_tool"] is None


def test_pre_copy_available(fleet: FakeFleet) -> None:
    session = add(fleet, "alpha")
    session.responses[key(doctor_commands.criu_feature("mem_dirty_track"))] = (0, "", "")
    pre_copy = check_host("alpha", connection=fleet.settings()).check("pre-copy")
    assert pre_copy is not None and pre_copy.ok and pre_copy.status == "ok"


def test_sudo_user_runs_privileged_commands_under_sudo(fleet: FakeFleet) -> None:
    session = add(fleet, "alpha", user="deploy")
    session.responses[key(commands.whoami())] = (0, "1000\n", "")
    session.responses[key(commands.sudo_works())] = (0, "", "")
    report = check_host("alpha", connection=fleet.settings())
    assert report.ok
    assert report.facts["privileges"] == "sudo"
    prefixes = dict(session.ran)
    assert prefixes[key(commands.criu_check())] == SUDO_PREFIX
    assert prefixes[key(doctor_commands.landing_disk())] == SUDO_PREFIX
    assert prefixes[key(doctor_commands.kernel_release())] == ()


def _drop(*argvs: list[str]) -> Callable[[FakeSession], None]:
    def change(session: FakeSession) -> None:
        for argv in argvs:
            session.responses.pop(key(argv))

    return change


def _set(argv: list[str], status: int, stdout: str = "", stderr: str = "") -> Callable[..., None]:
    def change(session: FakeSession) -> None:
        session.responses[key(argv)] = (status, stdout, stderr)

    return change


def _no_sudo(session: FakeSession) -> None:
    session.responses[key(commands.whoami())] = (0, "1000\n", "")
    session.responses[key(commands.sudo_works())] = (1, "", "sudo: a password is required\n")


@pytest.mark.parametrize(
    ("change", "failing", "detail", "fix"),
    [
        (_no_sudo, "privileges", "'sudo -n' does not work", "passwordless sudo"),
        (
            _drop(doctor_commands.podman_version(), commands.podman_info()),
            "podman",
            "podman is not installed",
            "Install podman",
        ),
        (
            _set(doctor_commands.podman_version(), 125, "", "Error: cannot open storage\n"),
            "podman",
            "cannot open storage",
            "podman info",
        ),
        (
            _set(commands.podman_info(), 125, "", "Error: runtime broken\n"),
            "oci runtime",
            "runtime broken",
            "Install runc or crun",
        ),
        (
            _drop(
                commands.criu_version(),
                commands.criu_check(),
                doctor_commands.criu_feature("mem_dirty_track"),
                doctor_commands.criu_feature("uffd-noncoop"),
            ),
            "criu",
            "CRIU is not installed",
            "CRIU >= 4.2 on kernels >= 6.16",
        ),
        (
            _set(commands.criu_version(), 0, "Version: 4.1\n"),
            "criu",
            "CRIU 4.1 is too old for kernel 6.18.44-fc (needs >= 4.2)",
            "CRIU >= 4.2 on kernels >= 6.16",
        ),
        (
            _set(commands.criu_version(), 0, "Version: 3.10\n"),
            "criu",
            "CRIU 3.10 is too old",
            "CRIU >= 4.2 on kernels >= 6.16",
        ),
        (
            _set(commands.criu_check(), 1, "", "Error (criu/vdso.c:101): vdso mismatch\n"),
            "criu check",
            "vdso mismatch",
            "CRIU >= 4.2 on kernels >= 6.16",
        ),
    ],
)
def test_each_failing_check_has_its_fix(
    fleet: FakeFleet,
    change: Callable[[FakeSession], None],
    failing: str,
    detail: str,
    fix: str,
) -> None:
    change(add(fleet, "alpha"))
    report = check_host("alpha", connection=fleet.settings())
    assert not report.ok and report.reachable
    check = report.check(failing)
    assert check is not None and check.failed, report.to_dict()
    assert detail in check.detail
    assert fix in check.fix
    assert check.to_dict()["status"] == "FAIL"


def test_missing_criu_marks_criu_check_failed_and_features_unknown(
    fleet: FakeFleet,
) -> None:
    session = add(fleet, "alpha")
    for argv in (commands.criu_version(), commands.criu_check()):
        session.responses.pop(key(argv))
    report = check_host("alpha", connection=fleet.settings())
    assert [check.name for check in report.failures] == ["criu", "criu check"]
    assert all(check.fix == CRIU_FIX for check in report.failures)
    assert report.facts["criu_features"] == {"mem_dirty_track": None, "uffd-noncoop": None}
    pre_copy = report.check("pre-copy")
    assert pre_copy is not None and pre_copy.level == "info" and not pre_copy.failed


def test_tmpfs_for_landing_is_reported(fleet: FakeFleet) -> None:
    add(fleet, "alpha")
    report = check_host("alpha", connection=fleet.settings())
    check = report.check("tmpfs")
    assert check is not None and check.ok and check.level == "info"
    assert check.detail.startswith("11.6 GiB free in /dev/shm")
    assert report.facts["tmpfs_dir"] == "/dev/shm"
    assert report.facts["tmpfs_available_kib"] == 12182640


@pytest.mark.parametrize(
    "answer",
    [
        (
            0,
            "/dev/shm\next2/ext3\nFilesystem 1024-blocks Used Available Capacity Mounted on\n"
            "/dev/vda 264212084 23394356 82996556 22% /\n",
            "",
        ),
        (1, "/dev/shm\n", "stat: cannot read file system information for '/dev/shm'"),
    ],
    ids=["not-tmpfs", "missing"],
)
def test_no_tmpfs_says_archives_land_on_disk(
    fleet: FakeFleet, answer: tuple[int, str, str]
) -> None:
    session = add(fleet, "alpha")
    session.responses[key(doctor_commands.landing_tmpfs())] = answer
    report = check_host("alpha", connection=fleet.settings())
    check = report.check("tmpfs")
    assert check is not None and check.ok and check.level == "info"
    assert check.detail == "/dev/shm is not a tmpfs here: archives land on disk"
    assert report.facts["tmpfs_available_kib"] is None
    assert report.ok


def test_work_directories_on_a_host_are_a_warning_with_their_sizes(
    fleet: FakeFleet,
) -> None:
    session = add(fleet, "alpha")
    session.responses[key(commands.list_workdirs(sizes=True))] = (
        0,
        "12\t/var/tmp/celestial-ssh.3f1c2a9b8d7e.AbCdEfGhIj\n"
        "1048580\t/dev/shm/celestial-ssh.3f1c2a9b8d7e.KlMnOpQrSt\n",
        "",
    )
    report = check_host("alpha", connection=fleet.settings())
    check = report.check("leftovers")
    assert check is not None and not check.ok and check.level == "warning"
    assert not check.failed and report.ok, "a warning: the host can still migrate"
    assert check.detail == (
        "2 work directories of celestial-ssh (1.0 GiB): "
        "/var/tmp/celestial-ssh.3f1c2a9b8d7e.AbCdEfGhIj, "
        "/dev/shm/celestial-ssh.3f1c2a9b8d7e.KlMnOpQrSt; a migration running now has one, "
        "else a migration was interrupted"
    )
    assert "celestial-ssh recover SOURCE TARGET CONTAINER" in check.fix
    assert report.facts["workdirs"] == [
        {"path": "/var/tmp/celestial-ssh.3f1c2a9b8d7e.AbCdEfGhIj", "kib": 12},
        {"path": "/dev/shm/celestial-ssh.3f1c2a9b8d7e.KlMnOpQrSt", "kib": 1048580},
    ]


@pytest.mark.parametrize(
    "answer", [(1, "", "du: cannot read"), (0, "garbage\n", "")], ids=["fails", "unreadable"]
)
def test_work_directories_that_cannot_be_listed_are_information(
    fleet: FakeFleet, answer: tuple[int, str, str]
) -> None:
    session = add(fleet, "alpha")
    session.responses[key(commands.list_workdirs(sizes=True))] = answer
    report = check_host("alpha", connection=fleet.settings())
    check = report.check("leftovers")
    assert check is not None and check.level == "info" and report.ok
    assert report.facts["workdirs"] is None


def test_landing_tmpfs_uses_the_tmpfs_of_migrations() -> None:
    script = doctor_commands.landing_tmpfs()[2]
    assert '"${CELESTIAL_SSH_TMPFS:-/dev/shm}"' in script and "stat -f -c %T" in script
    assert commands.make_landing_workdir("c" * 64, 1)[2].count(commands.TMPFS_DIR) == 1


def test_no_privileges_skips_the_rest(fleet: FakeFleet) -> None:
    _no_sudo(add(fleet, "alpha", user="deploy"))
    report = check_host("alpha", connection=fleet.settings())
    assert [check.name for check in report.checks] == ["ssh", "privileges"]


@pytest.mark.parametrize(
    ("argv", "name"),
    [(doctor_commands.memory_info(), "memory"), (doctor_commands.landing_disk(), "disk")],
)
def test_low_resources_warn_without_failing(fleet: FakeFleet, argv: list[str], name: str) -> None:
    session = add(fleet, "alpha")
    if name == "memory":
        session.responses[key(argv)] = (0, "MemTotal: 1000000 kB\nMemAvailable: 100000 kB\n", "")
    else:
        session.responses[key(argv)] = (0, DF.replace("82996556", "1000"), "")
    report = check_host("alpha", connection=fleet.settings())
    check = report.check(name)
    assert check is not None and not check.ok and check.level == "warning" and check.fix
    assert report.ok


def test_unreachable_host_is_a_failing_check(fleet: FakeFleet) -> None:
    add(
        fleet,
        "alpha",
        connect_error=ConnectionFailed(
            "alpha: cannot connect to alpha.example port 22: refused", hint="Check sshd."
        ),
    )
    report = check_host("alpha", connection=fleet.settings())
    assert not report.ok and not report.reachable
    assert [(c.name, c.ok, c.detail, c.fix) for c in report.checks] == [
        ("ssh", False, "alpha: cannot connect to alpha.example port 22: refused", "Check sshd.")
    ]


def test_unresolvable_host_is_unreachable(fleet: FakeFleet) -> None:
    report = check_host("nowhere", connection=fleet.settings())
    assert not report.reachable and report.checks[0].name == "ssh"
    assert report.checks[0].fix == "spell it"


def test_connection_lost_during_checks(fleet: FakeFleet) -> None:
    add(fleet, "alpha", break_on=key(commands.criu_check()))
    report = check_host("alpha", connection=fleet.settings())
    assert not report.reachable and not report.ok
    assert report.checks[-1].name == "ssh" and "broke" in report.checks[-1].detail


def test_a_session_passed_in_is_left_open(fleet: FakeFleet) -> None:
    session = FakeSession(host("alpha"), healthy_responses())
    session.is_connected = True
    report = check_host(session)  # type: ignore[arg-type]
    assert report.ok and not session.closed


def test_to_dict_is_json(fleet: FakeFleet) -> None:
    add(fleet, "alpha")
    document = json.loads(json.dumps(check_host("alpha", connection=fleet.settings()).to_dict()))
    assert set(document) == {"host", "ok", "reachable", "checks", "facts"}
    assert document["host"] == "alpha" and document["ok"] is True
    assert set(document["checks"][0]) == {"name", "ok", "status", "level", "detail", "fix"}


def test_doctor_keeps_the_order_of_hosts(fleet: FakeFleet) -> None:
    for name in ("c", "a", "b"):
        add(fleet, name)
    reports = doctor(["c", "a", "nowhere", "b"], connection=fleet.settings())
    assert [report.host for report in reports] == ["c", "a", "nowhere", "b"]
    assert [report.ok for report in reports] == [True, True, False, True]
    assert doctor([]) == []


def test_host_report_ok_needs_reachability() -> None:
    assert HostReport("x").ok
    assert not HostReport("x", reachable=False).ok
    assert HostReport("x", [Check("a", False, "d", level="warning")]).ok
    assert not HostReport("x", [Check("a", False, "d")]).ok


# -- CLI -------------------------------------------------------------------------------
@pytest.fixture
def cli_fleet(fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch) -> FakeFleet:
    """The fleet, reached by the doctor and ps commands with their own ssh options."""
    fleet.serve_cli(monkeypatch, cli_fleet_commands, "doctor")
    fleet.serve_cli(monkeypatch, cli_fleet_commands, "list_containers")
    return fleet


def group() -> click.Group:
    cli = click.Group()
    cli.add_command(doctor_command)
    cli.add_command(ps_command)
    return cli


def test_cli_doctor_healthy_exits_0(cli_fleet: FakeFleet) -> None:
    add(cli_fleet, "alpha")
    add(cli_fleet, "beta")
    result = CliRunner().invoke(group(), ["doctor", "alpha", "beta"])
    assert result.exit_code == 0, result.output
    assert "alpha: ok" in result.output and "beta: ok" in result.output
    assert PRE_COPY_UNAVAILABLE in result.output


def test_cli_doctor_failing_check_exits_4(cli_fleet: FakeFleet) -> None:
    add(cli_fleet, "alpha")
    _drop(commands.criu_version(), commands.criu_check())(add(cli_fleet, "beta"))
    result = CliRunner().invoke(group(), ["doctor", "alpha", "beta"])
    assert result.exit_code == ExitCode.PREFLIGHT == 4
    assert "beta: FAILED" in result.output
    assert "fix: " + CRIU_FIX in result.output


def test_cli_doctor_unreachable_exits_3(cli_fleet: FakeFleet) -> None:
    _drop(commands.criu_version())(add(cli_fleet, "alpha"))
    result = CliRunner().invoke(group(), ["doctor", "alpha", "nowhere"])
    assert result.exit_code == ExitCode.CONNECTION == 3
    assert "nowhere: UNREACHABLE" in result.output


def test_cli_doctor_json_is_one_document(cli_fleet: FakeFleet) -> None:
    add(cli_fleet, "alpha")
    result = CliRunner().invoke(group(), ["doctor", "--json", "alpha", "nowhere"])
    assert result.exit_code == 3
    document = json.loads(result.output)
    assert document["ok"] is False and document["exit_code"] == 3
    assert [h["host"] for h in document["hosts"]] == ["alpha", "nowhere"]
    assert document["hosts"][0]["ok"] is True
    assert document["hosts"][1]["reachable"] is False


def test_cli_doctor_needs_a_host() -> None:
    assert CliRunner().invoke(group(), ["doctor"]).exit_code == 2


def test_cli_doctor_table_on_a_terminal(
    cli_fleet: FakeFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_fleet_commands, "_is_terminal", lambda: True)
    _drop(commands.criu_version(), commands.criu_check())(add(cli_fleet, "alpha"))
    result = CliRunner().invoke(group(), ["doctor", "alpha"])
    assert result.exit_code == 4
    assert "criu check" in result.output and "FAIL" in result.output
