"""``--tls``: throwaway credentials, the socat commands, and a real TLS link on loopback.

The last tests run the scripts with real ``sh``, ``socat`` and OpenSSL on 127.0.0.1
(``make deps`` installs socat): the link says ready only after the handshake, carries the
bytes, and refuses a peer whose certificate is not the one it was given.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from celestial_ssh import commands, host_scripts, tls_link
from celestial_ssh.data_plane import DataPlane, TLSEnds
from celestial_ssh.errors import ConnectionFailed, InvalidInput, PreflightFailed
from celestial_ssh.ssh import CommandResult

WORKDIR = "/var/tmp/celestial-ssh.abc123"


# -- credentials ---------------------------------------------------------------------------
def test_an_identity_is_a_fresh_self_signed_p256_certificate_with_its_key() -> None:
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    identity = tls_link.make_identity("celestial-ssh-target", now=now)
    certificate = x509.load_pem_x509_certificate(identity.certificate.encode())
    assert certificate.subject == certificate.issuer
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert [n.value for n in names] == ["celestial-ssh-target"]
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["celestial-ssh-target"]
    assert certificate.not_valid_before_utc == now - timedelta(days=1)
    assert certificate.not_valid_after_utc == now + timedelta(days=2)
    key = serialization.load_pem_private_key(identity.key_and_certificate.encode(), None)
    assert key.public_key().public_numbers() == certificate.public_key().public_numbers()  # type: ignore[union-attr]
    # socat's cert= file: the key, then the certificate
    assert identity.key_and_certificate.startswith("-----BEGIN PRIVATE KEY-----")
    assert identity.key_and_certificate.endswith(identity.certificate)
    assert "PRIVATE" not in identity.certificate


def test_every_migration_gets_new_keys_and_each_end_gets_the_others_certificate() -> None:
    first, second = tls_link.make_credentials(), tls_link.make_credentials()
    assert first.source.certificate != second.source.certificate
    assert first.source.certificate != first.target.certificate
    files = tls_link.credential_files(first.source, first.target)
    assert files == {
        "tls.pem": first.source.key_and_certificate,
        "tls-peer.crt": first.target.certificate,
    }


# -- addresses and ports -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("printed", "address", "socat"),
    [
        ("127.0.0.12\n", "127.0.0.12", "127.0.0.12"),
        ("10.1.2.3", "10.1.2.3", "10.1.2.3"),
        ("::1\n", "::1", "[::1]"),
        ("fe80:0:0::5\n", "fe80::5", "[fe80::5]"),
    ],
)
def test_the_target_address_comes_from_ssh_connection(
    printed: str, address: str, socat: str
) -> None:
    assert tls_link.parse_address(printed) == address
    assert tls_link.socat_host(address) == socat


def test_an_ipv4_mapped_target_address_is_used_as_ipv4() -> None:
    assert tls_link.parse_address("::ffff:10.0.0.6\n") == "10.0.0.6"
    assert tls_link.validate_address("::ffff:10.0.0.6") == "10.0.0.6"


def test_an_ipv6_listener_asks_socat_for_an_ipv6_socket() -> None:
    # socat 1.7 listens on IPv4 unless told otherwise, and then cannot bind an IPv6 address
    ipv6 = tls_link.listen(WORKDIR, "fd00::12", "/dev/null", stall_timeout_s=1, accept_timeout_s=1)
    ipv4 = tls_link.listen(WORKDIR, "10.0.0.6", "/dev/null", stall_timeout_s=1, accept_timeout_s=1)
    assert ipv6[-1].startswith("OPENSSL-LISTEN:0,bind=[fd00::12],pf=ip6,cert=")
    assert ipv4[-1].startswith("OPENSSL-LISTEN:0,bind=10.0.0.6,cert=")


@pytest.mark.parametrize(
    "printed", ["", "\n", "lab-b", "127.0.0.12 2222", "1.2.3.4;rm", "fe80::1%eth0"]
)
def test_an_unreadable_target_address_is_refused(printed: str) -> None:
    with pytest.raises(PreflightFailed, match="lab-b: cannot tell the address"):
        tls_link.parse_address(printed, "lab-b")


def test_the_address_is_read_unprivileged_from_the_third_field() -> None:
    script = tls_link.ssh_server_address()
    env = {"PATH": os.environ["PATH"], "SSH_CONNECTION": "10.0.0.1 51234 10.0.0.6 22"}
    out = subprocess.run(script, env=env, capture_output=True, text=True, check=True).stdout
    assert out == "10.0.0.6\n"


class RecordingSession:
    """Answers the address question with ``SSH_CONNECTION``'s and takes any files."""

    def __init__(self, name: str, ssh_server_address: str = "10.9.9.9\n") -> None:
        self.host = type("Host", (), {"name": name})()
        self.ssh_server_address = ssh_server_address
        self.commands: list[list[str]] = []
        self.received: list[bytes] = []

    def run(self, argv: list[str], **_options: object) -> CommandResult:
        self.commands.append(list(argv))
        said = "socat\n" if argv == tls_link.tls_tool() else self.ssh_server_address
        return CommandResult(self.host.name, " ".join(argv), 0, said, "")

    def start(self, argv: list[str], **_options: object) -> Receiver:
        self.commands.append(list(argv))
        return Receiver(self)


