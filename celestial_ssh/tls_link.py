"""``--tls``: the source streams the archive straight to the target over TLS, not SSH.

On our machines one SSH stream tops out near 590 MB/s with ``ssh`` and ``sshd`` each a
full core; the limit is OpenSSH's channel machinery, not its cipher. OpenSSL's AES-GCM
(socat at both ends) moves the same bytes for about a third of the CPU, which on a busy
2-core host is what the checkpoint's downtime is made of (bench/README.md).

Trust comes only from the SSH sessions the coordinator has already verified: it makes a
throwaway key and self-signed certificate for each end, gives each end its own key and
the other end's certificate over SSH (stdin, never a command line), and each end accepts
only that certificate. So the link is mutually authenticated and encrypted, with no CA,
no key reused across migrations, and no login of the source on the target (no forwarded
agent). The files live in the migration's private work directories and go with them.

The target listens on the address its SSH session arrived on (``$SSH_CONNECTION``), or on
the one the user gives (a separate data network, say), on a port of its choosing unless one
is given; the source connects there.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .errors import ConnectionFailed, InvalidInput, PreflightFailed
from .host_scripts import run_python_script, run_script
from .shell import sh_script, validate_remote_path

SOURCE_NAME = "celestial-ssh-source"
TARGET_NAME = "celestial-ssh-target"
# in each work directory: this end's key and certificate (socat's cert= takes both), the
# peer's certificate (its cafile=, the only one it trusts), and socat's log
IDENTITY_FILE = "tls.pem"
PEER_FILE = "tls-peer.crt"
LISTEN_LOG = "tls-listen.log"
LINK_LOG = "tls-link.log"
# socat's buffer: its default 8 KiB means a system call per 8 KiB
BUFFER_BYTES = 1 << 20
# spelled in tls_listen.sh: its exit status when socat ended before it listened, and
# what it prints once socat has bound its port
EXIT_TLS_LISTEN_FAILED = 93
LISTENING_MARKER = "celestial-ssh-listening"
# socat -d -d notices: the listener is bound (read by tls_listen.sh); the client's
# handshake (and certificate check) has succeeded
SOCAT_LISTENING = "listening on"
HANDSHAKE_DONE = "SSL connection using"
# what runs an end of the link, in order of preference: socat, else tls_end.py under the
# host's python3 (stock Debian, Ubuntu and Fedora have python3, CRIU's tools need it, but
# no socat); either end may be either, they speak the same TLS with the same files
SOCAT = "socat"
PYTHON = "python3"
TLS_TOOLS = (SOCAT, PYTHON)
TLS_END_SCRIPT = "tls_end.py"


@dataclass(frozen=True)
class TLSIdentity:
    """One end's throwaway credentials, PEM-encoded."""

    key_and_certificate: str
    certificate: str


@dataclass(frozen=True)
class TLSCredentials:
    """Both ends' identities for one migration."""

    source: TLSIdentity
    target: TLSIdentity


def make_identity(common_name: str, *, now: datetime | None = None) -> TLSIdentity:
    """A new P-256 key and a self-signed certificate for ``common_name``.

    Valid from a day before ``now`` to two days after it: the hosts' clocks need not agree
    with ours, and the files are gone when the migration's work directories are.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    moment = now or datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - timedelta(days=1))
        .not_valid_after(moment + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        # the peer trusts this certificate itself as its only anchor
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    return TLSIdentity(key_and_certificate=key_pem + certificate_pem, certificate=certificate_pem)


def make_credentials() -> TLSCredentials:
    return TLSCredentials(source=make_identity(SOURCE_NAME), target=make_identity(TARGET_NAME))


def credential_files(identity: TLSIdentity, peer: TLSIdentity) -> dict[str, str]:
    """What one end's work directory receives: file name -> content."""
    return {IDENTITY_FILE: identity.key_and_certificate, PEER_FILE: peer.certificate}


def ssh_server_address() -> list[str]:
    """Print the address this SSH session arrived on (run unprivileged: sudo drops
    ``SSH_CONNECTION``)."""
    return sh_script('set -- $SSH_CONNECTION; echo "$3"')


class _ZonedAddress(ValueError):
    """An IPv6 address with a zone (``%eth0``): it names an interface of one host only."""


def _plain_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``text`` as one IP address both ends can use: an IPv4-mapped IPv6 address becomes
    IPv4; one with a zone raises :class:`_ZonedAddress`, anything else ValueError."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            raise _ZonedAddress(text)
    return address


def parse_address(output: str, host: str = "the target") -> str:
    """The IP address :func:`ssh_server_address` printed on ``host``, checked."""
    text = output.strip()
    try:
        return str(_plain_address(text))
    except ValueError as error:
        raise PreflightFailed(
            f"{host}: cannot tell the address to listen on for --tls: SSH_CONNECTION gave "
            f"{text[:80]!r}",
            host=host,
            hint="sshd sets SSH_CONNECTION for every session; without it --tls cannot be "
            "used (plain or --direct migrations can).",
        ) from error


