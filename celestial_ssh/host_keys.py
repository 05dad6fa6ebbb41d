"""Host keys as OpenSSH checks them: known_hosts files (hashed entries too), the
StrictHostKeyChecking policy (yes, accept-new, no), and OpenSSH's own words when a key is
unknown or has changed."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import paramiko

from .errors import HostKeyRejected
from .hosts import ResolvedHost


def _fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _key_type_label(key: paramiko.PKey) -> str:
    name = key.get_name()
    if "ed25519" in name:
        return "ED25519"
    if "ecdsa" in name:
        return "ECDSA"
    if "rsa" in name:
        return "RSA"
    return str(name).upper()


def find_known_host_entry(files: Sequence[str], lookup_name: str) -> tuple[str, int] | None:
    """The file and line number holding a key for ``lookup_name`` (hashed entries too)."""
    for path in files:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, start=1):
            entry = _parse_known_hosts_line(line, number)
            if entry is None:
                continue
            for name in entry.hostnames:
                if name == lookup_name or (
                    name.startswith("|1|")
                    and paramiko.HostKeys.hash_host(lookup_name, name) == name
                ):
                    return path, number
    return None


def _parse_known_hosts_line(line: str, number: int) -> paramiko.hostkeys.HostKeyEntry | None:
    """One known_hosts entry, or None for comments, blank lines, markers and lines paramiko
    cannot read (it raises InvalidHostKey, a bare Exception, for some of those)."""
    text = line.strip()
    # @cert-authority and @revoked are OpenSSH features paramiko does not implement
    if not text or text.startswith(("#", "@")):
        return None
    try:
        return paramiko.hostkeys.HostKeyEntry.from_line(text, number)
    except Exception:
        return None


def load_known_hosts(host_keys: paramiko.HostKeys, path: str) -> None:
    """Add every readable entry of ``path`` to ``host_keys``, skipping what paramiko cannot
    read instead of giving up on the whole file (as ``HostKeys.load`` does)."""
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return
    for number, line in enumerate(lines, start=1):
        entry = _parse_known_hosts_line(line, number)
        if entry is None or entry.key is None:
            continue
        for name in entry.hostnames:
            host_keys.add(name, entry.key.get_name(), entry.key)


def unknown_host_key_message(host: ResolvedHost, key: paramiko.PKey) -> str:
    return (
        f"No {_key_type_label(key)} host key is known for {host.known_hosts_name} "
        f"and you have requested strict checking.\n"
        f"Host key verification failed for {host.name!r} "
        f"(key fingerprint {_fingerprint(key)}).\n"
        f"Check the fingerprint with the host's administrator, then either add it to "
        f"{_first_known_hosts(host)} (e.g. ssh-keyscan -p {host.port} {host.hostname}) "
        f"or rerun with --accept-new-host-keys."
    )


def changed_host_key_message(
    host: ResolvedHost, offered: paramiko.PKey, entry: tuple[str, int] | None
) -> str:
    known_file = entry[0] if entry else _first_known_hosts(host)
    lines = [
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
        "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
        "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!",
        "Someone could be eavesdropping on you right now (man-in-the-middle attack)!",
        "It is also possible that a host key has just been changed.",
        f"The fingerprint for the {_key_type_label(offered)} key sent by the remote host is",
        f"{_fingerprint(offered)}.",
        "Please contact your system administrator.",
        f"Add correct host key in {known_file} to get rid of this message.",
    ]
    if entry:
        lines.append(f"Offending {_key_type_label(offered)} key in {entry[0]}:{entry[1]}")
    lines += [
        "  remove with:",
        f'  ssh-keygen -f "{known_file}" -R "{host.known_hosts_name}"',
        f"Host key for {host.known_hosts_name} has changed and you have requested strict checking.",
        "Host key verification failed.",
    ]
    return "\n".join(lines)


def _first_known_hosts(host: ResolvedHost) -> str:
    return host.known_hosts_files[0] if host.known_hosts_files else "~/.ssh/known_hosts"


class HostKeyPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """StrictHostKeyChecking as OpenSSH means it: yes, accept-new, or no."""

    def __init__(self, host: ResolvedHost, notice: Callable[[str], None]):
        self.host = host
        self.notice = notice

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        mode = self.host.strict_host_key_checking
        if mode == "yes":
            raise HostKeyRejected(unknown_host_key_message(self.host, key), host=self.host.name)
        client.get_host_keys().add(hostname, key.get_name(), key)
        if mode == "accept-new":
            path = Path(_first_known_hosts(self.host)).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with path.open("a") as known_hosts:
                known_hosts.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            self.notice(
                f"Permanently added {hostname} ({_key_type_label(key)} {_fingerprint(key)}) "
                f"to {path}."
            )
