"""Duplicate deliveries: the replicator's sandbox is killed in the middle of batches, so the stream
mapping bisects and redelivers records whose writes were partly applied already. Every write is a
conditional last-writer-wins put, so the regions converge with nothing lost and nothing applied twice.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from ddbrep.client import ReplicatedTable
from ddbrep.local.runtime import LocalCloud
from replicator.core import metrics_names as m
from tests.chaos.support import (
    REGIONS,
    TABLE,
    Ledger,
    created_versions,
    divergences,
    drain,
    heal_all,
    key,
    last_writer_violations,
    metric_deltas,
    metric_totals,
    replicator_function,
    snapshot,
    stream_poller,
)

pytestmark = pytest.mark.chaos

SOURCE = "us-east-1"
SEED = 5501
KILLS = 3
SLOW_LINK_MS = 250  # each target write takes this long: an invocation lasts long enough to be killed


class SandboxKiller:
    """Kills the source replicator's sandbox (by its PID) while it is in the middle of an invocation,
    up to ``kills`` times; the runtime reports a crash to the mapping and starts a fresh sandbox."""

    def __init__(self, cloud: LocalCloud, kills: int, rng: random.Random) -> None:
        self.worker = replicator_function(cloud, SOURCE).worker
        self.poller = stream_poller(cloud, SOURCE)
        self.kills, self.rng = kills, rng
        self.killed: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-killer", daemon=True)

    def _in_flight(self) -> bool:
        # the worker counts an invocation when it starts, the mapping when it has returned
        return self.worker.invocations > self.poller.stats.invocations

    def _run(self) -> None:
        deadline = time.monotonic() + 30
        while len(self.killed) < self.kills and time.monotonic() < deadline and not self._stop.is_set():
            if not self._in_flight():
                self._stop.wait(0.02)
                continue
            started = self.worker.invocations
            self._stop.wait(self.rng.uniform(0.2, 0.6))  # some of the batch's writes are done by now
            pid = self.worker.pid
            if pid is not None and self._in_flight() and self.worker.invocations == started:
                os.kill(pid, signal.SIGKILL)
                self.killed.append(pid)
            while self._in_flight() and time.monotonic() < deadline:  # let the crash be reported
                self._stop.wait(0.02)

    def start(self) -> SandboxKiller:
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        self._stop.set()


def test_a_replicator_killed_mid_batch_is_redelivered_without_loss(chaos: LocalCloud, prefix: str) -> None:
    cloud = chaos
    print(f"redelivery seed {SEED}")
    rng = random.Random(SEED)
    drain(cloud)
    before = metric_totals(cloud)
    stats = stream_poller(cloud, SOURCE).stats
    errors_before, bisections_before, discarded_before = (
        stats.function_errors,
        stats.bisections,
        stats.records_discarded,
    )
    # Given slow links out of the source region and a killer waiting for the replicator to be busy
    for target in REGIONS[1:]:
        cloud.faults.set_latency(SOURCE, target, SLOW_LINK_MS, both_ways=False)
    killer = SandboxKiller(cloud, KILLS, rng).start()
    ledger = Ledger()
    helper = ReplicatedTable(cloud.client(SOURCE), TABLE, SOURCE)
    raw = cloud.client(SOURCE)
    try:
        # When the source region writes bursts: helper puts and deletes, unstamped puts, hard deletes
        for burst in range(KILLS + 1):
            for n in range(20):
                pk = f"{prefix}{rng.randrange(25)}"
                draw = rng.random()
                if draw < 0.6:
                    ledger.wrote(
                        pk, helper.put_item({**key(pk), "burst": {"N": str(burst)}, "n": {"N": str(n)}})
                    )
                elif draw < 0.75:
                    ledger.wrote(pk, helper.delete_item(key(pk)))
                elif draw < 0.9:
                    raw.put_item(TableName=TABLE, Item={**key(pk), "raw": {"N": str(n)}})
                else:
                    raw.delete_item(TableName=TABLE, Key=key(pk))
            deadline = time.monotonic() + 20
            while len(killer.killed) == burst < KILLS and time.monotonic() < deadline:
                time.sleep(0.05)  # one kill per burst, then a last burst with none
        killer.join(timeout=30)
    finally:
        heal_all(cloud)
    drain(cloud)

    # Then the sandbox was killed mid-batch and the mapping bisected and redelivered, discarding nothing
    print(f"killed sandboxes {killer.killed}; mapping stats {stats}")
    assert len(killer.killed) >= 1
    assert stats.function_errors - errors_before >= len(killer.killed)
    assert stats.bisections > bisections_before
    assert stats.records_discarded == discarded_before
    # and redelivered writes that had been applied already were recognised as such, not applied twice
    metrics = metric_deltas(before, metric_totals(cloud))
    assert metrics[m.STALE_SKIPPED] + metrics[m.LOCAL_WRITE_SUPERSEDED] > 0
    assert metrics[m.DEAD_LETTERED] == 0
    # And every region holds the greatest version of every key
    regions = snapshot(cloud, prefix)
    assert divergences(regions) == []
    assert last_writer_violations(regions, created_versions(cloud, prefix), ledger) == []
