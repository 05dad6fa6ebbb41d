"""Host-key messages in OpenSSH's words, and finding a host's line in known_hosts files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import paramiko
import pytest

from celestial_ssh import host_keys
from celestial_ssh.errors import ConnectionFailed, HostKeyRejected
from celestial_ssh.host_keys import (
    changed_host_key_message,
    find_known_host_entry,
    load_known_hosts,
    unknown_host_key_message,
)
from celestial_ssh.hosts import ResolvedHost
from celestial_ssh.ssh import SSHSession

needs_ssh_keygen = pytest.mark.skipif(
    shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen"
)


@pytest.fixture(scope="module")
def ecdsa() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


@pytest.fixture(scope="module")
def other_key() -> paramiko.PKey:
    return paramiko.ECDSAKey.generate()


@pytest.fixture(scope="module")
def rsa() -> paramiko.PKey:
    return paramiko.RSAKey.generate(1024)


def line(names: str, key: paramiko.PKey) -> str:
    return f"{names} {key.get_name()} {key.get_base64()}"


def ssh_keygen_fingerprint(key: paramiko.PKey, tmp_path: Path) -> str:
    public = tmp_path / f"{key.get_name()}.pub"
    public.write_text(line("", key).strip() + "\n")
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return listed.split()[1]  # "256 SHA256:... no comment (ECDSA)"


def host_on(port: int, known_hosts: tuple[str, ...] = ()) -> ResolvedHost:
    return ResolvedHost(
        name="lab-b", hostname="10.0.0.6", port=port, user="root", known_hosts_files=known_hosts
    )


# -- messages -------------------------------------------------------------------------------
@needs_ssh_keygen
@pytest.mark.parametrize("which", ["ecdsa", "rsa"])
def test_fingerprint_is_the_one_openssh_shows(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    key = request.getfixturevalue(which)
    expected = ssh_keygen_fingerprint(key, tmp_path)
    assert expected.startswith("SHA256:")
    assert f"key fingerprint {expected})" in unknown_host_key_message(host_on(22), key)
    assert f"\n{expected}.\n" in changed_host_key_message(host_on(22), key, None)


def test_unknown_host_key_message(ecdsa: paramiko.PKey) -> None:
    message = unknown_host_key_message(host_on(2222, ("/home/u/.ssh/known_hosts",)), ecdsa)
    lines = message.splitlines()
    assert lines[0] == (
        "No ECDSA host key is known for [10.0.0.6]:2222 and you have requested strict checking."
    )
    assert lines[1].startswith("Host key verification failed for 'lab-b' (key fingerprint SHA256:")
    assert "add it to /home/u/.ssh/known_hosts" in message
    assert "ssh-keyscan -p 2222 10.0.0.6" in message
    assert "--accept-new-host-keys" in message


def test_unknown_host_key_message_on_port_22_defaults_known_hosts(rsa: paramiko.PKey) -> None:
    message = unknown_host_key_message(host_on(22), rsa)
    assert message.startswith("No RSA host key is known for 10.0.0.6 and")
    assert "add it to ~/.ssh/known_hosts" in message


def test_changed_host_key_message_with_the_offending_line(ecdsa: paramiko.PKey) -> None:
    host = host_on(2222, ("/first/known_hosts", "/second/known_hosts"))
    message = changed_host_key_message(host, ecdsa, ("/second/known_hosts", 7))
    lines = message.splitlines()
    assert lines[:3] == [
        "@" * 59,
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @",
        "@" * 59,
    ]
    assert "IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!" in lines
    assert "The fingerprint for the ECDSA key sent by the remote host is" in lines
    assert any(text.startswith("SHA256:") and text.endswith(".") for text in lines)
    assert "Add correct host key in /second/known_hosts to get rid of this message." in lines
    assert "Offending ECDSA key in /second/known_hosts:7" in lines
    assert '  ssh-keygen -f "/second/known_hosts" -R "[10.0.0.6]:2222"' in lines
    assert (
        "Host key for [10.0.0.6]:2222 has changed and you have requested strict checking." in lines
    )
    assert lines[-1] == "Host key verification failed."


def test_changed_host_key_message_without_a_known_line(rsa: paramiko.PKey) -> None:
    message = changed_host_key_message(host_on(22, ("/kh",)), rsa, None)
    assert "Offending" not in message
    assert "The fingerprint for the RSA key sent by the remote host is" in message
    assert '  ssh-keygen -f "/kh" -R "10.0.0.6"' in message.splitlines()
    assert message.endswith("Host key verification failed.")


# -- find_known_host_entry ------------------------------------------------------------------
@pytest.fixture
def known_hosts(tmp_path: Path, ecdsa: paramiko.PKey, rsa: paramiko.PKey) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(
        "\n"  # blank lines count, as in OpenSSH's line numbers
        "\n"
        + line("github.com", rsa)
        + "\n"
        + line("[10.0.0.6]:2222", ecdsa)
        + "\n"
        + line("lab-c,10.0.0.7", ecdsa)
        + "\n"
        + line(paramiko.HostKeys.hash_host("[10.0.0.8]:2200"), ecdsa)
        + "\n"
    )
    return path


@pytest.mark.parametrize(
    ("name", "number"),
    [
        pytest.param("github.com", 3, id="plain"),
        pytest.param("[10.0.0.6]:2222", 4, id="bracketed-port"),
        pytest.param("lab-c", 5, id="first-of-two-names"),
        pytest.param("10.0.0.7", 5, id="second-of-two-names"),
        pytest.param("[10.0.0.8]:2200", 6, id="hashed"),
    ],
)
def test_find_known_host_entry(known_hosts: Path, name: str, number: int) -> None:
    assert find_known_host_entry([str(known_hosts)], name) == (str(known_hosts), number)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("10.0.0.6", id="same-host-other-port"),
        pytest.param("[10.0.0.8]:22", id="hashed-other-port"),
        pytest.param("lab-c.example", id="longer-name"),
        pytest.param("[github.com]:22", id="port-22-is-not-bracketed"),
    ],
)
def test_find_known_host_entry_misses(known_hosts: Path, name: str) -> None:
    assert find_known_host_entry([str(known_hosts)], name) is None


def test_find_known_host_entry_skips_missing_files(known_hosts: Path, tmp_path: Path) -> None:
    missing = str(tmp_path / "absent")
    assert find_known_host_entry([missing, str(known_hosts)], "lab-c") == (str(known_hosts), 5)
    assert find_known_host_entry([missing], "lab-c") is None
    assert find_known_host_entry([], "lab-c") is None


def test_find_known_host_entry_searches_files_in_order(
    tmp_path: Path, ecdsa: paramiko.PKey
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.write_text(line("other", ecdsa) + "\n")
    second.write_text(line("lab-c", ecdsa) + "\n" + line("other", ecdsa) + "\n")
    assert find_known_host_entry([str(first), str(second)], "other") == (str(first), 1)
    assert find_known_host_entry([str(first), str(second)], "lab-c") == (str(second), 1)


@needs_ssh_keygen
def test_find_known_host_entry_reads_lines_hashed_by_openssh(
    tmp_path: Path, ecdsa: paramiko.PKey, rsa: paramiko.PKey
) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(line("lab-a", rsa) + "\n" + line("[10.0.0.6]:2222", ecdsa) + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], capture_output=True, check=True)
    hashed = path.read_text()
    assert "10.0.0.6" not in hashed and hashed.count("|1|") == 2
    assert find_known_host_entry([str(path)], "[10.0.0.6]:2222") == (str(path), 2)
    assert find_known_host_entry([str(path)], "lab-a") == (str(path), 1)
    assert find_known_host_entry([str(path)], "lab-b") is None


def test_find_known_host_entry_skips_malformed_lines(tmp_path: Path, ecdsa: paramiko.PKey) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("only-one-field\nhost ssh-ed25519\n" + line("lab-c", ecdsa) + "\n")
    assert find_known_host_entry([str(path)], "lab-c") == (str(path), 3)


# lines paramiko cannot read: it raises hostkeys.InvalidHostKey (a bare Exception) for
# OpenSSH's markers and for comments of three or more words
UNREADABLE_LINES = [
    pytest.param("@cert-authority *.example.com {key}", id="cert-authority"),
    pytest.param("@revoked * {key}", id="revoked"),
    pytest.param("# managed by ansible, do not edit", id="long-comment"),
    pytest.param("# lab", id="short-comment"),
    pytest.param("lab-z ssh-rsa !!!not-base64!!!", id="bad-base64"),
    pytest.param("lab-z ssh-dss AAAAB3NzaC1kc3MAAAABAQ==", id="unsupported-type"),
]


def known_hosts_after(
    tmp_path: Path, unreadable: str, other_key: paramiko.PKey, entry: str
) -> Path:
    path = tmp_path / "known_hosts"
    first = unreadable.format(key=f"{other_key.get_name()} {other_key.get_base64()}")
    path.write_text(first + "\n" + entry + "\n")
    return path


@pytest.mark.parametrize("unreadable", UNREADABLE_LINES)
def test_find_known_host_entry_skips_lines_paramiko_cannot_read(
    tmp_path: Path, ecdsa: paramiko.PKey, other_key: paramiko.PKey, unreadable: str
) -> None:
    path = known_hosts_after(tmp_path, unreadable, other_key, line("[10.0.0.6]:2222", ecdsa))
    assert find_known_host_entry([str(path)], "[10.0.0.6]:2222") == (str(path), 2)


@pytest.mark.parametrize("unreadable", UNREADABLE_LINES)
def test_load_known_hosts_keeps_what_follows_unreadable_lines(
    tmp_path: Path, ecdsa: paramiko.PKey, other_key: paramiko.PKey, unreadable: str
) -> None:
    hashed = paramiko.HostKeys.hash_host("[10.0.0.6]:2222")
    path = known_hosts_after(tmp_path, unreadable, other_key, line(hashed, ecdsa))
    host_keys = paramiko.HostKeys()
    load_known_hosts(host_keys, str(path))
    assert host_keys.lookup("[10.0.0.6]:2222") == {ecdsa.get_name(): ecdsa}
    assert host_keys.lookup("lab-z") is None
    # a marker line's key is not a host key (a CA key must never match '*')
    assert host_keys.lookup("anything.example.com") is None


def test_load_known_hosts_of_a_missing_file(tmp_path: Path) -> None:
    host_keys = paramiko.HostKeys()
    load_known_hosts(host_keys, str(tmp_path / "absent"))
    assert len(host_keys) == 0


def test_connect_survives_a_known_hosts_file_with_marker_lines(
    tmp_path: Path,
    ecdsa: paramiko.PKey,
    other_key: paramiko.PKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = known_hosts_after(
        tmp_path, "@cert-authority *.example.com {key}", other_key, line("[10.0.0.6]:2222", ecdsa)
    )
    known: list[dict[str, paramiko.PKey] | None] = []

    def refused(self: paramiko.SSHClient, *args: object, **kwargs: object) -> None:
        known.append(self.get_host_keys().lookup("[10.0.0.6]:2222"))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(paramiko.SSHClient, "connect", refused)  # no network in unit tests
    session = SSHSession(host_on(2222, (str(path),)))
    with pytest.raises(ConnectionFailed, match=r"cannot connect to 10\.0\.0\.6 port 2222"):
        session.connect()
    assert known == [{ecdsa.get_name(): ecdsa}], "the entry after the marker was loaded"


# -- the host-key policy ----------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.notices: list[str] = []

    def __call__(self, message: str) -> None:
        self.notices.append(message)


def policy_for(
    mode: str, known_hosts: Path
) -> tuple[host_keys.HostKeyPolicy, paramiko.SSHClient, Recorder]:
    host = host_on(2222, (str(known_hosts),)).with_strict_host_key_checking(mode)
    notices = Recorder()
    return host_keys.HostKeyPolicy(host, notices), paramiko.SSHClient(), notices


def test_strict_policy_refuses_an_unknown_key(tmp_path: Path, ecdsa: paramiko.PKey) -> None:
    known_hosts = tmp_path / "known_hosts"
    policy, client, notices = policy_for("yes", known_hosts)
    with pytest.raises(HostKeyRejected) as caught:
        policy.missing_host_key(client, "[10.0.0.6]:2222", ecdsa)
    assert caught.value.host == "lab-b"
    assert "No ECDSA host key is known for [10.0.0.6]:2222" in caught.value.message
    assert not known_hosts.exists()
    assert notices.notices == []


def test_accept_new_records_the_key_where_openssh_finds_it(
    tmp_path: Path, ecdsa: paramiko.PKey
) -> None:
    known_hosts = tmp_path / "ssh" / "known_hosts"  # the directory is created too
    policy, client, notices = policy_for("accept-new", known_hosts)
    policy.missing_host_key(client, "[10.0.0.6]:2222", ecdsa)
    assert find_known_host_entry([str(known_hosts)], "[10.0.0.6]:2222") == (
        str(known_hosts),
        1,
    )
    reloaded = paramiko.HostKeys(str(known_hosts))
    assert reloaded.lookup("[10.0.0.6]:2222")[ecdsa.get_name()] == ecdsa
    assert client.get_host_keys().lookup("[10.0.0.6]:2222") is not None
    assert len(notices.notices) == 1
    assert notices.notices[0].startswith("Permanently added [10.0.0.6]:2222 (ECDSA SHA256:")


def test_no_checking_trusts_for_this_session_only(tmp_path: Path, ecdsa: paramiko.PKey) -> None:
    known_hosts = tmp_path / "known_hosts"
    policy, client, notices = policy_for("no", known_hosts)
    policy.missing_host_key(client, "[10.0.0.6]:2222", ecdsa)
    assert client.get_host_keys().lookup("[10.0.0.6]:2222") is not None
    assert not known_hosts.exists()
    assert notices.notices == []
