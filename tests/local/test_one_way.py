"""One-way replication to two read replicas, end to end; writers do not stamp."""

from __future__ import annotations

import time
from typing import Any

from ddbrep.local.cloud import LocalCloud
from replicator.core import metrics_names as m
from replicator.core.metadata import AttributeNames, is_tombstone, user_attributes
from tests.local.conftest import ONE_WAY_REPLICAS, ONE_WAY_SOURCE
from tests.local.support import TABLE, assert_drained, raw_item, scan_prefix, wait_for

NAMES = AttributeNames.with_prefix("rep_")
DRAIN_TIMEOUT = 60.0


def key(prefix: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": f"{prefix}{name}"}, "sk": {"S": "0"}}


def visible(cloud: LocalCloud, region: str, prefix: str) -> dict[str, dict[str, Any]]:
    """The items an application sees (tombstones hidden), without the replication metadata."""
    return {
        k: user_attributes(v, NAMES)
        for k, v in scan_prefix(cloud, region, prefix).items()
        if not is_tombstone(v, NAMES)
    }


def test_inserts_updates_and_deletes_reach_every_replica(one_way: LocalCloud, prefix: str) -> None:
    # Given plain writes in the source region: inserts, an update, a delete
    source = one_way.client(ONE_WAY_SOURCE)
    for name in ("a", "b", "c"):
        source.put_item(TableName=TABLE, Item={**key(prefix, name), "v": {"S": name}})
    source.update_item(
        TableName=TABLE,
        Key=key(prefix, "b"),
        UpdateExpression="SET v = :v, n = :n",
        ExpressionAttributeValues={":v": {"S": "b2"}, ":n": {"N": "2"}},
    )
    source.delete_item(TableName=TABLE, Key=key(prefix, "c"))

    # When the replicator drains
    assert_drained(one_way, DRAIN_TIMEOUT)
    # Then every replica shows exactly what the source shows; the delete is a tombstone there
    expected = visible(one_way, ONE_WAY_SOURCE, prefix)
    assert len(expected) == 2
    for replica in ONE_WAY_REPLICAS:
        assert visible(one_way, replica, prefix) == expected
        stored = raw_item(one_way, replica, key(prefix, "c"))
        assert stored is not None and is_tombstone(stored, NAMES)


def test_the_source_is_never_written_by_replication(one_way: LocalCloud, prefix: str) -> None:
    # Given an unstamped write in the source and a write made directly in a replica
    one_way.client(ONE_WAY_SOURCE).put_item(TableName=TABLE, Item={**key(prefix, "src"), "v": {"S": "1"}})
    one_way.client(ONE_WAY_REPLICAS[0]).put_item(
        TableName=TABLE, Item={**key(prefix, "rep"), "v": {"S": "1"}}
    )

    # When replication drains
    assert_drained(one_way, DRAIN_TIMEOUT)
    # Then the source item is left as written (not adopted), and nothing flowed back from the replica
    assert raw_item(one_way, ONE_WAY_SOURCE, key(prefix, "src")) == {**key(prefix, "src"), "v": {"S": "1"}}
    assert raw_item(one_way, ONE_WAY_SOURCE, key(prefix, "rep")) is None
    assert raw_item(one_way, ONE_WAY_REPLICAS[1], key(prefix, "rep")) is None


def test_ttl_expiry_in_the_source_is_not_replicated(one_way: LocalCloud, prefix: str) -> None:
    # Given an item whose TTL is already past, written in the source
    ttl_skipped = one_way.metrics.total(m.TTL_SKIPPED)
    one_way.client(ONE_WAY_SOURCE).put_item(
        TableName=TABLE, Item={**key(prefix, "ttl"), "rep_expires": {"N": str(int(time.time()) - 5)}}
    )

    # When the source's sweeper expires it, the replicator has handled the removal and drained
    assert wait_for(lambda: one_way.metrics.total(m.TTL_SKIPPED) > ttl_skipped, DRAIN_TIMEOUT)
    assert_drained(one_way, DRAIN_TIMEOUT)
    # Then the removal was skipped, not replicated: each replica expires its own copy, and none holds
    # a tombstone for it
    regions = (ONE_WAY_SOURCE, *ONE_WAY_REPLICAS)
    assert wait_for(
        lambda: all(raw_item(one_way, r, key(prefix, "ttl")) is None for r in regions), DRAIN_TIMEOUT
    )


def test_an_unreachable_replica_catches_up_without_delaying_the_other(
    one_way: LocalCloud, prefix: str
) -> None:
    # Given the first replica cut off
    down, up = ONE_WAY_REPLICAS
    one_way.faults.isolate(down, seconds=120)
    try:
        # When the source keeps writing
        for n in range(5):
            one_way.client(ONE_WAY_SOURCE).put_item(
                TableName=TABLE, Item={**key(prefix, str(n)), "n": {"N": str(n)}}
            )

        # Then the other replica receives everything meanwhile
        assert wait_for(lambda: len(visible(one_way, up, prefix)) == 5, DRAIN_TIMEOUT)
        assert visible(one_way, down, prefix) == {}
    finally:
        one_way.faults.heal(down)

    # And once the replica is back, it catches up from the handoff queue with nothing lost
    assert_drained(one_way, DRAIN_TIMEOUT * 2)
    assert visible(one_way, down, prefix) == visible(one_way, ONE_WAY_SOURCE, prefix)
