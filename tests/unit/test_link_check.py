"""The host-to-host link, checked before anyone migrates: ``check_link`` (the library),
``doctor --links`` and ``probe --data-path auto`` (the command line), over the fake lab.

The lab's two hosts answer the link's commands as real ones would: a work directory, the
program of each end, the target's address, the credentials, a listener that says its port,
and a source whose probe says ready, then how much it moved in how long."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from celestial_ssh import commands, tls_link
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.data_plane import PROBE_MAX_SECONDS, DataPlane, TLSEnds
from celestial_ssh.errors import InvalidInput
from celestial_ssh.link_check import LinkCheck, RateProbe, check_link, check_links
from celestial_ssh.link_probe import probe_link, probe_path
from celestial_ssh.readiness import Check, HostReport
from celestial_ssh.shell import join
from celestial_ssh_cli import fleet_commands as cli_fleet_commands
from celestial_ssh_cli.failures import ExitCode
from celestial_ssh_cli.main import cli
from tests.unit.fakes.lab import ADDRESSES, SRC, TGT, FakeLab, LabSession, result

WORKDIRS = {SRC: "/var/tmp/celestial-ssh.linkSRC000", TGT: "/var/tmp/celestial-ssh.linkTGT000"}
# what a source's probe prints at its end: the proof's MiB in 5 ms, then 32 MiB in 0.25 s
PROOF = result(f"celestial-ssh-probe {tls_link.PROOF_BYTES} 5000\n")
TIMED = result(f"celestial-ssh-probe {32 << 20} 250000\n")
REFUSED = "socat[77] E connect(5, AF=2 10.0.0.6:4433, 16): Connection refused"
SMALL_RATE = RateProbe(32 << 20, max_seconds=2.0, timeout=30.0)


def exactly(argv: list[str]) -> Callable[[str], bool]:
    """A predicate matching the command line of ``argv`` run as root."""
    line = join(argv)
    return lambda command: command == line


def is_link_probe(command: str) -> bool:
    """The source's end of a TLS probe (the proof, or a timed stream)."""
    return commands.direct_probe_fifo("/x").rsplit("/", 1)[-1] in command


class Links:
    """The lab, answering the TLS link's commands; ``silent`` hosts' link probes end
    before they say ready (a firewall drops what they send)."""

    def __init__(self, lab: FakeLab, monkeypatch: pytest.MonkeyPatch):
        self.lab = lab
        self.silent: set[str] = set()
        for host in (SRC, TGT):
            lab.answer(host, exactly(commands.make_workdir()), result(WORKDIRS[host] + "\n"))
            lab.answer(host, "tar -x --no-same-owner", result())  # the credentials
            lab.answer(host, "SSH_CONNECTION", result(ADDRESSES[host] + "\n"))
            lab.answer(host, tls_link.LISTEN_LOG, result("celestial-ssh-listening 4433\n"))
            lab.answer(host, is_link_probe, [PROOF, TIMED])
            # the relay's ends (probe --data-path auto falls back to them)
            lab.answer(host, "probe-receiver", result())
            lab.answer(host, "probe-sender", result())
        self.tools(python3=(SRC, TGT))
        start = LabSession.start

        def starting(session: LabSession, argv: list[str], **options: Any) -> Any:
            process = start(session, argv, **options)
            if session.host.name in self.silent and is_link_probe(process.command):
                process.stdout = b""  # no ready line: the stream ended before it
            return process

        monkeypatch.setattr(LabSession, "start", starting)

    def tools(self, *, python3: tuple[str, ...] = (), socat: tuple[str, ...] = ()) -> None:
        """Which program each host has for its end of the link (neither, if unnamed)."""
        for host in (SRC, TGT):
            said = "python3\n" if host in python3 else "socat\n" if host in socat else ""
            self.lab.answer(host, exactly(tls_link.tls_tool()), result(said))

    def refuse_from(self, host: str) -> None:
        """``host``'s link probes cannot connect: they end before ready, saying why."""
        self.silent.add(host)
        self.lab.answer(host, is_link_probe, result(status=1, stderr=REFUSED + "\n"))

    def cleaned_up(self, *hosts: str) -> bool:
        """Each of ``hosts``'s work directories was removed."""
        return all(
            self.lab.ran(host, join(commands.remove_workdir(WORKDIRS[host]))) for host in hosts
        )

    def removals(self) -> int:
        return sum(command.startswith("rm -rf --") for _, command in self.lab.log)


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLab]:
    lab = FakeLab()
    lab.plug_in(monkeypatch)
    yield lab
    assert lab.unexpected == [], "the check ran commands no test expected"