class Receiver:
    def __init__(self, session: RecordingSession) -> None:
        self.session = session

    def write(self, data: bytes) -> None:
        self.session.received.append(data)

    def close_stdin(self) -> None:
        pass

    def wait(self, _timeout: float) -> CommandResult:
        return CommandResult(self.session.host.name, "tar", 0, "", "")

    def kill(self) -> None:
        pass


def _prepare(address: str | None) -> tuple[str, RecordingSession, RecordingSession]:
    source, target = RecordingSession("lab-a"), RecordingSession("lab-b")
    ends = DataPlane("paramiko").prepare_tls(
        source,  # type: ignore[arg-type]
        target,  # type: ignore[arg-type]
        "/var/tmp/celestial-ssh.src",
        "/var/tmp/celestial-ssh.tgt",
        timeout=5,
        address=address,
    )
    assert (ends.source_tool, ends.target_tool) == ("socat", "socat")
    return ends.address, source, target


def test_the_target_listens_where_its_ssh_session_arrived_by_default() -> None:
    chosen, source, target = _prepare(None)
    assert chosen == "10.9.9.9"
    assert tls_link.ssh_server_address() in target.commands
    assert source.received and target.received, "both ends got their credentials"


@pytest.mark.parametrize(
    ("given", "address"),
    [("192.168.50.7", "192.168.50.7"), ("fd00:0::12", "fd00::12"), (" 10.0.0.6 ", "10.0.0.6")],
)
def test_a_given_tls_address_is_used_instead(given: str, address: str) -> None:
    chosen, _source, target = _prepare(given)
    assert chosen == address
    assert tls_link.ssh_server_address() not in target.commands
    listener = tls_link.listen(
        "/var/tmp/celestial-ssh.tgt", chosen, "/dev/null", stall_timeout_s=1, accept_timeout_s=1
    )
    assert listener[-1].startswith(f"OPENSSL-LISTEN:0,bind={tls_link.socat_host(address)},")


@pytest.mark.parametrize(
    ("given", "why"),
    [
        ("lab-b", "is not an IP address"),
        ("10.0.0.6:4433", "is not an IP address"),
        ("10.0.0.6;reboot", "is not an IP address"),
        ("", "is not an IP address"),
        ("0.0.0.0", "cannot be connected to"),
        ("::", "cannot be connected to"),
        ("224.0.0.1", "cannot be connected to"),
        ("fe80::1%eth0", "has a zone"),
    ],
)
def test_a_tls_address_that_cannot_be_a_target_is_refused(given: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why) as refused:
        tls_link.validate_address(given)
    assert "--tls-address" in refused.value.message


@pytest.mark.parametrize("port", [-1, 65536, True, "80"])
def test_a_port_outside_tcp_is_refused(port: object) -> None:
    with pytest.raises(InvalidInput, match="tls-port"):
        tls_link.validate_port(port)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "port"),
    [("celestial-ssh-listening 40123", 40123), ("celestial-ssh-listening 1\n", 1)],
)
def test_the_listener_announces_its_port(line: str, port: int) -> None:
    assert tls_link.parse_listening(line) == port


