"""Reading an inventory file: which of the three forms it is, and that form's reader."""

from __future__ import annotations

import os
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode

from ..errors import HostConfigError
from .ansible import read_ansible
from .model import Inventory
from .native import read_native
from .nodes import NodeReader, is_null

FORMATS = ("auto", "native", "ansible-yaml", "ansible-json")
_GROUP_KEYS = frozenset({"hosts", "children", "vars"})


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
    reader = NodeReader(source, Path(base_dir) if base_dir is not None else Path.cwd())
    root = reader.compose(text)
    if format == "auto":
        format = _detect(root, text, reader)
    if format == "native":
        inventory = read_native(reader, root)
    else:
        inventory = read_ansible(reader, root, json_form=format == "ansible-json")
    inventory.path = source
    inventory.format = format
    inventory.warnings = list(dict.fromkeys(reader.warnings))
    return inventory


def _detect(root: MappingNode, text: str, reader: NodeReader) -> str:
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
    if values and all(is_null(v) or _looks_like_group(v) for v in values):
        return "ansible-yaml"
    if "hosts" in keys:
        return "native"
    raise reader.error(
        root,
        "cannot tell the inventory's format: expected a top-level 'hosts:' mapping "
        "(celestial-ssh), an Ansible inventory with 'all:' or groups of hosts/children/vars, "
        "or the JSON of 'ansible-inventory --list'",
    )


def _looks_like_group(node: Node) -> bool:
    if not isinstance(node, MappingNode) or not node.value:
        return False
    return all(isinstance(key, ScalarNode) and key.value in _GROUP_KEYS for key, _ in node.value)
