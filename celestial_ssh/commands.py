"""Pure builders for every command celestial-ssh runs on a host.

Each function returns an argument list (or an ``sh -c`` script built only from quoted
values), so table-driven tests pin the exact commands and no user input can reach a shell
unquoted. Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidInput
from .shell import join, quote, sh_script, validate_container_name, validate_remote_path

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
# exit codes of our own scripts, distinct from podman's (125-127) and signals (128+)
EXIT_ARCHIVE_SIZE_MISMATCH = 98
EXIT_ARCHIVE_CHECKSUM_MISMATCH = 97
EXIT_FIFO_FAILED = 96
# a gated stream that was never told to go (the coordinator gave up before the freeze)
EXIT_NOT_STARTED = 94
EXIT_DIRECT_LINK_FAILED = 95
# A gated stream connects before the freeze and says READY_LINE on stdout; the freeze begins
# when the coordinator answers GO_LINE on its stdin. Measured here: an SSH handshake takes
# 0.5 s, and a pre-connected stream cut 0.6 s off the checkpoint of 256 MB.
READY_LINE = b"ready\n"
GO_LINE = b"go\n"
_AWAIT_GO = f'IFS= read -r go && [ "$go" = go ] || exit {EXIT_NOT_STARTED}'


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
    tag = ""
    if container_id is not None:
        tag = validate_container_name(container_id)[:12] + "."
    return sh_script(
        'umask 077 && mktemp -d "' + DISK_DIR + "/" + WORKDIR_PREFIX + tag + 'XXXXXXXXXX"'
    )


def make_landing_workdir(container_id: str, archive_bytes: int) -> list[str]:
    """The target's work directory, where the archive lands: on tmpfs (:data:`TMPFS_DIR`)
    when it is a tmpfs with room for ``archive_bytes`` and the host has memory for that
    and for the restored container besides; else where :func:`make_workdir` puts it.

    Prints the directory, then :data:`LANDING_TMPFS` or :data:`LANDING_DISK`.
    """
    if archive_bytes <= 0:
        raise ValueError("archive_bytes must be positive")
    tag = validate_container_name(container_id)[:12] + "."
    need_kib = -(-archive_bytes // 1024)
    memory_kib = 2 * need_kib + TMPFS_MEMORY_RESERVE_BYTES // 1024
    template = WORKDIR_PREFIX + tag + "XXXXXXXXXX"
    return sh_script(
        "\n".join(
            [
                "umask 077",
                f'tmpfs="{TMPFS_DIR}"',
                # a missing number fails the test quietly, which lands on disk
                f'if [ "$(stat -f -c %T "$tmpfs" 2>/dev/null)" = tmpfs ] && '
                '[ "$(df -Pk "$tmpfs" 2>/dev/null | awk \'NR == 2 { print $4 }\')" '
                f"-ge {need_kib} ] 2>/dev/null && "
                "[ \"$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)\" "
                f"-ge {memory_kib} ] 2>/dev/null && "
                f'dir=$(mktemp -d "$tmpfs/{template}" 2>/dev/null); then',
                f'  echo "$dir"; echo {LANDING_TMPFS}',
                "else",
                f'  dir=$(mktemp -d "{DISK_DIR}/{template}") || exit 1',
                f'  echo "$dir"; echo {LANDING_DISK}',
                "fi",
            ]
        )
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
    tag = validate_container_name(container_id)[:12] + "." if container_id is not None else ""
    pattern = WORKDIR_PREFIX + tag + "*"
    show = 'du -sk "$d"' if sizes else 'echo "$d"'
    return sh_script(
        "\n".join(
            [
                f'disk="{DISK_DIR}"; tmpfs="{TMPFS_DIR}"',
                f'for d in "$disk"/{pattern}; do [ -d "$d" ] && {show}; done',
                f'[ "$tmpfs" = "$disk" ] || for d in "$tmpfs"/{pattern}; do '
                f'[ -d "$d" ] && {show}; done',
                "true",
            ]
        )
    )


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


# -- the checkpoint stream ---------------------------------------------------------------
# openssl uses the CPU's SHA instructions (5x coreutils' sha256sum on our machines); both
# print the digest as the first field
HASHER_CHOICE = (
    "if command -v openssl >/dev/null 2>&1; then hasher='openssl dgst -sha256 -r'; "
    "else hasher=sha256sum; fi"
)
# the last stderr line of the checkpoint script: how many bytes of archive it wrote
SOURCE_BYTES_MARKER = "celestial-ssh-source-bytes"
# An announcing checkpoint script says this, with the archive's size, as soon as podman has
# written the whole archive: podman then still tears down the container's network and
# storage (0.15-0.25 s measured on our lab), which the restore need not wait for. podman
# says it at debug level once its export has succeeded ("Checkpointed container <id>", the
# same words in every release since 1.0); a podman that never says it is simply waited for.
EXPORTED_MARKER = "celestial-ssh-exported"
# the file descriptor the announcement goes to (the script's caller opens it)
ANNOUNCE_FD = 5
_PODMAN_EXPORTED = 'level=debug msg="Checkpointed container '


# what a direct checkpoint stream says once its link has ended, with the link's status
LINK_ENDED_MARKER = "celestial-ssh-link-ended"


def _marker_number(line: str, marker: str) -> int | None:
    fields = line.split()
    if len(fields) == 2 and fields[0] == marker and fields[1].isdigit():
        return int(fields[1])
    return None


def parse_exported(line: str) -> int | None:
    """The archive's size from an :data:`EXPORTED_MARKER` line, else None."""
    return _marker_number(line, EXPORTED_MARKER)