@pytest.mark.parametrize(
    "line", ["", "celestial-ssh-listening", "celestial-ssh-listening 0", "listening 4000"]
)
def test_a_listener_without_a_port_is_an_error(line: str) -> None:
    with pytest.raises(ConnectionFailed, match=r"lab-b: the TLS listener said .* not a port"):
        tls_link.parse_listening(line, "lab-b")


# -- the commands ----------------------------------------------------------------------------
def test_the_listener_command() -> None:
    """``tls_listen.sh`` with the listen address built here (its argv is pinned with the
    other scripts' in test_commands)."""
    argv = tls_link.listen(
        WORKDIR,
        "127.0.0.12",
        f"{WORKDIR}/checkpoint.tar",
        port=4433,
        stall_timeout_s=300,
        accept_timeout_s=60,
    )
    assert argv[:2] == ["sh", "-c"]
    assert argv[2] == host_scripts.script_text("tls_listen.sh")
    assert argv[3:] == [
        "tls-listen",
        f"{WORKDIR}/tls-listen.log",
        f"{WORKDIR}/checkpoint.tar",
        "-",
        "1048576",
        "360",
        "OPENSSL-LISTEN:4433,bind=127.0.0.12,"
        f"cert={WORKDIR}/tls.pem,cafile={WORKDIR}/tls-peer.crt,verify=1,"
        "openssl-min-proto-version=TLS1.2,openssl-max-proto-version=TLS1.2,accept-timeout=60",
    ]
    assert argv[2].startswith(
        "log=$1 output=$2 digest=$3 buffer_bytes=$4 idle_timeout_s=$5 listen_address=$6\n"
        "umask 077\nunprivileged=,su=nobody\nid -u nobody >/dev/null 2>&1 || unprivileged=\n"
    )
    assert (
        'socat -d -d -u -b "$buffer_bytes" -T "$idle_timeout_s" '
        '"$listen_address$unprivileged" - > "$landing" 2> "$log" &\n'
    ) in argv[2]
    hashed = tls_link.listen(
        WORKDIR,
        "127.0.0.12",
        f"{WORKDIR}/checkpoint.tar",
        digest=f"{WORKDIR}/checkpoint.sha256",
        stall_timeout_s=300,
        accept_timeout_s=60,
    )
    assert hashed[5:7] == [f"{WORKDIR}/checkpoint.tar", f"{WORKDIR}/checkpoint.sha256"]


def test_the_link_command_connects_before_it_opens_the_fifo() -> None:
    fifo = commands.direct_link_fifo(WORKDIR)
    argv = tls_link.link(WORKDIR, "::1", 4433, fifo, stall_timeout_s=300)
    assert argv == [
        "socat",
        "-d",
        "-d",
        "-U",  # the first address (the connection) is opened first, and only written
        "-b",
        "1048576",
        "-T",
        "300",
        f"OPENSSL:[::1]:4433,cert={WORKDIR}/tls.pem,cafile={WORKDIR}/tls-peer.crt,verify=1,"
        "openssl-min-proto-version=TLS1.2,openssl-max-proto-version=TLS1.2,"
        "commonname=celestial-ssh-target,connect-timeout=30",
        f"OPEN:{WORKDIR}/link.fifo,rdonly",
    ]


@pytest.mark.parametrize(
    "workdir", ["relative", "/tmp/a,b", "/tmp/a:b", "/tmp/a b", "/tmp/$(x)", "/tmp/../etc"]
)
def test_paths_that_socat_or_sh_would_read_otherwise_are_refused(workdir: str) -> None:
    with pytest.raises(InvalidInput):
        tls_link.listen(workdir, "::1", "/dev/null", stall_timeout_s=1, accept_timeout_s=1)
    with pytest.raises(InvalidInput):
        tls_link.link(workdir, "::1", 1, "/tmp/f", stall_timeout_s=1)


def test_the_link_needs_the_actual_port() -> None:
    with pytest.raises(InvalidInput, match="actual port"):
        tls_link.link(WORKDIR, "::1", 0, "/tmp/f", stall_timeout_s=1)


def test_a_link_program_must_be_a_plain_word() -> None:
    with pytest.raises(ValueError, match="plain word"):
        commands.DirectLink(("socat",), program="so cat")


