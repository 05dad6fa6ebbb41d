"""The data path (``MigrationOptions.data_path``): auto proves a TLS link from the source to
the target before the freeze and relays through this machine when it cannot; tls insists on
the link; ssh has the source log in to the target; relay always passes this machine.

Driven against the fake hosts (``tests/unit/fakes/``); the host-to-host paths themselves
are in ``test_host_to_host.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from click.testing import CliRunner

from celestial_ssh import commands
from celestial_ssh.batch import parse_plan
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh.errors import ConnectionFailed, InvalidInput
from celestial_ssh.events import Phase
from celestial_ssh.migration import MigrationOptions
from celestial_ssh.migration.options import check_options
from celestial_ssh.report import Outcome
from celestial_ssh.settings import parse_setting
from celestial_ssh_cli.main import cli
from tests.unit.fakes.engine import fail, lab_restorer, run
from tests.unit.fakes.host_to_host import (
    LINK_SCRIPT,
    LISTENING,
    PROOF,
    PYTHON_LISTENER,
    SOCAT_LISTENER,
    TLS_TOOL,
    block_the_tls_port,
    proving_tls_lab,
    tls_ready,
)
from tests.unit.fakes.lab import (
    ARCHIVE_BYTES,
    ARCHIVE_SHA,
    SRC,
    TGT,
    WORKDIRS,
    DeferredFakeProcess,
    FakeLab,
    result,
)
from tests.unit.test_http_shim import AUTH, FakeMigrate, run_client

# every command line that belongs to the TLS link, from the question for each end's program
# to the source's end; none of them runs where the archive is relayed without trying it
TLS_COMMANDS = (
    TLS_TOOL,
    "SSH_CONNECTION",
    "receive-private-files",
    PYTHON_LISTENER,
    SOCAT_LISTENER,
    LINK_SCRIPT,
)


def tls_commands(lab: FakeLab) -> list[tuple[str, str]]:
    return [(host, line) for host, line in lab.log if any(n in line for n in TLS_COMMANDS)]


def auto(**fields: Any) -> MigrationOptions:
    """Options with the default data path (and no compression, as the host-to-host fakes
    expect); checks the test really leaves the choice to auto."""
    options = MigrationOptions(compression="none", **fields)
    assert options.chosen_data_path() == "auto"
    return options


def relayed_once(lab: FakeLab) -> bool:
    """The checkpoint archive passed this machine, and nothing else did."""
    return len(lab.relays) == 1 and "container checkpoint" in lab.relays[0][0]


# -- auto: the link proved, the archive over TLS ---------------------------------------------
@pytest.mark.parametrize(
    ("source_tool", "target_tool"),
    [("python3", "python3"), ("socat", "socat"), ("socat", "python3")],
)
def test_auto_sends_the_archive_over_a_proved_tls_link(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, source_tool: str, target_tool: str
) -> None:
    exporters = proving_tls_lab(lab, monkeypatch, source_tool, target_tool)
    engine = run(lab, auto())
    report = engine.report
    assert report.outcome is Outcome.MIGRATED
    assert report.data_path == "tls"
    assert report.data_path_reason is not None
    assert report.data_path_reason.startswith("auto: TLS link proved (")
    tools = " and ".join(sorted({source_tool, target_tool}))
    assert report.transport == f"direct TLS ({tools}, to 10.0.0.2)"
    assert lab.notices() == [f"the archive goes host to host: {report.data_path_reason}"]
    assert report.warnings == []
    # the archive went over the link: nothing passed this machine, the source's script
    # streamed it into its end of the link, and the target's listener landed it
    assert lab.relays == []
    [exporter] = exporters
    assert LINK_SCRIPT + "checkpoint " in exporter.command
    listener = SOCAT_LISTENER if target_tool == "socat" else PYTHON_LISTENER
    listeners = [line for line in lab.commands_on(TGT) if listener in line]
    assert len(listeners) == 2, "one for the proof, one for the archive"
    assert "/dev/null" in listeners[0] and f"{WORKDIRS[TGT]}/checkpoint.tar" in listeners[1]
    assert lab_restorer(lab).written == [commands.restore_go_line(ARCHIVE_BYTES, ARCHIVE_SHA)]
    # the proof ran, and was done with, before the source's checkpoint script started
    assert lab.position(SRC, PROOF) < lab.position(SRC, LINK_SCRIPT + "checkpoint ")
    [proof] = [p for p in lab.processes if PROOF in p.command]
    assert proof.killed
    assert lab.position(TGT, listener) < lab.position(SRC, "container checkpoint")
    assert "tls_setup" in report.timings


# -- auto: no link, relayed with a warning -----------------------------------------------------
@pytest.mark.parametrize("host", [SRC, TGT])
def test_auto_relays_when_a_host_has_no_tls_program(lab: FakeLab, host: str) -> None:
    tools = {SRC: "python3", TGT: "python3", host: ""}  # "": tls_tool prints nothing
    tls_ready(lab, tools[SRC], tools[TGT])
    engine = run(lab, auto())
    report = engine.report
    assert report.outcome is Outcome.MIGRATED
    assert relayed_once(lab)
    assert report.data_path == "relay"
    assert report.data_path_reason is not None
    assert report.data_path_reason.startswith("no host-to-host link: ")
    [warning] = report.warnings
    assert f"{host}: no program for the TLS link (socat or python3)" in warning
    assert warning.startswith("lab-a cannot stream to lab-b over TLS (")
    assert warning.endswith("); the archive is relayed through this machine")
    assert not any("host to host" in notice for notice in lab.notices())
    # no end of the link was started: the question for the programs decided it
    ends = (PYTHON_LISTENER, SOCAT_LISTENER, LINK_SCRIPT)
    assert not any(end in line for end in ends for _, line in lab.log)
    decided = max(lab.position(each, TLS_TOOL) for each in (SRC, TGT))
    assert decided < lab.position(SRC, "container checkpoint")


def test_auto_relays_when_the_proof_fails(lab: FakeLab, monkeypatch: pytest.MonkeyPatch) -> None:
    tls_ready(lab)
    block_the_tls_port(lab, monkeypatch, PROOF)
    engine = run(lab, auto())
    report = engine.report
    assert report.outcome is Outcome.MIGRATED
    assert relayed_once(lab)
    assert report.data_path == "relay"
    assert report.data_path_reason is not None
    assert report.data_path_reason.startswith("no host-to-host link: ")
    [warning] = report.warnings
    assert warning.startswith("lab-a cannot stream to lab-b over TLS (lab-a: ")
    assert "cannot connect to 10.0.0.2 port 4433: timed out" in warning
    assert "tls_setup" in report.timings
    # the proof's ends are gone, and the freeze came after the proof
    [proof] = [p for p in lab.processes if PROOF in p.command]
    [listener] = [p for p in lab.processes if PYTHON_LISTENER in p.command]
    assert proof.killed and listener.killed
    assert lab.position(SRC, PROOF) < lab.position(SRC, "container checkpoint")
    assert not any(LINK_SCRIPT + "checkpoint " in line for _, line in lab.log)


def test_auto_relays_when_the_proofs_listener_fails(lab: FakeLab) -> None:
    # the source's end said it sent the proof, but the target's end reported a failure
    tls_ready(lab)
    refused = "tls-end: the peer's certificate is not the one expected"
    lab.answer(TGT, PYTHON_LISTENER, result(LISTENING.stdout, status=1, stderr=refused))
    report = run(lab, auto()).report
    assert report.outcome is Outcome.MIGRATED
    assert relayed_once(lab)
    assert report.data_path == "relay"
    [warning] = report.warnings
    assert "lab-b: the TLS listener of the probe failed" in warning
    assert refused in warning


def test_auto_with_a_bandwidth_limit_relays_without_asking_for_tls(lab: FakeLab) -> None:
    tls_ready(lab)
    engine = run(lab, auto(bwlimit_bytes_per_s=10e6))
    report = engine.report
    assert report.outcome is Outcome.MIGRATED
    assert relayed_once(lab)
    assert lab.throttles[0] is not None, "the limit applies to the relayed stream"
    assert report.data_path == "relay"
    assert report.data_path_reason is not None and "--bwlimit" in report.data_path_reason
    assert report.warnings == []
    assert tls_commands(lab) == []
    assert "tls_setup" not in report.timings


# -- relay and tls, asked for ------------------------------------------------------------------
def test_relay_asked_for_runs_no_tls_command(lab: FakeLab) -> None:
    tls_ready(lab)
    engine = run(lab, MigrationOptions(data_path="relay"))
    report = engine.report
    assert report.outcome is Outcome.MIGRATED
    assert relayed_once(lab)
    assert (report.data_path, report.data_path_reason) == (
        "relay",
        "asked for (--data-path relay)",
    )
    assert report.warnings == [] and lab.notices() == []
    assert tls_commands(lab) == []


def test_tls_asked_for_runs_no_proof_and_fails_at_connect_before_the_freeze(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_ready(lab)
    block_the_tls_port(lab, monkeypatch, LINK_SCRIPT)
    engine, error = fail(lab, ConnectionFailed, MigrationOptions(data_path="tls"))
    assert engine.report.outcome is Outcome.NOT_STARTED
    # named after the host the source could not reach
    assert error.message.startswith("lab-b: the stream ended before the freeze (")
    assert "cannot connect to 10.0.0.2 port 4433" in error.message
    assert not any(PROOF in line for _, line in lab.log), "no proof for an explicit tls"
    # the source's script waited for go: podman never ran, no restore was connected,
    # nothing passed this machine, and nothing needed rolling back
    assert not any(isinstance(p, DeferredFakeProcess) for p in lab.processes)
    assert lab.relays == []
    assert not any("container restore" in line for _, line in lab.log)
    assert lab.phases()[-2:] == [("failed", Phase.CHECKPOINT), ("failed", Phase.TRANSFER)]
    [listener] = [p for p in lab.processes if PYTHON_LISTENER in p.command]
    assert listener.killed
    assert (engine.report.data_path, engine.report.data_path_reason) == (
        "tls",
        "asked for (--data-path tls)",
    )
    assert engine.report.warnings == []


# -- the options -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            MigrationOptions(data_path="fast"),
            "data path 'fast' is not one of auto, tls, ssh, relay",
            id="unknown",
        ),
        pytest.param(
            MigrationOptions(data_path="relay", tls=True),
            "--tls contradicts --data-path relay",
            id="relay-tls",
        ),
        pytest.param(
            MigrationOptions(data_path="tls", direct=True),
            "--direct contradicts --data-path tls",
            id="tls-direct",
        ),
        pytest.param(
            MigrationOptions(data_path="relay", tls_port=4433),
            "--tls-port has no use with --data-path relay",
            id="relay-tls-port",
        ),
        pytest.param(
            MigrationOptions(data_path="ssh", tls_port=4433),
            "--tls-port has no use with --data-path ssh",
            id="ssh-tls-port",
        ),
        pytest.param(
            MigrationOptions(data_path="relay", tls_address="10.0.0.6"),
            "--tls-address has no use with --data-path relay",
            id="relay-tls-address",
        ),
        pytest.param(
            MigrationOptions(data_path="tls", bwlimit_bytes_per_s=1e6),
            "--bwlimit cannot be combined with --data-path tls",
            id="tls-bwlimit",
        ),
        pytest.param(
            MigrationOptions(data_path="ssh", bwlimit_bytes_per_s=1e6),
            "--bwlimit cannot be combined with --data-path ssh",
            id="ssh-bwlimit",
        ),
        pytest.param(
            MigrationOptions(direct=True, bwlimit_bytes_per_s=1e6),
            "--bwlimit cannot be combined with --direct",
            id="direct-bwlimit",
        ),
    ],
)
def test_options_refused(options: MigrationOptions, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_options(options)
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("options", "chosen"),
    [
        pytest.param(MigrationOptions(), "auto", id="default"),
        pytest.param(MigrationOptions(data_path="ssh", direct=True), "ssh", id="ssh-direct"),
        pytest.param(MigrationOptions(data_path="tls", tls=True), "tls", id="tls-tls"),
        pytest.param(MigrationOptions(tls=True, direct=True), "tls", id="tls-over-direct"),
        pytest.param(MigrationOptions(bwlimit_bytes_per_s=1e6), "auto", id="auto-bwlimit"),
        pytest.param(
            MigrationOptions(data_path="relay", bwlimit_bytes_per_s=1e6), "relay", id="relay-bw"
        ),
        pytest.param(
            MigrationOptions(tls_port=4433, tls_address="10.0.0.6"), "auto", id="auto-tls-ends"
        ),
    ],
)
def test_options_accepted(options: MigrationOptions, chosen: str) -> None:
    check_options(options)
    assert options.chosen_data_path() == chosen


# -- settings, plans, the HTTP shim, the command line ------------------------------------------
@pytest.mark.parametrize("path", ["auto", "tls", "ssh", "relay"])
def test_the_data_path_setting_takes_the_four(path: str) -> None:
    assert parse_setting("data_path", path, at="defaults") == path


@pytest.mark.parametrize("value", ["direct", "TLS", "", None, True])
def test_the_data_path_setting_refuses_anything_else(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_setting("data_path", value, at="migration #1")
    assert caught.value.message == (
        f"migration #1: data_path {value!r} is not one of auto, tls, ssh, relay"
    )


def plan_entry_options(entry: str, base: MigrationOptions) -> MigrationOptions:
    """The options one plan entry (flow-style YAML keys after the container's) runs with
    under the command line's ``base``."""
    text = f"migrations:\n  - {{container: c0, from: lab-a, to: lab-b, {entry}}}\n"
    [planned] = parse_plan(text).entries
    options = planned.options(base)
    check_options(options)
    return options


@pytest.mark.parametrize(
    ("entry", "base", "chosen"),
    [
        # the entry's data path replaces the command line's, however either is spelt
        pytest.param("data_path: relay", MigrationOptions(tls=True), "relay", id="relay-over-tls"),
        pytest.param(
            "data_path: relay", MigrationOptions(direct=True), "relay", id="relay-over-direct"
        ),
        pytest.param("data_path: ssh", MigrationOptions(data_path="tls"), "ssh", id="ssh-over-tls"),
        pytest.param("tls: true", MigrationOptions(data_path="relay"), "tls", id="tls-over-relay"),
        pytest.param(
            "direct: true", MigrationOptions(data_path="relay"), "ssh", id="direct-over-relay"
        ),
        pytest.param("direct: true", MigrationOptions(tls=True), "ssh", id="direct-over-tls"),
        # an entry that names no data path keeps the command line's
        pytest.param("keep_source: true", MigrationOptions(tls=True), "tls", id="kept-tls"),
        pytest.param(
            "keep_source: true", MigrationOptions(data_path="relay"), "relay", id="kept-relay"
        ),
        # an entry that turns the command line's flag off leaves auto
        pytest.param("tls: false", MigrationOptions(tls=True), "auto", id="tls-off"),
    ],
)
def test_a_plan_entry_data_path_wins_over_the_command_lines(
    entry: str, base: MigrationOptions, chosen: str
) -> None:
    assert plan_entry_options(entry, base).chosen_data_path() == chosen


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        pytest.param({"data_path": "ssh"}, "data_path 'ssh'", id="data-path-ssh"),
        pytest.param({"direct": True}, "'direct'", id="direct"),
    ],
)
def test_the_shim_refuses_the_ssh_data_path(settings: dict[str, Any], said: str) -> None:
    fake = FakeMigrate()
    body = {"source": "lab-a", "target": "lab-b", "container": "web", **settings}

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration", json=body, headers=AUTH)
        return response.status, await response.json()

    status, document = run_client("podman", scenario, migrate=fake)
    assert status == 400
    assert document["status"] == "failed"
    assert said in document["error"]
    assert "is not taken over HTTP" in document["error"]
    assert "data_path 'auto'" in document["error"], "it says what to use instead"
    assert fake.calls == []


