"""Host inventories: the native YAML form, Ansible YAML and ``ansible-inventory --list`` JSON."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from celestial_ssh.errors import HostConfigError
from celestial_ssh.inventory import Inventory, InventoryHost, load_inventory, parse_inventory

needs_ssh = pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path: Path, text: str, name: str = "inventory.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load_error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(HostConfigError) as caught:
        load_inventory(path)
    return str(caught.value)


# -- native form ----------------------------------------------------------------------------
NATIVE = """
hosts:
  web-1:
    hostname: 10.0.0.1
    user: deploy
    port: 2222
    identity_file: keys/id_web
    become: true
    known_hosts_file: /etc/celestial/known_hosts
    proxy_jump: bastion@jump.example.com:22
    strict_host_key_checking: accept-new
  web-2:
    hostname: 10.0.0.2
  db: {}
groups:
  web: [web-1, web-2]
  everything: [db, web-1, web-2, db]
"""


def test_native_all_fields(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, NATIVE))
    assert inventory.format == "native"
    assert inventory.warnings == []
    assert list(inventory.hosts) == ["web-1", "web-2", "db"]
    assert inventory.hosts["web-1"] == InventoryHost(
        alias="web-1",
        hostname="10.0.0.1",
        user="deploy",
        port=2222,
        identity_file=str(tmp_path / "keys" / "id_web"),
        become=True,
        known_hosts_file="/etc/celestial/known_hosts",
        proxy_jump="bastion@jump.example.com:22",
        strict_host_key_checking="accept-new",
        groups=("web", "everything"),
        source=f"{tmp_path / 'inventory.yml'}:2",
    )
    assert inventory.hosts["db"] == InventoryHost(
        alias="db", groups=("everything",), source=f"{tmp_path / 'inventory.yml'}:13"
    )
    assert inventory.groups == {"web": ["web-1", "web-2"], "everything": ["db", "web-1", "web-2"]}


def test_native_relative_paths_follow_the_inventory_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    subdir = tmp_path / "conf"
    subdir.mkdir()
    path = write(
        subdir,
        """
        hosts:
          a: {identity_file: ../keys/id, known_hosts_file: kh}
          b: {identity_file: ~/id_b}
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory does not matter
    monkeypatch.setenv("HOME", "/home/someone")
    inventory = load_inventory(path)
    assert inventory.hosts["a"].identity_file == str(tmp_path / "keys" / "id")
    assert inventory.hosts["a"].known_hosts_file == str(subdir / "kh")
    assert inventory.hosts["b"].identity_file == "/home/someone/id_b"
    # a relative inventory path is anchored too
    relative = os.path.relpath(path, elsewhere)
    assert load_inventory(relative).hosts["a"].known_hosts_file == str(subdir / "kh")


def test_native_bare_yes_no_strictness(tmp_path: Path) -> None:
    # YAML 1.1 reads bare yes/no as booleans; they still mean the ssh_config words
    inventory = load_inventory(
        write(
            tmp_path,
            """
            hosts:
              a: {strict_host_key_checking: yes}
              b: {strict_host_key_checking: no}
              c: {strict_host_key_checking: Accept-New}
            """,
        )
    )
    assert [h.strict_host_key_checking for h in inventory.hosts.values()] == [
        "yes",
        "no",
        "accept-new",
    ]


def test_native_null_host_and_no_groups(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, "hosts:\n  a:\n  b.example.com:\n"))
    assert list(inventory.hosts) == ["a", "b.example.com"]
    assert inventory.groups == {}


def test_native_ipv6_hostname(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, 'hosts:\n  v6: {hostname: "::1", port: 2222}\n'))
    assert inventory.hosts["v6"].hostname == "::1"