def parse_link_ended(line: str) -> int | None:
    """The link's exit status from a :data:`LINK_ENDED_MARKER` line, else None."""
    return _marker_number(line, LINK_ENDED_MARKER)


@dataclass
class StreamAnnouncements:
    """What a direct checkpoint stream says on its stdout during the freeze.

    The restore may start once the archive is complete on the source (:data:`EXPORTED_MARKER`)
    and has landed on the target: over TLS the target's listener tells the coordinator
    that itself; over ``ssh`` (``link_must_end``) only the source sees its link end, and
    says so (:data:`LINK_ENDED_MARKER`).
    """

    link_must_end: bool
    exported: int | None = None
    link_status: int | None = None

    def add(self, line: str) -> None:
        exported, ended = parse_exported(line), parse_link_ended(line)
        if exported is not None:
            self.exported = exported
        if ended is not None:
            self.link_status = ended

    @property
    def restorable_size(self) -> int | None:
        """The archive's size once the restore may start, else None."""
        if self.exported is None or (self.link_must_end and self.link_status != 0):
            return None
        return self.exported

    @property
    def link_failed(self) -> bool:
        return self.link_status not in (None, 0)


def _source_marker(stderr: str) -> list[str]:
    for line in reversed(stderr.splitlines()):
        if line.startswith(SOURCE_BYTES_MARKER + " "):
            return line.split()[1:]
    return []


def parse_source_bytes(stderr: str) -> int | None:
    """The archive's size in bytes as the source streamed it (its last marker line)."""
    fields = _source_marker(stderr)
    return int(fields[0]) if 1 <= len(fields) <= 2 and fields[0].isdigit() else None


def parse_source_sum(stderr: str) -> str | None:
    """The archive's SHA-256 as the source streamed it (a hashed stream's marker line)."""
    fields = _source_marker(stderr)
    if len(fields) != 2 or len(fields[1]) != 64:
        return None
    return fields[1] if all(c in "0123456789abcdef" for c in fields[1]) else None


def _end_announcer(podman_stderr: str) -> list[str]:
    """sh lines after podman has ended: let the loop reading its stderr finish (it ends
    with podman's stderr), but within 2 s: a process podman left holding that stderr must
    not keep the script, and the status a rollback waits for, from ending."""
    return [
        "i=0",
        'while kill -0 "$announcer" 2>/dev/null && [ "$i" -lt 200 ]; do',
        "  sleep 0.01; i=$((i + 1))",
        "done",
        'kill "$announcer" 2>/dev/null',
        'wait "$announcer"',
        f"rm -f {podman_stderr}",
    ]


def _release_readers(pid_variable: str, fifo: str, sleep_s: float) -> list[str]:
    """sh lines: while ``$pid_variable`` runs, open ``fifo`` (quoted) once more, so a reader
    still blocked in open() for a writer that never came gets its end of file."""
    return [
        f'while kill -0 "${pid_variable}" 2>/dev/null; do',
        f"  exec 3<> {fifo}; exec 3>&-; sleep {sleep_s:g}",
        "done",
    ]


