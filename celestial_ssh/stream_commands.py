"""Builders for the scripts that move a checkpoint: stream, land, restore, and the waits
of a rollback; and for the link probe.

Each returns the argv of a script from ``celestial_ssh/scripts/`` with its parameters
(see :mod:`celestial_ssh.host_scripts`); the scripts themselves say what they do, what
they write and how they exit. What they print is read by :mod:`celestial_ssh.stream_markers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .host_scripts import run_line, run_script
from .podman_commands import (
    ARCHIVE_NAME,
    FIFO_NAME,
    CheckpointOptions,
    checkpoint_options_argv,
    restore_argv,
)
from .shell import join, validate_container_name, validate_remote_path


def _flag(name: str, value: bool) -> str:
    """A script's flag parameter: ``name`` when set, ``no-name`` otherwise."""
    return name if value else f"no-{name}"


# -- the checkpoint stream ---------------------------------------------------------------
def checkpoint_stream(
    container: str,
    workdir: str,
    options: CheckpointOptions,
    podman: Sequence[str] = ("podman",),
    *,
    gated: bool = False,
    hashed: bool = False,
    announce: bool = False,
    announce_on_stderr: bool = False,
) -> list[str]:
    """Checkpoint ``container`` and write the archive to stdout while podman produces it
    (``checkpoint_stream.sh``, which says how and why).

    ``hashed`` also takes the SHA-256 of what it sends, as it sends it (a ``tee`` into
    the hasher: CPU, not a second read): every data path asks for it, and the target
    checks it against its own digest of what landed before it restores, so a fault
    anywhere between podman's export and the restore is caught end to end.

    ``gated``: say :data:`~celestial_ssh.stream_markers.READY_LINE` and wait for
    :data:`~celestial_ssh.stream_markers.GO_LINE` before anything else.

    ``announce``: write :data:`~celestial_ssh.stream_markers.EXPORTED_MARKER` and the size
    (and, when ``hashed``, the SHA-256) to descriptor
    :data:`~celestial_ssh.stream_markers.ANNOUNCE_FD` once podman (at debug level) says
    its export succeeded and the reader has copied (and hashed) the last byte.
    ``announce_on_stderr`` (which implies ``announce``): say it on stderr instead, for a
    relayed stream, whose stdout is the archive itself.

    The stats JSON and the exit status land in the work directory. CRIU's images stay in
    podman's storage, so the source can restore locally if anything later fails.
    """
    validate_container_name(container)
    validate_remote_path(workdir)
    announce = announce or announce_on_stderr
    checkpoint = [
        *podman,
        *(["--log-level=debug"] if announce else []),
        "container",
        "checkpoint",
        "--export",
        f"{workdir}/{FIFO_NAME}",
        *checkpoint_options_argv(options),
        "--",
        container,
    ]
    return run_script(
        "checkpoint_stream.sh",
        workdir,
        _flag("gated", gated),
        _flag("hashed", hashed),
        "announce-on-stderr" if announce_on_stderr else _flag("announce", announce),
        *checkpoint,
    )


@dataclass(frozen=True)
class DirectLink:
    """How a ``--direct`` source reaches the target.

    - over SSH: ``argv`` is the ``ssh`` command, fed from the FIFO by ``cat``; its remote
      command says :data:`~celestial_ssh.stream_markers.READY_LINE`, which comes back
      through ``ssh``;
    - over TLS (``ready_log`` set): ``argv`` reads the FIFO itself, and the link is ready
      once ``ready_log`` shows ``ready_pattern`` (its handshake is done).
    """

    argv: tuple[str, ...]
    ready_log: str | None = None
    ready_pattern: str = ""
    # named in the failure message (a plain word)
    program: str = "ssh"

    def __post_init__(self) -> None:
        if not self.program.isalnum():
            raise ValueError(f"link program {self.program!r} must be a plain word")

    @classmethod
    def over_ssh(cls, ssh_to_target: Sequence[str]) -> DirectLink:
        return cls(tuple(ssh_to_target))


def direct_link_fifo(workdir: str) -> str:
    """The FIFO a ``--direct`` checkpoint stream writes its archive into."""
    return f"{validate_remote_path(workdir)}/link.fifo"


