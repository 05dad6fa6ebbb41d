"""The unit tests' fake hosts, one idea a module.

- :mod:`.session`: the one fake SSH session (:class:`FakeSession`), answering from a table
  or a function.
- :mod:`.fleet`: :class:`FakeFleet`, hosts by name behind one ``ConnectionSettings`` (doctor,
  ps, recover, batches).
- :mod:`.lab`: :class:`FakeLab`, the migration engine's two hosts, scripted by command line,
  with streams, a relay and an event log.
- :mod:`.engine`: a migration run on a :class:`FakeLab` (``run``, ``fail``) and what tests of
  several files script alike (``restorable_source``, ``lab_restorer``); the ``lab`` fixture
  is in ``tests/unit/conftest.py``.
- :mod:`.host_to_host`: the lab's answers for ``--data-path tls`` and ``ssh`` (the source's
  script that streams straight to the target).

Every one is reached through ``ConnectionSettings(host_resolver=..., connector=...)``, the
seam the library's entry points take, rather than by patching module globals.
"""

from .fleet import FakeFleet, connecting
from .lab import FakeLab, LabSession
from .session import FakeSession, Reply, Responses, host, not_found

__all__ = [
    "FakeFleet",
    "FakeLab",
    "FakeSession",
    "LabSession",
    "Reply",
    "Responses",
    "connecting",
    "host",
    "not_found",
]
