"""Unit tests run no real ``ssh`` client: the engine's ``auto`` data plane is paramiko here,
which is the one the fake sessions stand in for. Tests of the OpenSSH data plane ask for it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from celestial_ssh import data_plane

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
