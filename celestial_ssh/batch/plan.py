"""Batch plans: the YAML file of migrations, read and checked before anything connects.

A plan is YAML::

    inventory: inventory.yml          # optional, relative to the plan file
    defaults:                         # optional: any setting of celestial_ssh.settings
      compression: zstd               # none | zstd | gzip | auto (the default, as in migrate)
    migrations:
      - container: web
        from: lab-a
        to: lab-b
        name: web-2                   # optional, per entry only
        keep_source: true             # optional, overrides the defaults
        data_path: relay              # transport, data_path, direct, tls, bwlimit:
                                      # override the command line's flags for this entry

Errors name the entry and the line of the plan file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ..errors import HostConfigError, InvalidInput
from ..hosts import HostSpec, ResolvedHost, resolve_host
from ..migration import MigrationOptions
from ..settings import SETTINGS, option_fields, parse_setting
from ..shell import validate_container_name

DEFAULT_KEYS = tuple(SETTINGS)
# settings the command line also gives for the whole batch: the plan's word wins for its entries
DATA_PLANE_KEYS = ("transport", "data_path", "direct", "tls", "bwlimit")
ENTRY_KEYS = ("container", "from", "to", "name", *DEFAULT_KEYS)
TOP_KEYS = ("inventory", "defaults", "migrations")


@dataclass(frozen=True)
class PlanEntry:
    """One migration of a plan; ``index`` counts from 1, ``line`` is the plan file's line."""

    index: int
    container: str
    source: str
    target: str
    new_name: str | None = None
    keep_source: bool = False
    compression: str = "none"
    tcp_established: bool = False
    line: int | None = None
    # what the plan says of DATA_PLANE_KEYS for this entry (checked values by key); the
    # rest comes from the batch's options
    data_plane: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def target_name(self) -> str:
        return self.new_name or self.container

    def where(self) -> str:
        at = f" (line {self.line})" if self.line else ""
        return f"migration #{self.index}{at}"

    def options(self, base: MigrationOptions | None = None) -> MigrationOptions:
        data_plane = option_fields(self.data_plane)
        # the entry's data path replaces the command line's, however either spells it
        if "data_path" in data_plane or data_plane.get("tls") or data_plane.get("direct"):
            data_plane.setdefault("data_path", "auto")
            data_plane.setdefault("tls", False)
            data_plane.setdefault("direct", False)
        return replace(
            base or MigrationOptions(),
            new_name=self.new_name,
            keep_source=self.keep_source,
            compression=self.compression,
            tcp_established=self.tcp_established,
            **data_plane,
        )


@dataclass
class Plan:
    entries: list[PlanEntry]
    inventory: str | None = None  # path, already made relative to the working directory
    path: str | None = None
    # how its host names were resolved when the plan was made (an evacuation), if they were
    resolver: Callable[[str], ResolvedHost] | None = field(default=None, repr=False)

    def host_resolver(self, ssh_config: str | None = None) -> Callable[[str], ResolvedHost]:
        """How the plan's host names become connection settings (cached per name)."""
        if self.resolver is not None:
            return self.resolver
        resolve: Callable[[str], ResolvedHost]
        if self.inventory is not None:
            from ..inventory import load_inventory  # written alongside; imported when needed

            inventory = load_inventory(self.inventory)

            def resolve(name: str) -> ResolvedHost:
                return inventory.resolve(name, ssh_config)
        else:

            def resolve(name: str) -> ResolvedHost:
                return resolve_host(name, ssh_config)

        return cached_resolver(resolve)


def cached_resolver(resolve: Callable[[str], ResolvedHost]) -> Callable[[str], ResolvedHost]:
    cache: dict[str, ResolvedHost] = {}
    lock = threading.Lock()

    def cached(name: str) -> ResolvedHost:
        with lock:
            if name not in cache:
                cache[name] = resolve(name)
            return cache[name]

    return cached


class _Mapping(dict[Any, Any]):
    """A YAML mapping that remembers the lines of itself and of its keys."""

    line: int = 0
    key_lines: dict[Any, int]


