"""Builders for the podman, CRIU and file commands celestial-ssh runs on a host.

Each function returns an argument list; the few that need a shell run a script from
``celestial_ssh/scripts/`` or a constant one-line script (:mod:`celestial_ssh.host_scripts`),
with every value a positional parameter, so no value ever becomes shell text.
Nothing here runs anything. The checkpoint stream and its companions are in
:mod:`celestial_ssh.stream_commands`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidInput
from .host_scripts import run_line, run_script
from .shell import validate_container_name, validate_remote_path

COMPRESSIONS = ("none", "zstd", "gzip")
# what a user may ask for: podman's compressions, or "auto" (decided per migration)
COMPRESSION_SETTINGS = (*COMPRESSIONS, "auto")


def validate_compression_setting(value: object, *, at: str = "") -> str:
    """One of :data:`COMPRESSION_SETTINGS`; ``at`` says where the value came from."""
    if value not in COMPRESSION_SETTINGS:
        raise InvalidInput(
            f"{at}{': ' if at else ''}compression {value!r} is not one of "
            f"{', '.join(COMPRESSION_SETTINGS)}"
        )
    return str(value)


# the files of a work directory (the scripts in celestial_ssh/scripts/ spell them too)
WORKDIR_PREFIX = "celestial-ssh."
ARCHIVE_NAME = "checkpoint.tar"
FIFO_NAME = "checkpoint.fifo"
CHECKPOINT_STATS_NAME = "checkpoint-stats.json"
SUM_NAME = "checkpoint.sha256"
# written by the checkpoint script when it starts and when podman has exited, so a rollback
# after a lost connection knows whether a checkpoint is (still) running on the source
CHECKPOINT_STARTED_NAME = "checkpoint.started"
CHECKPOINT_STATUS_NAME = "checkpoint.status"
# the PID of the restore on the target (the script execs podman, so the PID is podman's)
RESTORE_PID_NAME = "restore.pid"


@dataclass(frozen=True)
class CheckpointOptions:
    compression: str = "none"
    tcp_established: bool = False
    file_locks: bool = False
    # the final dump of a pre-copy: only the pages dirtied since the pre-checkpoint
    with_previous: bool = False

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")


# -- host facts ------------------------------------------------------------------------
def whoami() -> list[str]:
    return ["id", "-u"]


def sudo_works() -> list[str]:
    return ["sudo", "-n", "true"]


def machine_arch() -> list[str]:
    return ["uname", "-m"]


def podman_info() -> list[str]:
    return ["podman", "info", "--format", "json"]


def criu_version() -> list[str]:
    return ["criu", "--version"]


def criu_check() -> list[str]:
    return ["criu", "check"]


# -- containers and images --------------------------------------------------------------
def container_inspect(container: str) -> list[str]:
    validate_container_name(container)
    return ["podman", "container", "inspect", "--format", "json", "--", container]


def container_list_all() -> list[str]:
    return ["podman", "container", "ls", "--all", "--no-trunc", "--format", "json"]


def image_inspect(image: str) -> list[str]:
    return ["podman", "image", "inspect", "--format", "json", "--", image]


def image_save(image: str) -> list[str]:
    """Write the image to stdout; saving by name keeps both its name and its ID on load."""
    return ["podman", "image", "save", "--", image]


def image_load() -> list[str]:
    return ["podman", "image", "load", "--quiet"]


def image_remove(image_id: str) -> list[str]:
    return ["podman", "image", "rm", "--", image_id]


def container_remove(container_id: str, *, force: bool = False) -> list[str]:
    validate_container_name(container_id)
    argv = ["podman", "container", "rm"]
    if force:
        argv += ["--force", "--time", "0"]
    return [*argv, "--", container_id]


def restore_local(container_id: str) -> list[str]:
    """Restore a container from the checkpoint podman kept in its own storage (rollback)."""
    validate_container_name(container_id)
    return ["podman", "container", "restore", "--print-stats", "--", container_id]


# -- work directories ------------------------------------------------------------------
# where the target lands an archive that fits in memory: a tmpfs the host may name (the
# lab gives each of its hosts its own), else /dev/shm; podman then untars from RAM, and
# the host does not write the archive back to disk while the container is frozen
# (spelled in the same words by the workdir scripts, and used by doctor)
TMPFS_DIR = "${CELESTIAL_SSH_TMPFS:-/dev/shm}"
DISK_DIR = "${TMPDIR:-/var/tmp}"
LANDING_TMPFS = "tmpfs"
LANDING_DISK = "disk"
# the restored container needs the archive's size again in memory while the archive is
# still on tmpfs; this much more is left to the rest of the host
TMPFS_MEMORY_RESERVE_BYTES = 256 << 20


def make_workdir(container_id: str | None = None) -> list[str]:
    """A private (0700) directory under the host's TMPDIR, named by mktemp, never guessed.

    With ``container_id`` the name carries its first 12 digits, so ``recover`` can find
    the leftovers of one container's migration without touching another's.
    """
    return run_line(
        "make-workdir", f'umask 077 && mktemp -d "{DISK_DIR}/$1"', _workdir_template(container_id)
    )


def _workdir_template(container_id: str | None) -> str:
    """mktemp's template for a work directory (of ``container_id``'s migration)."""
    return _workdir_prefix(container_id) + "XXXXXXXXXX"


def _workdir_prefix(container_id: str | None) -> str:
    """What the names of (``container_id``'s) work directories start with."""
    if container_id is None:
        return WORKDIR_PREFIX
    return WORKDIR_PREFIX + validate_container_name(container_id)[:12] + "."


def make_landing_workdir(container_id: str, archive_bytes: int) -> list[str]:
    """The target's work directory, where the archive lands: on tmpfs (:data:`TMPFS_DIR`)
    when it is a tmpfs with room for ``archive_bytes`` and the host has memory for that
    and for the restored container besides; else where :func:`make_workdir` puts it.

    Prints the directory, then :data:`LANDING_TMPFS` or :data:`LANDING_DISK`.
    """
    if archive_bytes <= 0:
        raise ValueError("archive_bytes must be positive")
    need_kib = -(-archive_bytes // 1024)
    memory_kib = 2 * need_kib + TMPFS_MEMORY_RESERVE_BYTES // 1024
    return run_script(
        "make_landing_workdir.sh", _workdir_template(container_id), str(need_kib), str(memory_kib)
    )


def parse_landing_workdir(output: str) -> tuple[str, str]:
    """:func:`make_landing_workdir`'s output as (directory, tmpfs or disk)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if len(lines) != 2 or lines[1] not in (LANDING_TMPFS, LANDING_DISK):
        raise ValueError(f"unexpected output from making the landing directory: {output!r}")
    return validate_remote_path(lines[0]), lines[1]


def archive_size_estimate(memory_bytes: int) -> int:
    """How large the archive of a container using ``memory_bytes`` may get: what it may
    add before the freeze, podman's metadata and the container's file changes."""
    return memory_bytes + memory_bytes // 4 + (64 << 20)


def list_workdirs(container_id: str | None = None, *, sizes: bool = False) -> list[str]:
    """The work directories on this host of migrations of ``container_id``, or of any
    container (on disk, or on tmpfs where the archive landed), one per line; with
    ``sizes``, as ``du -sk`` prints them (KiB, a tab, the path)."""
    pattern = _workdir_prefix(container_id) + "*"
    return run_script("list_workdirs.sh", pattern, "sizes" if sizes else "names")


def parse_workdir_sizes(output: str) -> list[tuple[str, int]]:
    """(path, KiB) from :func:`list_workdirs` with ``sizes``; raises ValueError otherwise."""
    found = []
    for line in output.splitlines():
        if not line.strip():
            continue
        kib, separator, path = line.partition("\t")
        if not separator or not kib.isdigit() or not path.startswith("/"):
            raise ValueError(f"not a size and a path: {line[:120]!r}")
        found.append((path, int(kib)))
    return found


def container_stats(*containers: str) -> list[str]:
    """One ``podman stats`` sample of ``containers``, or of every running one when none is
    named (podman prints ``[]`` for none). A container's memory in use sizes its archive."""
    for container in containers:
        validate_container_name(container)
    named = ["--", *containers] if containers else []
    return ["podman", "stats", "--no-stream", "--format", "json", *named]


def remove_workdir(workdir: str) -> list[str]:
    validate_remote_path(workdir)
    if not workdir.rsplit("/", 1)[-1].startswith(WORKDIR_PREFIX):
        raise ValueError(f"refusing to remove {workdir!r}: not a celestial-ssh work directory")
    return ["rm", "-rf", "--", workdir]


def checkpoint_options_argv(options: CheckpointOptions) -> list[str]:
    argv = ["--compress", options.compression, "--print-stats"]
    if options.with_previous:
        argv.append("--with-previous")
    if options.tcp_established:
        argv.append("--tcp-established")
    if options.file_locks:
        argv.append("--file-locks")
    return argv


def checkpoint_export(path: str, container: str, options: CheckpointOptions) -> list[str]:
    """``container checkpoint --export`` of ``container`` into ``path`` (a file or FIFO),
    without the leading ``podman``: the caller puts its own podman argv in front."""
    validate_container_name(container)
    return [
        "container",
        "checkpoint",
        "--export",
        path,
        *checkpoint_options_argv(options),
        "--",
        container,
    ]


def restore_argv(
    archive: str,
    *,
    import_previous: str | None = None,
    name: str | None = None,
    options: CheckpointOptions | None = None,
    podman: Sequence[str] = ("podman",),
) -> list[str]:
    """``podman container restore --import`` of ``archive`` (and a pre-copy's
    ``import_previous``, which podman unpacks first)."""
    validate_remote_path(archive)
    argv = [*podman, "container", "restore", "--import", archive]
    if import_previous is not None:
        argv += ["--import-previous", validate_remote_path(import_previous)]
    argv.append("--print-stats")
    if name is not None:
        argv += ["--name", validate_container_name(name, what="new name")]
    if options and options.tcp_established:
        argv.append("--tcp-established")
    if options and options.file_locks:
        argv.append("--file-locks")
    return argv


# -- private files ---------------------------------------------------------------------
def write_private_file(path: str, content: str) -> list[str]:
    """Write ``content`` to ``path`` (mode 0600); e.g. the target's pinned host key."""
    validate_remote_path(path)
    return run_line("write-private-file", 'umask 077 && printf \'%s\' "$1" > "$2"', content, path)


def receive_private_files(workdir: str) -> list[str]:
    """Unpack a tar archive from stdin into ``workdir``, owned by us, mode 0600 at most
    (e.g. a migration's TLS credentials)."""
    validate_remote_path(workdir)
    return run_line(
        "receive-private-files",
        'umask 077 && exec tar -x --no-same-owner --no-same-permissions -C "$1" -f -',
        workdir,
    )


def receive_file(path: str) -> list[str]:
    """Write stdin to ``path`` (mode 0600): e.g. a pre-copy archive on the target."""
    validate_remote_path(path)
    return run_line("receive-file", 'umask 077 && exec cat > "$1"', path)


# -- the migration lock ------------------------------------------------------------------
LOCK_HELD_EXIT = 75  # spelled in hold_migration_lock.sh
LOCK_DIR = "/run/celestial-ssh"


def hold_migration_lock(container_id: str) -> list[str]:
    """Hold an exclusive lock for ``container_id`` on this host while stdin stays open.

    Prints ``locked`` once the lock is held; exits 75 at once if another migration holds
    it. The lock lives as long as the SSH channel: if the coordinator dies, sshd closes
    the channel, ``cat`` sees end of file, and the lock is released (no stale locks).
    """
    validate_container_name(container_id)
    # a root-only directory: in a world-writable one (/var/tmp, /run/lock) any local user
    # could hold the lock and block migrations
    return run_script("hold_migration_lock.sh", LOCK_DIR, f"{LOCK_DIR}/lock.{container_id}")
