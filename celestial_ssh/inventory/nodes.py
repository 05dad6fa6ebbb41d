"""Reading an inventory's YAML nodes: every value checked, every message with its line."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import HostConfigError, InvalidInput
from ..hosts import HostSpec

STRICTNESS = ("yes", "accept-new", "no")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


class NodeReader:
    """Walks composed YAML nodes, so that every message can carry a line number."""

    def __init__(self, source: str, base_dir: Path):
        self.source = source
        self.base_dir = base_dir
        self.warnings: list[str] = []

    # -- generic node handling ------------------------------------------------------------
    def error(self, node: Node | None, message: str, hint: str | None = None) -> HostConfigError:
        where = f"{self.source}:{line_of(node)}" if node is not None else self.source
        return HostConfigError(f"{where}: {message}", hint=hint)

    def warn(self, node: Node, message: str) -> None:
        self.warnings.append(f"{self.source}:{line_of(node)}: {message}")

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
        if is_null(node):
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
                    f"duplicate key {key!r} in {what} (first on line {line_of(seen[key])})",
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
        if is_null(node):
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