def test_credentials_are_unpacked_private(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        entry = tarfile.TarInfo("tls.pem")
        entry.size, entry.mode = 6, 0o644
        archive.addfile(entry, io.BytesIO(b"secret"))
    subprocess.run(
        commands.receive_private_files(str(tmp_path)), input=buffer.getvalue(), check=True
    )
    assert (tmp_path / "tls.pem").read_bytes() == b"secret"
    assert (tmp_path / "tls.pem").stat().st_mode & 0o077 == 0


# -- a real link on loopback -------------------------------------------------------------------
needs_socat = pytest.mark.skipif(
    shutil.which("socat") is None, reason="socat is not installed (make deps installs it)"
)


SOCAT, PYTHON = tls_link.SOCAT, tls_link.PYTHON


def _pairs(*pairs: tuple[str, str]) -> list[object]:
    """(listener's tool, link's tool) pairs as parameters; socat's need socat."""
    return [
        pytest.param(
            listen,
            link,
            id=f"{listen}<-{link}",
            marks=[needs_socat] if SOCAT in (listen, link) else [],
        )
        for listen, link in pairs
    ]


# every mix: the ends of a migration choose their tool each on its own
ALL_PAIRS = _pairs((SOCAT, SOCAT), (SOCAT, PYTHON), (PYTHON, SOCAT), (PYTHON, PYTHON))
SAME_PAIRS = _pairs((SOCAT, SOCAT), (PYTHON, PYTHON))


def _end(workdir: Path, own: tls_link.TLSIdentity, peer: tls_link.TLSIdentity) -> str:
    workdir.mkdir()
    for name, text in tls_link.credential_files(own, peer).items():
        (workdir / name).write_text(text)
        (workdir / name).chmod(0o600)
    return str(workdir)


def _both_ends(tmp_path: Path) -> tuple[str, str]:
    """Work directories of a source and a target that were given each other's identity."""
    credentials = tls_link.make_credentials()
    source_dir = _end(tmp_path / "source", credentials.source, credentials.target)
    target_dir = _end(tmp_path / "target", credentials.target, credentials.source)
    return source_dir, target_dir


class Listener:
    def __init__(
        self,
        workdir: str,
        output: str,
        address: str = "127.0.0.1",
        digest: str | None = None,
        tool: str = "socat",
    ):
        self.tool = tool
        self.process = subprocess.Popen(
            tls_link.listen(
                workdir,
                address,
                output,
                digest=digest,
                stall_timeout_s=10,
                accept_timeout_s=10,
                tool=tool,
            ),
            stdin=subprocess.PIPE,  # the coordinator's channel, open while it waits
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.port = tls_link.parse_listening(self.process.stdout.readline().decode())

    def finish(self) -> tuple[int, str]:
        """Wait for the listener's end with its stdin open, as the coordinator does (closing
        it first would stop the listener)."""
        assert self.process.stderr is not None
        try:
            self.process.wait(timeout=15)
            err = self.process.stderr.read()
        finally:
            self.stop()
        return self.process.returncode, err.decode()

    def stop(self) -> None:
        _kill_group(self.process)

    def socat_uids(self) -> list[int]:
        """The real user IDs of the processes that hold the connection: the socat
        processes the listener's script started, or the python listener itself."""
        uids = []
        for status in Path("/proc").glob("[0-9]*/status"):
            with contextlib.suppress(OSError):
                fields = dict(
                    line.split(":", 1) for line in status.read_text().splitlines() if ":" in line
                )
                if (
                    self.tool == "socat"
                    and fields["Name"].strip() == "socat"
                    and int(fields["PPid"]) == self.process.pid
                ) or (self.tool != "socat" and int(fields["Pid"]) == self.process.pid):
                    uids.append(int(fields["Uid"].split()[0]))
        return uids


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill everything the script started, even after the script itself has ended (a
    socat it left behind is exactly what some of these tests look for)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _tls_link(
    source_dir: str, address: str, port: int, fifo: str, tool: str = "socat"
) -> commands.DirectLink:
    """The data plane's link from a ``tool`` end."""
    return DataPlane.tls_link(
        source_dir, TLSEnds(address, tool, "socat"), port, fifo, stall_timeout_s=10
    )


def _stream(
    source_dir: str,
    port: int,
    payload_file: Path,
    address: str = "127.0.0.1",
    tool: str = "socat",
) -> subprocess.Popen[bytes]:
    link = _tls_link(source_dir, address, port, commands.direct_link_fifo(source_dir), tool)
    checkpoint = ["cat", str(payload_file)]
    return subprocess.Popen(
        commands.direct_checkpoint_stream(checkpoint, source_dir, link),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.mark.parametrize(("listen_tool", "link_tool"), ALL_PAIRS)
@pytest.mark.parametrize("address", ["127.0.0.1", "::1"], ids=["ipv4", "ipv6"])
def test_a_tls_link_says_ready_after_the_handshake_and_carries_the_archive(
    tmp_path: Path, address: str, listen_tool: str, link_tool: str
) -> None:
    source_dir, target_dir = _both_ends(tmp_path)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(3 << 20))
    landed = Path(target_dir) / "checkpoint.tar"
    listener = Listener(target_dir, str(landed), address, tool=listen_tool)
    source = _stream(source_dir, listener.port, payload, address, tool=link_tool)
    try:
        assert source.stdout is not None and source.stdin is not None
        assert source.stdout.readline() == commands.READY_LINE
        assert "SSL connection using" in (Path(source_dir) / "tls-link.log").read_text()
        assert not landed.stat().st_size  # nothing moves before go
        # the target's end of the connection runs unprivileged (the test runs as root)
        assert listener.socat_uids() == [pwd.getpwnam("nobody").pw_uid]
        source.stdin.write(commands.GO_LINE)
        source.stdin.flush()
        _, err = source.communicate(timeout=15)
        assert source.returncode == 0, err
        status, listener_err = listener.finish()
        assert status == 0, listener_err
        assert landed.read_bytes() == payload.read_bytes()
        assert landed.stat().st_mode & 0o077 == 0
    finally:
        listener.stop()
        _kill_group(source)


def _land_hashed(
    target_dir: str,
    source_dir: str,
    payload: Path,
    listen_tool: str = SOCAT,
    link_tool: str = SOCAT,
) -> tuple[int, str, list[int]]:
    """Stream ``payload`` to a listener that hashes what lands into the target's work
    directory; its status and stderr, and the user IDs its connection was held by."""
    landed = Path(target_dir) / "checkpoint.tar"
    listener = Listener(
        target_dir, str(landed), digest=f"{target_dir}/checkpoint.sha256", tool=listen_tool
    )
    source = _stream(source_dir, listener.port, payload, tool=link_tool)
    try:
        assert source.stdout is not None and source.stdin is not None
        assert source.stdout.readline() == commands.READY_LINE
        uids = listener.socat_uids()
        source.stdin.write(commands.GO_LINE)
        source.stdin.flush()
        source.communicate(timeout=15)
        status, listener_err = listener.finish()
    finally:
        listener.stop()
        _kill_group(source)
    return status, listener_err, uids


@pytest.mark.parametrize(("listen_tool", "link_tool"), ALL_PAIRS)
def test_the_listener_hashes_the_archive_as_it_lands(
    tmp_path: Path, listen_tool: str, link_tool: str
) -> None:
    # --tls: the target's digest of what landed, for restore_import to compare with the
    # source's, is taken on the way in (tee, or the python end), never by reading the
    # archive again
    source_dir, target_dir = _both_ends(tmp_path)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(3 << 20))
    status, listener_err, uids = _land_hashed(
        target_dir, source_dir, payload, listen_tool, link_tool
    )
    assert status == 0, listener_err
    # socat still writes as the root shell opened its output, now a FIFO, then drops root
    assert uids == [pwd.getpwnam("nobody").pw_uid]
    landed = Path(target_dir) / "checkpoint.tar"
    assert landed.read_bytes() == payload.read_bytes()
    assert landed.stat().st_mode & 0o077 == 0
    expected = hashlib.sha256(payload.read_bytes()).hexdigest()
    digest = (Path(target_dir) / "checkpoint.sha256").read_text()
    assert digest.split()[0] == expected
    if listen_tool == PYTHON:  # as lib_hash_stdin.sh's openssl writes it
        assert digest == f"{expected} *stdin\n"
    assert sorted(p.name for p in Path(target_dir).iterdir() if "checkpoint" in p.name) == [
        "checkpoint.sha256",
        "checkpoint.tar",
    ]


@needs_socat
def test_a_listener_that_cannot_write_the_archive_fails(tmp_path: Path) -> None:
    source_dir, target_dir = _both_ends(tmp_path)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(1 << 20))
    (Path(target_dir) / "checkpoint.tar").mkdir()  # tee cannot open it, even as root
    status, listener_err, _ = _land_hashed(target_dir, source_dir, payload)
    assert status != 0
    assert "writing the archive failed" in listener_err


