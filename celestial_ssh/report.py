"""The result of a migration: what moved, how long each phase took, and where it runs now."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any


class Outcome(enum.StrEnum):
    """Where the container runs after the migration, which is the one thing users must know."""

    MIGRATED = "migrated"  # running on the target only
    NOT_STARTED = "not_started"  # failed before the freeze: untouched, running on the source
    ROLLED_BACK = "rolled_back"  # failed after the freeze: restored on the source
    NEEDS_RECOVERY = "needs_recovery"  # the tool could not make sure; see the message


# timings the report holds besides its phases: steps inside a phase, by name
# (source_tidy_up: podman on the source after its archive was complete, which overlaps the
# restore)
STEP_TIMINGS = ("pre_copy", "direct_check", "tls_setup", "compression_choice", "source_tidy_up")


@dataclass
class MigrationReport:
    container: str
    source: str
    target: str
    outcome: Outcome = Outcome.NOT_STARTED
    container_id: str | None = None
    target_container: str | None = None
    image: str | None = None
    image_staged: bool = False
    compression: str = "none"
    # why --compress auto chose what it chose (None when the user chose)
    compression_choice: str | None = None
    # the data plane that carried the archive: openssh | paramiko | direct (...)
    transport: str | None = None
    # the archive's path: tls | ssh (host to host) | relay (through the coordinator), and
    # why that one (asked for, proved by auto, or auto's fallback and its cause)
    data_path: str | None = None
    data_path_reason: str | None = None
    # what became of --pre-copy (None when it was not asked for)
    precopy: str | None = None
    # where the archive landed on the target: tmpfs (it fit in memory) or disk
    landing: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    downtime_s: float | None = None
    total_s: float | None = None
    bytes_transferred: int = 0
    archive_bytes: int | None = None
    archive_sha256: str | None = None
    checkpoint_stats: dict[str, Any] = field(default_factory=dict)
    restore_stats: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome is Outcome.MIGRATED

    @property
    def status(self) -> str:
        return "succeeded" if self.succeeded else "failed"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready document; its keys are the ones ``migrate --json`` prints."""
        document = asdict(self)
        document["outcome"] = self.outcome.value
        document["status"] = self.status
        document["podman_stats"] = {
            "checkpoint": document.pop("checkpoint_stats"),
            "restore": document.pop("restore_stats"),
        }
        return document
