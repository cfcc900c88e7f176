"""A three-region mesh, end to end: the deployed functions replicating between local regions."""

from __future__ import annotations

import contextlib
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ddbrep.client import ConflictLost, ReplicatedTable
from ddbrep.local import metric_store as emf
from ddbrep.local.cloud import LocalCloud
from replicator.core import metrics_names as m
from tests.local.conftest import MESH_REGIONS
from tests.local.support import TABLE, assert_drained, differences, raw_item, scan_prefix, wait_for

DRAIN_TIMEOUT = 60.0


def table(cloud: LocalCloud, region: str, **kwargs: Any) -> ReplicatedTable:
    return ReplicatedTable(cloud.client(region), TABLE, region, **kwargs)


def key(prefix: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": f"{prefix}{name}"}, "sk": {"S": "0"}}


def fixed_clock(value: int) -> Any:
    return lambda: value


def test_inserts_in_every_region_reach_every_other_region(mesh: LocalCloud, prefix: str) -> None:
    # Given one item written through the client helper in each region
    for region in MESH_REGIONS:
        table(mesh, region).put_item({**key(prefix, region), "origin": {"S": region}})

    # When the replicators drain
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then every region holds all three items, identical everywhere
    for region in MESH_REGIONS:
        assert len(scan_prefix(mesh, region, prefix)) == 3
    assert differences(mesh, MESH_REGIONS, prefix) == []


def test_updates_replicate(mesh: LocalCloud, prefix: str) -> None:
    # Given an item replicated everywhere
    source = table(mesh, "eu-west-1")
    source.put_item({**key(prefix, "a"), "qty": {"N": "1"}})
    assert_drained(mesh, DRAIN_TIMEOUT)
    # When another region updates it through the helper
    table(mesh, "ap-southeast-2").update_item(
        key(prefix, "a"),
        "SET qty = :q, note = :n",
        expression_attribute_values={":q": {"N": "2"}, ":n": {"S": "x"}},
    )
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then every region has the update
    for region in MESH_REGIONS:
        item = raw_item(mesh, region, key(prefix, "a"))
        assert item is not None
        assert item["qty"] == {"N": "2"} and item["note"] == {"S": "x"}
    assert differences(mesh, MESH_REGIONS, prefix) == []


def test_helper_deletes_replicate_as_tombstones(mesh: LocalCloud, prefix: str) -> None:
    # Given an item replicated everywhere
    table(mesh, "us-east-1").put_item({**key(prefix, "gone"), "v": {"S": "1"}})
    assert_drained(mesh, DRAIN_TIMEOUT)
    # When a region deletes it through the helper
    table(mesh, "eu-west-1").delete_item(key(prefix, "gone"))
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then no region shows the item, and every region keeps the same tombstone
    for region in MESH_REGIONS:
        assert table(mesh, region).get_item(key(prefix, "gone")) is None
        stored = raw_item(mesh, region, key(prefix, "gone"))
        assert stored is not None and stored["rep_deleted"] == {"BOOL": True}
    assert differences(mesh, MESH_REGIONS, prefix) == []


def test_hard_deletes_become_replicated_tombstones(mesh: LocalCloud, prefix: str) -> None:
    # Given an item replicated everywhere
    table(mesh, "ap-southeast-2").put_item({**key(prefix, "hard"), "v": {"S": "1"}})
    assert_drained(mesh, DRAIN_TIMEOUT)
    # When an application deletes it with a plain DeleteItem (no helper)
    mesh.client("us-east-1").delete_item(TableName=TABLE, Key=key(prefix, "hard"))
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then the local replicator wrote a tombstone that replicated: the item is gone everywhere
    for region in MESH_REGIONS:
        assert table(mesh, region).get_item(key(prefix, "hard")) is None
    assert differences(mesh, MESH_REGIONS, prefix) == []


def test_unstamped_inserts_are_adopted_and_replicated(mesh: LocalCloud, prefix: str) -> None:
    # Given an application writing without the helper in one region
    mesh.client("eu-west-1").put_item(TableName=TABLE, Item={**key(prefix, "raw"), "v": {"S": "plain"}})

    # When the replicators drain
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then the item was stamped in place with its region and replicated with the same content
    for region in MESH_REGIONS:
        item = raw_item(mesh, region, key(prefix, "raw"))
        assert item is not None
        assert item["v"] == {"S": "plain"} and item["rep_region"] == {"S": "eu-west-1"}
    assert differences(mesh, MESH_REGIONS, prefix) == []


def test_ttl_expiry_is_not_replicated(mesh: LocalCloud, prefix: str) -> None:
    # Given an item whose TTL attribute is already in the past, replicated with that TTL
    def ttl_skipped() -> dict[str, float]:
        return {r: mesh.metrics.total(m.TTL_SKIPPED, SourceRegion=r) for r in MESH_REGIONS}

    before = ttl_skipped()
    expired_at = int(time.time()) - 5
    table(mesh, "us-east-1").put_item({**key(prefix, "ttl"), "rep_expires": {"N": str(expired_at)}})

    # When every region's TTL sweeper expires its own copy and the replicators drain
    assert wait_for(lambda: all(ttl_skipped()[r] > before[r] for r in MESH_REGIONS), timeout=DRAIN_TIMEOUT)
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then every replicator skipped its TTL removal, and no region holds the item or a tombstone for it
    # (a replicated delete would have left tombstones)
    assert wait_for(
        lambda: all(raw_item(mesh, r, key(prefix, "ttl")) is None for r in MESH_REGIONS),
        timeout=DRAIN_TIMEOUT,
    )


def test_conflicting_writes_converge_to_the_greatest_version(mesh: LocalCloud, prefix: str) -> None:
    # Given the same keys written concurrently in every region, with known versions: for key "put"
    # eu-west-1's write is the newest; for key "del" the newest change is ap-southeast-2's delete
    base = int(time.time() * 1_000_000)
    versions = {"us-east-1": base + 30, "eu-west-1": base + 50, "ap-southeast-2": base + 10}

    def write(region: str) -> None:
        helper = table(mesh, region, clock=fixed_clock(versions[region]), on_conflict="raise")
        with contextlib.suppress(ConflictLost):  # a newer version already arrived: this write lost
            helper.put_item({**key(prefix, "put"), "winner": {"S": region}})
        if region == "ap-southeast-2":
            deleter = table(mesh, region, clock=fixed_clock(versions[region] + 100), on_conflict="raise")
            with contextlib.suppress(ConflictLost):
                deleter.delete_item(key(prefix, "del"))
        else:
            with contextlib.suppress(ConflictLost):
                helper.put_item({**key(prefix, "del"), "winner": {"S": region}})

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(write, MESH_REGIONS))

    # When the replicators drain
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then every region holds the greatest version of each key
    for region in MESH_REGIONS:
        put = raw_item(mesh, region, key(prefix, "put"))
        assert put is not None and put["winner"] == {"S": "eu-west-1"}
        assert table(mesh, region).get_item(key(prefix, "del")) is None
    assert differences(mesh, MESH_REGIONS, prefix) == []


