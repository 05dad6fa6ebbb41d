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

The package: :mod:`.model` (the inventory, and a name in it resolved to a host),
:mod:`.load` (reading a file, telling its form), :mod:`.nodes` (checked values from YAML
nodes, with line numbers), :mod:`.native` and :mod:`.ansible` (one reader a form).
"""

from .load import FORMATS, load_inventory, parse_inventory
from .model import Inventory, InventoryHost
from .nodes import STRICTNESS

__all__ = [
    "FORMATS",
    "STRICTNESS",
    "Inventory",
    "InventoryHost",
    "load_inventory",
    "parse_inventory",
]
