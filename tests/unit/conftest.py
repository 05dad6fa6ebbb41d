"""Unit tests run no real ``ssh`` client: the engine's ``auto`` data plane is paramiko here,
which is the one the fake sessions stand in for. Tests of the OpenSSH data plane ask for it."""

from __future__ import annotations

import pytest

from celestial_ssh import data_plane


@pytest.fixture(autouse=True)
def no_openssh_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data_plane, "openssh_client", lambda: None)
