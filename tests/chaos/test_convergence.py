"""Invariants 1-3 under chaos: a three-region mesh with conflicting writers in every region (client
helper puts, updates and deletes; raw unstamped puts and hard deletes) on a handful of shared keys,
while a region is cut off, a pair is throttled and links slow down. One workload, three checks.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

import pytest

from ddbrep.client import ConflictLost, ReplicatedTable
from ddbrep.local.cloud import LocalCloud
from replicator.core import metrics_names as m
from tests.chaos.support import (
    REGIONS,
    TABLE,
    FaultTimeline,
    Ledger,
    Stamp,
    assert_no_divergence,
    created_versions,
    drain,
    key,
    last_writer_violations,
    metric_deltas,
    metric_totals,
    run_threads,
    snapshot,
    throttle_link,
)

pytestmark = pytest.mark.chaos

WORKLOAD_SEED = 1101
SHARED_KEYS = 5  # few keys, many writers: nearly every write conflicts with another region's
HELPER_OPS = 30  # per region
RAW_OPS = 10  # per region


@dataclass
class Outcome:
    prefix: str
    ledger: Ledger
    regions: dict[str, dict[str, dict[str, Any]]]
    created: dict[str, dict[Stamp, list[dict[str, Any]]]]
    metrics: dict[str, float]
    filtered_out: int
    faults: list[str]


def helper_writer(cloud: LocalCloud, region: str, prefix: str, ledger: Ledger, seed: int) -> None:
    rng = random.Random(seed)
    table = ReplicatedTable(cloud.region(region).new_client("dynamodb", engine=False), TABLE, region)
    for n in range(HELPER_OPS):
        pk = f"{prefix}{rng.randrange(SHARED_KEYS)}"
        draw = rng.random()
        try:
            if draw < 0.5:
                version = table.put_item({**key(pk), "writer": {"S": region}, "n": {"N": str(n)}})
            elif draw < 0.8:
                version = table.update_item(
                    key(pk),
                    "SET updated_by = :w, n = :n",
                    expression_attribute_values={":w": {"S": region}, ":n": {"N": str(n)}},
                )
            else:
                version = table.delete_item(key(pk))
        except ConflictLost:  # five newer versions arrived in a row: this write lost, which is allowed
            ledger.lost()
            continue
        ledger.wrote(pk, version)
        cloud_sleep(rng)


def raw_writer(cloud: LocalCloud, region: str, prefix: str, ledger: Ledger, seed: int) -> None:
    """An application that does not use the helper: unstamped full puts and hard DeleteItem."""
    rng = random.Random(seed)
    client = cloud.region(region).new_client("dynamodb", engine=False)
    for n in range(RAW_OPS):
        pk = f"{prefix}{rng.randrange(SHARED_KEYS)}"
        if rng.random() < 0.6:
            client.put_item(TableName=TABLE, Item={**key(pk), "raw": {"S": region}, "n": {"N": str(n)}})
        else:
            client.delete_item(TableName=TABLE, Key=key(pk))
        ledger.wrote_raw()
        cloud_sleep(rng, slower=3)


def cloud_sleep(rng: random.Random, slower: int = 1) -> None:
    time.sleep(rng.uniform(0.01, 0.08) * slower)


@pytest.fixture(scope="module")
def chaotic_workload(chaos: LocalCloud) -> Outcome:
    """Given writers in every region on SHARED_KEYS keys; When faults hit during the writes, then are
    cleared and everything drains (streams and handoff queues)."""
    print(f"workload seed {WORKLOAD_SEED}")
    prefix = f"cv-{WORKLOAD_SEED}-{random.Random().getrandbits(24):06x}-"
    cloud = chaos
    drain(cloud)
    before = metric_totals(cloud)
    filtered_before = sum(p.stats.records_filtered_out for p in cloud.stream_pollers)
    ledger = Ledger()
    us, eu, ap = REGIONS

    def slow(source: str, target: str, ms: float) -> None:
        cloud.faults.set_latency(source, target, ms, both_ways=False)

    timeline = FaultTimeline(
        cloud,
        [
            (0.3, f"isolate {ap} 3 s", lambda: cloud.faults.isolate(ap, seconds=3)),
            (0.5, f"throttle {us}->{eu} 60% for 4 s", lambda: throttle_link(cloud, us, eu, 0.6, 4)),
            (1.0, f"latency {eu}<->{ap} 600 ms", lambda: cloud.faults.set_latency(eu, ap, 600)),
            (2.5, f"latency {eu}<->{ap} back", lambda: cloud.faults.set_latency(eu, ap, 70)),
            (3.5, f"isolate {eu} 2 s", lambda: cloud.faults.isolate(eu, seconds=2)),
            (4.0, f"latency {us}->{ap} 400 ms", lambda: slow(us, ap, 400)),
        ],
    ).start()
    writers = []
    for i, region in enumerate(REGIONS):
        seed = WORKLOAD_SEED * 10 + i
        writers.append(lambda r=region, s=seed: helper_writer(cloud, r, prefix, ledger, s))
        writers.append(lambda r=region, s=seed: raw_writer(cloud, r, prefix, ledger, s + 5))
    try:
        run_threads(writers)
    finally:
        timeline.stop()
    drain(cloud)
    return Outcome(
        prefix=prefix,
        ledger=ledger,
        regions=snapshot(cloud, prefix),
        created=created_versions(cloud, prefix),
        metrics=metric_deltas(before, metric_totals(cloud)),
        filtered_out=sum(p.stats.records_filtered_out for p in cloud.stream_pollers) - filtered_before,
        faults=timeline.done,
    )


def test_regions_converge_after_chaos(chaotic_workload: Outcome) -> None:
    outcome = chaotic_workload
    # Then the faults did bite (writes were retried and handed off), the workload did conflict
    assert outcome.metrics[m.HANDED_OFF] > 0 and outcome.metrics[m.TARGET_WRITE_RETRIES] > 0
    assert outcome.ledger.helper_writes >= len(REGIONS) * HELPER_OPS * 0.9
    # And every region holds the same live items with the same attributes and versions
    assert_no_divergence(outcome.regions)
    assert set(outcome.regions[REGIONS[0]]) == {f"{outcome.prefix}{i}" for i in range(SHARED_KEYS)}
    # And nothing went to the dead-letter store
    assert outcome.metrics[m.DEAD_LETTERED] == 0


def test_the_greatest_version_of_each_key_survives(chaotic_workload: Outcome) -> None:
    outcome = chaotic_workload
    # Then every version a helper was told it wrote is among the versions the streams show
    for pk, versions in outcome.ledger.versions.items():
        missing = [v for v in versions if (v.ts, v.region) not in outcome.created[pk]]
        assert missing == [], f"{pk}: helper versions never seen in any stream"
    # And each key's survivor, in every region, is the greatest version created (helper writes,
    # adoptions of unstamped puts, local tombstones of hard deletes), with that version's content
    assert last_writer_violations(outcome.regions, outcome.created, outcome.ledger) == []


def test_no_echo_reaches_a_function_and_target_writes_are_bounded(chaotic_workload: Outcome) -> None:
    outcome = chaotic_workload
    metrics = outcome.metrics
    # Then with the deployed filters no invocation contained an echo; replicated writes were filtered
    assert metrics["EchoInvocations"] == 0 and metrics[m.ECHO_SKIPPED] == 0
    assert outcome.filtered_out > 0
    # And each version created was applied at most once per other region: no write caused another
    created = outcome.ledger.helper_writes + metrics[m.RECORDS_ADOPTED] + metrics[m.LOCAL_TOMBSTONES_WRITTEN]
    applied = metrics[m.RECORDS_REPLICATED] + metrics[m.HANDOFF_REPLAYED]
    print(f"versions created {created:.0f}, target writes applied {applied:.0f}, metrics {metrics}")
    assert 0 < applied <= created * (len(REGIONS) - 1)