def test_native_yaml_merge_keys(tmp_path: Path) -> None:
    inventory = load_inventory(
        write(
            tmp_path,
            """
            hosts:
              a: &defaults {user: root, port: 2222, hostname: 10.0.0.1}
              b:
                <<: *defaults
                hostname: 10.0.0.2
            """,
        )
    )
    b = inventory.hosts["b"]
    assert (b.hostname, b.user, b.port) == ("10.0.0.2", "root", 2222)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # bad YAML
        ("hosts:\n  a: {hostname: x\n  b: {}\n", ":3: not valid YAML or JSON"),
        ("hosts:\n  a:\n\tb: 1\n", ":3: not valid YAML or JSON"),
        ("", "the inventory is empty"),
        ("- a\n- b\n", ":1: an inventory must be a mapping"),
        # unknown keys
        ("hosts:\n  a:\n    hostname: x\n    colour: red\n", ":4: host 'a': unknown key 'colour'"),
        ("hosts: {a: {}}\nvars: {}\n", ":2: unknown top-level key 'vars'"),
        # wrong types
        ("hosts:\n  a:\n    port: '22'\n", ":3: host 'a': port must be a number, not a string"),
        ("hosts:\n  a:\n    port: true\n", ":3: host 'a': port must be a number, not a boolean"),
        ("hosts:\n  a:\n    become: 'yes'\n", ":3: host 'a': become must be true or false"),
        ("hosts:\n  a:\n    user: [root]\n", ":3: host 'a': user must be a non-empty string"),
        ("hosts:\n  a: [x]\n", ":2: host 'a' must be a mapping, not a list"),
        ("hosts: [a, b]\n", ":1: 'hosts' must be a mapping, not a list"),
        ("hosts:\n  a: {}\ngroups:\n  g: a\n", ":4: group 'g' must be a list of names"),
        ("hosts:\n  a: {}\ngroups:\n  g: [a, 3]\n", ":4: group 'g' must hold names, not a number"),
        (
            "hosts:\n  a:\n    strict_host_key_checking: ask\n",
            ":3: host 'a': strict_host_key_checking must be one of yes, accept-new, no",
        ),
        # port out of range
        ("hosts:\n  a:\n    port: 0\n", ":3: host 'a': port 0 is out of range (1-65535)"),
        ("hosts:\n  a:\n    port: 70000\n", ":3: host 'a': port 70000 is out of range"),
        # a group naming an unknown host
        (
            "hosts:\n  a: {}\ngroups:\n  g:\n    - a\n    - ghost\n",
            ":6: group 'g' names unknown host 'ghost'",
        ),
        ("hosts:\n  a: {}\ngroups:\n  a: [a]\n", ":4: group 'a' has the same name as a host"),
        # hostile names
        ("hosts:\n  'a;reboot': {}\n", ":2: host alias 'a;reboot' is not a valid host name"),
        (
            "hosts:\n  a:\n    hostname: '$(touch /tmp/x)'\n",
            ":3: host 'a': hostname '$(touch /tmp/x)' is not a valid host name",
        ),
        ("hosts:\n  a:\n    hostname: root@x\n", ":3: host 'a': hostname 'root@x'"),
        ("hosts:\n  a:\n    user: 'r`id`'\n", ":3: host 'a': user 'r`id`' is not a valid user"),
        ("hosts:\n  a:\n    proxy_jump: 'j|x'\n", ":3: host 'a': proxy_jump 'j|x'"),
        ("hosts:\n  a: {}\ngroups:\n  'g x': [a]\n", ":4: group name 'g x' is not a valid"),
        ("hosts:\n  a:\n    hostname: '-oProxyCommand=x'\n", ":3: host 'a': hostname"),
        # duplicate keys
        (
            "hosts:\n  a: {}\n  b: {}\n  a: {}\n",
            ":4: duplicate key 'a' in 'hosts' (first on line 2)",
        ),
        (
            "hosts:\n  a:\n    port: 22\n    port: 23\n",
            ":4: duplicate key 'port' in host 'a' (first on line 3)",
        ),
        ("hosts: {}\nhosts: {}\n", ":2: duplicate key 'hosts'"),
        # templates are not evaluated
        ("hosts:\n  a:\n    hostname: '{{ ip }}'\n", ":3: host 'a': hostname is a template"),
    ],
)
def test_native_malformed(tmp_path: Path, text: str, expected: str) -> None:
    message = load_error(tmp_path, text)
    assert str(tmp_path / "inventory.yml") in message
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HostConfigError, match="cannot read inventory"):
        load_inventory(tmp_path / "nope.yml")