@dataclass(frozen=True)
class DirectLink:
    """How a ``--direct`` source reaches the target.

    - over SSH: ``argv`` is the ``ssh`` command, fed from the FIFO by ``cat``; its remote
      command says :data:`READY_LINE`, which comes back through ``ssh``;
    - over TLS (``ready_log`` set): ``argv`` reads the FIFO itself, and the link is ready
      once ``ready_log`` shows ``ready_pattern`` (its handshake is done).
    """

    argv: tuple[str, ...]
    ready_log: str | None = None
    ready_pattern: str = ""
    # named in the failure message (a word: it is spelled into the script)
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


def _link_then_go(fifo: str, link: DirectLink, status_file: str | None) -> list[str]:
    """sh lines of a ``--direct`` script's start: connect ``link`` (fed from ``fifo``,
    quoted) in the background as ``$link``, wait until it is ready, then wait for
    :data:`GO_LINE`; a stream never told to go lets the link end and exits
    :data:`EXIT_NOT_STARTED`."""
    keep_status = f"; echo $? > {status_file}" if status_file else ""
    if link.ready_log is None:
        start = [f"{{ cat {fifo} | {join(link.argv)}{keep_status}; }} &", "link=$!"]
    else:
        log = quote(link.ready_log)
        start = [
            # emptied here: a probe's link wrote this log before, and the redirect below
            # may come after the first look
            f": > {log}",
            f"{{ {join(link.argv)} 2> {log}{keep_status}; }} &",
            "link=$!",
            f"until grep -q {quote(link.ready_pattern)} {log} 2>/dev/null; do",
            '  if ! kill -0 "$link" 2>/dev/null; then',
            f"    tail -n 5 {log} >&2; rm -f {fifo}; exit {EXIT_DIRECT_LINK_FAILED}",
            "  fi",
            "  sleep 0.01",
            "done",
            # if nobody reads any more, go on to the end below (which releases the link)
            # instead of dying of SIGPIPE with the link waiting on the FIFO forever
            "trap '' PIPE; echo ready; trap - PIPE",
        ]
    return [
        f"mkfifo -m 600 {fifo} || exit {EXIT_FIFO_FAILED}",
        *start,
        'IFS= read -r go; if [ "$go" != go ]; then',
        # the link may still wait for a writer: open the FIFO until the link has ended
        *("  " + line for line in _release_readers("link", fifo, 0.05)),
        f"  rm -f {fifo}; exit {EXIT_NOT_STARTED}",
        "fi",
    ]


def checkpoint_options_argv(options: CheckpointOptions) -> list[str]:
    argv = ["--compress", options.compression, "--print-stats"]
    if options.with_previous:
        argv.append("--with-previous")
    if options.tcp_established:
        argv.append("--tcp-established")
    if options.file_locks:
        argv.append("--file-locks")
    return argv