@pytest.fixture
def links(lab: FakeLab, monkeypatch: pytest.MonkeyPatch) -> Links:
    return Links(lab, monkeypatch)


def check(lab: FakeLab, **options: Any) -> LinkCheck:
    return check_link(SRC, TGT, connection=lab.settings(), **options)


# -- the library -----------------------------------------------------------------------------
def test_a_pair_that_works_says_its_tools_address_and_rate(lab: FakeLab, links: Links) -> None:
    links.tools(python3=(SRC,), socat=(TGT,))
    found = check(lab)
    assert found.works and (found.why, found.fix) == ("", "")
    assert (found.source_tool, found.target_tool, found.tools) == (
        "python3",
        "socat",
        "python3 -> socat",
    )
    assert found.address == ADDRESSES[TGT]
    assert found.proof is not None and found.proof.bytes == tls_link.PROOF_BYTES
    assert found.bytes_per_s == pytest.approx((32 << 20) / 0.25)
    assert found.to_dict() == {
        "source": SRC,
        "target": TGT,
        "works": True,
        "source_tool": "python3",
        "target_tool": "socat",
        "address": ADDRESSES[TGT],
        "port": None,
        "bytes_per_s": round((32 << 20) / 0.25),
        "why": "",
        "fix": "",
        "rate_error": "",
    }
    assert links.cleaned_up(SRC, TGT)
    assert all(session.closed for session in lab.sessions)


def test_the_proof_is_the_one_auto_runs_before_a_freeze(lab: FakeLab, links: Links) -> None:
    """The same bytes and the same timeouts as the migration's proof, then the timed
    stream; both ends as root, over the target's SSH address."""
    check(lab, rate=None)
    probes = [command for host, command in lab.started if host == SRC and is_link_probe(command)]
    assert len(probes) == 1, "no timed stream was asked for"
    link = DataPlane.tls_link(
        WORKDIRS[SRC],
        TLSEnds(ADDRESSES[TGT], "python3", "python3"),
        4433,
        commands.direct_probe_fifo(WORKDIRS[SRC]),
        stall_timeout_s=tls_link.PROOF_TIMEOUT_S,
        connect_timeout_s=tls_link.PROOF_CONNECT_TIMEOUT_S,
    )
    proof = commands.direct_probe(tls_link.PROOF_BYTES, PROBE_MAX_SECONDS, WORKDIRS[SRC], link)
    assert probes == [join(proof)]
    listeners = [command for host, command in lab.started if tls_link.LISTEN_LOG in command]
    assert len(listeners) == 1 and lab.ran(TGT, tls_link.LISTEN_LOG)


def test_a_pinned_port_is_listened_on(lab: FakeLab, links: Links) -> None:
    found = check(lab, tls_port=4433, rate=None)
    assert found.works and found.port == 4433 and found.to_dict()["port"] == 4433
    listener = next(command for _, command in lab.started if tls_link.LISTEN_LOG in command)
    assert " 4433 " in listener


def test_a_target_without_a_tool_does_not_work_and_says_what_to_install(
    lab: FakeLab, links: Links
) -> None:
    links.tools(python3=(SRC,))
    found = check(lab)
    assert not found.works
    assert (found.source_tool, found.target_tool) == ("python3", None)
    assert found.why == (
        f"{TGT} has no program for an end of the TLS link (python3 3.6 or later with its "
        "ssl module, or socat)"
    )
    assert found.fix == f"Install python3 or socat on {TGT} (e.g. apt-get install socat)."
    assert not lab.ran(TGT, tls_link.LISTEN_LOG) and not lab.ran(TGT, "tar -x")
    assert links.cleaned_up(SRC, TGT)