def socat_host(address: str) -> str:
    """``address`` as socat writes a host: IPv6 in brackets."""
    ip = ipaddress.ip_address(address)
    return f"[{ip}]" if ip.version == 6 else str(ip)


# TLS 1.2, not 1.3: in 1.3 the client finishes its handshake before the server has checked
# the client's certificate (a refusal would only show after the freeze), and the server's
# session tickets sit unread at a client that only writes, so its close() can reset the
# connection and lose the archive's tail (OpenSSL issue 10880). Both ends use ECDHE and an
# AEAD cipher either way.
PROTOCOL_OPTIONS = "openssl-min-proto-version=TLS1.2,openssl-max-proto-version=TLS1.2"


def _tls_options(workdir: str) -> str:
    validate_remote_path(workdir)
    return (
        f"cert={workdir}/{IDENTITY_FILE},cafile={workdir}/{PEER_FILE},verify=1," + PROTOCOL_OPTIONS
    )


def validate_address(text: str) -> str:
    """``text`` as an address the target can listen on and the source can connect to:
    one IP address (IPv4 or IPv6), written the canonical way."""
    hint = (
        "Give one of the target's own addresses that the source can reach, "
        "e.g. 10.0.0.12 or fd00::12."
    )
    try:
        address = _plain_address(text.strip() if isinstance(text, str) else text)
    except _ZonedAddress:
        raise InvalidInput(
            f"--tls-address {text!r} has a zone, which names an interface of one host only",
            hint=hint,
        ) from None
    except ValueError:
        raise InvalidInput(f"--tls-address {text!r} is not an IP address", hint=hint) from None
    if address.is_unspecified or address.is_multicast:
        raise InvalidInput(f"--tls-address {text!r} cannot be connected to", hint=hint)
    return str(address)


def check_address_option(address: str | None, *, tls: bool) -> None:
    """Refuse a ``--tls-address`` that is no usable address, or that comes without ``--tls``
    (for ``migrate`` and ``probe`` alike, before anything connects)."""
    if address is None:
        return
    validate_address(address)
    if not tls:
        raise InvalidInput("--tls-address needs --tls", hint="Add --tls, or leave out the address.")


def validate_port(port: int) -> int:
    """``port`` if it is a TCP port number or 0 (any free one)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInput(f"--tls-port {port!r} is not a TCP port (0-65535; 0: any free one)")
    return port


# the user the target's listener runs as once a connection is accepted, where it exists
# (spelled in tls_listen.sh)
UNPRIVILEGED_USER = "nobody"


def listen(
    workdir: str,
    address: str,
    output: str,
    *,
    digest: str | None = None,
    port: int = 0,
    stall_timeout_s: float,
    accept_timeout_s: float,
    tool: str = "socat",
) -> list[str]:
    """The target's end (``tls_listen.sh``): accept one TLS connection on ``address``,
    write what it carries to ``output`` (a path in ``workdir``, or /dev/null for a probe),
    hashing it on the way into ``digest`` when given (as ``land_archive`` does), then
    exit with socat's status.

    Ends with the caller's channel (its stdin). Prints ``celestial-ssh-listening PORT``
    once bound. From the accepted connection on, socat runs as :data:`UNPRIVILEGED_USER`
    where the host has that user. Gives up if nobody connects within ``accept_timeout_s``,
    or if nothing moves for ``stall_timeout_s`` plus that (its clock starts at the
    handshake, before the freeze; the coordinator's own stall check, which starts at the
    freeze, comes first).

    With ``tool`` "python3" (a host without socat, :func:`tls_tool`) it is ``tls_end.py``,
    with the same contract, except that a connection whose handshake fails (a stranger, a
    wrong certificate) is refused and the listener waits on for the source, and that it
    runs as :data:`UNPRIVILEGED_USER` from before the first connection.
    """
    validate_remote_path(workdir)
    if output != "/dev/null":
        validate_remote_path(output)
    if digest is not None:
        validate_remote_path(digest)
    idle_timeout = f"{stall_timeout_s + accept_timeout_s:g}"
    if _checked_tool(tool) == PYTHON:
        return run_python_script(
            TLS_END_SCRIPT,
            "listen",
            f"{workdir}/{LISTEN_LOG}",
            output,
            digest or "-",
            idle_timeout,
            str(ipaddress.ip_address(address)),
            str(validate_port(port)),
            f"{accept_timeout_s:g}",
            f"{workdir}/{IDENTITY_FILE}",
            f"{workdir}/{PEER_FILE}",
        )
    # socat 1.7 makes a listening socket IPv4 unless told otherwise
    family = ",pf=ip6" if ipaddress.ip_address(address).version == 6 else ""
    listen_address = (
        f"OPENSSL-LISTEN:{validate_port(port)},bind={socat_host(address)}{family},"
        f"{_tls_options(workdir)},accept-timeout={accept_timeout_s:g}"
    )
    return run_script(
        "tls_listen.sh",
        f"{workdir}/{LISTEN_LOG}",
        output,
        digest or "-",
        str(BUFFER_BYTES),
        idle_timeout,
        listen_address,
    )


_LISTENING_LINE = re.compile(rf"^{LISTENING_MARKER} ([0-9]{{1,5}})$")


def parse_listening(line: str, host: str = "the target") -> int:
    """The port in :func:`listen`'s first line, printed on ``host``."""
    match = _LISTENING_LINE.fullmatch(line.strip())
    port = int(match.group(1)) if match else 0
    if not 0 < port <= 65535:
        raise ConnectionFailed(
            f"{host}: the TLS listener said {line.strip()[:80]!r}, not a port", host=host
        )
    return port