def checkpoint_stream(
    container: str,
    workdir: str,
    options: CheckpointOptions,
    podman: Sequence[str] = ("podman",),
    *,
    gated: bool = False,
    hashed: bool = False,
    announce: bool = False,
) -> list[str]:
    """Checkpoint ``container`` and write the archive to stdout while podman produces it.

    podman cannot export to stdout (it prints the container name there too), so it exports
    into a FIFO and ``dd`` copies the FIFO to stdout, counting the bytes (the size the
    target must end up with). ``hashed`` also takes the SHA-256 of what it sends: wanted
    wherever our own code relays the bytes (the coordinator), so a fault there is caught
    end to end; a ``--direct`` stream goes from ``ssh`` to ``sshd`` under SSH's own
    integrity check and skips it (on our 2-core machines the hashing tee cost a fifth of
    the stream's speed). Measured pitfalls this script avoids:

    - podman opens the export file read-write, so it never notices that the FIFO's reader
      died: if our stdout breaks (connection lost), ``cat`` drains the rest into
      /dev/null so podman can finish instead of blocking forever with the container lock;
    - a reader still waiting for a writer (podman failed before exporting) is released by
      opening the FIFO once more after podman has exited;
    - podman's stdout and stderr go to files, never to the SSH channel: a Go program that
      writes to a broken pipe on fd 1 or 2 is killed, possibly holding the container lock.

    The stats JSON and the exit status land in the work directory. CRIU's images stay in
    podman's storage, so the source can restore locally if anything later fails.

    ``gated``: say :data:`READY_LINE` and wait for :data:`GO_LINE` before anything else.

    ``announce``: write :data:`EXPORTED_MARKER` and the size to file descriptor
    :data:`ANNOUNCE_FD` once podman says its export succeeded and the reader has copied
    the last byte. podman runs at debug level with its stderr read by a loop that keeps
    only its warnings and errors for ``checkpoint.err``; that loop ignores SIGPIPE and
    reads on while it waits for the reader, so podman neither writes into a broken pipe
    nor blocks on a full one. Nothing is announced if dd did not copy the whole archive.
    Only the loop holds the descriptor: podman and its children never see it. The reader
    alone holds stdout, so whoever reads it sees its end with the last byte, while podman
    still tidies up.
    """
    validate_container_name(container)
    validate_remote_path(workdir)
    fifo = f"{workdir}/{FIFO_NAME}"
    stats = f"{workdir}/{CHECKPOINT_STATS_NAME}"
    started = f"{workdir}/{CHECKPOINT_STARTED_NAME}"
    status_file = f"{workdir}/{CHECKPOINT_STATUS_NAME}"
    errors = f"{workdir}/checkpoint.err"
    count = f"{workdir}/dd.count"
    hash_fifo = f"{workdir}/hash.fifo"
    source_sum = f"{workdir}/source.sha256"
    copied = f"{workdir}/dd.done"  # the reader has ended
    copied_whole = f"{workdir}/dd.ok"  # ... and dd copied everything
    podman_stderr = f"{workdir}/podman-stderr.fifo"
    checkpoint = [
        *podman,
        *(["--log-level=debug"] if announce else []),
        "container",
        "checkpoint",
        "--export",
        fifo,
        *checkpoint_options_argv(options),
        "--",
        container,
    ]
    gate = ["echo ready", _AWAIT_GO] if gated else []
    hasher = [
        f"mkfifo -m 600 {quote(hash_fifo)} || exit {EXIT_FIFO_FAILED}",
        HASHER_CHOICE,
        # if no hasher runs, the FIFO is still drained so tee never dies of SIGPIPE
        f"{{ $hasher || cat > /dev/null; }} < {quote(hash_fifo)} > {quote(source_sum)} &",
    ]
    tee = f" | tee {quote(hash_fifo)}" if hashed else ""
    copy = f"dd if={quote(fifo)} bs=1M 2> {quote(count)}{tee}"
    drain = f"cat {quote(fifo)} > /dev/null"
    fd = ANNOUNCE_FD
    announcer = [
        "{",
        "  trap '' PIPE",
        '  while IFS= read -r line || [ -n "$line" ]; do',
        '    case "$line" in',
        f"      *{quote(_PODMAN_EXPORTED)}*)",
        # in the background: this loop goes on reading podman's stderr meanwhile
        f'        {{ while [ ! -e {quote(copied)} ] && kill -0 "$reader" 2>/dev/null; do',
        "            sleep 0.005",
        "          done",
        f"          if [ -e {quote(copied_whole)} ]; then",
        f'            echo "{EXPORTED_MARKER} $(tail -n 1 {quote(count)} | cut -d " " -f 1)"'
        f" >&{fd}",
        "          fi",
        "        } &",
        "        ;;",
        # what podman says at its (raised) debug and info levels is left out
        "      *level=debug*|*level=info*) ;;",
        "      *) printf '%s\\n' \"$line\" ;;",
        "    esac",
        f"  done < {quote(podman_stderr)} > {quote(errors)}",
        "} &",
        "announcer=$!",
    ]
    podman_errors = quote(podman_stderr) if announce else quote(errors)
    script = "\n".join(
        [
            *gate,
            f"true > {quote(started)} || exit {EXIT_FIFO_FAILED}",
            f"mkfifo -m 600 {quote(fifo)} || exit {EXIT_FIFO_FAILED}",
            *(
                [f"mkfifo -m 600 {quote(podman_stderr)} || exit {EXIT_FIFO_FAILED}"]
                if announce
                else []
            ),
            *(hasher if hashed else []),
            # dd's last stderr line is "<bytes> bytes (...) copied"; if stdout breaks, the
            # rest is drained so podman can finish
            # (announcing: stdout moves to descriptor 6, which only the reader keeps)
            *(["exec 6>&1 > /dev/null"] if announce else []),
            (
                f"{{ {copy} && : > {quote(copied_whole)} || {drain}; : > {quote(copied)}; }} "
                f">&6 6>&- {fd}>&- &"
                if announce
                else f"{{ {copy} || {drain}; }} {fd}>&- &"
            ),
            "reader=$!",
            *(["exec 6>&-"] if announce else []),
            *(announcer if announce else []),
            f"{' '.join(quote(a) for a in checkpoint)} > {quote(stats)} 2> {podman_errors} {fd}>&-",
            "status=$?",
            # a reader may still wait for a writer: open the FIFO until it has gone
            # (short sleeps: in the usual case the reader is just writing its last chunk,
            # and every moment here is downtime)
            *_release_readers("reader", quote(fifo), 0.02),
            'wait "$reader"',
            *(_end_announcer(quote(podman_stderr)) if announce else []),
            f"rm -f {quote(fifo)}",
            *(["wait", f"rm -f {quote(hash_fifo)}"] if hashed else []),
            f'echo "$status" > {quote(status_file)}',
            f"cat {quote(errors)} >&2",
            f'echo "{SOURCE_BYTES_MARKER} $(tail -n 1 {quote(count)} | cut -d " " -f 1)'
            + (f' $(cut -d " " -f 1 < {quote(source_sum)})' if hashed else "")
            + '" >&2',
            'exit "$status"',
        ]
    )
    return sh_script(script)


