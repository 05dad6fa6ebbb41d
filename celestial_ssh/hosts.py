"""Hosts as users write them: an ssh_config alias or ``[user@]host[:port]``.

Resolution is done by OpenSSH itself (``ssh -G``), so ``Include``, ``Match``, ``ProxyJump``
and every default behave exactly as they do for the user's own ``ssh``; paramiko's
``SSHConfig`` is the fallback when no ``ssh`` client is installed.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import HostConfigError, InvalidInput

_HOST_SPEC = re.compile(
    r"""^(?:(?P<user>[A-Za-z0-9_][A-Za-z0-9_.-]*)@)?
        (?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_][A-Za-z0-9_.-]*))
        (?::(?P<port>[0-9]{1,5}))?$""",
    re.VERBOSE,
)

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")


@dataclass(frozen=True)
class HostSpec:
    """A host as given on the command line, before ssh_config is applied."""

    text: str
    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostSpec:
        match = _HOST_SPEC.fullmatch(text)
        if not match:
            raise InvalidInput(
                f"{text!r} is not a host: expected an ssh_config alias or [user@]host[:port]",
                hint="Host names may hold letters, digits, '.', '_' and '-'; "
                "an IPv6 address goes in brackets, e.g. root@[::1]:2222.",
            )
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise InvalidInput(f"{text!r}: port {port} is out of range (1-65535)")
        return cls(
            text=text,
            host=match["ipv6"] or match["host"],
            user=match["user"],
            port=port,
        )


@dataclass(frozen=True)
class ResolvedHost:
    """Everything needed to open an SSH connection to one host."""

    name: str  # what the user wrote; used in every message
    hostname: str
    port: int = 22
    user: str = "root"
    identity_files: tuple[str, ...] = ()
    identities_only: bool = False
    known_hosts_files: tuple[str, ...] = ()
    strict_host_key_checking: str = "yes"  # yes | accept-new | no
    proxy_jump: str | None = None
    connect_timeout: float = 15.0
    ssh_config: str | None = None
    options: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    become: bool = False  # run podman and criu through `sudo -n` on this host

    @property
    def known_hosts_name(self) -> str:
        """The name OpenSSH and paramiko look the host key up by."""
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    def with_strict_host_key_checking(self, policy: str) -> ResolvedHost:
        return replace(self, strict_host_key_checking=policy)


def _expand(path: str) -> str:
    return os.path.expanduser(path)


def _strictness(value: str | None) -> str:
    value = (value or "ask").lower()
    if value in ("no", "false", "off"):
        return "no"
    if value == "accept-new":
        return "accept-new"
    # "ask" cannot ask anyone here: treat it as "yes", which is what a batch tool must do
    return "yes"


def _ssh_config_path(ssh_config: str | os.PathLike[str] | None) -> str | None:
    if ssh_config is None:
        return None
    path = Path(ssh_config).expanduser()
    if not path.is_file():
        raise HostConfigError(
            f"ssh_config file {str(path)!r} does not exist",
            hint="Pass an existing file with --ssh-config, or leave it out to use ~/.ssh/config.",
        )
    return str(path)


def resolve_host(text: str, ssh_config: str | os.PathLike[str] | None = None) -> ResolvedHost:
    """Resolve ``text`` (alias or ``[user@]host[:port]``) the way ``ssh`` would."""
    spec = HostSpec.parse(text)
    config_path = _ssh_config_path(ssh_config)
    if shutil.which("ssh"):
        options = _ssh_g(spec, config_path)
    else:
        options = _paramiko_lookup(spec, config_path)
    return _resolved_from_options(spec, options, config_path)


def _ssh_g(spec: HostSpec, config_path: str | None) -> dict[str, list[str]]:
    argv = ["ssh", "-G"]
    if config_path:
        argv += ["-F", config_path]
    if spec.user:
        argv += ["-l", spec.user]
    if spec.port:
        argv += ["-p", str(spec.port)]
    argv += ["--", spec.host]
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise HostConfigError(f"cannot run 'ssh -G' to resolve {spec.text!r}: {error}") from error
    if completed.returncode != 0:
        raise HostConfigError(
            f"ssh_config could not be applied to {spec.text!r}: {completed.stderr.strip()}",
            host=spec.text,
        )
    return parse_ssh_g_output(completed.stdout)


def parse_ssh_g_output(output: str) -> dict[str, list[str]]:
    """``ssh -G`` prints one ``key value`` line per option; repeated keys accumulate."""
    options: dict[str, list[str]] = {}
    for line in output.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            options.setdefault(key.lower(), []).append(value.strip())
    return options


def _paramiko_lookup(spec: HostSpec, config_path: str | None) -> dict[str, list[str]]:
    import paramiko

    path = config_path or str(DEFAULT_SSH_CONFIG.expanduser())
    config = paramiko.SSHConfig.from_path(path) if Path(path).is_file() else paramiko.SSHConfig()
    found = config.lookup(spec.host)
    options: dict[str, list[str]] = {}
    for key, value in found.items():
        options[key.lower()] = list(value) if isinstance(value, list) else [str(value)]
    if spec.user:
        options["user"] = [spec.user]
    if spec.port:
        options["port"] = [str(spec.port)]
    options.setdefault("userknownhostsfile", ["~/.ssh/known_hosts ~/.ssh/known_hosts2"])
    return options


def _resolved_from_options(
    spec: HostSpec, options: dict[str, list[str]], config_path: str | None
) -> ResolvedHost:
    def first(key: str) -> str | None:
        values = options.get(key)
        return values[0] if values else None

    identity_files = tuple(
        path for path in (_expand(value) for value in options.get("identityfile", [])) if path
    )
    known_hosts: list[str] = []
    for value in options.get("userknownhostsfile", []):
        known_hosts.extend(_expand(part) for part in value.split())
    timeout_text = first("connecttimeout")
    timeout = float(timeout_text) if timeout_text and timeout_text.isdigit() else 15.0
    proxy_jump = first("proxyjump")
    if proxy_jump and proxy_jump.lower() == "none":
        proxy_jump = None
    return ResolvedHost(
        name=spec.text,
        hostname=first("hostname") or spec.host,
        port=int(first("port") or spec.port or 22),
        user=first("user") or spec.user or getpass.getuser(),
        identity_files=identity_files,
        identities_only=(first("identitiesonly") or "no").lower() in ("yes", "true"),
        known_hosts_files=tuple(known_hosts),
        strict_host_key_checking=_strictness(first("stricthostkeychecking")),
        proxy_jump=proxy_jump,
        connect_timeout=timeout,
        ssh_config=config_path,
        options={key: " ".join(values) for key, values in options.items()},
    )