def direct_probe_fifo(workdir: str) -> str:
    """The FIFO a ``--direct`` probe writes its zeros into."""
    return f"{validate_remote_path(workdir)}/probe.fifo"


def _direct_stream(
    mode: str, workdir: str, link: DirectLink | Sequence[str], payload: Sequence[str]
) -> list[str]:
    """``direct_stream.sh`` in ``mode`` (checkpoint or probe) over ``link`` (a
    :class:`DirectLink`, or the ``ssh`` argv of one)."""
    validate_remote_path(workdir)
    if not isinstance(link, DirectLink):
        link = DirectLink.over_ssh(link)
    return run_script(
        "direct_stream.sh",
        mode,
        workdir,
        link.program,
        link.ready_log or "",
        link.ready_pattern,
        join(link.argv),
        *payload,
    )


def direct_checkpoint_stream(
    checkpoint: Sequence[str], workdir: str, link: DirectLink | Sequence[str]
) -> list[str]:
    """``--direct``: the source streams the archive into ``link`` itself, so it never
    passes the coordinator (``link``: a :class:`DirectLink`, or the ``ssh`` argv of one).

    The link connects first (over SSH its remote command says ready, which comes back
    through ``ssh``; over TLS the script says it once the handshake is done); the
    ``checkpoint`` command (ungated) runs when the coordinator answers go. A failed
    checkpoint reports podman's status, a failed link exits
    :data:`~celestial_ssh.stream_markers.EXIT_DIRECT_LINK_FAILED`, a stream never told to
    go exits :data:`~celestial_ssh.stream_markers.EXIT_NOT_STARTED`. The checkpoint gets
    this script's stdout as descriptor :data:`~celestial_ssh.stream_markers.ANNOUNCE_FD`
    (see ``checkpoint_stream(announce=True)``).
    """
    return _direct_stream("checkpoint", workdir, link, checkpoint)


# -- measuring the link (--compress auto, probe) -------------------------------------------
def _probe_zeros(nbytes: int, max_seconds: float, output: str = "") -> list[str]:
    """Zeros for at most ``max_seconds``: dd prints its count when interrupted (SIGINT)."""
    if nbytes <= 0 or max_seconds <= 0:
        raise ValueError("a probe needs a positive size and duration")
    target = [f"of={output}"] if output else []
    return [
        "timeout",
        "-s",
        "INT",
        f"{max_seconds:g}",
        "dd",
        "if=/dev/zero",
        "bs=1M",
        "iflag=count_bytes",
        f"count={int(nbytes)}",
        *target,
    ]


def probe_sender(nbytes: int, max_seconds: float) -> list[str]:
    """Gated (ready/go, so the SSH handshake is not timed): zeros to stdout."""
    return run_script("probe_sender.sh", *_probe_zeros(nbytes, max_seconds))


def probe_receiver() -> list[str]:
    """Says ready, then discards what it gets."""
    return run_line("probe-receiver", "echo ready && exec cat > /dev/null")


def direct_probe(
    nbytes: int, max_seconds: float, workdir: str, link: DirectLink | Sequence[str]
) -> list[str]:
    """``--direct`` probe on the source: connect to the target first (it says ready once
    connected), then on go time zeros into the link; ends with ``celestial-ssh-probe
    BYTES US``. ``link`` as for :func:`direct_checkpoint_stream`."""
    zeros = _probe_zeros(nbytes, max_seconds, output=direct_probe_fifo(workdir))
    return _direct_stream("probe", workdir, link, zeros)


# -- landing and restoring on the target ----------------------------------------------------
def landed_bytes_watch(workdir: str, interval_s: float, limit_s: int) -> list[str]:
    """Says ready, then prints the landed archive's size every ``interval_s`` (progress
    when no coordinator relays), for ``limit_s`` at most; see ``landed_bytes_watch.sh``."""
    validate_remote_path(workdir)
    if interval_s <= 0 or limit_s <= 0:
        raise ValueError("a landing watch needs a positive interval and limit")
    return run_script(
        "landed_bytes_watch.sh", f"{workdir}/{ARCHIVE_NAME}", f"{interval_s:g}", str(int(limit_s))
    )