def direct_checkpoint_stream(
    checkpoint: Sequence[str], workdir: str, link: DirectLink | Sequence[str]
) -> list[str]:
    """``--direct``: the source streams the archive into ``link`` itself, so it never
    passes the coordinator (``link``: a :class:`DirectLink`, or the ``ssh`` argv of one).

    The link connects first (over SSH its remote command says :data:`READY_LINE`, which
    comes back through ``ssh``; over TLS the script says it once the handshake is done);
    the ``checkpoint`` script (ungated) runs when the coordinator answers :data:`GO_LINE`.
    sh has no pipefail, so each side's status is kept in a file: a failed checkpoint
    reports podman's status, a failed link exits :data:`EXIT_DIRECT_LINK_FAILED`, a stream
    never told to go exits :data:`EXIT_NOT_STARTED`. The checkpoint gets this script's
    stdout as descriptor :data:`ANNOUNCE_FD` (see ``checkpoint_stream(announce=True)``).
    """
    validate_remote_path(workdir)
    if not isinstance(link, DirectLink):
        link = DirectLink.over_ssh(link)
    fifo = quote(direct_link_fifo(workdir))
    checkpoint_exit = quote(f"{workdir}/direct.checkpoint-exit")
    link_status = quote(f"{workdir}/direct.link-status")
    link_log = [f"  tail -n 5 {quote(link.ready_log)} >&2"] if link.ready_log else []
    script = "\n".join(
        [
            *_link_then_go(fifo, link, link_status),
            # the link opened the FIFO (it is ready), so it sees the end of it. Started
            # in the background, so that the checkpoint alone opens the FIFO (sh keeps a
            # foreground command's redirections open itself until the command has ended;
            # an announcing checkpoint lets go of it with its last byte); it says here
            # when the archive is complete
            f"{join(checkpoint)} {ANNOUNCE_FD}>&1 > {fifo} &",
            "checkpoint=$!",
            # the link ends with the archive landed (or broken): say so at once, as an
            # announcing checkpoint may still be tidying up; a broken channel must not end
            # this script before it has kept the checkpoint's status
            'wait "$link"',
            f"trap '' PIPE; echo \"{LINK_ENDED_MARKER} $(cat {link_status} 2>/dev/null "
            '|| echo 1)"; trap - PIPE',
            'wait "$checkpoint"',
            f"echo $? > {checkpoint_exit}",
            f"rm -f {fifo}",
            f"status=$(cat {checkpoint_exit} 2>/dev/null || echo 1)",
            '[ "$status" = 0 ] || exit "$status"',
            f"link=$(cat {link_status} 2>/dev/null || echo 1)",
            'if [ "$link" != 0 ]; then',
            *link_log,
            '  echo "the direct stream from this host to the target failed '
            f'({link.program} exit $link)" >&2',
            f"  exit {EXIT_DIRECT_LINK_FAILED}",
            "fi",
        ]
    )
    return sh_script(script)


