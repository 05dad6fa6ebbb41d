"""Research reports: one flat row per migration, appended to CSV or JSON."""

from __future__ import annotations

import csv
import datetime
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from celestial_ssh.report import STEP_TIMINGS, MigrationReport, Outcome
from celestial_ssh.research import COLUMNS, STEP_COLUMNS, append_report, report_row
from celestial_ssh_cli import main as cli_main


def finished_report(container: str = "web") -> MigrationReport:
    return MigrationReport(
        container=container,
        source="lab-a",
        target="lab-b",
        outcome=Outcome.MIGRATED,
        timings={"connect": 0.1, "checkpoint": 2.5, "restore": 1.25},
        downtime_s=3.9,
        total_s=6.0,
        bytes_transferred=268_000_000,
        archive_bytes=267_000_000,
        checkpoint_stats={"runtime_checkpoint_duration": 452569, "frozen_time": 283032},
        restore_stats={"podman_restore_duration": 1191631, "pages_restored": 65554},
    )


def test_report_row_has_every_column_and_the_figures() -> None:
    moment = datetime.datetime(2026, 11, 26, 12, 0, tzinfo=datetime.UTC)
    row = report_row(finished_report(), finished_at=moment)
    assert list(row) == COLUMNS
    assert row["finished_at"] == "2026-11-26T12:00:00+00:00"
    assert (row["status"], row["outcome"]) == ("succeeded", "migrated")
    assert (row["checkpoint_s"], row["restore_s"], row["stage_image_s"]) == (2.5, 1.25, None)
    assert row["runtime_checkpoint_duration"] == 452569
    assert row["frozen_time"] == 283032
    assert row["pages_restored"] == 65554
    assert row["memdump_time"] is None