@pytest.mark.parametrize("path", ["auto", "tls", "relay"])
def test_the_shim_takes_the_other_data_paths(path: str) -> None:
    fake = FakeMigrate()
    body = {"source": "lab-a", "target": "lab-b", "container": "web", "data_path": path}

    async def scenario(client: TestClient[Any, Any]) -> Any:
        response = await client.post("/start_migration", json=body, headers=AUTH)
        return response.status

    assert run_client("podman", scenario, migrate=fake) == 200
    [(_, _, _, options)] = fake.calls
    assert options.chosen_data_path() == path


def test_migrate_data_path_relay_reaches_the_migration(
    lab: FakeLab, cli_connection: Callable[[ConnectionSettings], None]
) -> None:
    tls_ready(lab)  # a TLS link would be there: the command line's word is what keeps it out
    cli_connection(lab.settings())
    migrated = CliRunner().invoke(
        cli, ["migrate", SRC, TGT, "web", "--data-path", "relay", "--compress", "none", "--json"]
    )
    assert migrated.exit_code == 0, migrated.output
    report = json.loads(migrated.stdout)
    assert (report["data_path"], report["data_path_reason"]) == (
        "relay",
        "asked for (--data-path relay)",
    )
    assert relayed_once(lab)
    assert tls_commands(lab) == []


def test_migrate_help_lists_the_data_path() -> None:
    shown = CliRunner().invoke(cli, ["migrate", "--help"])
    assert shown.exit_code == 0
    assert "--data-path [auto|tls|ssh|relay]" in shown.output