def land_archive(workdir: str, *, hashed: bool = True, announce: bool = False) -> list[str]:
    """Receive the archive on stdin into a regular file, hashing it as it arrives.

    The size and digest are checked by :func:`restore_import` before podman sees the file
    (every data path lands hashed; without ``hashed`` only a size could be checked).
    ``announce`` says ready on stdout once it is listening.
    """
    validate_remote_path(workdir)
    return run_script(
        "land_archive.sh", workdir, _flag("hashed", hashed), _flag("announce", announce)
    )


def restore_import(
    workdir: str,
    *,
    expected_bytes: int,
    expected_sha256: str | None,
    name: str | None = None,
    options: CheckpointOptions | None = None,
    podman: Sequence[str] = ("podman",),
    import_previous: str | None = None,
) -> list[str]:
    """Verify the landed archive (size, SHA-256), then restore it with ``--import``.

    ``import_previous``: the pre-checkpoint archive of a pre-copy, unpacked first.

    podman runs in the background with its output in files (a broken connection must not
    kill it mid-restore); its PID goes to ``restore.pid`` so a rollback can wait for it.
    """
    _check_digest(expected_sha256)
    expected = (str(int(expected_bytes)), expected_sha256 or "-")
    return _restore(workdir, "now", expected, name, options, podman, import_previous)


def gated_restore_import(
    workdir: str,
    *,
    name: str | None = None,
    options: CheckpointOptions | None = None,
    podman: Sequence[str] = ("podman",),
    import_previous: str | None = None,
) -> list[str]:
    """:func:`restore_import`, started before the freeze: it says ready, then waits for
    :func:`restore_go_line` (which carries the size and digest to check), so the restore
    begins without a new SSH command in the downtime."""
    return _restore(workdir, "gated", ("-", "-"), name, options, podman, import_previous)


def restore_go_line(expected_bytes: int, expected_sha256: str | None) -> bytes:
    """What starts a :func:`gated_restore_import`: ``go SIZE SHA256`` (``-``: no digest)."""
    _check_digest(expected_sha256)
    if isinstance(expected_bytes, bool) or not isinstance(expected_bytes, int):
        raise ValueError("expected_bytes must be an integer")
    return f"go {expected_bytes} {expected_sha256 or '-'}\n".encode()


def _check_digest(digest: str | None) -> None:
    if digest is not None and not (
        len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)
    ):
        raise ValueError("expected_sha256 must be 64 lowercase hex digits")


def _restore(
    workdir: str,
    gate: str,
    expected: tuple[str, str],
    name: str | None,
    options: CheckpointOptions | None,
    podman: Sequence[str],
    import_previous: str | None,
) -> list[str]:
    """``restore_import.sh``: ``gate`` is now or gated; ``expected`` the size and digest
    (``-``: none) when now."""
    validate_remote_path(workdir)
    restore = restore_argv(
        f"{workdir}/{ARCHIVE_NAME}",
        import_previous=import_previous,
        name=name,
        options=options,
        podman=podman,
    )
    return run_script("restore_import.sh", workdir, gate, *expected, *restore)


# -- rollback helpers --------------------------------------------------------------------
def wait_for_checkpoint_end(workdir: str, *, timeout_s: int, start_grace_s: int = 5) -> list[str]:
    """Wait until the checkpoint script in ``workdir`` has finished, then print its status.

    Prints ``never-started`` when the script's start marker has not appeared within
    ``start_grace_s`` seconds (a checkpoint starting after we looked would stop a
    container nobody restores), and exits 1 if the script is still running after
    ``timeout_s`` seconds.
    """
    validate_remote_path(workdir)
    return run_script(
        "wait_for_checkpoint_end.sh", workdir, str(int(timeout_s)), str(int(start_grace_s))
    )


def wait_for_restore_end(workdir: str, *, timeout_s: int) -> list[str]:
    """Wait until no restore started from ``workdir`` is running any more.

    A restore whose reply was lost (interrupt, broken connection) may still be running on
    the target; deciding what to roll back before it ends could leave two running copies.
    """
    validate_remote_path(workdir)
    return run_script("wait_for_restore_end.sh", workdir, str(int(timeout_s)))
