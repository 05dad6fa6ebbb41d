"""How to migrate: the options of one migration, and the check that refuses bad ones early."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .. import commands, tls_link
from ..commands import CheckpointOptions
from ..connection import ConnectionSettings, connection_settings
from ..data_plane import TRANSPORTS
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
    # the data plane: auto (OpenSSH client when there is one) | openssh | paramiko
    transport: str = "auto"
    # the source streams straight to the target when it can log in there (agent forwarding
    # or its own keys); otherwise the archive is relayed through this machine
    direct: bool = False
    # the source streams straight to the target over mutually authenticated TLS (socat on
    # both hosts; throwaway keys given to each end over SSH) instead of SSH; implies direct
    # and never falls back to relaying. tls_port 0: the target picks a free port
    tls: bool = False
    tls_port: int = 0
    # --tls: the target's address the source connects to (None: the one the coordinator's
    # SSH session to the target arrived on)
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
    tls_link.validate_port(options.tls_port)
    if options.tls_port and not options.tls:
        raise InvalidInput("--tls-port needs --tls", hint="Add --tls, or leave out the port.")
    tls_link.check_address_option(options.tls_address, tls=options.tls)
    if limit is not None and (options.direct or options.tls):
        raise InvalidInput(
            f"--bwlimit cannot be combined with {'--tls' if options.tls else '--direct'}",
            hint="The limit is applied where the stream passes this machine; a direct "
            "stream never does. Leave out one of them.",
        )
