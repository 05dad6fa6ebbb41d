"""celestial-ssh: live-migrate running Podman containers between hosts with CRIU over SSH.

The library API::

    from celestial_ssh import migrate, MigrationOptions

    report = migrate("lab-a", "lab-b", "web", MigrationOptions(ssh_config=".lab/ssh_config"),
                     on_event=print)
    print(report.downtime_s)

How hosts are reached (ssh_config, an inventory's resolver, ``accept_new_host_keys``, and
for tests a fake connector) is one :class:`ConnectionSettings`, taken by every entry point
as ``connection=`` (``MigrationOptions(connection=...)`` for a migration).

Also here: ``run_batch``/``load_plan``/``evacuate`` (fleet moves), ``doctor`` and
``list_containers`` (host readiness), ``recover`` (after a killed coordinator),
``load_inventory``, and ``append_report`` (research CSV/JSON rows).

Nothing here prints or imports a UI toolkit: progress arrives as events (``celestial_ssh.events``).
"""

from .batch import BatchReport, EntryStatus, Plan, evacuate, load_plan, run_batch
from .connection import ConnectionSettings
from .errors import (
    AuthenticationFailed,
    CelestialError,
    ConnectionFailed,
    HostConfigError,
    HostKeyRejected,
    InvalidInput,
    MigrationFailed,
    MigrationInterrupted,
    PreflightFailed,
    RemoteCommandFailed,
)
from .events import Event, EventSink, Phase
from .inventory import Inventory, load_inventory
from .listing import ContainerRow, list_containers
from .migration import Migration, MigrationOptions, migrate
from .readiness import Check, HostReport, doctor
from .recovery import RecoveryOutcome, RecoveryReport, RunningTwice, recover
from .report import MigrationReport, Outcome
from .research import append_report, report_row

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "BatchReport",
    "CelestialError",
    "Check",
    "ConnectionFailed",
    "ConnectionSettings",
    "ContainerRow",
    "EntryStatus",
    "Event",
    "EventSink",
    "HostConfigError",
    "HostKeyRejected",
    "HostReport",
    "InvalidInput",
    "Inventory",
    "Migration",
    "MigrationFailed",
    "MigrationInterrupted",
    "MigrationOptions",
    "MigrationReport",
    "Outcome",
    "Phase",
    "Plan",
    "PreflightFailed",
    "RecoveryOutcome",
    "RecoveryReport",
    "RemoteCommandFailed",
    "RunningTwice",
    "__version__",
    "append_report",
    "doctor",
    "evacuate",
    "list_containers",
    "load_inventory",
    "load_plan",
    "migrate",
    "recover",
    "report_row",
    "run_batch",
]
