"""Host resolution: OpenSSH's own ``ssh -G`` on a temporary ssh_config, and its parsing."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from celestial_ssh import hosts
from celestial_ssh.errors import HostConfigError, InvalidInput
from celestial_ssh.hosts import ResolvedHost, parse_ssh_g_output, resolve_host

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")


# -- parse_ssh_g_output -------------------------------------------------------------------
def test_parse_ssh_g_output() -> None:
    output = (
        "host lab-a\n"
        "User alice\n"
        "hostname 10.0.0.5\n"
        "port 2222\n"
        "identityfile ~/.ssh/id_lab\n"
        "identityfile /keys/second\n"
        "userknownhostsfile /kh/one /kh/two\n"
        "\n"
        "   sendenv   LANG  \n"
        "sendenv LC_*\n"
        "forwardagent\n"
    )
    assert parse_ssh_g_output(output) == {
        "host": ["lab-a"],
        "user": ["alice"],  # keys are lowercased
        "hostname": ["10.0.0.5"],
        "port": ["2222"],
        "identityfile": ["~/.ssh/id_lab", "/keys/second"],  # repeated keys accumulate
        "userknownhostsfile": ["/kh/one /kh/two"],  # one value, split later
        "sendenv": ["LANG", "LC_*"],
        "forwardagent": [""],
    }


def test_parse_ssh_g_output_of_nothing() -> None:
    assert parse_ssh_g_output("") == {}
    assert parse_ssh_g_output("\n\n  \n") == {}


# -- ResolvedHost ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hostname", "port", "expected"),
    [
        pytest.param("10.0.0.5", 22, "10.0.0.5", id="port-22"),
        pytest.param("10.0.0.5", 2222, "[10.0.0.5]:2222", id="other-port"),
        pytest.param("lab-a.example", 22, "lab-a.example", id="name-22"),
        pytest.param("::1", 2200, "[::1]:2200", id="ipv6-other-port"),
    ],
)
def test_known_hosts_name(hostname: str, port: int, expected: str) -> None:
    assert ResolvedHost(name="x", hostname=hostname, port=port).known_hosts_name == expected


def test_with_strict_host_key_checking_returns_a_copy() -> None:
    host = ResolvedHost(name="lab-a", hostname="10.0.0.5", port=2222, user="alice")
    relaxed = host.with_strict_host_key_checking("accept-new")
    assert relaxed.strict_host_key_checking == "accept-new"
    assert host.strict_host_key_checking == "yes"  # frozen: the original is unchanged
    assert (relaxed.name, relaxed.hostname, relaxed.port, relaxed.user) == (
        "lab-a",
        "10.0.0.5",
        2222,
        "alice",
    )


# -- resolve_host with a real ssh -G ---------------------------------------------------------
@pytest.fixture
def config(tmp_path: Path) -> Path:
    included = tmp_path / "included.conf"
    included.write_text(
        "Host from-include\n    HostName included.example\n    Port 2201\n    User carol\n"
    )
    path = tmp_path / "ssh_config"
    path.write_text(
        f"Include {included}\n"  # relative Includes would resolve under ~/.ssh
        "\n"
        "Host lab-a\n"
        "    HostName 10.0.0.5\n"
        "    Port 2222\n"
        "    User alice\n"
        "    IdentityFile ~/.ssh/id_lab\n"
        f"    IdentityFile {tmp_path}/keys/second\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {tmp_path}/kh1 {tmp_path}/kh2\n"
        "    StrictHostKeyChecking accept-new\n"
        "    ProxyJump jumper@bastion:2200\n"
        "    ConnectTimeout 7\n"
        "\n"
        "Host shk-yes\n    StrictHostKeyChecking yes\n"
        "Host shk-no\n    StrictHostKeyChecking no\n"
        "Host shk-ask\n    StrictHostKeyChecking ask\n"
        "Host jump-none\n    ProxyJump none\n"
        "\n"
        "Host *\n"
        f"    UserKnownHostsFile {tmp_path}/known_hosts\n"
    )
    return path


@needs_ssh
def test_resolve_host_applies_every_option(config: Path, tmp_path: Path) -> None:
    host = resolve_host("lab-a", config)
    assert host.name == "lab-a"
    assert host.hostname == "10.0.0.5"
    assert host.port == 2222
    assert host.user == "alice"
    assert host.identity_files == (
        os.path.expanduser("~/.ssh/id_lab"),
        f"{tmp_path}/keys/second",
    )
    assert host.identities_only is True
    assert host.known_hosts_files == (f"{tmp_path}/kh1", f"{tmp_path}/kh2")
    assert host.strict_host_key_checking == "accept-new"
    assert host.proxy_jump == "jumper@bastion:2200"
    assert host.connect_timeout == 7.0
    assert host.ssh_config == str(config)
    assert host.known_hosts_name == "[10.0.0.5]:2222"


@needs_ssh
def test_resolve_host_follows_include(config: Path) -> None:
    host = resolve_host("from-include", config)
    assert (host.hostname, host.port, host.user) == ("included.example", 2201, "carol")


@needs_ssh
def test_resolve_host_defaults(config: Path, tmp_path: Path) -> None:
    host = resolve_host("plain.example", config)
    assert host.hostname == "plain.example"
    assert host.port == 22
    assert host.known_hosts_name == "plain.example"
    assert host.proxy_jump is None
    assert host.connect_timeout == 15.0  # ssh -G prints "connecttimeout none"
    assert host.identities_only is False
    assert host.strict_host_key_checking == "yes"  # "ask" cannot ask anyone: yes
    assert host.known_hosts_files == (f"{tmp_path}/known_hosts",)
    # without IdentityFile, ssh -G lists OpenSSH's default keys, expanded
    assert os.path.expanduser("~/.ssh/id_ed25519") in host.identity_files
    assert all(not path.startswith("~") for path in host.identity_files)


@needs_ssh
@pytest.mark.parametrize(
    ("alias", "policy"),
    [
        pytest.param("shk-yes", "yes", id="yes"),
        pytest.param("shk-no", "no", id="no"),
        pytest.param("shk-ask", "yes", id="ask-means-yes"),
        pytest.param("lab-a", "accept-new", id="accept-new"),
    ],
)
def test_resolve_host_strict_host_key_checking(config: Path, alias: str, policy: str) -> None:
    assert resolve_host(alias, config).strict_host_key_checking == policy


@needs_ssh
def test_resolve_host_proxy_jump_none(config: Path) -> None:
    assert resolve_host("jump-none", config).proxy_jump is None


@needs_ssh
@pytest.mark.parametrize(
    ("text", "user", "port", "known_hosts_name"),
    [
        pytest.param("bob@lab-a:2300", "bob", 2300, "[10.0.0.5]:2300", id="user-and-port"),
        pytest.param("bob@lab-a", "bob", 2222, "[10.0.0.5]:2222", id="user-only"),
        pytest.param("lab-a:22", "alice", 22, "10.0.0.5", id="port-22"),
    ],
)
def test_command_line_user_and_port_override_the_config(
    config: Path, text: str, user: str, port: int, known_hosts_name: str
) -> None:
    host = resolve_host(text, config)
    assert host.name == text
    assert host.hostname == "10.0.0.5"  # the alias still applies
    assert (host.user, host.port) == (user, port)
    assert host.known_hosts_name == known_hosts_name


@needs_ssh
def test_resolve_host_ipv6(config: Path) -> None:
    host = resolve_host("root@[::1]:2200", config)
    assert (host.hostname, host.port, host.user) == ("::1", 2200, "root")
    assert host.known_hosts_name == "[::1]:2200"


def test_missing_ssh_config_is_a_host_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-config"
    with pytest.raises(HostConfigError) as caught:
        resolve_host("lab-a", missing)
    assert str(missing) in caught.value.message
    assert "--ssh-config" in (caught.value.hint or "")


def test_a_directory_is_not_an_ssh_config(tmp_path: Path) -> None:
    with pytest.raises(HostConfigError):
        resolve_host("lab-a", tmp_path)


@needs_ssh
def test_a_broken_ssh_config_is_a_host_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ssh_config"
    path.write_text("Host lab-a\n    Port not-a-number\n")
    with pytest.raises(HostConfigError) as caught:
        resolve_host("lab-a", path)
    assert caught.value.host == "lab-a"
    assert "lab-a" in caught.value.message


def test_an_invalid_host_is_refused_before_ssh_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_subprocess(*args: object, **kwargs: object) -> None:
        raise AssertionError("ssh -G must not run for an invalid host")

    monkeypatch.setattr(hosts.subprocess, "run", no_subprocess)
    with pytest.raises(InvalidInput):
        resolve_host("-oProxyCommand=touch /tmp/pwned")


@needs_ssh
def test_ssh_g_gets_the_host_after_double_dash(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    real_run = hosts.subprocess.run

    def recording_run(argv: list[str], **kwargs: object):
        seen.append(argv)
        return real_run(argv, **kwargs)

    monkeypatch.setattr(hosts.subprocess, "run", recording_run)
    resolve_host("bob@lab-a:2300", config)
    assert seen == [["ssh", "-G", "-F", str(config), "-l", "bob", "-p", "2300", "--", "lab-a"]]


# -- the paramiko fallback, when no ssh client is installed ---------------------------------
def test_resolve_host_without_ssh_uses_paramiko(
    config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hosts.shutil, "which", lambda name: None)
    host = resolve_host("lab-a", config)
    assert (host.hostname, host.port, host.user) == ("10.0.0.5", 2222, "alice")
    assert host.identity_files[0] == os.path.expanduser("~/.ssh/id_lab")
    assert host.strict_host_key_checking == "accept-new"
    assert host.proxy_jump == "jumper@bastion:2200"
    overridden = resolve_host("bob@lab-a:2300", config)
    assert (overridden.user, overridden.port) == ("bob", 2300)


def test_resolve_host_without_ssh_or_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hosts.shutil, "which", lambda name: None)
    monkeypatch.setattr(hosts, "DEFAULT_SSH_CONFIG", tmp_path / "absent")
    host = resolve_host("deploy@10.1.2.3")
    assert (host.hostname, host.port, host.user) == ("10.1.2.3", 22, "deploy")
    assert host.known_hosts_files == (
        os.path.expanduser("~/.ssh/known_hosts"),
        os.path.expanduser("~/.ssh/known_hosts2"),
    )
