"""The Ansible inventory forms: YAML (``all`` / ``children`` / ``hosts`` / ``vars``) and the
JSON of ``ansible-inventory --list`` (``_meta.hostvars``, groups with ``hosts`` / ``children``
/ ``vars``). Group vars are inherited by hosts, deeper groups win, host vars win over both."""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node

from .model import Inventory, InventoryHost
from .nodes import NodeReader, line_of

# Ansible connection variables -> native field
_ANSIBLE_VARS = {
    "ansible_host": "hostname",
    "ansible_ssh_host": "hostname",
    "ansible_port": "port",
    "ansible_ssh_port": "port",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "identity_file",
    "ansible_private_key_file": "identity_file",
    "ansible_become": "become",
}
# ansible_* variables that have no meaning here and are common enough not to warn about
_ANSIBLE_SILENT = frozenset({"ansible_python_interpreter"})
_ANSIBLE_SSH_CONNECTIONS = frozenset({"ssh", "smart", "paramiko", "paramiko_ssh"})


def read_ansible(nodes: NodeReader, root: MappingNode, *, json_form: bool) -> Inventory:
    """An Ansible inventory, YAML or (``json_form``) the JSON of ``ansible-inventory --list``."""
    return _AnsibleReader(nodes).read(root, json_form=json_form)


class _AnsibleReader:
    """Reads one Ansible inventory into its tree, then flattens the tree into hosts."""

    def __init__(self, nodes: NodeReader):
        self.nodes = nodes
        self.tree = _AnsibleTree()

    def read(self, root: MappingNode, *, json_form: bool) -> Inventory:
        self.tree.touch_group("all", root)
        if json_form:
            self._json(root)
        else:
            for group, key_node, value in self.nodes.mapping(root, "the inventory"):
                self._group(group, key_node, value, parent=None)
        return self._result()

    def _group(self, group: str, key_node: Node, node: Node, parent: str | None) -> None:
        self.nodes.check_name(group, key_node, "group name")
        self.tree.touch_group(group, key_node)
        if parent is not None:
            self.tree.add_child(parent, group)
        elif group != "all":
            self.tree.add_child("all", group)
        for key, sub_key, value in self.nodes.mapping(node, f"group {group!r}"):
            if key == "hosts":
                for host, host_key, host_vars in self.nodes.mapping(
                    value, f"hosts of group {group!r}"
                ):
                    self.nodes.check_name(host, host_key, "host name")
                    self.tree.add_host(group, host, host_key)
                    self._host_vars(host, host_vars)
            elif key == "children":
                for child, child_key, child_node in self.nodes.mapping(
                    value, f"children of group {group!r}"
                ):
                    self._group(child, child_key, child_node, parent=group)
            else:
                self._group_key(group, key, sub_key, value)

    def _json(self, root: MappingNode) -> None:
        for group, key_node, node in self.nodes.mapping(root, "the inventory"):
            if group == "_meta":
                for key, _, value in self.nodes.mapping(node, "'_meta'"):
                    if key != "hostvars":
                        continue
                    for host, host_key, host_vars in self.nodes.mapping(value, "'_meta.hostvars'"):
                        self.nodes.check_name(host, host_key, "host name")
                        self.tree.touch_host(host, host_key)
                        self._host_vars(host, host_vars)
                continue
            self.nodes.check_name(group, key_node, "group name")
            self.tree.touch_group(group, key_node)
            for key, sub_key, value in self.nodes.mapping(node, f"group {group!r}"):
                if key == "hosts":
                    for host, host_node in self.nodes.sequence_of_names(
                        value, f"hosts of {group!r}"
                    ):
                        self.nodes.check_name(host, host_node, "host name")
                        self.tree.add_host(group, host, host_node)
                elif key == "children":
                    for child, child_node in self.nodes.sequence_of_names(
                        value, f"children of {group!r}"
                    ):
                        self.nodes.check_name(child, child_node, "group name")
                        self.tree.touch_group(child, child_node)
                        self.tree.add_child(group, child)
                else:
                    self._group_key(group, key, sub_key, value)
        for group in self.tree.group_order:
            if group != "all" and not self.tree.parents[group]:
                self.tree.add_child("all", group)

    def _host_vars(self, host: str, node: Node) -> None:
        for var, _, var_node in self.nodes.mapping(node, f"vars of host {host!r}"):
            self.tree.host_vars[host][var] = (self.nodes.value(var_node), var_node)

    def _group_key(self, group: str, key: str, key_node: Node, node: Node) -> None:
        """A group's key other than hosts and children (written alike in YAML and JSON):
        its vars, or an error."""
        if key != "vars":
            raise self.nodes.error(
                key_node, f"group {group!r}: unknown key {key!r} (expected hosts, children, vars)"
            )
        for var, _, var_node in self.nodes.mapping(node, f"vars of group {group!r}"):
            self.tree.group_vars[group][var] = (self.nodes.value(var_node), var_node)

    def _result(self) -> Inventory:
        depth = self.tree.depths(self.nodes)
        inventory = Inventory()
        for host in self.tree.host_order:
            host_groups = self.tree.groups_of(host)
            ordered = sorted(host_groups, key=lambda g: (depth[g], g))
            merged: dict[str, tuple[Any, Node]] = {}
            for group in ordered:
                merged.update(self.tree.group_vars[group])
            merged.update(self.tree.host_vars[host])
            settings: dict[str, Any] = {}
            other: dict[str, Any] = {}
            for var, (raw, node) in merged.items():
                target = _ANSIBLE_VARS.get(var)
                if target is not None:
                    settings[target] = self.nodes.field(target, raw, node, host, True)
                else:
                    if var == "ansible_connection":
                        if str(raw) not in _ANSIBLE_SSH_CONNECTIONS:
                            self.nodes.warn(node, f"ansible_connection {raw!r} is not SSH; ignored")
                    elif var.startswith("ansible_") and var not in _ANSIBLE_SILENT:
                        self.nodes.warn(node, f"{var} is not used by celestial-ssh; ignored")
                    other[var] = raw  # every variable not turned into a setting
            inventory.hosts[host] = InventoryHost(
                alias=host,
                groups=tuple(g for g in self.tree.group_order if g in host_groups and g != "all"),
                source=f"{self.nodes.source}:{line_of(self.tree.host_nodes[host])}",
                vars=other,
                **settings,
            )
        for group in self.tree.group_order:
            if group in inventory.hosts:
                self.nodes.warn(
                    self.tree.group_nodes[group], f"group {group!r} has the same name as a host"
                )
            inventory.groups[group] = self.tree.members(group)
        return inventory


