"""Host inventories: named hosts and groups of them, from a file.

Three forms are read, and told apart automatically:

* the native YAML form::

      hosts:
        lab-a: {hostname: 127.0.0.11, port: 2222, user: root, identity_file: .lab/id_ed25519}
      groups:
        lab: [lab-a]

* an Ansible YAML inventory (``all`` / ``children`` / ``hosts`` / ``vars``, group vars
  inherited by hosts, host vars overriding them);
* the JSON that ``ansible-inventory --list`` prints (``_meta.hostvars``, groups with
  ``hosts`` / ``children`` / ``vars``).

Every file is read through PyYAML's composer (JSON is YAML), so each error names the line it
is about. Relative ``identity_file`` / ``known_hosts_file`` paths are taken relative to the
inventory file's directory. ssh_config still applies under an inventory: whatever the
inventory does not set comes from ``ssh -G``, as for any other host.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .errors import HostConfigError, InvalidInput
from .hosts import HostSpec, ResolvedHost, resolve_host

__all__ = ["Inventory", "InventoryHost", "load_inventory"]

FORMATS = ("auto", "native", "ansible-yaml", "ansible-json")
STRICTNESS = ("yes", "accept-new", "no")

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
_GROUP_KEYS = frozenset({"hosts", "children", "vars"})
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")

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


def load_inventory(path: str | os.PathLike[str], *, format: str = "auto") -> Inventory:
    """Read an inventory file (native YAML, Ansible YAML, or ``ansible-inventory --list``)."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    file = Path(path).expanduser()
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise HostConfigError(
            f"cannot read inventory {str(file)!r}: {error}",
            hint="Pass an existing inventory file (YAML, or the JSON of ansible-inventory --list).",
        ) from None
    return parse_inventory(text, source=str(file), base_dir=file.absolute().parent, format=format)


