"""``migrate-container SOURCE TARGET CONTAINER``: the older design's command, kept for scripts.

It runs the same SSH migration as ``celestial-ssh migrate`` and takes the same options
(``--ssh-config``, ``--json``, ...); the hosts are ssh_config aliases or
``[user@]host[:port]``, so the old ``<source-ip> <target-ip>`` arguments keep working.
"""

from __future__ import annotations

import sys

from .main import migrate_command


def main() -> None:
    migrate_command.main(args=sys.argv[1:], prog_name="migrate-container")
