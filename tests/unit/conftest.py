"""Unit tests run no real ``ssh`` client: the engine's ``auto`` data plane is paramiko here,
which is the one the fake sessions stand in for. Tests of the OpenSSH data plane ask for it.

CLI tests reach fake hosts through ``cli_connection``: the one seam where the commands'
connection settings start from. Engine tests get their two fake hosts from ``lab``
(a module may define its own ``lab`` instead, which wins there)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from celestial_ssh import data_plane
from celestial_ssh.connection import ConnectionSettings
from celestial_ssh_cli import options as cli_options
from tests.unit.fakes.lab import FakeLab

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


def load_bench_script(filename: str, module_name: str) -> ModuleType:
    """A script of bench/ (not a package) as a module, registered under ``module_name``
    (dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location(module_name, BENCH_DIR / filename)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def no_openssh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_plane, "openssh_client", lambda: None)


@pytest.fixture
def cli_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[[ConnectionSettings], None]:
    """Call it with the settings (a fake resolver and connector) every CLI command in the
    test starts from; --ssh-config, --accept-new-host-keys and --inventory apply over them."""

    def use(connection: ConnectionSettings) -> None:
        monkeypatch.setattr(cli_options, "BASE_CONNECTION", connection)

    return use


@pytest.fixture
def lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLab]:
    """The migration engine's fake hosts (:class:`~tests.unit.fakes.lab.FakeLab`), its
    relay in place of the real one; a test that leaves a command unanswered fails."""
    lab = FakeLab()
    lab.plug_in(monkeypatch)
    yield lab
    assert lab.unexpected == [], "the engine ran commands no test expected"