def test_unknown_format(tmp_path: Path) -> None:
    message = load_error(tmp_path, "servers:\n  a: 1\n")
    assert "cannot tell the inventory's format" in message


# -- Ansible YAML ---------------------------------------------------------------------------
ANSIBLE = """
all:
  vars:
    ansible_user: admin
    ansible_port: 22
    ansible_python_interpreter: /usr/bin/python3
  hosts:
    solo.example.com:
  children:
    web:
      vars:
        ansible_port: 2222
        ansible_ssh_private_key_file: keys/web
      hosts:
        web-1:
          ansible_host: 10.0.0.1
        web-2:
          ansible_host: 10.0.0.2
          ansible_port: "2200"
      children:
        canary:
          vars:
            ansible_become: yes
          hosts:
            web-2:
    db:
      hosts:
        db-1:
          ansible_host: 10.0.1.1
          ansible_user: postgres
          ansible_become: "true"
          ansible_ssh_common_args: -o ProxyJump=bastion
          app_role: primary
"""


def test_ansible_yaml_inheritance(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, ANSIBLE))
    assert inventory.format == "ansible-yaml"
    hosts = inventory.hosts
    assert list(hosts) == ["solo.example.com", "web-1", "web-2", "db-1"]
    solo = hosts["solo.example.com"]
    assert (solo.hostname, solo.user, solo.port, solo.become) == (None, "admin", 22, False)
    web1 = hosts["web-1"]
    assert (web1.hostname, web1.user, web1.port, web1.become) == ("10.0.0.1", "admin", 2222, False)
    assert web1.identity_file == str(tmp_path / "keys" / "web")
    web2 = hosts["web-2"]  # host var beats group var; the deeper group's var beats its parent's
    assert (web2.hostname, web2.port, web2.become) == ("10.0.0.2", 2200, True)
    assert web2.groups == ("web", "canary")
    db = hosts["db-1"]
    assert (db.hostname, db.user, db.port, db.become) == ("10.0.1.1", "postgres", 22, True)
    assert db.vars == {
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_common_args": "-o ProxyJump=bastion",
        "app_role": "primary",
    }
    assert inventory.groups == {
        "all": ["solo.example.com", "web-1", "web-2", "db-1"],
        "web": ["web-1", "web-2"],
        "canary": ["web-2"],
        "db": ["db-1"],
    }
    path = tmp_path / "inventory.yml"
    assert inventory.warnings == [
        f"{path}:31: ansible_ssh_common_args is not used by celestial-ssh; ignored"
    ]


def test_ansible_yaml_sibling_groups_merge_by_name(tmp_path: Path) -> None:
    # at equal depth Ansible applies groups in alphabetical order: 'zeta' wins over 'alpha'
    inventory = load_inventory(
        write(
            tmp_path,
            """
            zeta:
              vars: {ansible_port: 2002}
              hosts: {h: }
            alpha:
              vars: {ansible_port: 2001, ansible_user: alice}
              hosts: {h: }
            """,
        )
    )
    assert inventory.format == "ansible-yaml"
    assert (inventory.hosts["h"].port, inventory.hosts["h"].user) == (2002, "alice")
    assert inventory.groups["all"] == ["h"]


def test_ansible_yaml_group_named_hosts_is_not_native(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, "hosts:\n  hosts:\n    a:\n      ansible_port: 2\n"))
    assert inventory.format == "ansible-yaml"
    assert inventory.groups["hosts"] == ["a"]