class _PlanLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    mapping = _Mapping()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError as error:
            raise InvalidInput(
                f"line {key_node.start_mark.line + 1}: a mapping key must be a plain value"
            ) from error
        if key in mapping:
            raise InvalidInput(
                f"line {key_node.start_mark.line + 1}: {key!r} is given twice "
                f"(first on line {mapping.key_lines[key]})"
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


_PlanLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read and validate a plan file; errors name the entry and the line."""
    plan_path = Path(path)
    try:
        text = plan_path.read_text()
    except OSError as error:
        raise InvalidInput(f"cannot read the plan {str(plan_path)!r}: {error}") from error
    return parse_plan(text, base_dir=plan_path.parent, name=str(plan_path))


def parse_plan(text: str, *, base_dir: str | os.PathLike[str] = ".", name: str = "plan") -> Plan:
    try:
        document = yaml.load(text, Loader=_PlanLoader)  # a SafeLoader subclass
    except InvalidInput as error:
        raise InvalidInput(f"{name}: {error.message}") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise InvalidInput(f"{name}: not valid YAML{where}: {problem}") from error
    if not isinstance(document, _Mapping):
        raise InvalidInput(
            f"{name}: a plan is a mapping with 'migrations:' (and optionally 'inventory:' "
            "and 'defaults:')"
        )
    for key in document:
        if key not in TOP_KEYS:
            raise InvalidInput(
                f"{name}, line {document.key_lines[key]}: unknown key {key!r} "
                f"(expected {', '.join(TOP_KEYS)})"
            )
    inventory = document.get("inventory")
    inventory_path: str | None = None
    if inventory is not None:
        if not isinstance(inventory, str) or not inventory.strip():
            raise InvalidInput(
                f"{name}, line {document.key_lines['inventory']}: 'inventory' must be a path"
            )
        inventory_path = str(Path(base_dir) / Path(inventory).expanduser())
        if not Path(inventory_path).is_file():
            raise HostConfigError(
                f"{name}, line {document.key_lines['inventory']}: the inventory "
                f"{inventory_path!r} does not exist"
            )
    defaults = _defaults(document, name)
    migrations = document.get("migrations")
    line = document.key_lines.get("migrations", document.line)
    if not isinstance(migrations, list) or not migrations:
        raise InvalidInput(
            f"{name}, line {line}: 'migrations' must be a non-empty list of "
            "{container, from, to} entries"
        )
    entries: list[PlanEntry] = []
    seen: dict[tuple[str, str], PlanEntry] = {}
    for position, item in enumerate(migrations, start=1):
        entry = _entry(item, position, defaults, name, line)
        key = (entry.source, entry.container)
        if key in seen:
            raise InvalidInput(
                f"{name}, {entry.where()}: {entry.container!r} on {entry.source} is already "
                f"moved by {seen[key].where()}",
                hint="A container can be moved once per plan.",
            )
        seen[key] = entry
        entries.append(entry)
    return Plan(entries=entries, inventory=inventory_path, path=name)


def _defaults(document: _Mapping, name: str) -> dict[str, Any]:
    defaults = document.get("defaults")
    if defaults is None:
        return {}
    line = document.key_lines["defaults"]
    if not isinstance(defaults, _Mapping):
        raise InvalidInput(f"{name}, line {line}: 'defaults' must be a mapping")
    values: dict[str, Any] = {}
    for key, value in defaults.items():
        at = f"{name}, defaults, line {defaults.key_lines[key]}"
        if key == "name":
            raise InvalidInput(
                f"{at}: 'name' cannot be a default (two containers cannot share a name); "
                "give it per migration"
            )
        if key not in DEFAULT_KEYS:
            raise InvalidInput(f"{at}: unknown option {key!r} (expected {', '.join(DEFAULT_KEYS)})")
        values[key] = _option(key, value, at)
    return values


def _option(key: str, value: Any, at: str) -> Any:
    if key in SETTINGS:
        return parse_setting(key, value, at=at)
    if key == "name":
        if not isinstance(value, str):
            raise InvalidInput(f"{at}: 'name' must be a container name")
        try:
            return validate_container_name(value, what="new name")
        except InvalidInput as error:
            raise InvalidInput(f"{at}: {error.message}", hint=error.hint) from error
    raise InvalidInput(f"{at}: unknown option {key!r}")  # pragma: no cover


def _entry(item: Any, index: int, defaults: dict[str, Any], name: str, list_line: int) -> PlanEntry:
    if not isinstance(item, _Mapping):
        raise InvalidInput(
            f"{name}, migration #{index}: expected a mapping with container, from and to "
            f"(the list starts on line {list_line})"
        )
    at = f"{name}, migration #{index} (line {item.line})"
    for key in item:
        if key not in ENTRY_KEYS:
            raise InvalidInput(
                f"{at}: unknown key {key!r} on line {item.key_lines[key]} "
                f"(expected {', '.join(ENTRY_KEYS)})"
            )
    for required in ("container", "from", "to"):
        if required not in item:
            raise InvalidInput(f"{at}: {required!r} is missing")
        if not isinstance(item[required], str) or not item[required]:
            raise InvalidInput(
                f"{at}: {required!r} on line {item.key_lines[required]} must be a string"
            )
    try:
        container = validate_container_name(item["container"])
        source = HostSpec.parse(item["from"]).text
        target = HostSpec.parse(item["to"]).text
    except InvalidInput as error:
        raise InvalidInput(f"{at}: {error.message}", hint=error.hint) from error
    if source == target:
        raise InvalidInput(f"{at}: 'from' and 'to' are the same host ({source})")
    values = dict(defaults)
    for key in (*DEFAULT_KEYS, "name"):
        if key in item:
            values[key] = _option(key, item[key], f"{at}, line {item.key_lines[key]}")
    return PlanEntry(
        index=index,
        container=container,
        source=source,
        target=target,
        new_name=values.get("name"),
        keep_source=values.get("keep_source", False),
        compression=values.get("compression", "auto"),
        tcp_established=values.get("tcp_established", False),
        line=item.line,
        data_plane={key: values[key] for key in DATA_PLANE_KEYS if key in values},
    )
