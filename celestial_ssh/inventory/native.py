"""The native inventory form (``hosts:`` and ``groups:``)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from yaml.nodes import MappingNode

from .model import Inventory, InventoryHost
from .nodes import NodeReader, line_of

_NATIVE_HOST_KEYS = (
    "hostname",
    "user",
    "port",
    "identity_file",
    "become",
    "known_hosts_file",
    "proxy_jump",
    "strict_host_key_checking",
)


def read_native(reader: NodeReader, root: MappingNode) -> Inventory:
    """The native form: ``hosts`` (alias -> settings) and ``groups`` (name -> aliases)."""
    inventory = Inventory(format="native")
    sections = {
        key: (key_node, value) for key, key_node, value in reader.mapping(root, "the inventory")
    }
    for key, (key_node, _) in sections.items():
        if key not in ("hosts", "groups"):
            raise reader.error(
                key_node, f"unknown top-level key {key!r} (expected 'hosts' and 'groups')"
            )
    if "hosts" not in sections:
        raise reader.error(root, "the inventory has no 'hosts:' mapping")
    for alias, key_node, value in reader.mapping(sections["hosts"][1], "'hosts'"):
        reader.check_name(alias, key_node, "host alias")
        settings: dict[str, Any] = {}
        for key, field_key, field_node in reader.mapping(value, f"host {alias!r}"):
            if key not in _NATIVE_HOST_KEYS:
                raise reader.error(
                    field_key,
                    f"host {alias!r}: unknown key {key!r}",
                    hint=f"Known keys: {', '.join(_NATIVE_HOST_KEYS)}.",
                )
            settings[key] = reader.field(key, reader.value(field_node), field_node, alias, False)
        inventory.hosts[alias] = InventoryHost(
            alias=alias, source=f"{reader.source}:{line_of(key_node)}", **settings
        )
    if "groups" in sections:
        for group, key_node, value in reader.mapping(sections["groups"][1], "'groups'"):
            reader.check_name(group, key_node, "group name")
            if group in inventory.hosts:
                raise reader.error(key_node, f"group {group!r} has the same name as a host")
            members: list[str] = []
            for member, member_node in reader.sequence_of_names(value, f"group {group!r}"):
                if member not in inventory.hosts:
                    raise reader.error(
                        member_node, f"group {group!r} names unknown host {member!r}"
                    )
                if member not in members:
                    members.append(member)
            inventory.groups[group] = members
    for alias, host in list(inventory.hosts.items()):
        in_groups = tuple(g for g, members in inventory.groups.items() if alias in members)
        inventory.hosts[alias] = replace(host, groups=in_groups)
    return inventory
