"""The migration engine as a package, its files named after the phases.

Module map::

    engine.py        Migration: runs the phases in order; on failure, rollback or undo
    state.py         the state machine (State) and where a migration stands (Progress)
    options.py       MigrationOptions and check_options
    context.py       what the phases share: options, report, sessions, events, cancel
    sessions.py      the two hosts' sessions (through connection.ConnectionSettings), reconnects
    preflight.py     host facts and checks, the lock, the target being free
    staging.py       the image onto the target
    prepare.py       work directories, the data path's choice, --compress auto, pre-copy
    transfer.py      the Transfer protocol: one class per data path
    relay.py         ... relayed through this machine
    host_to_host.py  ... what the two host-to-host paths share (landing watch)
    ssh_direct.py    ... --direct: the source logs in to the target over ssh
    tls.py           ... --tls: the source connects to the target over TLS
    freeze.py        the checkpoint and the stream, until the archive has landed
    restore.py       the restore on the target, and its verification
    cleanup.py       the source's stopped copy and the work directories
    rollback.py      undo before the freeze; after it, roll back or complete
"""

from .context import MigrationCancelled
from .engine import Migration, migrate
from .options import MigrationOptions, check_options
from .preflight import HostFacts
from .state import State

__all__ = [
    "HostFacts",
    "Migration",
    "MigrationCancelled",
    "MigrationOptions",
    "State",
    "check_options",
    "migrate",
]
