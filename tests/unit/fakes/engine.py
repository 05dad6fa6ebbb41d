"""Driving the migration engine against a :class:`~tests.unit.fakes.lab.FakeLab`: one run
that should succeed, one that should fail, and what tests of several files script alike.

The ``lab`` fixture that builds the lab is in ``tests/unit/conftest.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from celestial_ssh.migration import Migration, MigrationOptions

from .lab import SRC, TGT, DeferredFakeProcess, FakeLab, inspect, result


def run(lab: FakeLab, options: MigrationOptions | None = None, container: str = "web") -> Migration:
    engine = Migration(SRC, TGT, container, lab.options(options), on_event=lab.events.append)
    engine.run()
    return engine


def fail(
    lab: FakeLab, error: type[BaseException], options: MigrationOptions | None = None
) -> tuple[Migration, Any]:
    engine = Migration(SRC, TGT, "web", lab.options(options), on_event=lab.events.append)
    with pytest.raises(error) as caught:
        engine.run()
    return engine, caught.value


# what preflight sees of a running source container: its first look and the one under the lock
LOOKS_RUNNING = [inspect("running"), inspect("running")]


def restorable_source(lab: FakeLab) -> None:
    """The source stopped by the checkpoint, then running again once restored."""
    lab.answer(SRC, "podman container inspect", [*LOOKS_RUNNING, inspect("exited"), inspect()])
    lab.answer(SRC, "container restore --print-stats", result())


def lab_restorer(lab: FakeLab) -> DeferredFakeProcess:
    """The target's gated restore (connected before the freeze)."""
    [restorer] = [p for p in lab.processes if isinstance(p, DeferredFakeProcess)]
    return restorer