def test_csv_gets_one_header_and_a_row_per_migration(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    append_report(path, finished_report("one"))
    append_report(path, finished_report("two"))
    rows = list(csv.DictReader(path.open()))
    assert [row["container"] for row in rows] == ["one", "two"]
    assert path.read_text().count("finished_at") == 1
    assert rows[0]["downtime_s"] == "3.9"


def test_json_holds_a_list_of_rows(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"
    append_report(path, finished_report("one"))
    append_report(path, finished_report("two"))
    rows = json.loads(path.read_text())
    assert [row["container"] for row in rows] == ["one", "two"]
    assert not (tmp_path / "runs.json.tmp").exists()


@pytest.mark.parametrize("name", ["runs.txt", "runs"])
def test_other_suffixes_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.json"):
        append_report(tmp_path / name, finished_report())


def test_a_json_file_that_is_not_a_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.json"
    path.write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match="JSON list"):
        append_report(path, finished_report())


def test_cli_rejects_a_report_file_with_another_suffix() -> None:
    result = CliRunner().invoke(
        cli_main.cli, ["migrate", "--report", "runs.txt", "lab-a", "lab-b", "web"]
    )
    assert result.exit_code == 2
    assert "must end in .csv or .json" in result.output


def test_cli_appends_the_partial_report_of_a_failed_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celestial_ssh.errors import PreflightFailed

    class FailingMigration:
        def __init__(self, *args: object, **kwargs: object) -> None:
            self.cancel_requested = False

        def request_cancel(self) -> None:
            self.cancel_requested = True

        def run(self) -> MigrationReport:
            error = PreflightFailed("lab-a: no container 'web'")
            report = finished_report()
            report.outcome = Outcome.NOT_STARTED
            report.error = error.message
            error.report = report
            raise error

    monkeypatch.setattr(cli_main, "Migration", FailingMigration)
    path = tmp_path / "runs.csv"
    result = CliRunner().invoke(
        cli_main.cli, ["migrate", "-q", "--report", str(path), "lab-a", "lab-b", "web"]
    )
    assert result.exit_code == 4
    (row,) = list(csv.DictReader(path.open()))
    assert (row["status"], row["outcome"]) == ("failed", "not_started")
    assert row["error"] == "lab-a: no container 'web'"


def test_migrate_container_is_the_migrate_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from celestial_ssh_cli import legacy

    monkeypatch.setattr("sys.argv", ["migrate-container", "--help"])
    with pytest.raises(SystemExit) as exit_info:
        legacy.main()
    assert exit_info.value.code == 0


def report_with_steps() -> MigrationReport:
    report = finished_report()
    report.timings.update(tls_setup=0.31, compression_choice=0.92, direct_check=0.8)
    report.transport = "direct TLS (socat, to 10.0.0.12)"
    report.landing = "tmpfs"
    return report


def test_every_step_timing_has_a_column() -> None:
    row = report_row(report_with_steps())
    assert list(row) == COLUMNS
    assert [f"{step}_s" for step in STEP_TIMINGS] == STEP_COLUMNS
    assert (row["tls_setup_s"], row["compression_choice_s"], row["pre_copy_s"]) == (
        0.31,
        0.92,
        None,
    )
    assert (row["transport"], row["landing"]) == ("direct TLS (socat, to 10.0.0.12)", "tmpfs")


def test_a_csv_row_with_step_timings_is_written(tmp_path: Path) -> None:
    # `migrate --report x.csv` with --compress auto (the default) or --tls: these timings
    # once had no column, and the CSV writer refused the whole row
    path = tmp_path / "runs.csv"
    assert append_report(path, report_with_steps()) == []
    (row,) = list(csv.DictReader(path.open()))
    assert (row["tls_setup_s"], row["landing"]) == ("0.31", "tmpfs")


def test_a_csv_file_of_an_older_version_keeps_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    older = [name for name in COLUMNS if name not in ("transport", "landing", *STEP_COLUMNS)]
    path.write_text(",".join(older) + "\r\n")
    left_out = append_report(path, report_with_steps())
    assert left_out == [
        "transport",
        "landing",
        "direct_check_s",
        "tls_setup_s",
        "compression_choice_s",
    ]
    rows = list(csv.reader(path.open()))
    assert rows[0] == older
    assert len(rows[1]) == len(older)
    assert dict(zip(older, rows[1], strict=True))["downtime_s"] == "3.9"


def succeeding_migration(report: MigrationReport) -> type:
    class SucceedingMigration:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def run(self) -> MigrationReport:
            return report

    return SucceedingMigration


def test_cli_warns_about_columns_an_older_file_cannot_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_main, "Migration", succeeding_migration(report_with_steps()))
    path = tmp_path / "runs.csv"
    path.write_text(",".join(name for name in COLUMNS if name != "landing") + "\r\n")
    result = CliRunner().invoke(
        cli_main.cli, ["migrate", "-q", "--report", str(path), "lab-a", "lab-b", "web"]
    )
    assert result.exit_code == 0, result.output
    assert f"warning: {path} has the columns of an older version" in result.stderr
    assert "left out: landing (a new file gets every column)" in result.stderr


def test_a_report_file_that_cannot_be_written_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_main, "Migration", succeeding_migration(finished_report()))
    path = tmp_path / "no-such-directory" / "runs.csv"
    result = CliRunner().invoke(
        cli_main.cli, ["migrate", "--json", "--report", str(path), "lab-a", "lab-b", "web"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcome"] == "migrated"
    assert f"warning: could not append to {path}" in result.stderr


def test_the_engine_times_only_steps_reports_have_columns_for() -> None:
    from celestial_ssh.migration import MigrationOptions
    from celestial_ssh.migration.context import MigrationContext

    engine = MigrationContext("lab-a", "lab-b", "web", MigrationOptions(), print)
    engine.time_step("tls_setup", 0.0)
    assert "tls_setup" in engine.report.timings
    with pytest.raises(ValueError, match="not one of the report's step timings"):
        engine.time_step("coffee_break", 0.0)
