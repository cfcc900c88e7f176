"""Writers that do not stamp, against a replicator that is behind: the adoption of an unstamped put and
the local tombstone of a hard delete must keep the order in which the region made them.
"""

from __future__ import annotations

import time

import pytest

from ddbrep.client import MonotonicClock, ReplicatedTable
from ddbrep.local.cloud import LocalCloud
from tests.chaos.support import REGIONS, TABLE, assert_no_divergence, drain, key, snapshot

pytestmark = pytest.mark.chaos

CLOCK_AHEAD_SECONDS = 5


def test_a_hard_delete_right_after_an_unstamped_put_deletes_the_item(chaos: LocalCloud, prefix: str) -> None:
    cloud = chaos
    us, eu, _ = REGIONS
    pk = f"{prefix}k"
    drain(cloud)
    # Given an item last written by eu-west-1, whose clock runs a few seconds ahead, replicated everywhere
    ahead = MonotonicClock(lambda: time.time() + CLOCK_AHEAD_SECONDS)
    ReplicatedTable(cloud.client(eu), TABLE, eu, clock=ahead).put_item({**key(pk), "v": {"S": "eu"}})
    drain(cloud)

    # When an application in us-east-1 replaces it with a plain PutItem, then at once deletes it with a
    # plain DeleteItem (in one batch or two: the delete's record shows only the unstamped put it removed,
    # whose adoption version is above the eu-west-1 item's)
    raw = cloud.client(us)
    raw.put_item(TableName=TABLE, Item={**key(pk), "v": {"S": "unstamped"}})
    raw.delete_item(TableName=TABLE, Key=key(pk))
    drain(cloud)

    # Then the regions agree, and the item is deleted everywhere: the delete was us-east-1's last write
    regions = snapshot(cloud, prefix)
    assert_no_divergence(regions)
    survivors = {
        region: ReplicatedTable(cloud.client(region), TABLE, region).get_item(key(pk)) for region in REGIONS
    }
    print(f"survivors {survivors}")
    assert survivors == dict.fromkeys(REGIONS)
