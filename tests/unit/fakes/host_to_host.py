"""The host-to-host data paths (``--data-path tls``, ``ssh``) on a
:class:`~tests.unit.fakes.lab.FakeLab`: the source's script that streams straight to the
target, and the answers each path needs before it can run, including the TLS link's proof
that the default data path (auto) asks for.
"""

from __future__ import annotations

from typing import Any

import pytest

from celestial_ssh import commands, tls_link
from celestial_ssh.migration import MigrationOptions
from celestial_ssh.ssh import CommandResult

from .lab import (
    ARCHIVE_BYTES,
    ARCHIVE_SHA,
    EXPORTED,
    SRC,
    TGT,
    DeferredFakeProcess,
    FakeLab,
    FakeProcess,
    LabSession,
    result,
    source_bytes,
)


class TLSExporter(FakeProcess):
    """The host-to-host source script (``--tls``, ``--direct``): it runs until the engine
    waits for its end, and says ``announcement`` (the archive is complete, unless empty)
    while podman still tidies up."""

    def __init__(
        self, session: LabSession, command: str, outcome: CommandResult, announcement: str
    ):
        super().__init__(session, command, outcome)
        self.stdout += announcement.encode()
        # an announcement the engine may restore with (it carries the digest)
        self.announces = ARCHIVE_SHA in announcement
        self.polls = 0
        self.timeouts = 3  # its first reads time out, as a quiet channel's do
        self.ended = False
        self.ended_before_go: bool | None = None

    def read(self, size: int) -> bytes:
        # once its ready line has been read
        if self.timeouts and not self.stdout.startswith(commands.READY_LINE):
            self.timeouts -= 1
            raise TimeoutError("timed out")
        return super().read(size)

    def is_running(self) -> bool:
        self.polls += 1
        # it ends by itself after a while: soon when it never announces, and in any case
        # long after the engine should have heard it
        return not self.ended and self.polls < (200_000 if self.announces else 50)

    def wait(self, timeout: float) -> CommandResult:
        if self.ended_before_go is None:
            went = any(
                isinstance(p, DeferredFakeProcess) and p.went for p in self.session.lab.processes
            )
            self.ended_before_go = not went
        self.ended = True
        return self.outcome


def tls_lab(
    lab: FakeLab,
    monkeypatch: pytest.MonkeyPatch,
    *,
    announces: bool = True,
    announcement: str = EXPORTED,
) -> list[TLSExporter]:
    """Answers for a ``--tls`` migration; returns the list its exporter will be put in."""
    for host in (SRC, TGT):
        lab.answer(host, "command -v socat", result("socat\n"))
        lab.answer(host, "tar -x --no-same-owner", result())  # the TLS credentials
    lab.answer(TGT, "SSH_CONNECTION", result("10.0.0.2\n"))
    lab.answer(TGT, "OPENSSL-LISTEN", result("celestial-ssh-listening 4433\n"))
    return host_to_host_lab(lab, monkeypatch, announcement if announces else "")


def direct_lab(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, announcement: str = EXPORTED
) -> list[TLSExporter]:
    """Answers for a ``--direct`` migration: the source logs in to the target, which says
    ready through that link; the link ends once the archive has landed."""
    lab.answer(SRC, "target.known_hosts", result())  # pinning, and the source's login check
    link_ended = f"{commands.LINK_ENDED_MARKER} 0\n" if announcement else ""
    return host_to_host_lab(lab, monkeypatch, announcement + link_ended)


def host_to_host_lab(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, announcement: str
) -> list[TLSExporter]:
    lab.answer(TGT, "stat -c %s", result(f"0\n{ARCHIVE_BYTES}\n"))  # the landing watch
    lab.answer(SRC, "container checkpoint", source_bytes(ARCHIVE_BYTES))
    exporters: list[TLSExporter] = []
    start = LabSession.start

    def starting(
        session: LabSession, argv: list[str], *, privileged: bool = True, **kwargs: Any
    ) -> Any:
        process = start(session, argv, privileged=privileged, **kwargs)
        if "container checkpoint" not in process.command:
            return process
        exporter = TLSExporter(session, process.command, process.outcome, announcement)
        lab.processes[lab.processes.index(process)] = exporter
        exporters.append(exporter)
        return exporter

    monkeypatch.setattr(LabSession, "start", starting)
    return exporters


