"""The engine's state machine: what is true after each step, and what rollback does from there.

::

    CONNECTED      both SSH sessions are up              -> nothing to undo
    CHECKED        preflight passed on both hosts        -> nothing to undo
    STAGED         the image is on the target            -> remove the image we loaded
    PREPARED       private work directories exist        -> remove them
    ---------------------------------------------------- freeze -------------------------
    FROZEN         `podman checkpoint` has started       -> source: wait until the checkpoint
                                                            script has ended, then restore
                                                            locally from the checkpoint
                                                            podman keeps in its storage (or
                                                            nothing, if the dump failed and
                                                            CRIU resumed it)
    LANDED         the archive is on the target,         -> same
                   size and SHA-256 match
    RESTORING      `podman restore --import` was sent    -> wait until that restore has ended;
                                                            if it got through (our copy runs),
                                                            complete the migration; else
                                                            remove our copy there if it
                                                            exists, then restore the source;
                                                            if the target cannot be reached,
                                                            restore nothing (NEEDS_RECOVERY)
    RUNNING        the target runs it, verified          -> point of no return: never roll
                                                            back from here
    CLEANED        source copy and archives removed      -> warnings only

The promise: after ``migrate`` returns or raises, the container runs on exactly one host.
Rollback never starts a source copy while a target copy might be running. A cancel request
(:meth:`~celestial_ssh.migration.Migration.request_cancel`) is honoured up to LANDED; a
restore once sent is finished.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..podman_json import ContainerInfo


class State(enum.Enum):
    NEW = "new"
    CONNECTED = "connected"
    CHECKED = "checked"
    STAGED = "staged"
    PREPARED = "prepared"
    FROZEN = "frozen"
    LANDED = "landed"
    RESTORING = "restoring"
    RUNNING = "running"
    CLEANED = "cleaned"


# the states a failure rolls back from (the source's copy is frozen or checkpointed)
FROZEN_STATES = frozenset({State.FROZEN, State.LANDED, State.RESTORING})


@dataclass
class Progress:
    """Where the migration stands; rollback reads it."""

    state: State = State.NEW
    source_info: ContainerInfo | None = None
    target_ids_before: set[str] = field(default_factory=set)
    staged_image_id: str | None = None
    source_workdir: str | None = None
    target_workdir: str | None = None
    freeze_started: float | None = None
    restore_ended: bool = False  # a lost restore was waited for: no need to wait twice

    def info(self) -> ContainerInfo:
        """The source container preflight found (every step after preflight has it)."""
        assert self.source_info is not None
        return self.source_info

    def workdirs(self) -> tuple[str, str]:
        """The source's and the target's work directories (every step after PREPARED)."""
        assert self.source_workdir and self.target_workdir
        return self.source_workdir, self.target_workdir
