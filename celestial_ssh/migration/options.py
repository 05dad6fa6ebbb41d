"""How to migrate: the options of one migration, and the check that refuses bad ones early."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import commands, tls_link
from ..commands import CheckpointOptions
from ..connection import ConnectionSettings, connection_settings
from ..data_plane import DATA_PATHS, TRANSPORTS
from ..errors import InvalidInput
from ..hosts import ResolvedHost
from ..shell import validate_container_name


@dataclass(frozen=True)
class MigrationOptions:
    """How to migrate. Every field has a default that suits a one-shot move."""

    ssh_config: str | None = None
    new_name: str | None = None
    keep_source: bool = False
    # none | zstd | gzip | auto (auto measures the link and samples the container's memory
    # before the freeze; the library's default sends no probe traffic unless asked)
    compression: str = "none"
    # the data plane of the coordinator's own streams: auto (OpenSSH client when there is
    # one) | openssh | paramiko
    transport: str = "auto"
    # the archive's path (DATA_PATHS): auto proves a TLS link from the source to the target
    # before the freeze and relays through this machine only when there is none; tls
    # insists on that link; ssh has the source log in to the target (agent forwarding or
    # its own keys; relays if it cannot); relay always passes this machine
    data_path: str = "auto"
    # the older spellings of data_path "ssh" and "tls" (they win over "auto"; tls over
    # direct, as it always did)
    direct: bool = False
    tls: bool = False
    # the TLS link's port on the target (0: the target picks a free one)
    tls_port: int = 0
    # the target's address the source connects to (None: the one the coordinator's SSH
    # session to the target arrived on)
    tls_address: str | None = None
    # cap on the relayed stream, bytes per second (None: as fast as the link goes)
    bwlimit_bytes_per_s: float | None = None
    # iterative pre-copy; needs soft-dirty tracking on both hosts, else stop-and-copy
    precopy: bool = False
    tcp_established: bool = False
    accept_new_host_keys: bool = False
    command_timeout_s: float = 120.0
    stream_stall_timeout_s: float = 300.0
    restore_timeout_s: float = 900.0
    # how a host name becomes connection settings; default: ssh_config via `ssh -G`
    # (an inventory passes its own, e.g. Inventory.resolve)
    host_resolver: Callable[[str], ResolvedHost] | None = field(default=None, compare=False)
    # stop right after the preflight checks (lock released, sessions closed): a dry run;
    # the report's outcome stays NOT_STARTED and nothing is changed on either host
    preflight_only: bool = False
    # how the hosts are reached; ssh_config, accept_new_host_keys and host_resolver above
    # are its older spelling and, given, replace its fields (see connection_settings)
    connection: ConnectionSettings | None = field(default=None, compare=False)

    def connection_settings(self) -> ConnectionSettings:
        """How this migration reaches its hosts: ``connection`` with the older fields."""
        return connection_settings(
            self.connection,
            ssh_config=self.ssh_config,
            accept_new_host_keys=self.accept_new_host_keys,
            host_resolver=self.host_resolver,
        )

    def chosen_data_path(self) -> str:
        """The data path asked for, with ``tls`` and ``direct`` read as their values."""
        if self.tls:
            return "tls"
        if self.direct:
            return "ssh"
        return self.data_path

    def checkpoint_options(self, compression: str | None = None) -> CheckpointOptions:
        chosen = compression or self.compression
        if chosen == "auto":
            chosen = "none"
        return CheckpointOptions(compression=chosen, tcp_established=self.tcp_established)


def check_options(options: MigrationOptions) -> None:
    """Refuse options that are wrong, or that contradict each other, before anything
    connects (:class:`~celestial_ssh.errors.InvalidInput`)."""
    if options.new_name is not None:
        validate_container_name(options.new_name, what="new name")
    commands.validate_compression_setting(options.compression)
    if options.transport not in TRANSPORTS:
        raise InvalidInput(f"transport {options.transport!r} is not one of {', '.join(TRANSPORTS)}")
    limit = options.bwlimit_bytes_per_s
    if limit is not None and limit <= 0:
        raise InvalidInput("the bandwidth limit must be a positive rate")
    path = _check_data_path(options)
    tls_link.validate_port(options.tls_port)
    uses_tls = path in ("auto", "tls")
    if options.tls_port and not uses_tls:
        raise InvalidInput(
            f"--tls-port has no use with --data-path {path}",
            hint="The port is the TLS link's (--data-path auto or tls); leave it out.",
        )
    tls_link.check_address_option(options.tls_address, tls=True)
    if options.tls_address is not None and not uses_tls:
        raise InvalidInput(
            f"--tls-address has no use with --data-path {path}",
            hint="The address is the TLS link's (--data-path auto or tls); leave it out.",
        )
    if limit is not None and path in ("tls", "ssh"):
        raise InvalidInput(
            f"--bwlimit cannot be combined with {_spelling(options)}",
            hint="The limit is applied where the stream passes this machine; a host-to-host "
            "stream never does. Leave out one of them.",
        )


def _check_data_path(options: MigrationOptions) -> str:
    if options.data_path not in DATA_PATHS:
        raise InvalidInput(f"data path {options.data_path!r} is not one of {', '.join(DATA_PATHS)}")
    path = options.chosen_data_path()
    if options.data_path not in ("auto", path):
        raise InvalidInput(
            f"{_spelling(options)} contradicts --data-path {options.data_path}",
            hint="Name one data path: --data-path auto|tls|ssh|relay.",
        )
    return path


def _spelling(options: MigrationOptions) -> str:
    """How the user named a host-to-host path (for messages)."""
    if options.tls:
        return "--tls"
    if options.direct:
        return "--direct"
    return f"--data-path {options.data_path}"