class _AnsibleTree:
    """Groups, their children, hosts and variables as an Ansible inventory declares them."""

    def __init__(self) -> None:
        self.group_order: list[str] = []
        self.group_nodes: dict[str, Node] = {}
        self.children: dict[str, list[str]] = {}
        self.parents: dict[str, list[str]] = {}
        self.direct_hosts: dict[str, list[str]] = {}
        self.group_vars: dict[str, dict[str, tuple[Any, Node]]] = {}
        self.host_order: list[str] = []
        self.host_nodes: dict[str, Node] = {}
        self.host_vars: dict[str, dict[str, tuple[Any, Node]]] = {}

    def touch_group(self, group: str, node: Node) -> None:
        if group not in self.group_nodes:
            self.group_order.append(group)
            self.group_nodes[group] = node
            self.children[group] = []
            self.parents[group] = []
            self.direct_hosts[group] = []
            self.group_vars[group] = {}

    def add_child(self, parent: str, child: str) -> None:
        if child not in self.children[parent]:
            self.children[parent].append(child)
            self.parents[child].append(parent)

    def touch_host(self, host: str, node: Node) -> None:
        if host not in self.host_nodes:
            self.host_order.append(host)
            self.host_nodes[host] = node
            self.host_vars[host] = {}

    def add_host(self, group: str, host: str, node: Node) -> None:
        self.touch_host(host, node)
        if host not in self.direct_hosts[group]:
            self.direct_hosts[group].append(host)

    def depths(self, reader: NodeReader) -> dict[str, int]:
        """Each group's depth below ``all`` (longest path); a cycle is an error."""
        depth: dict[str, int] = {}
        visiting: set[str] = set()

        def visit(group: str) -> int:
            if group in depth:
                return depth[group]
            if group in visiting:
                raise reader.error(
                    self.group_nodes[group], f"group {group!r} is its own descendant"
                )
            visiting.add(group)
            parents = self.parents[group]
            value = 0 if group == "all" else max((visit(p) + 1 for p in parents), default=1)
            visiting.discard(group)
            depth[group] = value
            return value

        for group in self.group_order:
            visit(group)
        return depth

    def groups_of(self, host: str) -> set[str]:
        found: set[str] = {"all"}
        stack = [g for g in self.group_order if host in self.direct_hosts[g]]
        while stack:
            group = stack.pop()
            if group not in found:
                found.add(group)
                stack.extend(self.parents[group])
        return found

    def members(self, group: str) -> list[str]:
        if group == "all":
            return list(self.host_order)
        out: dict[str, None] = {}
        seen: set[str] = set()

        def walk(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for host in self.direct_hosts[name]:
                out.setdefault(host, None)
            for child in self.children[name]:
                walk(child)

        walk(group)
        return list(out)