# -- measuring the link (--compress auto, probe) -------------------------------------------
PROBE_RESULT_MARKER = "celestial-ssh-probe"


def _probe_dd(nbytes: int, max_seconds: float, output: str = "") -> str:
    """Zeros for at most ``max_seconds``: dd prints its count when interrupted (SIGINT)."""
    if nbytes <= 0 or max_seconds <= 0:
        raise ValueError("a probe needs a positive size and duration")
    target = f" of={quote(output)}" if output else ""
    return (
        f"timeout -s INT {max_seconds:g} "
        f"dd if=/dev/zero bs=1M iflag=count_bytes count={int(nbytes)}{target}"
    )


def probe_sender(nbytes: int, max_seconds: float) -> list[str]:
    """Gated (ready/go, so the SSH handshake is not timed): zeros to stdout."""
    return sh_script(f"echo ready\n{_AWAIT_GO}\nexec {_probe_dd(nbytes, max_seconds)} 2>/dev/null")


def probe_receiver() -> list[str]:
    """Says ready, then discards what it gets."""
    return sh_script("echo ready && exec cat > /dev/null")


def direct_probe(
    nbytes: int, max_seconds: float, workdir: str, link: DirectLink | Sequence[str]
) -> list[str]:
    """``--direct`` probe on the source: connect to the target first (it says ready once
    connected), then on go time zeros into the link; ends with ``celestial-ssh-probe
    BYTES US``. ``link`` as for :func:`direct_checkpoint_stream`."""
    validate_remote_path(workdir)
    if not isinstance(link, DirectLink):
        link = DirectLink.over_ssh(link)
    fifo_path = direct_probe_fifo(workdir)
    fifo = quote(fifo_path)
    log = quote(f"{workdir}/probe.dd")
    script = "\n".join(
        [
            *_link_then_go(fifo, link, None),
            "began=$(date +%s%N)",
            f"{_probe_dd(nbytes, max_seconds, output=fifo_path)} 2> {log}",
            'wait "$link"; linked=$?',
            "ended=$(date +%s%N)",
            f"rm -f {fifo}",
            '[ "$linked" = 0 ] || exit "$linked"',
            f'echo "{PROBE_RESULT_MARKER} $(tail -n 1 {log} | cut -d " " -f 1) '
            '$(( (ended - began) / 1000 ))"',
        ]
    )
    return sh_script(script)


def parse_probe_result(stdout: str) -> tuple[int, float] | None:
    """(bytes, seconds) from :func:`direct_probe`'s last line."""
    for line in reversed(stdout.splitlines()):
        fields = line.split()
        if (
            len(fields) == 3
            and fields[0] == PROBE_RESULT_MARKER
            and fields[1].isdigit()
            and fields[2].isdigit()
            and int(fields[2]) > 0
        ):
            return int(fields[1]), int(fields[2]) / 1e6
    return None


def write_private_file(path: str, content: str) -> list[str]:
    """Write ``content`` to ``path`` (mode 0600); e.g. the target's pinned host key."""
    validate_remote_path(path)
    return sh_script(f"umask 077 && printf '%s' {quote(content)} > {quote(path)}")


def receive_private_files(workdir: str) -> list[str]:
    """Unpack a tar archive from stdin into ``workdir``, owned by us, mode 0600 at most
    (e.g. a migration's TLS credentials)."""
    validate_remote_path(workdir)
    return sh_script(
        f"umask 077 && exec tar -x --no-same-owner --no-same-permissions -C {quote(workdir)} -f -"
    )


def landed_bytes_watch(workdir: str, interval_s: float, limit_s: int) -> list[str]:
    """Says :data:`READY_LINE`, then prints the landed archive's size every ``interval_s``
    (progress when no coordinator relays). Started before the freeze, so no new SSH command
    (a login shell each) competes with the stream for the target's CPU. It ends by SIGPIPE
    once its reader has gone, and after ``limit_s`` whatever happens."""
    validate_remote_path(workdir)
    if interval_s <= 0 or limit_s <= 0:
        raise ValueError("a landing watch needs a positive interval and limit")
    archive = quote(f"{workdir}/{ARCHIVE_NAME}")
    return sh_script(
        "\n".join(
            [
                "echo ready",
                f"end=$(( $(date +%s) + {int(limit_s)} ))",
                'while [ "$(date +%s)" -lt "$end" ]; do',
                f"  stat -c %s {archive} 2>/dev/null || echo 0",
                f"  sleep {interval_s:g}",
                "done",
            ]
        )
    )