def host_to_host_path(
    lab: FakeLab, monkeypatch: pytest.MonkeyPatch, path: str, announcement: str = EXPORTED
) -> tuple[list[TLSExporter], MigrationOptions]:
    """A ``--tls`` or ``--direct`` lab whose source announces ``announcement``."""
    if path == "tls":
        return tls_lab(lab, monkeypatch, announcement=announcement), MigrationOptions(
            tls=True, compression="none"
        )
    return direct_lab(lab, monkeypatch, announcement), MigrationOptions(
        direct=True, compression="none"
    )


# -- the TLS link's tools and proof (--data-path auto) -------------------------------------
# pieces of the command lines of the TLS link: the question for each end's program
# (tls_tool), the target's listener as python3 (tls_end.py listen) or socat runs it, and
# the source's end (direct_stream.sh, whose name follows its text) as the proof runs it or
# as either the proof or the archive does
TLS_TOOL = "import ssl, sys"
PYTHON_LISTENER = "' listen /"
SOCAT_LISTENER = "OPENSSL-LISTEN"
PROOF = "' direct-stream probe "
LINK_SCRIPT = "' direct-stream "
# what a listener prints once bound; and the proof's last line, PROOF_BYTES in a quarter
# second (its ready line is the fake's greeting: the script's text says ``echo ready``)
LISTENING = result(f"{tls_link.LISTENING_MARKER} 4433\n")
PROVED = result(f"{commands.PROBE_RESULT_MARKER} {tls_link.PROOF_BYTES} 250000\n")
# what the source's script says when its end of the link could not reach the target (a
# firewall dropping the packets): it exits before its ready line
LINK_BLOCKED = result(
    status=commands.EXIT_DIRECT_LINK_FAILED,
    stderr="tls-end: cannot connect to 10.0.0.2 port 4433: timed out\n",
)


def tls_ready(lab: FakeLab, source_tool: str = "python3", target_tool: str = "python3") -> None:
    """Answers for preparing the TLS link, up to and including its proof: each host's
    program for its end (``""``: neither socat nor python3), the target's address, the
    credentials, the listeners of either program, and a proof that passes. Lets the lab's
    default data path (auto) try the link (:attr:`FakeLab.proves_tls`)."""
    for host, tool in ((SRC, source_tool), (TGT, target_tool)):
        lab.answer(host, TLS_TOOL, result(f"{tool}\n" if tool else ""))
        lab.answer(host, "tar -x --no-same-owner", result())  # the TLS credentials
    lab.answer(TGT, "SSH_CONNECTION", result("10.0.0.2\n"))
    lab.answer(TGT, PYTHON_LISTENER, LISTENING)
    lab.answer(TGT, SOCAT_LISTENER, LISTENING)
    lab.answer(SRC, PROOF, PROVED)
    lab.proves_tls = True


def proving_tls_lab(
    lab: FakeLab,
    monkeypatch: pytest.MonkeyPatch,
    source_tool: str = "python3",
    target_tool: str = "python3",
) -> list[TLSExporter]:
    """Answers for a migration whose TLS link is proved, then carries the archive;
    returns the list its exporter will be put in (as :func:`tls_lab`)."""
    exporters = tls_lab(lab, monkeypatch)
    tls_ready(lab, source_tool, target_tool)
    return exporters


def block_the_tls_port(lab: FakeLab, monkeypatch: pytest.MonkeyPatch, needle: str) -> None:
    """The target's TLS port is blocked: the source's scripts holding ``needle`` (the
    proof's, or every one over the link) end with :data:`LINK_BLOCKED` before their ready
    line."""
    lab.answer(SRC, needle, LINK_BLOCKED)
    start = LabSession.start

    def starting(
        session: LabSession, argv: list[str], *, privileged: bool = True, **kwargs: Any
    ) -> Any:
        process = start(session, argv, privileged=privileged, **kwargs)
        if needle in process.command:
            process.stdout = process.outcome.stdout.encode()  # no greeting: it never got there
        return process

    monkeypatch.setattr(LabSession, "start", starting)