def parse_inventory(
    text: str,
    *,
    source: str = "<inventory>",
    base_dir: str | os.PathLike[str] | None = None,
    format: str = "auto",
) -> Inventory:
    """Parse inventory text; ``base_dir`` anchors relative key and known_hosts paths."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    reader = _Reader(source, Path(base_dir) if base_dir is not None else Path.cwd())
    root = reader.compose(text)
    if format == "auto":
        format = _detect(root, text, reader)
    if format == "native":
        inventory = reader.native(root)
    else:
        inventory = reader.ansible(root, json_form=format == "ansible-json")
    inventory.path = source
    inventory.format = format
    inventory.warnings = list(dict.fromkeys(reader.warnings))
    return inventory


def _detect(root: MappingNode, text: str, reader: _Reader) -> str:
    keys = [key for key, _, _ in reader.mapping(root, "the inventory")]
    if text.lstrip().startswith("{") and ("_meta" in keys or "all" in keys):
        return "ansible-json"
    if "all" in keys:
        return "ansible-yaml"
    if "hosts" in keys:
        hosts = dict((key, value) for key, _, value in reader.mapping(root, "the inventory"))
        node = hosts["hosts"]
        if isinstance(node, MappingNode) and not _looks_like_group(node):
            return "native"
        if set(keys) <= {"hosts", "groups"} and not isinstance(node, MappingNode):
            return "native"  # let the native reader say what is wrong with it
    values = [value for _, _, value in reader.mapping(root, "the inventory")]
    if values and all(_is_null(v) or _looks_like_group(v) for v in values):
        return "ansible-yaml"
    if "hosts" in keys:
        return "native"
    raise reader.error(
        root,
        "cannot tell the inventory's format: expected a top-level 'hosts:' mapping "
        "(celestial-ssh), an Ansible inventory with 'all:' or groups of hosts/children/vars, "
        "or the JSON of 'ansible-inventory --list'",
    )


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _looks_like_group(node: Node) -> bool:
    if not isinstance(node, MappingNode) or not node.value:
        return False
    return all(isinstance(key, ScalarNode) and key.value in _GROUP_KEYS for key, _ in node.value)


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Reader:
    """Walks composed YAML nodes, so that every message can carry a line number."""

    def __init__(self, source: str, base_dir: Path):
        self.source = source
        self.base_dir = base_dir
        self.warnings: list[str] = []

    # -- generic node handling ------------------------------------------------------------
    def error(self, node: Node | None, message: str, hint: str | None = None) -> HostConfigError:
        where = f"{self.source}:{_line(node)}" if node is not None else self.source
        return HostConfigError(f"{where}: {message}", hint=hint)

    def warn(self, node: Node, message: str) -> None:
        self.warnings.append(f"{self.source}:{_line(node)}: {message}")

    def compose(self, text: str) -> MappingNode:
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = f":{mark.line + 1}" if mark is not None else ""
            problem = " ".join(part for part in (error.context, error.problem) if part)
            raise HostConfigError(
                f"{self.source}{line}: not valid YAML or JSON: {problem}"
            ) from None
        except yaml.YAMLError as error:
            raise HostConfigError(f"{self.source}: not valid YAML or JSON: {error}") from None
        if root is None:
            raise HostConfigError(f"{self.source}: the inventory is empty")
        if not isinstance(root, MappingNode):
            raise self.error(root, "an inventory must be a mapping at the top level")
        return root

    def mapping(self, node: Node, what: str) -> list[tuple[str, Node, Node]]:
        """Entries of a mapping node (null counts as empty); rejects duplicate keys."""
        if _is_null(node):
            return []
        if not isinstance(node, MappingNode):
            raise self.error(node, f"{what} must be a mapping, not {_kind(node)}")
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag not in (
                "tag:yaml.org,2002:str",
                "tag:yaml.org,2002:int",
            ):
                raise self.error(key_node, f"keys of {what} must be names, not {_kind(key_node)}")
            key = str(key_node.value)
            if key in seen:
                raise self.error(
                    key_node,
                    f"duplicate key {key!r} in {what} (first on line {_line(seen[key])})",
                )
            seen[key] = key_node
        SafeConstructor().flatten_mapping(node)  # resolve YAML merge keys (<<: *defaults)
        entries: dict[str, tuple[str, Node, Node]] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            entries.pop(key, None)  # a later key (the file's own) wins over a merged one
            entries[key] = (key, key_node, value_node)
        return list(entries.values())

    def sequence_of_names(self, node: Node, what: str) -> list[tuple[str, Node]]:
        if _is_null(node):
            return []
        if not isinstance(node, SequenceNode):
            raise self.error(node, f"{what} must be a list of names, not {_kind(node)}")
        items: list[tuple[str, Node]] = []
        for item in node.value:
            if not isinstance(item, ScalarNode) or item.tag != "tag:yaml.org,2002:str":
                raise self.error(item, f"{what} must hold names, not {_kind(item)}")
            items.append((str(item.value), item))
        return items

    @staticmethod
    def value(node: Node) -> Any:
        return SafeConstructor().construct_object(node, deep=True)

    # -- field checks -----------------------------------------------------------------------
    def check_name(self, name: str, node: Node, what: str) -> str:
        if "{{" in name or "{%" in name:
            raise self.error(node, f"{what} {name!r} is a template; templates are not evaluated")
        try:
            spec = HostSpec.parse(f"[{name}]" if ":" in name else name)
        except InvalidInput:
            spec = None
        if spec is None or spec.user is not None or spec.port is not None:
            raise self.error(
                node,
                f"{what} {name!r} is not a valid host name",
                hint="Host names may hold letters, digits, '.', '_' and '-' (or be an IP address).",
            )
        return name

    def field(self, key: str, raw: Any, node: Node, alias: str, ansible: bool) -> Any:
        """Check and convert one host setting (native field name)."""
        label = f"host {alias!r}: {key}"
        if isinstance(raw, str) and ("{{" in raw or "{%" in raw):
            raise self.error(node, f"{label} is a template ({raw!r}); templates are not evaluated")
        if key == "port":
            if ansible and isinstance(raw, str) and raw.isdigit():
                raw = int(raw)
            if isinstance(raw, bool) or not isinstance(raw, int):
                raise self.error(node, f"{label} must be a number, not {_pytype(raw)}")
            if not 0 < raw < 65536:
                raise self.error(node, f"{label} {raw} is out of range (1-65535)")
            return raw
        if key == "become":
            if ansible and isinstance(raw, str):
                lowered = raw.lower()
                if lowered in ("yes", "true", "on", "1"):
                    return True
                if lowered in ("no", "false", "off", "0"):
                    return False
            if not isinstance(raw, bool):
                raise self.error(node, f"{label} must be true or false, not {_pytype(raw)}")
            return raw
        if key == "strict_host_key_checking":
            if isinstance(raw, bool):  # YAML 1.1 reads a bare yes/no as a boolean
                return "yes" if raw else "no"
            if not isinstance(raw, str) or raw.lower() not in STRICTNESS:
                raise self.error(node, f"{label} must be one of yes, accept-new, no; got {raw!r}")
            return raw.lower()
        if not isinstance(raw, str) or not raw:
            raise self.error(node, f"{label} must be a non-empty string, not {_pytype(raw)}")
        if key == "hostname":
            return self.check_name(raw, node, f"host {alias!r}: hostname")
        if key == "user":
            if not _USER.fullmatch(raw):
                raise self.error(node, f"{label} {raw!r} is not a valid user name")
            return raw
        if key == "proxy_jump":
            for hop in raw.split(","):
                try:
                    HostSpec.parse(hop)
                except InvalidInput:
                    raise self.error(
                        node, f"{label} {raw!r}: {hop!r} is not [user@]host[:port]"
                    ) from None
            return raw
        if key in ("identity_file", "known_hosts_file"):
            if "\0" in raw or "\n" in raw:
                raise self.error(node, f"{label} is not a usable path")
            path = Path(os.path.expanduser(raw))
            if not path.is_absolute():
                path = self.base_dir / path
            return os.path.normpath(path)
        raise AssertionError(key)  # pragma: no cover

    # -- native form --------------------------------------------------------------------------
    def native(self, root: MappingNode) -> Inventory:
        inventory = Inventory(format="native")
        sections = {
            key: (key_node, value) for key, key_node, value in self.mapping(root, "the inventory")
        }
        for key, (key_node, _) in sections.items():
            if key not in ("hosts", "groups"):
                raise self.error(
                    key_node, f"unknown top-level key {key!r} (expected 'hosts' and 'groups')"
                )
        if "hosts" not in sections:
            raise self.error(root, "the inventory has no 'hosts:' mapping")
        for alias, key_node, value in self.mapping(sections["hosts"][1], "'hosts'"):
            self.check_name(alias, key_node, "host alias")
            settings: dict[str, Any] = {}
            for key, field_key, field_node in self.mapping(value, f"host {alias!r}"):
                if key not in _NATIVE_HOST_KEYS:
                    raise self.error(
                        field_key,
                        f"host {alias!r}: unknown key {key!r}",
                        hint=f"Known keys: {', '.join(_NATIVE_HOST_KEYS)}.",
                    )
                settings[key] = self.field(key, self.value(field_node), field_node, alias, False)
            inventory.hosts[alias] = InventoryHost(
                alias=alias, source=f"{self.source}:{_line(key_node)}", **settings
            )
        if "groups" in sections:
            for group, key_node, value in self.mapping(sections["groups"][1], "'groups'"):
                self.check_name(group, key_node, "group name")
                if group in inventory.hosts:
                    raise self.error(key_node, f"group {group!r} has the same name as a host")
                members: list[str] = []
                for member, member_node in self.sequence_of_names(value, f"group {group!r}"):
                    if member not in inventory.hosts:
                        raise self.error(
                            member_node, f"group {group!r} names unknown host {member!r}"
                        )
                    if member not in members:
                        members.append(member)
                inventory.groups[group] = members
        for alias, host in list(inventory.hosts.items()):
            in_groups = tuple(g for g, members in inventory.groups.items() if alias in members)
            inventory.hosts[alias] = replace(host, groups=in_groups)
        return inventory

    # -- Ansible forms ------------------------------------------------------------------------
    def ansible(self, root: MappingNode, *, json_form: bool) -> Inventory:
        tree = _AnsibleTree()
        tree.touch_group("all", root)
        if json_form:
            self._ansible_json(root, tree)
        else:
            for group, key_node, value in self.mapping(root, "the inventory"):
                self._ansible_group(group, key_node, value, tree, parent=None)
        return self._ansible_result(tree)

    def _ansible_group(
        self, group: str, key_node: Node, node: Node, tree: _AnsibleTree, parent: str | None
    ) -> None:
        self.check_name(group, key_node, "group name")
        tree.touch_group(group, key_node)
        if parent is not None:
            tree.add_child(parent, group)
        elif group != "all":
            tree.add_child("all", group)
        for key, sub_key, value in self.mapping(node, f"group {group!r}"):
            if key == "hosts":
                for host, host_key, host_vars in self.mapping(value, f"hosts of group {group!r}"):
                    self.check_name(host, host_key, "host name")
                    tree.add_host(group, host, host_key)
                    self._ansible_host_vars(host, host_vars, tree)
            elif key == "children":
                for child, child_key, child_node in self.mapping(
                    value, f"children of group {group!r}"
                ):
                    self._ansible_group(child, child_key, child_node, tree, parent=group)
            else:
                self._ansible_group_key(group, key, sub_key, value, tree)

    def _ansible_json(self, root: MappingNode, tree: _AnsibleTree) -> None:
        for group, key_node, node in self.mapping(root, "the inventory"):
            if group == "_meta":
                for key, _, value in self.mapping(node, "'_meta'"):
                    if key != "hostvars":
                        continue
                    for host, host_key, host_vars in self.mapping(value, "'_meta.hostvars'"):
                        self.check_name(host, host_key, "host name")
                        tree.touch_host(host, host_key)
                        self._ansible_host_vars(host, host_vars, tree)
                continue
            self.check_name(group, key_node, "group name")
            tree.touch_group(group, key_node)
            for key, sub_key, value in self.mapping(node, f"group {group!r}"):
                if key == "hosts":
                    for host, host_node in self.sequence_of_names(value, f"hosts of {group!r}"):
                        self.check_name(host, host_node, "host name")
                        tree.add_host(group, host, host_node)
                elif key == "children":
                    for child, child_node in self.sequence_of_names(
                        value, f"children of {group!r}"
                    ):
                        self.check_name(child, child_node, "group name")
                        tree.touch_group(child, child_node)
                        tree.add_child(group, child)
                else:
                    self._ansible_group_key(group, key, sub_key, value, tree)
        for group in tree.group_order:
            if group != "all" and not tree.parents[group]:
                tree.add_child("all", group)

    def _ansible_host_vars(self, host: str, node: Node, tree: _AnsibleTree) -> None:
        for var, _, var_node in self.mapping(node, f"vars of host {host!r}"):
            tree.host_vars[host][var] = (self.value(var_node), var_node)

    def _ansible_group_key(
        self, group: str, key: str, key_node: Node, node: Node, tree: _AnsibleTree
    ) -> None:
        """A group's key other than hosts and children (written alike in YAML and JSON):
        its vars, or an error."""
        if key != "vars":
            raise self.error(
                key_node, f"group {group!r}: unknown key {key!r} (expected hosts, children, vars)"
            )
        for var, _, var_node in self.mapping(node, f"vars of group {group!r}"):
            tree.group_vars[group][var] = (self.value(var_node), var_node)

    def _ansible_result(self, tree: _AnsibleTree) -> Inventory:
        depth = tree.depths(self)
        inventory = Inventory()
        for host in tree.host_order:
            host_groups = tree.groups_of(host)
            ordered = sorted(host_groups, key=lambda g: (depth[g], g))
            merged: dict[str, tuple[Any, Node]] = {}
            for group in ordered:
                merged.update(tree.group_vars[group])
            merged.update(tree.host_vars[host])
            settings: dict[str, Any] = {}
            other: dict[str, Any] = {}
            for var, (raw, node) in merged.items():
                target = _ANSIBLE_VARS.get(var)
                if target is not None:
                    settings[target] = self.field(target, raw, node, host, True)
                else:
                    if var == "ansible_connection":
                        if str(raw) not in _ANSIBLE_SSH_CONNECTIONS:
                            self.warn(node, f"ansible_connection {raw!r} is not SSH; ignored")
                    elif var.startswith("ansible_") and var not in _ANSIBLE_SILENT:
                        self.warn(node, f"{var} is not used by celestial-ssh; ignored")
                    other[var] = raw  # every variable not turned into a setting
            inventory.hosts[host] = InventoryHost(
                alias=host,
                groups=tuple(g for g in tree.group_order if g in host_groups and g != "all"),
                source=f"{self.source}:{_line(tree.host_nodes[host])}",
                vars=other,
                **settings,
            )
        for group in tree.group_order:
            if group in inventory.hosts:
                self.warn(tree.group_nodes[group], f"group {group!r} has the same name as a host")
            inventory.groups[group] = tree.members(group)
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

    def depths(self, reader: _Reader) -> dict[str, int]:
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


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return _pytype(SafeConstructor().construct_object(node))


def _pytype(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
