"""One migration per container at a time: a lock on the source host, held by a channel.

The lock is ``flock`` on a file in the host's TMPDIR, held by a command that lives as long
as its SSH channel. If the coordinator dies, sshd closes the channel and the lock goes with
it: there are no stale locks to clean up.
"""

from __future__ import annotations

from collections.abc import Callable

from . import commands
from .errors import ConnectionFailed, LockHeld
from .ssh import RemoteProcess, SSHSession


def take_migration_lock(
    session: SSHSession,
    container: str,
    container_id: str,
    *,
    timeout_s: float,
    warn: Callable[[str], None],
) -> RemoteProcess | None:
    """Hold the lock for ``container_id``; ``kill()`` the result to release it.

    Returns None (after a warning) on a host without flock(1).
    """
    holder = session.start(commands.hold_migration_lock(container_id))
    holder.channel.settimeout(timeout_s)
    try:
        answer = holder.channel.makefile("rb").readline()
    except (OSError, EOFError) as error:
        holder.kill()
        raise ConnectionFailed(
            f"{session.host.name}: could not take the migration lock: {error}",
            host=session.host.name,
        ) from error
    if answer.strip() == b"locked":
        return holder
    result = holder.wait(timeout_s)
    if result.exit_status == commands.LOCK_HELD_EXIT:
        raise LockHeld(
            f"{session.host.name}: another migration of {container!r} "
            f"({container_id[:12]}) is running",
            host=session.host.name,
            hint="Wait for it to finish. If no celestial-ssh is running any more, the lock "
            "is already gone (it lives only as long as that SSH session).",
        )
    if result.exit_status == 127:
        warn(f"{session.host.name} has no flock(1): two coordinators could race on {container!r}")
        return None
    raise result.failure(f"{session.host.name}: taking the migration lock failed")