def link(
    workdir: str,
    address: str,
    port: int,
    fifo: str,
    *,
    stall_timeout_s: float,
    connect_timeout_s: float = 30,
    tool: str = "socat",
) -> list[str]:
    """The source's end, as argv: connect to the target first (``-U``: socat opens its
    first address, the connection, before it waits on ``fifo`` for a writer), then send
    what is written into ``fifo``. Its log (stderr) shows :data:`HANDSHAKE_DONE` once the
    target's certificate passed. With ``tool`` "python3", ``tls_end.py`` does the same,
    and exits 0 only once the target has answered the end of the stream with its own."""
    validate_remote_path(workdir)
    validate_remote_path(fifo)
    if validate_port(port) == 0:
        raise InvalidInput("the source needs the target's actual port")
    if _checked_tool(tool) == PYTHON:
        return run_python_script(
            TLS_END_SCRIPT,
            "connect",
            str(ipaddress.ip_address(address)),
            str(port),
            f"{connect_timeout_s:g}",
            f"{stall_timeout_s:g}",
            f"{workdir}/{IDENTITY_FILE}",
            f"{workdir}/{PEER_FILE}",
            TARGET_NAME,
            fifo,
        )
    connect = (
        f"OPENSSL:{socat_host(address)}:{port},{_tls_options(workdir)},"
        f"commonname={TARGET_NAME},connect-timeout={connect_timeout_s:g}"
    )
    return [
        "socat",
        "-d",
        "-d",
        "-U",
        "-b",
        str(BUFFER_BYTES),
        "-T",
        f"{stall_timeout_s:g}",
        connect,
        f"OPEN:{fifo},rdonly",
    ]


def link_log(workdir: str) -> str:
    """Where the source's script keeps the link's socat log (it waits there for the
    handshake, and shows its tail when the link fails)."""
    return f"{validate_remote_path(workdir)}/{LINK_LOG}"


# how long the source's end tries to reach the target before it gives up
CONNECT_TIMEOUT_S = 30.0
# the proof that the link works (--data-path auto, doctor --links): a handshake and this
# much; the source tries this long to reach the target (a firewall that drops the packets
# costs this much, before any freeze), and the whole proof may take this long
PROOF_BYTES = 1 << 20
PROOF_CONNECT_TIMEOUT_S = 2.0
PROOF_TIMEOUT_S = 10.0


def tls_tool() -> list[str]:
    """Print the program this host's end of the TLS link runs: ``python3`` where it is
    3.6 or later and its ``ssl`` module imports, else ``socat`` where it is on PATH, else
    nothing (read by :func:`parse_tls_tool`). Ask it as the ends will run (privileged:
    sudo's PATH may differ from the login's).

    python3 first: its listener outlives a stranger's connection (socat's ends at the
    first failed handshake), and it moved as much per second for less CPU (tls_end.py);
    Debian's and Ubuntu's CRIU packages depend on it, socat is rarely installed."""
    return sh_script(
        f"if {PYTHON} -I -c 'import ssl, sys; sys.exit(sys.version_info < (3, 6))' "
        f">/dev/null 2>&1; then echo {PYTHON}; "
        f"elif command -v {SOCAT} >/dev/null 2>&1; then echo {SOCAT}; fi"
    )


def parse_tls_tool(output: str) -> str | None:
    """What :func:`tls_tool` printed: one of :data:`TLS_TOOLS`, or None when the host has
    neither (``--tls`` cannot use it)."""
    found = output.strip()
    return found if found in TLS_TOOLS else None


def required_tool(output: str, host: str) -> str:
    """What :func:`tls_tool` printed on ``host``; :class:`PreflightFailed` when it has
    neither tool."""
    tool = parse_tls_tool(output)
    if tool is None:
        raise PreflightFailed(
            f"{host}: no program for the TLS link (socat or python3)",
            host=host,
            hint="Install socat (e.g. apt-get install socat) or python3 there.",
        )
    return tool


def _checked_tool(tool: str) -> str:
    if tool not in TLS_TOOLS:
        raise ValueError(f"TLS tool {tool!r} is none of {', '.join(TLS_TOOLS)}")
    return tool