def parse_landed_sizes(output: bytes) -> tuple[int | None, bytes]:
    """The last size in :func:`landed_bytes_watch`'s ``output``, and its unfinished line."""
    *lines, rest = output.split(b"\n")
    sizes = [int(line) for line in lines if line.strip().isdigit()]
    return (sizes[-1] if sizes else None), rest


def receive_file(path: str) -> list[str]:
    """Write stdin to ``path`` (mode 0600): e.g. a pre-copy archive on the target."""
    validate_remote_path(path)
    return sh_script(f"umask 077 && exec cat > {quote(path)}")


def land_archive(workdir: str, *, hashed: bool = True, announce: bool = False) -> list[str]:
    """Receive the archive on stdin into a regular file, hashing it as it arrives.

    podman opens an import archive twice, so it must be a regular file, not a pipe. The
    size and digest are checked by :func:`restore_import` before podman sees the file.
    Without ``hashed`` (``--direct``: no coordinator digest to compare with) only the
    size is checked. ``announce`` says :data:`READY_LINE` on stdout once it is listening.
    """
    validate_remote_path(workdir)
    archive = quote(f"{workdir}/{ARCHIVE_NAME}")
    ready = "echo ready && " if announce else ""
    if not hashed:
        return sh_script(f"umask 077 && {ready}exec cat > {archive}")
    digest = quote(f"{workdir}/{SUM_NAME}")
    tee_status = quote(f"{workdir}/tee.status")
    # sh has no pipefail: tee's own status is kept in a file so a short write (disk full)
    # fails the landing with tee's message instead of passing silently. openssl uses the
    # CPU's SHA instructions (5x coreutils' sha256sum here); both print the digest first.
    return sh_script(
        "umask 077\n" + HASHER_CHOICE + "\n" + ready.replace(" && ", "\n") + ""
        f"{{ tee {archive}; echo $? > {tee_status}; }} | $hasher > {digest}\n"
        f'[ "$(cat {tee_status})" = 0 ]'
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
    expected = [f"want_size={int(expected_bytes)}", f"want_sum={expected_sha256 or '-'}"]
    return _restore_script(workdir, expected, name, options, podman, import_previous)


def gated_restore_import(
    workdir: str,
    *,
    name: str | None = None,
    options: CheckpointOptions | None = None,
    podman: Sequence[str] = ("podman",),
    import_previous: str | None = None,
) -> list[str]:
    """:func:`restore_import`, started before the freeze: it says :data:`READY_LINE`, then
    waits for :func:`restore_go_line` (which carries the size and digest to check), so the
    restore begins without a new SSH command in the downtime."""
    expected = [
        "echo ready",
        f"IFS=' ' read -r go want_size want_sum || exit {EXIT_NOT_STARTED}",
        f'[ "$go" = go ] || exit {EXIT_NOT_STARTED}',
        f'case "$want_size" in ""|*[!0-9]*) exit {EXIT_NOT_STARTED};; esac',
        f'case "$want_sum" in -) ;; *[!0-9a-f]*|"") exit {EXIT_NOT_STARTED};; esac',
    ]
    return _restore_script(workdir, expected, name, options, podman, import_previous)


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


def _restore_script(
    workdir: str,
    expected: list[str],
    name: str | None,
    options: CheckpointOptions | None,
    podman: Sequence[str],
    import_previous: str | None,
) -> list[str]:
    """The shared body: ``expected`` sets ``want_size`` and ``want_sum`` (``-``: none)."""
    validate_remote_path(workdir)
    archive = f"{workdir}/{ARCHIVE_NAME}"
    digest = f"{workdir}/{SUM_NAME}"
    output = quote(f"{workdir}/restore.out")
    errors = quote(f"{workdir}/restore.err")
    restore = restore_argv(
        archive, import_previous=import_previous, name=name, options=options, podman=podman
    )
    script = "\n".join(
        [
            *expected,
            f"size=$(wc -c < {quote(archive)}) || exit {EXIT_ARCHIVE_SIZE_MISMATCH}",
            'if [ "$size" -ne "$want_size" ]; then',
            '  echo "archive on this host has $size bytes, $want_size were sent" >&2',
            f"  exit {EXIT_ARCHIVE_SIZE_MISMATCH}",
            "fi",
            'if [ "$want_sum" != - ]; then',
            f"  sum=$(cut -d ' ' -f 1 < {quote(digest)})",
            '  if [ "$sum" != "$want_sum" ]; then',
            '    echo "archive SHA-256 on this host is $sum, the sent one was $want_sum" >&2',
            f"    exit {EXIT_ARCHIVE_CHECKSUM_MISMATCH}",
            "  fi",
            "fi",
            " ".join(quote(a) for a in restore) + f" > {output} 2> {errors} &",
            f"echo $! > {quote(f'{workdir}/{RESTORE_PID_NAME}')}",
            'wait "$!"',
            "status=$?",
            f"cat {output}",
            f"cat {errors} >&2",
            'exit "$status"',
        ]
    )
    return sh_script(script)


# -- rollback helpers --------------------------------------------------------------------
def wait_for_checkpoint_end(workdir: str, *, timeout_s: int, start_grace_s: int = 5) -> list[str]:
    """Wait until the checkpoint script in ``workdir`` has finished, then print its status.

    Prints ``never-started`` when the script's start marker has not appeared within
    ``start_grace_s`` seconds (sshd forks the command before it acknowledges the exec, but
    the script may not have written its marker yet when a rollback comes this fast: a
    checkpoint starting after we looked would stop a container nobody restores), and exits
    1 if the script is still running after ``timeout_s`` seconds.
    """
    validate_remote_path(workdir)
    started = quote(f"{workdir}/{CHECKPOINT_STARTED_NAME}")
    status = quote(f"{workdir}/{CHECKPOINT_STATUS_NAME}")
    return sh_script(
        "\n".join(
            [
                f"i=0; while [ ! -e {started} ] && [ $i -lt {int(start_grace_s) * 5} ]; do",
                "  sleep 0.2; i=$((i + 1))",
                "done",
                f"[ -e {started} ] || {{ echo never-started; exit 0; }}",
                f"i=0; while [ ! -e {status} ] && [ $i -lt {int(timeout_s) * 5} ]; do",
                "  sleep 0.2; i=$((i + 1))",
                "done",
                f"[ -e {status} ] || exit 1",
                f"cat {status}",
            ]
        )
    )


def wait_for_restore_end(workdir: str, *, timeout_s: int) -> list[str]:
    """Wait until no restore started from ``workdir`` is running any more.

    A restore whose reply was lost (interrupt, broken connection) may still be running on
    the target; deciding what to roll back before it ends could leave two running copies.
    """
    validate_remote_path(workdir)
    pid_file = quote(f"{workdir}/{RESTORE_PID_NAME}")
    return sh_script(
        "\n".join(
            [
                f"[ -e {pid_file} ] || exit 0",
                f"pid=$(cat {pid_file})",
                f'i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt {int(timeout_s) * 5} ]; do',
                "  sleep 0.2; i=$((i + 1))",
                "done",
                '! kill -0 "$pid" 2>/dev/null',
            ]
        )
    )


LOCK_HELD_EXIT = 75
LOCK_DIR = "/run/celestial-ssh"


def hold_migration_lock(container_id: str) -> list[str]:
    """Hold an exclusive lock for ``container_id`` on this host while stdin stays open.

    Prints ``locked`` once the lock is held; exits 75 at once if another migration holds
    it. The lock lives as long as the SSH channel: if the coordinator dies, sshd closes
    the channel, ``cat`` sees end of file, and the lock is released (no stale locks).
    """
    validate_container_name(container_id)
    inner = "echo locked && exec cat > /dev/null"
    # a root-only directory: in a world-writable one (/var/tmp, /run/lock) any local user
    # could hold the lock and block migrations
    lock_path = f"{LOCK_DIR}/lock.{container_id}"
    return sh_script(
        f"mkdir -p -m 0700 {LOCK_DIR} && "
        f"exec flock -n -E {LOCK_HELD_EXIT} {quote(lock_path)} sh -c {quote(inner)}"
    )
