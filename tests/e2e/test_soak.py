"""Soak: a live stateful workload moved back and forth 20 times; no acknowledged write lost.

memtick's log lines are its acknowledged writes: each line is written (and flushed) only
after the counter in memory moved on. The log travels with the checkpoint, so after 20
moves the final copy's log must hold every counter value from 0 on, in order, once each,
with the memory checksum unchanged.
"""

from __future__ import annotations

import time

import pytest

from celestial_ssh import MigrationOptions, migrate

from .conftest import LEDGER, SSH_CONFIG, assert_one_running_copy

MOVES = 20


@pytest.mark.slow
def test_twenty_moves_lose_no_acknowledged_write(lab, workloads):
    workload = workloads.start(memory_mb=16, interval_ms=10)
    options = MigrationOptions(ssh_config=str(SSH_CONFIG))
    hosts = ("lab-a", "lab-b")
    acknowledged_before_freeze = []
    downtimes = []
    for move in range(MOVES):
        origin, destination = hosts[move % 2], hosts[(move + 1) % 2]
        acknowledged_before_freeze.append(lab[origin].ticks(workload.name)[-1].counter)
        report = migrate(origin, destination, workload.name, options)
        downtimes.append(report.downtime_s or 0.0)
        assert assert_one_running_copy(lab, workload.name) == destination
    LEDGER.faults.append(f"soak: {MOVES} consecutive live moves")
    time.sleep(0.5)

    final = lab[hosts[MOVES % 2]].ticks(workload.name)
    counters = [tick.counter for tick in final]
    assert counters == list(range(len(counters))), "a write was lost or repeated"
    assert max(acknowledged_before_freeze) < counters[-1]
    assert len({tick.checksum for tick in final}) == 1, "memory changed across the moves"
    print(
        f"\n{MOVES} moves: downtime median {sorted(downtimes)[MOVES // 2]:.2f} s, "
        f"max {max(downtimes):.2f} s; {len(counters)} acknowledged writes, none lost"
    )
