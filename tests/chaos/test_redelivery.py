"""Duplicate deliveries: the replicator's sandbox is killed in the middle of batches, so the stream
mapping bisects and redelivers records whose writes were partly applied already. Every write is a
conditional last-writer-wins put, so the regions converge with nothing lost and nothing applied twice.
"""

from __future__ import annotations

import random

import pytest

from ddbrep.client import ReplicatedTable
from ddbrep.local.cloud import LocalCloud
from replicator.core import metrics_names as m
from tests.chaos.support import (
    REGIONS,
    TABLE,
    Ledger,
    assert_no_divergence,
    created_versions,
    drain,
    heal_all,
    key,
    kill_replicator_mid_invocation,
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


def kill_mid_invocation(cloud: LocalCloud, rng: random.Random) -> int | None:
    """Kill the source replicator's sandbox (by its PID) once it is in the middle of an invocation; the
    runtime reports the crash to the stream mapping and starts a fresh sandbox on the next invocation.
    The PID killed, or None when no invocation started within the timeout. Each target write takes
    SLOW_LINK_MS here, so the pause lands inside the batch."""
    return kill_replicator_mid_invocation(cloud, SOURCE, rng, timeout=10, pause=(0.2, 0.5))


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
    # Given slow links out of the source region (a batch takes a while to replicate)
    for target in REGIONS[1:]:
        cloud.faults.set_latency(SOURCE, target, SLOW_LINK_MS, both_ways=False)
    worker = replicator_function(cloud, SOURCE).worker
    ledger = Ledger()
    helper = ReplicatedTable(cloud.client(SOURCE), TABLE, SOURCE)
    raw = cloud.client(SOURCE)
    killed: list[int | None] = []
    try:
        # When the source region writes bursts (helper puts and deletes, unstamped puts, hard deletes)
        # and the replicator's sandbox is killed while it replicates each burst but the last
        for burst in range(KILLS + 1):
            worker.start()  # warm: the kill lands in the middle of a batch, not in a cold start
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
            if burst < KILLS:
                killed.append(kill_mid_invocation(cloud, rng))
    finally:
        heal_all(cloud)
    drain(cloud)

    # Then the sandbox was killed mid-batch and the mapping bisected and redelivered, discarding nothing
    kills = [pid for pid in killed if pid is not None]
    print(f"killed sandboxes {killed}; mapping stats {stats}")
    assert len(kills) >= 1
    assert stats.function_errors - errors_before >= len(kills)
    assert stats.bisections > bisections_before
    assert stats.records_discarded == discarded_before
    # and redelivered writes that had been applied already were recognised as such, not applied twice
    metrics = metric_deltas(before, metric_totals(cloud))
    assert metrics[m.STALE_SKIPPED] + metrics[m.LOCAL_WRITE_SUPERSEDED] > 0
    assert metrics[m.DEAD_LETTERED] == 0
    # And every region holds the greatest version of every key
    regions = snapshot(cloud, prefix)
    assert_no_divergence(regions)
    assert last_writer_violations(regions, created_versions(cloud, prefix), ledger) == []
