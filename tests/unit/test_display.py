"""What the user watches: plain lines, the rich live view, and the summary line."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from celestial_ssh.events import (
    Event,
    Notice,
    Phase,
    PhaseFailed,
    PhaseFinished,
    PhaseSkipped,
    PhaseStarted,
    TransferProgress,
)
from celestial_ssh.report import MigrationReport, Outcome
from celestial_ssh_cli.display import (
    NullDisplay,
    Output,
    PlainDisplay,
    RichDisplay,
    choose_display,
    choose_output,
    summary_line,
)

STAMP = re.compile(r"^\[ *\d+\.\d\ds\] ")


def plain_lines(events: list[Event], verbose: bool = False) -> list[str]:
    stream = io.StringIO()
    display = PlainDisplay(stream, verbose=verbose)
    with display:
        for event in events:
            display(event)
    lines = stream.getvalue().splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    return [STAMP.sub("", line) for line in lines]


def test_every_phase_has_a_title() -> None:
    titles = [phase.label for phase in Phase]
    assert all(titles) and len(set(titles)) == len(titles)
    assert Phase.ROLLBACK.label == "Roll back to source"


@pytest.mark.parametrize(
    ("event", "line"),
    [
        pytest.param(
            PhaseStarted(Phase.CONNECT, "lab-a -> lab-b"),
            "Connect to both hosts ... lab-a -> lab-b",
            id="started",
        ),
        pytest.param(PhaseStarted(Phase.PREFLIGHT), "Preflight checks ...", id="started-bare"),
        pytest.param(
            PhaseFinished(Phase.PREFLIGHT, 1.234, "web (0123456789ab) running"),
            "Preflight checks: done in 1.23 s (web (0123456789ab) running)",
            id="finished",
        ),
        pytest.param(
            PhaseFinished(Phase.CLEANUP, 0.5), "Clean up: done in 0.50 s", id="finished-bare"
        ),
        pytest.param(
            PhaseSkipped(Phase.STAGE_IMAGE, "nginx:1.25 already on target"),
            "Stage image on target: skipped, nginx:1.25 already on target",
            id="skipped",
        ),
        pytest.param(
            PhaseFailed(Phase.RESTORE, 2.0, "lab-b: podman restore failed"),
            "Restore on target: FAILED after 2.00 s: lab-b: podman restore failed",
            id="failed",
        ),
        pytest.param(
            Notice("warning", "could not remove /var/tmp/x on lab-b"),
            "warning: could not remove /var/tmp/x on lab-b",
            id="notice-warning",
        ),
        pytest.param(
            Notice("info", "removed the copy restored on lab-b"),
            "info: removed the copy restored on lab-b",
            id="notice-info",
        ),
        pytest.param(
            TransferProgress("checkpoint", 12_345_678, None, finished=True),
            "checkpoint: 12.3 MB moved",
            id="transfer-finished",
        ),
    ],
)
def test_plain_display_line(event: Event, line: str) -> None:
    assert plain_lines([event]) == [line]


def test_plain_display_hides_progress_unless_verbose() -> None:
    assert plain_lines([TransferProgress("image", 50, 100)]) == []


def test_plain_display_verbose_progress_in_tens_of_percent() -> None:
    events: list[Event] = [
        TransferProgress("image", done, 1000) for done in (0, 50, 99, 100, 150, 555, 999)
    ]
    events.append(TransferProgress("checkpoint", 10, None))  # no estimate: no percentage
    events.append(TransferProgress("checkpoint", 300, 1000))
    events.append(TransferProgress("image", 1000, 1000, finished=True))
    assert plain_lines(events, verbose=True) == [
        "image: 0%",
        "image: 10%",
        "image: 50%",
        "image: 90%",
        "checkpoint: 30%",
        "image: 0.0 MB moved",
    ]


def test_plain_display_summary() -> None:
    stream = io.StringIO()
    PlainDisplay(stream).summary(MigrationReport(container="web", source="a", target="b"))
    assert STAMP.sub("", stream.getvalue().strip()).startswith("Migrated web from a to b as web")


def a_run() -> list[Event]:
    return [
        PhaseStarted(Phase.CONNECT),
        PhaseFinished(Phase.CONNECT, 0.31, "root@10.0.0.5:22 -> root@10.0.0.6:22"),
        PhaseStarted(Phase.PREFLIGHT),
        PhaseFinished(Phase.PREFLIGHT, 0.8, "web running"),
        PhaseSkipped(Phase.STAGE_IMAGE, "nginx:1.25 already on target"),
        PhaseStarted(Phase.CHECKPOINT, "web on lab-a"),
        PhaseStarted(Phase.TRANSFER, "to lab-b"),
        TransferProgress("checkpoint", 1_000_000, None),
        TransferProgress("checkpoint", 4_000_000, None),
        PhaseFinished(Phase.CHECKPOINT, 1.5, "5.0 MB"),
        TransferProgress("checkpoint", 5_000_000, 5_000_000, finished=True),
        PhaseFinished(Phase.TRANSFER, 1.6, "5.0 MB at 3.1 MB/s"),
        PhaseStarted(Phase.RESTORE, "on lab-b"),
        PhaseFailed(Phase.RESTORE, 2.25, "lab-b: podman restore failed"),
        PhaseStarted(Phase.ROLLBACK, "because: lab-b: podman restore failed"),
        Notice("info", "restored web on lab-a from its checkpoint"),
        Notice("warning", "could not remove /var/tmp/x on lab-b"),
        PhaseFinished(Phase.ROLLBACK, 0.7, "running on lab-a"),
    ]


def rich_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=100), buffer


def test_rich_display_renders_a_whole_run() -> None:
    console, buffer = rich_console()
    with RichDisplay(console) as display:
        for event in a_run():
            display(event)
    output = buffer.getvalue()
    lines = [line.rstrip() for line in output.splitlines()]

    def row(*cells: str) -> bool:
        """A table row holding ``cells`` in order, separated by padding."""
        pattern = " +".join(re.escape(cell) for cell in cells)
        return any(re.fullmatch(pattern, line) for line in lines)

    assert row("✓", "Connect to both hosts", "root@10.0.0.5:22 -> root@10.0.0.6:22", "0.31 s")
    assert row("✓", "Preflight checks", "web running", "0.80 s")
    assert row("-", "Stage image on target", "nginx:1.25 already on target")
    assert row("✓", "Checkpoint on source", "5.0 MB", "1.50 s")
    assert row("✓", "Stream checkpoint to target", "5.0 MB at 3.1 MB/s", "1.60 s")
    assert row("✗", "Restore on target", "lab-b: podman restore failed", "2.25 s")
    assert row("✓", "Roll back to source", "running on lab-a", "0.70 s"), output
    assert "5.0/5.0 MB" in output  # the transfer bar, completed
    assert "info: restored web on lab-a from its checkpoint" in lines
    assert "warning: could not remove /var/tmp/x on lab-b" in lines


def test_rich_display_copes_with_odd_event_sequences() -> None:
    console, buffer = rich_console()
    with RichDisplay(console) as display:
        display(PhaseFinished(Phase.VERIFY, 0.1))  # never started
        display(PhaseFailed(Phase.CLEANUP, 0.2, "boom"))  # never started
        display(PhaseStarted(Phase.RESTORE))  # never finished
        display(TransferProgress("image", 10, 5))  # more than the estimate
        display(TransferProgress("image", 20, None, finished=True))
        display(Notice("debug", "an unknown level"))
    output = buffer.getvalue()
    assert "Verify on target" in output
    assert "boom" in output
    assert "Restore on target" in output
    assert "debug: an unknown level" in output


def test_rich_display_summary() -> None:
    console, buffer = rich_console()
    display = RichDisplay(console)
    display.summary(MigrationReport(container="web", source="lab-a", target="lab-b"))
    assert buffer.getvalue().startswith("Migrated web from lab-a to lab-b as web:")


def test_rich_display_renders_without_live() -> None:
    # __rich__ is what Live draws: render it directly for an exact view of the rows
    console, buffer = rich_console()
    display = RichDisplay(console)
    display._live.refresh = lambda: None  # type: ignore[method-assign]
    display(PhaseStarted(Phase.CONNECT))
    display(PhaseFinished(Phase.CONNECT, 1.0, "a -> b"))
    display(PhaseSkipped(Phase.STAGE_IMAGE, "present"))
    console.print(display)
    lines = [line.rstrip() for line in buffer.getvalue().splitlines()]
    assert len(lines) == 2, lines
    assert re.fullmatch(r"✓ +Connect to both hosts +a -> b +1\.00 s", lines[0])
    assert re.fullmatch(r"- +Stage image on target +present", lines[1])


# -- summary line ----------------------------------------------------------------------------
def test_summary_line() -> None:
    report = MigrationReport(
        container="web",
        source="lab-a",
        target="lab-b",
        outcome=Outcome.MIGRATED,
        target_container="web2",
        downtime_s=0.4567,
        total_s=3.2,
        bytes_transferred=12_345_678,
    )
    assert summary_line(report) == (
        "Migrated web from lab-a to lab-b as web2: "
        "total 3.20 s, downtime 0.46 s, 12.3 MB transferred"
    )


def test_summary_line_without_timings() -> None:
    report = MigrationReport(container="web", source="lab-a", target="lab-b")
    assert summary_line(report) == (
        "Migrated web from lab-a to lab-b as web: total n/a, downtime n/a, 0.0 MB transferred"
    )


# -- choosing a display -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("json_output", "quiet"),
    [(True, False), (False, True), (True, True)],
    ids=["json", "quiet", "both"],
)
def test_json_and_quiet_show_nothing(json_output: bool, quiet: bool) -> None:
    output = choose_output(json_output=json_output, quiet=quiet)
    assert output is (Output.JSON if json_output else Output.QUIET)
    display = choose_display(output, verbose=True)
    assert isinstance(display, NullDisplay)
    with display:
        display(PhaseStarted(Phase.CONNECT))
        display.summary(MigrationReport(container="web", source="a", target="b"))


def test_not_a_terminal_gets_plain_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    output = choose_output(json_output=False, quiet=False)
    assert output is Output.PLAIN
    display = choose_display(output, verbose=True)
    assert isinstance(display, PlainDisplay)
    assert display.verbose is True


def test_a_terminal_gets_the_live_view() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    assert choose_output(json_output=False, quiet=False, console=console) is Output.LIVE
    assert isinstance(choose_display(Output.LIVE, verbose=False), RichDisplay)


def test_the_flags_win_over_a_terminal() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    chosen = [
        choose_output(json_output=json_output, quiet=quiet, json_lines=json_lines, console=console)
        for json_output, quiet, json_lines in [
            (True, True, True),
            (True, True, False),
            (False, True, False),
        ]
    ]
    assert chosen == [Output.JSON_LINES, Output.JSON, Output.QUIET]
