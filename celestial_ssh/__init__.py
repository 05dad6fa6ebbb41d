"""celestial-ssh: live-migrate running Podman containers between hosts with CRIU over SSH.

The library API::

    from celestial_ssh import migrate, MigrationOptions

    report = migrate("lab-a", "lab-b", "web", MigrationOptions(ssh_config=".lab/ssh_config"),
                     on_event=print)
    print(report.downtime_s)

Nothing here prints or imports a UI toolkit: progress arrives as events (``celestial_ssh.events``).
"""

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
from .migration import Migration, MigrationOptions, migrate
from .report import MigrationReport, Outcome

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailed",
    "CelestialError",
    "ConnectionFailed",
    "Event",
    "EventSink",
    "HostConfigError",
    "HostKeyRejected",
    "InvalidInput",
    "Migration",
    "MigrationFailed",
    "MigrationInterrupted",
    "MigrationOptions",
    "MigrationReport",
    "Outcome",
    "Phase",
    "PreflightFailed",
    "RemoteCommandFailed",
    "__version__",
    "migrate",
]