def test_filters_keep_echoes_from_invoking_the_function(mesh: LocalCloud, prefix: str) -> None:
    # Given the deployed event filters, and the echo counters before the workload
    echo_invocations = mesh.metrics.total(emf.ECHO_INVOCATIONS)
    echoes_skipped = mesh.metrics.total(m.ECHO_SKIPPED)
    filtered_before = sum(p.stats.records_filtered_out for p in mesh.stream_pollers)

    # When every region writes and everything replicates
    for region, n in itertools.product(MESH_REGIONS, range(5)):
        table(mesh, region).put_item({**key(prefix, f"{region}-{n}"), "n": {"N": str(n)}})
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then every replicated write was filtered out before invocation: no function saw an echo
    filtered = sum(p.stats.records_filtered_out for p in mesh.stream_pollers) - filtered_before
    assert filtered >= 15 * 2
    assert mesh.metrics.total(emf.ECHO_INVOCATIONS) == echo_invocations
    assert mesh.metrics.total(m.ECHO_SKIPPED) == echoes_skipped


def test_an_unreachable_region_catches_up_and_the_others_are_unaffected(
    mesh: LocalCloud, prefix: str
) -> None:
    # Given ap-southeast-2 cut off from the other regions
    isolated, others = "ap-southeast-2", ("us-east-1", "eu-west-1")
    handed_off_before = mesh.metrics.total(m.HANDED_OFF)
    mesh.faults.isolate(isolated, seconds=120)
    try:
        # When every region keeps writing
        for region, n in itertools.product(MESH_REGIONS, range(3)):
            table(mesh, region).put_item({**key(prefix, f"{region}-{n}"), "n": {"N": str(n)}})

        # Then the reachable regions replicate to each other meanwhile
        def others_in_sync() -> bool:
            return all(len(scan_prefix(mesh, r, prefix)) == 6 for r in others)

        assert wait_for(others_in_sync, timeout=DRAIN_TIMEOUT)
        assert differences(mesh, others, prefix) == []
        # and the writes the isolated region could not take were handed off, not lost
        assert wait_for(
            lambda: mesh.metrics.total(m.HANDED_OFF) >= handed_off_before + 6, timeout=DRAIN_TIMEOUT
        )
    finally:
        # When the region comes back
        mesh.faults.heal(isolated)

    # Then the handoff queues drain and all three regions are identical, nothing lost
    assert_drained(mesh, DRAIN_TIMEOUT * 2)
    for region in MESH_REGIONS:
        assert len(scan_prefix(mesh, region, prefix)) == 9
    assert differences(mesh, MESH_REGIONS, prefix) == []
    assert mesh.metrics.total(m.HANDOFF_REPLAYED) > 0


def test_throttling_is_retried_and_nothing_is_lost(mesh: LocalCloud, prefix: str) -> None:
    # Given half of the DynamoDB requests to eu-west-1 from other regions answered with throttling
    retries_before = mesh.metrics.total(m.TARGET_WRITE_RETRIES)
    mesh.faults.throttle("eu-west-1", rate=0.5, seconds=60)
    try:
        # When the other regions write
        for region, n in itertools.product(("us-east-1", "ap-southeast-2"), range(10)):
            table(mesh, region).put_item({**key(prefix, f"{region}-{n}"), "n": {"N": str(n)}})
        assert_drained(mesh, DRAIN_TIMEOUT)
    finally:
        mesh.faults.heal("eu-west-1")

    # Then the replicators retried (or handed off and replayed) and every region holds every write
    assert_drained(mesh, DRAIN_TIMEOUT)
    assert mesh.metrics.total(m.TARGET_WRITE_RETRIES) > retries_before
    for region in MESH_REGIONS:
        assert len(scan_prefix(mesh, region, prefix)) == 20
    assert differences(mesh, MESH_REGIONS, prefix) == []