def test_hosts_without_a_tool_are_both_named(lab: FakeLab, links: Links) -> None:
    links.tools()
    found = check(lab)
    assert found.why.startswith(f"{SRC} and {TGT} have no program")
    assert found.fix.startswith(f"Install python3 or socat on {SRC} and {TGT}")


def test_a_proof_the_source_cannot_finish_says_why_and_what_to_open(
    lab: FakeLab, links: Links
) -> None:
    """The listener is fine; the source's probe ends before it is ready."""
    links.refuse_from(SRC)
    found = check(lab)
    assert not found.works and found.measurement is None
    assert (found.source_tool, found.target_tool, found.address) == (
        "python3",
        "python3",
        ADDRESSES[TGT],
    )
    assert found.why == (
        f"{SRC} could not stream to {TGT} at {ADDRESSES[TGT]} (a random free port) over TLS: "
        f"{SRC}: the stream ended before it was ready ({REFUSED})"
    )
    assert found.fix == (
        f"Let {SRC} reach {ADDRESSES[TGT]} on the TCP port the target picks, a random free "
        "one each time (pin it with --tls-port PORT and open that one): open it in "
        f"{TGT}'s firewall and any between; or give --tls-address an address of {TGT} that "
        f"{SRC} can reach."
    )
    assert links.cleaned_up(SRC, TGT)


def test_a_failed_proof_on_a_pinned_port_names_that_port(lab: FakeLab, links: Links) -> None:
    links.refuse_from(SRC)
    found = check(lab, tls_port=4433)
    assert f"at {ADDRESSES[TGT]} (port 4433) over TLS" in found.why
    assert found.fix.startswith(f"Let {SRC} reach {ADDRESSES[TGT]} on TCP port 4433: open it")


def test_a_listener_that_cannot_listen_is_the_targets_fault(lab: FakeLab, links: Links) -> None:
    lab.answer(
        TGT,
        tls_link.LISTEN_LOG,
        result(
            status=tls_link.EXIT_TLS_LISTEN_FAILED, stderr="bind: Cannot assign requested address\n"
        ),
    )
    found = check(lab, tls_address="192.168.9.9", tls_port=4433)
    assert not found.works and found.address == "192.168.9.9"
    assert found.why.startswith(f"{TGT} could not listen on 192.168.9.9 (port 4433): ")
    assert "Cannot assign requested address" in found.why
    assert found.fix == (
        f"Give --tls-address one of {TGT}'s own addresses that {SRC} can reach (NAT between "
        f"the hosts is not supported), or a --tls-port that is free on {TGT}."
    )
    assert not lab.ran(TGT, "SSH_CONNECTION"), "the address given is used"
    assert links.cleaned_up(SRC, TGT)


def test_a_timed_stream_that_fails_leaves_a_working_link_without_a_rate(
    lab: FakeLab, links: Links
) -> None:
    lab.answer(SRC, is_link_probe, [PROOF, result(status=1, stderr="broken pipe\n")])
    found = check(lab)
    assert found.works and found.bytes_per_s is None
    assert found.rate_error.startswith(f"{SRC}: the direct link to {TGT} failed: broken pipe")


def test_a_host_without_root_or_sudo_is_the_reason(lab: FakeLab, links: Links) -> None:
    lab.answer(TGT, exactly(commands.whoami()), result("1000\n"))
    lab.answer(
        TGT, exactly(commands.sudo_works()), result(status=1, stderr="a password is required\n")
    )
    found = check(lab)
    assert not found.works
    assert found.why == (
        f"{TGT}: root is not root and 'sudo -n' does not work, and the ends of the TLS link "
        "run as root"
    )
    assert "passwordless sudo" in found.fix
    assert links.removals() == 0 and not lab.ran(SRC, "mktemp")


def test_sudo_runs_the_ends_as_a_migration_does(lab: FakeLab, links: Links) -> None:
    lab.answer(TGT, exactly(commands.whoami()), result("1000\n"))
    lab.answer(TGT, exactly(commands.sudo_works()), result())
    sudo = ["sudo", "-n", "--"]
    lab.answer(TGT, exactly([*sudo, *commands.make_workdir()]), result(WORKDIRS[TGT] + "\n"))
    lab.answer(TGT, exactly([*sudo, *tls_link.tls_tool()]), result("socat\n"))
    assert check(lab).works
    assert lab.ran(TGT, join([*sudo, *commands.remove_workdir(WORKDIRS[TGT])]))


