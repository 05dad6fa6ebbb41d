"""What the host scripts say: greeting and go lines, marker lines, exit statuses.

The scripts under ``celestial_ssh/scripts/`` spell these words and numbers themselves
(their text is constant); the tests check that both sides agree. The parsers here read
what the scripts printed.
"""

from __future__ import annotations

from dataclasses import dataclass

# exit codes of our own scripts, distinct from podman's (125-127) and signals (128+)
EXIT_ARCHIVE_SIZE_MISMATCH = 98
EXIT_ARCHIVE_CHECKSUM_MISMATCH = 97
EXIT_FIFO_FAILED = 96
EXIT_DIRECT_LINK_FAILED = 95
# a gated stream that was never told to go (the coordinator gave up before the freeze)
EXIT_NOT_STARTED = 94

# A gated stream connects before the freeze and says READY_LINE on stdout; the freeze begins
# when the coordinator answers GO_LINE on its stdin. Measured here: an SSH handshake takes
# 0.5 s, and a pre-connected stream cut 0.6 s off the checkpoint of 256 MB.
READY_LINE = b"ready\n"
GO_LINE = b"go\n"

# the last stderr line of the checkpoint script: how many bytes of archive it wrote
SOURCE_BYTES_MARKER = "celestial-ssh-source-bytes"
# An announcing checkpoint script says this, with the archive's size (and its SHA-256 when
# it hashes), as soon as podman has written the whole archive: podman then still tears
# down the container's network and storage (0.15-0.25 s measured on our lab), which the
# restore need not wait for.
EXPORTED_MARKER = "celestial-ssh-exported"
# the file descriptor the announcement goes to (the script's caller opens it); a relayed
# stream says it on stderr instead, as its stdout is the archive
ANNOUNCE_FD = 5
# what a direct checkpoint stream says once its link has ended, with the link's status
LINK_ENDED_MARKER = "celestial-ssh-link-ended"
# a direct probe's last line: bytes sent and microseconds taken
PROBE_RESULT_MARKER = "celestial-ssh-probe"


def _marker_number(line: str, marker: str) -> int | None:
    fields = line.split()
    if len(fields) == 2 and fields[0] == marker and fields[1].isdigit():
        return int(fields[1])
    return None


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def parse_exported_archive(line: str) -> tuple[int, str | None] | None:
    """The archive's size and SHA-256 (None: not said) from an :data:`EXPORTED_MARKER`
    line, ``celestial-ssh-exported SIZE [SHA256]``; else None."""
    fields = line.split()
    if len(fields) == 3 and _is_digest(fields[2]):
        size = _marker_number(" ".join(fields[:2]), EXPORTED_MARKER)
        return None if size is None else (size, fields[2])
    size = _marker_number(line, EXPORTED_MARKER)
    return None if size is None else (size, None)


def parse_exported(line: str) -> int | None:
    """The archive's size from an :data:`EXPORTED_MARKER` line, else None."""
    exported = parse_exported_archive(line)
    return None if exported is None else exported[0]


def parse_link_ended(line: str) -> int | None:
    """The link's exit status from a :data:`LINK_ENDED_MARKER` line, else None."""
    return _marker_number(line, LINK_ENDED_MARKER)


@dataclass
class StreamAnnouncements:
    """What a checkpoint stream says during the freeze: a direct one on its stdout, a
    relayed one on its stderr.

    The restore may start once the archive is complete on the source (:data:`EXPORTED_MARKER`)
    and has landed on the target: over TLS the target's listener tells the coordinator
    that itself; over ``ssh`` (``link_must_end``) only the source sees its link end, and
    says so (:data:`LINK_ENDED_MARKER`); relayed, the coordinator sees the announced size
    pass and the target's landing end. With ``digest_required``, only an announcement
    that carries the archive's SHA-256 will do (the target checks it before restoring);
    without one the restore waits for the script's end, whose last line decides.
    """

    link_must_end: bool
    digest_required: bool = False
    exported: int | None = None
    exported_sha256: str | None = None
    link_status: int | None = None

    def add(self, line: str) -> None:
        exported, ended = parse_exported_archive(line), parse_link_ended(line)
        if exported is not None:
            self.exported, self.exported_sha256 = exported
        if ended is not None:
            self.link_status = ended

    @property
    def restorable_size(self) -> int | None:
        """The archive's size once the restore may start, else None."""
        if self.exported is None or (self.link_must_end and self.link_status != 0):
            return None
        if self.digest_required and self.exported_sha256 is None:
            return None
        return self.exported

    @property
    def link_failed(self) -> bool:
        return self.link_status not in (None, 0)


def without_markers(stderr: str) -> list[str]:
    """The lines of a checkpoint script's ``stderr`` that are not its marker lines (its
    size and digest, an announcement said there): what podman and the script said."""
    return [
        line
        for line in stderr.splitlines()
        if not line.startswith((SOURCE_BYTES_MARKER + " ", EXPORTED_MARKER + " "))
    ]


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
    return fields[1] if len(fields) == 2 and _is_digest(fields[1]) else None


def parse_probe_result(stdout: str) -> tuple[int, float] | None:
    """(bytes, seconds) from a direct probe's last line."""
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


def parse_landed_sizes(output: bytes) -> tuple[int | None, bytes]:
    """The last size in a landing watch's ``output``, and its unfinished line."""
    *lines, rest = output.split(b"\n")
    sizes = [int(line) for line in lines if line.strip().isdigit()]
    return (sizes[-1] if sizes else None), rest