def test_ansible_unknown_vars_warn_once_per_line(tmp_path: Path) -> None:
    inventory = load_inventory(
        write(
            tmp_path,
            """
            all:
              vars:
                ansible_ssh_pass: secret
                ansible_connection: local
                ansible_connection_ok: 1
              hosts: {a: , b: , c: {ansible_connection: ssh}}
            """,
        )
    )
    path = tmp_path / "inventory.yml"
    assert inventory.warnings == [
        f"{path}:3: ansible_ssh_pass is not used by celestial-ssh; ignored",
        f"{path}:4: ansible_connection 'local' is not SSH; ignored",
        f"{path}:5: ansible_connection_ok is not used by celestial-ssh; ignored",
    ]
    assert inventory.hosts["c"].vars == {  # kept, for whoever wants them
        "ansible_ssh_pass": "secret",
        "ansible_connection": "ssh",
        "ansible_connection_ok": 1,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "all:\n  hosts:\n    a:\n      ansible_port: x22\n",
            ":4: host 'a': port must be a number",
        ),
        ("all:\n  vars:\n    ansible_port: 99999\n  hosts: {a: }\n", ":3: host 'a': port 99999"),
        ("all:\n  hosts:\n    'a&&b':\n", ":3: host name 'a&&b' is not a valid host name"),
        ("all:\n  hosts:\n    a:\n      ansible_host: 'x y'\n", ":4: host 'a': hostname 'x y'"),
        ("all:\n  hosts:\n    a:\n      ansible_become: maybe\n", ":4: host 'a': become must"),
        ("all:\n  hosts:\n    a:\n      ansible_user: '{{ u }}'\n", ":4: host 'a': user is a"),
        ("all:\n  hosts: [a, b]\n", ":2: hosts of group 'all' must be a mapping, not a list"),
        ("all:\n  members: {a: }\n", ":2: group 'all': unknown key 'members'"),
        ("all:\n  hosts:\n    a:\n    a:\n", ":4: duplicate key 'a' in hosts of group 'all'"),
        (
            "all:\n  children:\n    g:\n      children:\n        g:\n          hosts: {a: }\n",
            "group 'g' is its own descendant",
        ),
    ],
)
def test_ansible_yaml_malformed(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, text)


# -- ansible-inventory --list JSON ---------------------------------------------------------
LISTED = {
    "_meta": {
        "hostvars": {
            "web-1": {"ansible_host": "10.0.0.1", "ansible_port": 2222, "ansible_user": "root"},
            "web-2": {"ansible_host": "10.0.0.2", "ansible_become": True, "ansible_foo": 1},
            "db-1": {"ansible_host": "10.0.1.1", "ansible_port": "2200"},
        }
    },
    "all": {"children": ["ungrouped", "web", "db"]},
    "web": {"hosts": ["web-1", "web-2"], "vars": {"ansible_user": "deploy"}},
    "db": {"hosts": ["db-1"]},
    "ungrouped": {},
}


def test_ansible_json(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, json.dumps(LISTED, indent=4), "inv.json"))
    assert inventory.format == "ansible-json"
    web1, web2, db1 = (inventory.hosts[n] for n in ("web-1", "web-2", "db-1"))
    assert list(inventory.hosts) == ["web-1", "web-2", "db-1"]
    assert (web1.hostname, web1.port, web1.user) == ("10.0.0.1", 2222, "root")  # host var wins
    assert (web2.hostname, web2.user, web2.become) == ("10.0.0.2", "deploy", True)
    assert (db1.hostname, db1.port, db1.user) == ("10.0.1.1", 2200, None)
    assert inventory.groups == {
        "all": ["web-1", "web-2", "db-1"],
        "ungrouped": [],
        "web": ["web-1", "web-2"],
        "db": ["db-1"],
    }
    assert len(inventory.warnings) == 1
    assert "inv.json:" in inventory.warnings[0]
    assert "ansible_foo is not used" in inventory.warnings[0]