def test_a_work_directory_that_cannot_be_made_is_the_reason(lab: FakeLab, links: Links) -> None:
    lab.answer(
        TGT, exactly(commands.make_workdir()), result(status=1, stderr="read-only file system\n")
    )
    found = check(lab)
    assert not found.works
    assert found.why == f"{TGT}: a work directory failed (read-only file system)"
    assert links.cleaned_up(SRC) and not lab.ran(TGT, "rm -rf")


def test_an_unreachable_host_raises_as_probe_does(lab: FakeLab, links: Links) -> None:
    lab.unreachable.add(TGT)
    with pytest.raises(Exception, match="no route to host"):
        check(lab)
    assert [session.closed for session in lab.sessions if session.host.name == SRC] == [True]


@pytest.mark.parametrize(
    ("options", "message"),
    [({"tls_address": "lab-b"}, "is not an IP address"), ({"tls_port": 70000}, "not a TCP port")],
)
def test_bad_input_raises_before_connecting(
    lab: FakeLab, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        check(lab, **options)
    assert lab.connects == []


def test_check_links_checks_both_ways_one_pair_at_a_time(lab: FakeLab, links: Links) -> None:
    links.refuse_from(TGT)
    found = check_links([SRC, TGT], connection=lab.settings(), rate=SMALL_RATE)
    assert [(each.source, each.target, each.works) for each in found] == [
        (SRC, TGT, True),
        (TGT, SRC, False),
    ]
    assert (
        found[1].address == ADDRESSES[SRC] and f"Let {TGT} reach {ADDRESSES[SRC]}" in found[1].fix
    )
    assert links.cleaned_up(SRC, TGT) and links.removals() == 4


def test_check_links_skips_a_host_that_cannot_be_reached(lab: FakeLab, links: Links) -> None:
    found = check_links(
        [SRC, TGT, "lab-c"], connection=lab.settings(), unreachable=frozenset({"lab-c"})
    )
    assert len(found) == 6
    skipped = [each for each in found if "lab-c" in (each.source, each.target)]
    assert all(not each.works for each in skipped)
    assert skipped[0].why == "not checked: lab-c cannot be reached over SSH"
    assert "lab-c" not in lab.connects


# -- probe: the library ----------------------------------------------------------------------
def test_probe_path_auto_measures_the_tls_link_when_it_works(lab: FakeLab, links: Links) -> None:
    probed = probe_path(SRC, TGT, nbytes=32 << 20, connection=lab.settings())
    assert probed.data_path == "tls" and probed.measurement.data_plane == "tls"
    assert probed.reason == "auto: TLS link proved (1.0 MB in 0.01 s)"
    assert probed.link is not None and probed.link.works
    assert probed.measurement.bytes == 32 << 20
    assert lab.relays == []
    assert links.cleaned_up(SRC, TGT)


def test_probe_path_auto_relays_and_says_why(lab: FakeLab, links: Links) -> None:
    links.refuse_from(SRC)
    probed = probe_path(SRC, TGT, nbytes=32 << 20, connection=lab.settings())
    assert probed.data_path == "relay" and probed.measurement.data_plane == "paramiko"
    assert probed.reason.startswith(f"no host-to-host link: {SRC} could not stream to {TGT}")
    assert len(lab.relays) == 1
    assert links.cleaned_up(SRC, TGT)


def test_probe_link_keeps_relaying_by_default(lab: FakeLab, links: Links) -> None:
    measured = probe_link(SRC, TGT, nbytes=1 << 20, connection=lab.settings())
    assert measured.data_plane == "paramiko" and len(lab.relays) == 1
    assert not lab.ran(SRC, "mktemp")
    with pytest.raises(InvalidInput, match="--tls-address needs --tls"):
        probe_link(SRC, TGT, tls_address="10.0.0.6", connection=lab.settings())


# -- the command line ------------------------------------------------------------------------
@pytest.fixture
def lab_cli(lab: FakeLab, cli_connection: Callable[[ConnectionSettings], None]) -> FakeLab:
    cli_connection(lab.settings())
    return lab


def test_cli_probe_auto_falls_back_to_the_relay_with_the_reason(
    lab_cli: FakeLab, links: Links
) -> None:
    links.refuse_from(SRC)
    done = CliRunner().invoke(cli, ["probe", SRC, TGT, "--bytes", "32MiB", "--json"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.output)
    assert {"status", "source", "target", "data_plane", "bytes", "seconds", "bytes_per_s"} <= set(
        document
    )
    assert (document["data_path"], document["data_plane"]) == ("relay", "paramiko")
    assert document["data_path_reason"].startswith(f"no host-to-host link: {SRC} could not stream")
    assert document["host_to_host"]["works"] is False
    assert document["host_to_host"]["fix"].startswith(f"Let {SRC} reach {ADDRESSES[TGT]}")
    text = CliRunner().invoke(cli, ["probe", SRC, TGT, "--bytes", "32MiB"])
    assert text.exit_code == 0, text.output
    lines = text.output.splitlines()
    assert lines[0].startswith(f"{SRC} -> {TGT} over paramiko: ")
    assert lines[1].startswith(f"data path: relay (no host-to-host link: {SRC} could not")
    assert lines[2].startswith(f"fix: Let {SRC} reach")


def test_cli_probe_auto_measures_tls(lab_cli: FakeLab, links: Links) -> None:
    done = CliRunner().invoke(cli, ["probe", SRC, TGT, "--bytes", "32MiB"])
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        f"{SRC} -> {TGT} over tls: 34 MB in 0.25 s = 134 MB/s",
        "data path: tls (auto: TLS link proved (1.0 MB in 0.01 s))",
    ]


def test_cli_probe_tls_that_does_not_work_fails_with_the_fix(
    lab_cli: FakeLab, links: Links
) -> None:
    links.tools(python3=(SRC,))
    for spelling in (["--tls"], ["--data-path", "tls"]):
        done = CliRunner().invoke(cli, ["probe", SRC, TGT, *spelling])
        assert done.exit_code == ExitCode.PREFLIGHT, done.output
        assert f"{SRC} cannot stream to {TGT} over TLS: {TGT} has no program" in done.stderr
        assert f"Install python3 or socat on {TGT}" in done.stderr
    assert lab_cli.relays == []


@pytest.mark.parametrize(
    "arguments",
    [
        ["--tls", "--data-path", "relay"],
        ["--direct", "--data-path", "tls"],
        ["--data-path", "relay", "--tls-port", "4433"],
        ["--data-path", "ssh", "--tls-address", "10.0.0.6"],
    ],
)
def test_cli_probe_refuses_options_that_contradict(lab_cli: FakeLab, arguments: list[str]) -> None:
    done = CliRunner().invoke(cli, ["probe", SRC, TGT, *arguments])
    assert done.exit_code == ExitCode.USAGE, done.output
    assert lab_cli.connects == []


def reports(*unreachable: str, failing: str | None = None) -> Callable[..., list[HostReport]]:
    """doctor's host checks, already made: every host fine unless named."""

    def doctor(hosts: list[str], **_options: Any) -> list[HostReport]:
        made = []
        for name in hosts:
            report = HostReport(name, [Check("ssh", True, "root@" + name)])
            if name in unreachable:
                report = HostReport(name, [Check("ssh", False, "no route")], reachable=False)
            if name == failing:
                report.checks.append(Check("criu", False, "no CRIU", "install it"))
            made.append(report)
        return made

    return doctor


@pytest.fixture
def doctor_lab(lab: FakeLab, links: Links, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    real = cli_fleet_commands.check_links

    def with_lab(*args: Any, connection: ConnectionSettings | None = None, **kwargs: Any) -> Any:
        return real(*args, connection=lab.settings(connection), **kwargs)

    monkeypatch.setattr(cli_fleet_commands, "check_links", with_lab)

    def hosts(*unreachable: str, failing: str | None = None) -> None:
        monkeypatch.setattr(cli_fleet_commands, "doctor", reports(*unreachable, failing=failing))

    return hosts


def test_cli_doctor_links_text(doctor_lab: Callable[..., None], lab: FakeLab, links: Links) -> None:
    doctor_lab()
    links.refuse_from(TGT)
    done = CliRunner().invoke(cli, ["doctor", SRC, TGT, "--links"])
    assert done.exit_code == 0, "a link that does not work is a warning: " + done.output
    lines = done.output.splitlines()
    at = lines.index("links (host to host over TLS; where one does not work, migrations relay):")
    assert (
        lines[at + 1]
        == f"  ok    {SRC} -> {TGT}           python3 -> python3, to {ADDRESSES[TGT]}: 134.2 MB/s"
    )
    assert lines[at + 2].startswith(
        f"  warn  {TGT} -> {SRC}           {TGT} could not stream to {SRC} at "
    )
    assert lines[at + 3].startswith(f"{'':33}fix: Let {TGT} reach {ADDRESSES[SRC]} on the TCP port")
    assert links.removals() == 4


def test_cli_doctor_links_json(doctor_lab: Callable[..., None], lab: FakeLab, links: Links) -> None:
    doctor_lab()
    links.tools(python3=(SRC,))
    done = CliRunner().invoke(cli, ["doctor", SRC, TGT, "--links", "--json"])
    assert done.exit_code == 0, done.output
    document = json.loads(done.output)
    assert document["ok"] is True and document["exit_code"] == 0
    assert document["links_ok"] is False
    assert [(each["source"], each["target"], each["works"]) for each in document["links"]] == [
        (SRC, TGT, False),
        (TGT, SRC, False),
    ]
    first = document["links"][0]
    assert (first["source_tool"], first["target_tool"], first["bytes_per_s"]) == (
        "python3",
        None,
        None,
    )
    assert first["fix"] == f"Install python3 or socat on {TGT} (e.g. apt-get install socat)."
    assert document["links"][1]["why"].startswith(f"{TGT} has no program")


def test_cli_doctor_without_links_checks_none(
    doctor_lab: Callable[..., None], lab: FakeLab
) -> None:
    doctor_lab()
    done = CliRunner().invoke(cli, ["doctor", SRC, TGT, "--json"])
    assert done.exit_code == 0 and "links" not in json.loads(done.output)
    assert lab.connects == []


def test_cli_doctor_links_keep_the_hosts_exit_codes(
    doctor_lab: Callable[..., None], lab: FakeLab, links: Links
) -> None:
    doctor_lab(failing=TGT)
    assert CliRunner().invoke(cli, ["doctor", SRC, TGT, "--links"]).exit_code == ExitCode.PREFLIGHT
    doctor_lab("lab-c")
    done = CliRunner().invoke(cli, ["doctor", SRC, TGT, "lab-c", "--links", "--json"])
    assert done.exit_code == ExitCode.CONNECTION
    document = json.loads(done.output)
    assert len(document["links"]) == 6
    assert [each["works"] for each in document["links"][:2]] == [True, True], document["links"]
    assert "lab-c" not in lab.connects


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([SRC, "--links"], "--links needs at least two hosts"),
        ([SRC, TGT, "--tls-port", "4433"], "--tls-port is for --links"),
    ],
)
def test_cli_doctor_links_usage(
    doctor_lab: Callable[..., None], arguments: list[str], message: str
) -> None:
    doctor_lab()
    done = CliRunner().invoke(cli, ["doctor", *arguments])
    assert done.exit_code == ExitCode.USAGE and message in done.output


def test_check_links_says_when_a_host_went_away_since(lab: FakeLab, links: Links) -> None:
    lab.unreachable.add(TGT)
    found = check_links([SRC, TGT], connection=lab.settings(), rate=None)
    assert [each.why for each in found] == [f"not checked: {TGT}: no route to host"] * 2
    assert not any(each.works for each in found)


def test_cli_doctor_links_table_on_a_terminal(
    doctor_lab: Callable[..., None], links: Links, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_fleet_commands, "_is_terminal", lambda: True)
    doctor_lab()
    links.refuse_from(TGT)
    done = CliRunner(env={"COLUMNS": "200"}).invoke(cli, ["doctor", SRC, TGT, "--links"])
    assert done.exit_code == 0, done.output
    assert "links: host to host over TLS" in done.output
    assert f"{SRC} -> {TGT}" in done.output and "134.2 MB/s" in done.output
    assert "warn" in done.output and "fix: Let lab-b reach" in done.output
