"""Reaching a host: ConnectionSettings, privileges, and fabric under our host-key policy.

The host-key tests connect a real SSHSession (fabric's Connection, paramiko underneath)
to an SSH server running in this process on loopback, so the policy is proved where it
acts: fabric's constructor installs AutoAddPolicy, and an unknown key must still be
refused, a changed key must still give OpenSSH's warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from celestial_ssh import commands, connection, host_keys, hosts, ssh
from celestial_ssh.connection import (
    ConnectionSettings,
    accepting_new_host_keys,
    connection_settings,
    find_privileges,
)
from celestial_ssh.errors import ConnectionFailed, HostKeyRejected, PreflightFailed
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.ssh import SUDO_PREFIX, SSHSession
from tests.unit.fakes import FakeFleet, FakeSession, host


# -- an SSH server in this process --------------------------------------------------------------
class _Server(paramiko.ServerInterface):  # type: ignore[misc]
    """Any public key logs in; ``exec`` echoes the command, writes to stderr, exits 3."""

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        def answer() -> None:
            while channel.recv(1024):  # as a shell would: stdin read to its end first
                pass
            channel.sendall(b"ran: " + command)
            channel.sendall_stderr(b"a warning")
            channel.send_exit_status(3)
            channel.close()

        threading.Thread(target=answer, daemon=True).start()
        return True


class SSHServer:
    def __init__(self) -> None:
        self.key = paramiko.ECDSAKey.generate()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.key)
            self.transports.append(transport)
            # a client that refuses our key hangs up during the handshake: not an error here
            with contextlib.suppress(paramiko.SSHException, EOFError, OSError):
                transport.start_server(server=_Server())

    def close(self) -> None:
        self.listener.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
def server() -> Iterator[SSHServer]:
    running = SSHServer()
    yield running
    running.close()


@pytest.fixture
def client_key(tmp_path: Path) -> str:
    path = tmp_path / "id_ecdsa"
    paramiko.ECDSAKey.generate().write_private_key_file(str(path))
    return str(path)


def lab_host(server: SSHServer, key: str, known_hosts: Path, mode: str) -> ResolvedHost:
    return ResolvedHost(
        name="lab",
        hostname="127.0.0.1",
        port=server.port,
        user="root",
        identity_files=(key,),
        identities_only=True,
        known_hosts_files=(str(known_hosts),),
        strict_host_key_checking=mode,
        connect_timeout=5.0,
    )


def known_line(server: SSHServer, key: paramiko.PKey) -> str:
    return f"[127.0.0.1]:{server.port} {key.get_name()} {key.get_base64()}\n"


# -- fabric under our policy ----------------------------------------------------------------------
def test_fabric_connection_carries_our_policy_and_known_hosts(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    key = paramiko.ECDSAKey.generate()
    known_hosts.write_text(f"[10.0.0.6]:2222 {key.get_name()} {key.get_base64()}\n")
    resolved = ResolvedHost(
        name="lab-b", hostname="10.0.0.6", port=2222, known_hosts_files=(str(known_hosts),)
    )
    made = ssh.fabric_connection(resolved, lambda message: None)
    assert isinstance(made.client._policy, host_keys.HostKeyPolicy)  # not fabric's AutoAddPolicy
    assert made.client.get_host_keys().lookup("[10.0.0.6]:2222") is not None
    assert not made.is_connected  # fabric opens lazily: nothing connected yet
    assert made.gateway is False  # no ProxyJump of fabric's own
    assert made.ssh_config == {"hostname": "10.0.0.6"}  # no ssh_config file read by fabric
    assert made.connect_kwargs["transport_factory"] is ssh._fast_transport


def test_an_unknown_key_is_refused_under_strict_checking(
    server: SSHServer, client_key: str, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    session = SSHSession(lab_host(server, client_key, known_hosts, "yes"))
    with pytest.raises(HostKeyRejected) as caught:
        session.connect()
    assert f"No ECDSA host key is known for [127.0.0.1]:{server.port}" in caught.value.message
    assert "--accept-new-host-keys" in caught.value.message
    assert not session.is_connected and not known_hosts.exists()


@pytest.mark.parametrize("mode", ["yes", "accept-new", "no"])
def test_a_changed_key_gives_openssh_warning_whatever_the_mode(
    server: SSHServer, client_key: str, tmp_path: Path, mode: str
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(known_line(server, paramiko.ECDSAKey.generate()))
    session = SSHSession(lab_host(server, client_key, known_hosts, mode))
    with pytest.raises(HostKeyRejected) as caught:
        session.connect()
    message = caught.value.message
    assert "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @" in message
    assert f"Offending ECDSA key in {known_hosts}:1" in message
    assert f'ssh-keygen -f "{known_hosts}" -R "[127.0.0.1]:{server.port}"' in message


def test_accept_new_records_the_key_and_the_session_works(
    server: SSHServer, client_key: str, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    notices: list[str] = []
    with SSHSession(lab_host(server, client_key, known_hosts, "accept-new"), notices.append) as s:
        assert s.is_connected and s.answers()
        assert s.host_key() == (server.key.get_name(), server.key.get_base64())
        result = s.run(["echo", "hi there"], privileged=False, timeout=10)
    assert (result.exit_status, result.stdout, result.stderr) == (
        3,
        "ran: echo 'hi there'",
        "a warning",
    )
    assert known_hosts.read_text() == known_line(server, server.key)
    assert notices == [
        f"Permanently added [127.0.0.1]:{server.port} (ECDSA {host_keys._fingerprint(server.key)}) "
        f"to {known_hosts}."
    ]
    assert not s.is_connected  # the context manager closed it
    # the key is known now: strict checking lets the next connection in
    with SSHSession(lab_host(server, client_key, known_hosts, "yes")) as again:
        assert again.is_connected


def test_no_checking_trusts_the_key_without_recording_it(
    server: SSHServer, client_key: str, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    with SSHSession(lab_host(server, client_key, known_hosts, "no")) as session:
        assert session.is_connected
    assert not known_hosts.exists()


# -- ConnectionSettings ---------------------------------------------------------------------------
def test_resolve_uses_ssh_config_and_relaxes_strict_keys_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[str, Any]] = []

    def resolve_host(name: str, ssh_config: Any = None) -> ResolvedHost:
        asked.append((name, ssh_config))
        return host(name)

    monkeypatch.setattr(connection, "resolve_host", resolve_host)  # no `ssh -G` here
    plain = ConnectionSettings(ssh_config="/etc/lab/ssh_config")
    assert plain.resolve("a").strict_host_key_checking == "yes"
    relaxed = ConnectionSettings(ssh_config="/etc/lab/ssh_config", accept_new_host_keys=True)
    assert relaxed.resolve("b").strict_host_key_checking == "accept-new"
    assert asked == [("a", "/etc/lab/ssh_config"), ("b", "/etc/lab/ssh_config")]


def test_accept_new_leaves_no_and_accept_new_alone() -> None:
    for mode, expected in (("yes", "accept-new"), ("accept-new", "accept-new"), ("no", "no")):
        relaxed = accepting_new_host_keys(host().with_strict_host_key_checking(mode))
        assert relaxed.strict_host_key_checking == expected


def test_the_older_keyword_arguments_replace_the_settings_fields() -> None:
    def resolver(name: str) -> ResolvedHost:
        return host(name)

    base = ConnectionSettings(ssh_config="/a")
    assert connection_settings(None) == ConnectionSettings()
    assert connection_settings(base) is base
    merged = connection_settings(
        base, ssh_config="/b", accept_new_host_keys=True, host_resolver=resolver
    )
    assert (merged.ssh_config, merged.accept_new_host_keys) == ("/b", True)
    assert merged.host_resolver is resolver


def _answers(uid: str, sudo: int) -> dict[tuple[str, ...], tuple[int, str, str]]:
    return {
        tuple(commands.whoami()): (0, uid, ""),
        tuple(commands.sudo_works()): (sudo, "", "" if sudo == 0 else "sudo: no tty\n"),
    }


def test_connect_settles_privileges_once() -> None:
    fleet = FakeFleet()
    root = fleet.add(FakeSession(host("root-host"), _answers("0\n", 1)))
    deploy = fleet.add(FakeSession(host("sudo-host", user="deploy"), _answers("1000\n", 0)))
    settings = fleet.settings()
    assert settings.connect("root-host") is root and root.privileged_prefix == ()
    assert [argv for argv, _ in root.ran] == [tuple(commands.whoami())]
    assert settings.connect("sudo-host") is deploy and deploy.privileged_prefix == SUDO_PREFIX
    assert [argv for argv, _ in deploy.ran] == [
        tuple(commands.whoami()),
        tuple(commands.sudo_works()),
    ]
    assert all(prefix == () for _, prefix in deploy.ran)  # both asked without sudo


def test_connect_refuses_a_user_without_sudo_and_closes() -> None:
    fleet = FakeFleet()
    nobody = fleet.add(FakeSession(host("h", user="nobody"), _answers("1000\n", 1)))
    with pytest.raises(PreflightFailed) as caught:
        fleet.settings().connect("h")
    assert caught.value.message == (
        "h: user 'nobody' is not root and 'sudo -n' does not work (sudo: no tty)"
    )
    assert caught.value.hint is not None and "passwordless sudo for 'nobody'" in caught.value.hint
    assert nobody.closed


def test_open_asks_nothing_and_find_privileges_reports_the_refusal() -> None:
    fleet = FakeFleet()
    nobody = fleet.add(FakeSession(host("h", user="nobody"), _answers("1000\n", 1)))
    session = fleet.settings().open("h")
    assert session is nobody and nobody.ran == []
    found = find_privileges(session)  # type: ignore[arg-type]
    assert not found.ok and found.how is None
    assert found.refusal is not None and found.refusal.stderr == "sudo: no tty\n"


def test_a_jump_host_that_cannot_reach_the_host_says_so_and_leaves_nothing_open(
    server: SSHServer, client_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the in-process server logs the jump in, then refuses its direct-tcpip channel
    jump = lab_host(server, client_key, tmp_path / "known_hosts", "no")
    monkeypatch.setattr(hosts, "resolve_host", lambda text, config=None: jump)
    behind = dataclasses.replace(
        jump, name="behind", hostname="10.255.0.1", port=22, proxy_jump="jumpbox"
    )
    session = SSHSession(behind)
    with pytest.raises(
        ConnectionFailed, match=re.escape("jump host jumpbox could not reach 10.255.0.1:22")
    ):
        session.connect()
    assert not session.is_connected
    deadline = time.monotonic() + 5
    while any(t.is_active() for t in server.transports) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.transports, "the jump host was logged in to"
    assert not any(t.is_active() for t in server.transports), "the jump's connection was left open"
