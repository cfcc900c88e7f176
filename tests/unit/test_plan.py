"""Planning the writes of a coalesced change, one per target (core/plan.py)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from replicator.core.classify import Replicate
from replicator.core.coalesce import KeyChange
from replicator.core.conflicts import base_version
from replicator.core.metadata import AttributeNames, Version, is_tombstone, stamp, tombstone_for
from replicator.core.plan import TargetWrite, matches_filter, plan_write, plan_writes

NAMES = AttributeNames()
RETENTION = 604800
KEYS = {"pk": {"S": "a"}}
VERSION = Version(1_700_000_000_000_000, "us-east-1", "0" * 39 + "7")

_live = st.sampled_from(["gold", "silver"]).map(
    lambda tier: stamp({**KEYS, "tier": {"S": tier}}, VERSION, NAMES)
)
_items = st.one_of(_live, st.just(tombstone_for(KEYS, VERSION, RETENTION, NAMES)))
_old_images = st.one_of(
    st.none(), st.just(stamp({**KEYS, "tier": {"S": "gold"}}, Version(1, "eu-west-1"), NAMES))
)
_filters = st.sampled_from([None, {"tier": {"S": ["gold"]}}, {"tier": {"S": ["bronze"]}}])
_destinations = st.lists(
    st.tuples(st.sampled_from(["eu-west-1", "ap-southeast-2"]), st.sampled_from(["orders", "o2"]), _filters),
    max_size=4,
)


def _plan_write_as_before(
    key_change: KeyChange, region: str, table: str, item_filter: Any
) -> tuple[TargetWrite, bool]:
    """plan_write as it was written before the targets shared its work (the reference)."""
    change = key_change.change
    item = change.item
    excluded = not is_tombstone(item, NAMES) and not matches_filter(item_filter, item)
    if excluded:
        item = tombstone_for(change.keys, change.version, RETENTION, NAMES)
    base = base_version(change.old_image, NAMES)
    write = TargetWrite(
        region=region, table=table, item=item, version=change.version, keys=change.keys, base=base
    )
    return write, excluded


@given(_items, _old_images, _destinations)
def test_planning_all_targets_at_once_equals_planning_each(
    item: dict, old: dict | None, destinations: list
) -> None:
    key_change = KeyChange(Replicate(KEYS, item, VERSION, old), "7", "7", ["7"])
    planned = plan_writes(key_change, destinations, RETENTION, NAMES)
    assert planned == [_plan_write_as_before(key_change, *d) for d in destinations]
    assert [plan_write(key_change, *d, RETENTION, NAMES) for d in destinations] == planned