def test_ansible_json_compact_and_nested_children(tmp_path: Path) -> None:
    listed = {
        "_meta": {"hostvars": {"h": {"ansible_host": "10.1.1.1"}}},
        "all": {"children": ["outer"]},
        "outer": {"children": ["inner"], "vars": {"ansible_port": 2201}},
        "inner": {"hosts": ["h"], "vars": {"ansible_port": 2202}},
    }
    inventory = load_inventory(write(tmp_path, json.dumps(listed), "inv.json"))
    assert inventory.hosts["h"].port == 2202
    assert inventory.expand(["outer"]) == ["h"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"_meta": {"hostvars": {}}, "all": {"hosts": "a"}}', ":1: hosts of 'all' must be"),
        ('{\n "_meta": {},\n "all": {"children": [1]}\n}', ":3: children of 'all' must hold names"),
        ('{\n "_meta": {},\n "g": {"hosts": ["a;b"]}\n}', ":3: host name 'a;b' is not a valid"),
        ('{\n "_meta": {},\n "g": {"hosts": [],\n "hosts": []}\n}', ":4: duplicate key 'hosts'"),
        ('{\n "_meta": {},\n "all": {"hosts": ["a"]\n}', "not valid YAML or JSON"),
        (
            '{"_meta": {"hostvars": {"a": {"ansible_port": 0}}}}',
            ":1: host 'a': port 0 is out of range",
        ),
    ],
)
def test_ansible_json_malformed(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in load_error(tmp_path, text)


def test_explicit_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        parse_inventory("hosts: {}", format="toml")
    # forced native on an Ansible file reports the Ansible keys as unknown
    with pytest.raises(HostConfigError, match="unknown top-level key 'all'"):
        parse_inventory("all:\n  hosts: {a: }\nhosts: {}\n", format="native")


# -- expand --------------------------------------------------------------------------------
def test_expand(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, NATIVE))
    assert inventory.expand(["web"]) == ["web-1", "web-2"]
    assert inventory.expand(["db", "web", "web-2", "everything"]) == ["db", "web-1", "web-2"]
    assert inventory.expand(["root@elsewhere:22", "web"]) == ["root@elsewhere:22", "web-1", "web-2"]
    assert inventory.expand([]) == []


def test_expand_prefers_a_host_over_a_same_named_group() -> None:
    inventory = Inventory(hosts={"x": InventoryHost(alias="x")}, groups={"x": ["y"]})
    assert inventory.expand(["x"]) == ["x"]


# -- resolve -------------------------------------------------------------------------------
SSH_CONFIG = """
Host 10.0.0.1
    User fromconfig
    Port 2022
    IdentityFile /keys/from_config
    UserKnownHostsFile /kh/from_config
    ConnectTimeout 7
    StrictHostKeyChecking accept-new

Host db
    HostName 10.9.9.9
    User dbadmin
    Port 5022

Host aliased
    HostName 10.8.8.8
    Port 6022
"""


@needs_ssh
def test_resolve_inventory_over_ssh_config(tmp_path: Path) -> None:
    ssh_config = write(tmp_path, SSH_CONFIG, "ssh_config")
    inventory = load_inventory(write(tmp_path, NATIVE))
    web1 = inventory.resolve("web-1", ssh_config)
    assert web1.name == "web-1"
    assert (web1.hostname, web1.port, web1.user) == ("10.0.0.1", 2222, "deploy")
    assert web1.identity_files == (str(tmp_path / "keys" / "id_web"),)
    assert web1.known_hosts_files == ("/etc/celestial/known_hosts",)
    assert web1.proxy_jump == "bastion@jump.example.com:22"
    assert web1.become is True
    assert web1.connect_timeout == 7.0  # not in the inventory: from ssh_config
    assert web1.ssh_config == str(ssh_config)

    web2 = inventory.resolve("web-2", ssh_config)  # only hostname in the inventory
    assert (web2.hostname, web2.port, web2.user) == ("10.0.0.2", 22, web2.user)
    assert web2.become is False
    assert web2.strict_host_key_checking == "yes"

    db = inventory.resolve("db", ssh_config)  # no hostname: the alias goes through ssh_config
    assert (db.name, db.hostname, db.port, db.user) == ("db", "10.9.9.9", 5022, "dbadmin")


