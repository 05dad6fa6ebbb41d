"""An inventory's hosts and groups, and how a name in it becomes a connectable host."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import HostConfigError, InvalidInput
from ..hosts import ResolvedHost, resolve_host


@dataclass(frozen=True)
class InventoryHost:
    """One host as the inventory describes it; ``None`` means "not set here"."""

    alias: str
    hostname: str | None = None
    user: str | None = None
    port: int | None = None
    identity_file: str | None = None  # absolute (made so against the inventory's directory)
    become: bool = False
    known_hosts_file: str | None = None
    proxy_jump: str | None = None
    strict_host_key_checking: str | None = None  # yes | accept-new | no
    groups: tuple[str, ...] = ()
    source: str = ""  # "file:line" where the host is defined
    vars: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass
class Inventory:
    """Hosts and groups read from one inventory file."""

    hosts: dict[str, InventoryHost] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    path: str | None = None
    format: str = "native"

    def resolve(self, name: str, ssh_config: str | os.PathLike[str] | None = None) -> ResolvedHost:
        """A connectable host: the inventory's settings over what ssh_config says.

        A name the inventory does not know is resolved as usual (ssh_config alias or
        ``[user@]host[:port]``).
        """
        entry = self.hosts.get(name)
        if entry is None:
            return resolve_host(name, ssh_config)
        address = entry.hostname or entry.alias
        text = f"[{address}]" if ":" in address else address
        if entry.user:
            text = f"{entry.user}@{text}"
        if entry.port:
            text = f"{text}:{entry.port}"
        try:
            base = resolve_host(text, ssh_config)
        except InvalidInput as error:  # validated at load time; kept for hand-built hosts
            raise HostConfigError(f"inventory host {name!r}: {error.message}", host=name) from None
        resolved = replace(base, name=name, become=entry.become)
        if entry.hostname:
            resolved = replace(resolved, hostname=entry.hostname)
        if entry.port:
            resolved = replace(resolved, port=entry.port)
        if entry.user:
            resolved = replace(resolved, user=entry.user)
        if entry.identity_file:
            resolved = replace(resolved, identity_files=(entry.identity_file,))
        if entry.known_hosts_file:
            resolved = replace(resolved, known_hosts_files=(entry.known_hosts_file,))
        if entry.proxy_jump:  # "none" turns off a ProxyJump from ssh_config, as in ssh
            jump = None if entry.proxy_jump.lower() == "none" else entry.proxy_jump
            resolved = replace(resolved, proxy_jump=jump)
        if entry.strict_host_key_checking:
            resolved = resolved.with_strict_host_key_checking(entry.strict_host_key_checking)
        return resolved

    def expand(self, names: Iterable[str]) -> list[str]:
        """Host names for ``names``: groups become their hosts; order kept, duplicates dropped.

        A name that is neither a host nor a group is passed through (it may be an ssh_config
        alias or ``[user@]host[:port]``).
        """
        seen: dict[str, None] = {}
        for name in names:
            if name not in self.hosts and name in self.groups:
                for member in self.groups[name]:
                    seen.setdefault(member, None)
            else:
                seen.setdefault(name, None)
        return list(seen)
