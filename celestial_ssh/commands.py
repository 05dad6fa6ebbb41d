"""Pure builders for every command celestial-ssh runs on a host.

Each function returns an argument list (or an ``sh -c`` script built only from quoted
values), so table-driven tests pin the exact commands and no user input can reach a shell
unquoted. Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .shell import quote, sh_script, validate_container_name, validate_remote_path

COMPRESSIONS = ("none", "zstd", "gzip")
WORKDIR_PREFIX = "celestial-ssh."
ARCHIVE_NAME = "checkpoint.tar"
FIFO_NAME = "checkpoint.fifo"
CHECKPOINT_STATS_NAME = "checkpoint-stats.json"
SUM_NAME = "checkpoint.sha256"
# exit codes of our own scripts, distinct from podman's (125-127) and signals (128+)
EXIT_ARCHIVE_SIZE_MISMATCH = 98
EXIT_ARCHIVE_CHECKSUM_MISMATCH = 97
EXIT_FIFO_FAILED = 96


@dataclass(frozen=True)
class CheckpointOptions:
    compression: str = "none"
    tcp_established: bool = False
    file_locks: bool = False

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
def make_workdir() -> list[str]:
    """A private (0700) directory under the host's TMPDIR, named by mktemp, never guessed."""
    return sh_script(
        'umask 077 && mktemp -d "${TMPDIR:-/var/tmp}/' + WORKDIR_PREFIX + 'XXXXXXXXXX"'
    )


def remove_workdir(workdir: str) -> list[str]:
    validate_remote_path(workdir)
    if not workdir.rsplit("/", 1)[-1].startswith(WORKDIR_PREFIX):
        raise ValueError(f"refusing to remove {workdir!r}: not a celestial-ssh work directory")
    return ["rm", "-rf", "--", workdir]


# -- the checkpoint stream ---------------------------------------------------------------
def checkpoint_options_argv(options: CheckpointOptions) -> list[str]:
    argv = ["--compress", options.compression, "--print-stats"]
    if options.tcp_established:
        argv.append("--tcp-established")
    if options.file_locks:
        argv.append("--file-locks")
    return argv


def checkpoint_stream(
    container: str, workdir: str, options: CheckpointOptions, podman: Sequence[str] = ("podman",)
) -> list[str]:
    """Checkpoint ``container`` and write the archive to stdout while podman produces it.

    podman cannot export to stdout (it prints the container name there too), so it exports
    into a FIFO and ``cat`` copies the FIFO to stdout. If podman fails before opening the
    FIFO, the reader is killed so the stream ends instead of waiting forever. The stats JSON
    lands in the work directory. CRIU's images stay in podman's storage, so the source can
    restore locally if anything later fails.
    """
    validate_container_name(container)
    validate_remote_path(workdir)
    fifo = f"{workdir}/{FIFO_NAME}"
    stats = f"{workdir}/{CHECKPOINT_STATS_NAME}"
    checkpoint = [
        *podman,
        "container",
        "checkpoint",
        "--export",
        fifo,
        *checkpoint_options_argv(options),
        "--",
        container,
    ]
    script = "\n".join(
        [
            f"mkfifo -m 600 {quote(fifo)} || exit {EXIT_FIFO_FAILED}",
            f"cat {quote(fifo)} &",
            "reader=$!",
            f"{' '.join(quote(a) for a in checkpoint)} > {quote(stats)}",
            "status=$?",
            '[ "$status" -eq 0 ] || kill "$reader" 2>/dev/null',
            'wait "$reader"',
            f"rm -f {quote(fifo)}",
            'exit "$status"',
        ]
    )
    return sh_script(script)


def land_archive(workdir: str) -> list[str]:
    """Receive the archive on stdin into a regular file, hashing it as it arrives.

    podman opens an import archive twice, so it must be a regular file, not a pipe. The
    size and digest are checked by :func:`restore_import` before podman sees the file.
    """
    validate_remote_path(workdir)
    archive = quote(f"{workdir}/{ARCHIVE_NAME}")
    digest = quote(f"{workdir}/{SUM_NAME}")
    tee_status = quote(f"{workdir}/tee.status")
    # sh has no pipefail: tee's own status is kept in a file so a short write (disk full)
    # fails the landing with tee's message instead of passing silently. openssl uses the
    # CPU's SHA instructions (5x coreutils' sha256sum here); both print the digest first.
    return sh_script(
        "umask 077\n"
        "if command -v openssl >/dev/null 2>&1; then hasher='openssl dgst -sha256 -r'; "
        "else hasher=sha256sum; fi\n"
        f"{{ tee {archive}; echo $? > {tee_status}; }} | $hasher > {digest}\n"
        f'[ "$(cat {tee_status})" = 0 ]'
    )


def restore_import(
    workdir: str,
    *,
    expected_bytes: int,
    expected_sha256: str,
    name: str | None = None,
    options: CheckpointOptions | None = None,
    podman: Sequence[str] = ("podman",),
) -> list[str]:
    """Verify the landed archive (size, SHA-256), then restore it with ``--import``."""
    validate_remote_path(workdir)
    if not (len(expected_sha256) == 64 and all(c in "0123456789abcdef" for c in expected_sha256)):
        raise ValueError("expected_sha256 must be 64 lowercase hex digits")
    archive = f"{workdir}/{ARCHIVE_NAME}"
    digest = f"{workdir}/{SUM_NAME}"
    restore = [*podman, "container", "restore", "--import", archive, "--print-stats"]
    if name is not None:
        restore += ["--name", validate_container_name(name, what="new name")]
    if options and options.tcp_established:
        restore.append("--tcp-established")
    if options and options.file_locks:
        restore.append("--file-locks")
    script = "\n".join(
        [
            f"size=$(wc -c < {quote(archive)}) || exit {EXIT_ARCHIVE_SIZE_MISMATCH}",
            f'if [ "$size" -ne {int(expected_bytes)} ]; then',
            f'  echo "archive on this host has $size bytes, {int(expected_bytes)} were sent" >&2',
            f"  exit {EXIT_ARCHIVE_SIZE_MISMATCH}",
            "fi",
            f"sum=$(cut -d ' ' -f 1 < {quote(digest)})",
            f'if [ "$sum" != {expected_sha256} ]; then',
            '  echo "archive SHA-256 on this host is $sum, the sent one was '
            + expected_sha256
            + '" >&2',
            f"  exit {EXIT_ARCHIVE_CHECKSUM_MISMATCH}",
            "fi",
            "exec " + " ".join(quote(a) for a in restore),
        ]
    )
    return sh_script(script)