@needs_socat
def test_the_archive_lands_while_an_announcing_checkpoint_still_runs(tmp_path: Path) -> None:
    # podman tidies up the source for a while after its export: the link must see the end
    # of the archive when the checkpoint lets go of its stdout, not when it has ended
    source_dir, target_dir = _both_ends(tmp_path)
    payload = tmp_path / "payload"
    payload.write_bytes(os.urandom(1 << 20))
    landed = Path(target_dir) / "checkpoint.tar"
    listener = Listener(target_dir, str(landed), "127.0.0.1")
    announce = f"{commands.EXPORTED_MARKER} {1 << 20}"
    checkpoint = [
        "sh",
        "-c",
        f'cat {payload}; exec > /dev/null; echo "{announce}" >&5; sleep 5',
    ]
    link = DataPlane.tls_link(
        source_dir,
        TLSEnds("127.0.0.1", "socat", "socat"),
        listener.port,
        commands.direct_link_fifo(source_dir),
        stall_timeout_s=10,
    )
    source = subprocess.Popen(
        commands.direct_checkpoint_stream(checkpoint, source_dir, link),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert source.stdout is not None and source.stdin is not None
        assert source.stdout.readline() == commands.READY_LINE
        source.stdin.write(commands.GO_LINE)
        source.stdin.flush()
        # the announcement comes out on the script's stdout, to the coordinator
        assert source.stdout.readline().decode().strip() == announce
        started = time.monotonic()
        status, listener_err = listener.finish()
        assert status == 0, listener_err
        assert landed.read_bytes() == payload.read_bytes()
        assert time.monotonic() - started < 4
        # the source saw its link end too, and said so while the checkpoint runs on
        assert source.stdout.readline() == f"{commands.LINK_ENDED_MARKER} 0\n".encode()
        assert source.poll() is None, "the checkpoint still runs"
    finally:
        listener.stop()
        _kill_group(source)


@pytest.mark.parametrize(("listen_tool", "link_tool"), ALL_PAIRS)
def test_a_link_to_a_target_with_another_certificate_fails_before_ready(
    tmp_path: Path, listen_tool: str, link_tool: str
) -> None:
    credentials, stranger = tls_link.make_credentials(), tls_link.make_credentials()
    # the source was told the target's certificate; something else answers on the port
    source_dir = _end(tmp_path / "source", credentials.source, credentials.target)
    impostor_dir = _end(tmp_path / "impostor", stranger.target, credentials.source)
    payload = tmp_path / "payload"
    payload.write_bytes(b"memory")
    listener = Listener(impostor_dir, str(Path(impostor_dir) / "checkpoint.tar"), tool=listen_tool)
    started = time.monotonic()
    source = _stream(source_dir, listener.port, payload, tool=link_tool)
    try:
        out, err = source.communicate(commands.GO_LINE, timeout=15)
        assert source.returncode == commands.EXIT_DIRECT_LINK_FAILED
        assert b"ready" not in out
        assert "certificate verify failed" in err.decode()
        assert time.monotonic() - started < 10
        assert not (Path(impostor_dir) / "checkpoint.tar").read_bytes()
    finally:
        listener.stop()
        _kill_group(source)


@pytest.mark.parametrize(("listen_tool", "link_tool"), _pairs((SOCAT, SOCAT), (SOCAT, PYTHON)))
def test_a_socat_listener_refuses_a_client_with_another_certificate(
    tmp_path: Path, listen_tool: str, link_tool: str
) -> None:
    # (a python listener refuses it too, and waits on for the source: see below)
    credentials, stranger = tls_link.make_credentials(), tls_link.make_credentials()
    target_dir = _end(tmp_path / "target", credentials.target, credentials.source)
    # a client that knows the target's certificate but holds a key of its own
    stranger_dir = _end(tmp_path / "stranger", stranger.source, credentials.target)
    payload = tmp_path / "payload"
    payload.write_bytes(b"injected")
    landed = Path(target_dir) / "checkpoint.tar"
    listener = Listener(target_dir, str(landed), tool=listen_tool)
    source = _stream(stranger_dir, listener.port, payload, tool=link_tool)
    try:
        out, _ = source.communicate(commands.GO_LINE, timeout=15)
        # TLS 1.2: the client's handshake ends only after the server accepted its
        # certificate, so the source never says ready (nothing would be frozen)
        assert source.returncode == commands.EXIT_DIRECT_LINK_FAILED
        assert b"ready" not in out
        status, err = listener.finish()
        assert status != 0
        assert "certificate" in err
        assert landed.read_bytes() == b""
    finally:
        listener.stop()
        _kill_group(source)


@needs_socat
def test_a_listener_held_by_a_silent_peer_ends_with_the_coordinators_channel(
    tmp_path: Path,
) -> None:
    # a peer that connects and never speaks keeps socat in its handshake past every
    # timeout socat has; the coordinator giving up (its channel, the stdin, closing) ends it
    _source_dir, target_dir = _both_ends(tmp_path)
    listener = Listener(target_dir, str(Path(target_dir) / "checkpoint.tar"))
    try:
        with socket.create_connection(("127.0.0.1", listener.port)):
            deadline = time.monotonic() + 5
            while "accepting connection" not in (Path(target_dir) / "tls-listen.log").read_text():
                assert time.monotonic() < deadline, "the listener never accepted"
                time.sleep(0.05)
            assert len(listener.socat_uids()) == 1
            assert listener.process.stdin is not None
            listener.process.stdin.close()
            listener.process.wait(timeout=5)
            deadline = time.monotonic() + 5
            while listener.socat_uids():
                assert time.monotonic() < deadline, "socat outlived the coordinator's channel"
                time.sleep(0.05)
    finally:
        listener.stop()


@pytest.mark.parametrize(("listen_tool", "link_tool"), ALL_PAIRS)
def test_logs_left_by_a_probe_do_not_fool_the_next_listener_and_link(
    tmp_path: Path, listen_tool: str, link_tool: str
) -> None:
    source_dir, target_dir = _both_ends(tmp_path)
    (Path(target_dir) / "tls-listen.log").write_text("N listening on AF=2 127.0.0.1:1\n")
    (Path(source_dir) / "tls-link.log").write_text("N SSL connection using OLD\n")
    payload = tmp_path / "payload"
    payload.write_bytes(b"fresh")
    landed = Path(target_dir) / "checkpoint.tar"
    listener = Listener(target_dir, str(landed), tool=listen_tool)
    assert listener.port != 1
    source = _stream(source_dir, listener.port, payload, tool=link_tool)
    try:
        out, err = source.communicate(commands.GO_LINE, timeout=15)
        assert source.returncode == 0, err
        assert out == commands.READY_LINE + f"{commands.LINK_ENDED_MARKER} 0\n".encode()
        assert "OLD" not in (Path(source_dir) / "tls-link.log").read_text()
        assert listener.finish()[0] == 0
        assert landed.read_bytes() == b"fresh"
    finally:
        listener.stop()
        _kill_group(source)


@pytest.mark.parametrize(("listen_tool", "link_tool"), SAME_PAIRS)
def test_a_source_whose_reader_left_before_ready_ends_and_leaves_no_link(
    tmp_path: Path, listen_tool: str, link_tool: str
) -> None:
    source_dir, target_dir = _both_ends(tmp_path)
    payload = tmp_path / "payload"
    payload.write_bytes(b"memory")
    listener = Listener(target_dir, str(Path(target_dir) / "checkpoint.tar"), tool=listen_tool)
    source = _stream(source_dir, listener.port, payload, tool=link_tool)
    try:
        assert source.stdout is not None and source.stdin is not None
        source.stdout.close()  # the coordinator is gone before the link is ready
        time.sleep(1)
        source.stdin.close()
        assert source.wait(timeout=15) == commands.EXIT_NOT_STARTED
        time.sleep(0.5)
        with pytest.raises(ProcessLookupError):
            os.killpg(source.pid, 0)  # no socat is left waiting on the FIFO
    finally:
        listener.stop()
        _kill_group(source)