@needs_ssh
def test_resolve_ssh_config_fills_what_the_inventory_leaves_out(tmp_path: Path) -> None:
    ssh_config = write(tmp_path, SSH_CONFIG, "ssh_config")
    inventory = load_inventory(write(tmp_path, "hosts:\n  w:\n    hostname: 10.0.0.1\n"))
    w = inventory.resolve("w", ssh_config)
    assert (w.name, w.hostname, w.port, w.user) == ("w", "10.0.0.1", 2022, "fromconfig")
    assert w.identity_files == ("/keys/from_config",)
    assert w.known_hosts_files == ("/kh/from_config",)
    assert w.strict_host_key_checking == "accept-new"


@needs_ssh
def test_resolve_inventory_strictness_beats_ssh_config(tmp_path: Path) -> None:
    ssh_config = write(tmp_path, SSH_CONFIG, "ssh_config")
    text = "hosts:\n  w: {hostname: 10.0.0.1, strict_host_key_checking: yes}\n"
    inventory = load_inventory(write(tmp_path, text))
    assert inventory.resolve("w", ssh_config).strict_host_key_checking == "yes"


@needs_ssh
def test_resolve_proxy_jump_none_overrides_ssh_config(tmp_path: Path) -> None:
    ssh_config = write(tmp_path, "Host 10.0.0.1\n    ProxyJump jump.example.com\n", "ssh_config")
    inventory = parse_inventory(
        "hosts:\n  a: {hostname: 10.0.0.1}\n  b: {hostname: 10.0.0.1, proxy_jump: none}\n"
    )
    assert inventory.resolve("a", ssh_config).proxy_jump == "jump.example.com"
    assert inventory.resolve("b", ssh_config).proxy_jump is None


@needs_ssh
def test_resolve_unknown_name_falls_back_to_ssh_config(tmp_path: Path) -> None:
    ssh_config = write(tmp_path, SSH_CONFIG, "ssh_config")
    inventory = load_inventory(write(tmp_path, NATIVE))
    aliased = inventory.resolve("aliased", ssh_config)
    assert (aliased.name, aliased.hostname, aliased.port) == ("aliased", "10.8.8.8", 6022)
    assert aliased.become is False
    direct = inventory.resolve("someone@10.5.5.5:2200", ssh_config)
    assert (direct.hostname, direct.user, direct.port) == ("10.5.5.5", "someone", 2200)


@needs_ssh
def test_resolve_without_ssh_config(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, NATIVE))
    web1 = inventory.resolve("web-1")
    assert (web1.hostname, web1.port, web1.user) == ("10.0.0.1", 2222, "deploy")
    assert web1.identity_files == (str(tmp_path / "keys" / "id_web"),)
    assert web1.ssh_config is None
    v6 = parse_inventory('hosts:\n  v6: {hostname: "::1", port: 2222}\n').resolve("v6")
    assert (v6.hostname, v6.port, v6.known_hosts_name) == ("::1", 2222, "[::1]:2222")


def test_resolve_missing_ssh_config_is_reported(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, NATIVE))
    with pytest.raises(HostConfigError, match="does not exist"):
        inventory.resolve("web-1", tmp_path / "missing_config")


# -- the example inventories ---------------------------------------------------------------
@needs_ssh
@pytest.mark.parametrize("name", ["inventory.yml", "ansible-inventory.yml"])
def test_example_inventories_resolve_to_the_lab(name: str) -> None:
    inventory = load_inventory(EXAMPLES / name)
    assert inventory.warnings == []
    assert inventory.expand(["lab"]) == ["lab-a", "lab-b"]
    lab_dir = EXAMPLES.parent / ".lab"
    for alias, address in (("lab-a", "127.0.0.11"), ("lab-b", "127.0.0.12")):
        host = inventory.resolve(alias)
        assert (host.name, host.hostname, host.port, host.user) == (alias, address, 2222, "root")
        assert host.identity_files == (str(lab_dir / "id_ed25519"),)
        if name == "inventory.yml":
            assert host.known_hosts_files == (str(lab_dir / "known_hosts"),)
