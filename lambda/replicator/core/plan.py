"""What to write to each target for a coalesced change (partial replication included)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from replicator.core.coalesce import KeyChange
from replicator.core.conflicts import base_version
from replicator.core.metadata import AttributeNames, Version, WireItem, is_tombstone, tombstone_for


class TargetWrite(NamedTuple):
    """One conditional put to one target: the unit of fan-out, handoff and replay.

    Immutable; a NamedTuple rather than a frozen dataclass because one is built per key and target
    of every batch, and a frozen dataclass's __init__ costs about three times as much.
    """

    region: str
    table: str
    item: WireItem
    version: Version
    keys: WireItem
    # The version the writer's table held before this write (core/conflicts.py); None: not known
    # (a handoff message of an older release), which counts as LOWEST.
    base: Version | None = None

    def is_tombstone(self, names: AttributeNames) -> bool:
        return is_tombstone(self.item, names)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "region": self.region,
            "table": self.table,
            "item": dict(self.item),
            "keys": dict(self.keys),
            "version": {"ts": self.version.ts, "region": self.version.region, "seq": self.version.seq},
        }
        if self.base is not None:
            doc["base"] = {"ts": self.base.ts, "region": self.base.region, "seq": self.base.seq}
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TargetWrite:
        v = doc["version"]
        b = doc.get("base")
        return cls(
            region=doc["region"],
            table=doc["table"],
            item=doc["item"],
            keys=doc["keys"],
            version=Version(int(v["ts"]), str(v["region"]), str(v.get("seq", ""))),
            base=Version(int(b["ts"]), str(b["region"]), str(b.get("seq", ""))) if b else None,
        )


def matches_filter(item_filter: Mapping[str, Any] | None, item: WireItem | None) -> bool:
    """A target's item filter (an event pattern over the item in event form): None matches every item.

    The one wrapper of the matcher for item filters: live replication, backfill and verify use it.
    """
    if item_filter is None:
        return True
    from replicator.core.pattern import matches

    return item is not None and bool(matches(item_filter, item))


def plan_write(
    key_change: KeyChange,
    region: str,
    table: str,
    item_filter: Mapping[str, Any] | None,
    retention_seconds: int,
    names: AttributeNames,
) -> tuple[TargetWrite, bool]:
    """The write that brings one target up to this change, and whether the target's filter excluded it.

    With an item filter, a live item that does not match is sent as a tombstone of the same version,
    so a copy that matched before does not stay behind. Always: whether the target still holds such a
    copy cannot be told from the batch (a redelivered range may already have sent it a later state),
    so skipping the tombstone when "the state before did not match" leaves stale copies behind.
    """
    ((write, excluded),) = plan_writes(key_change, [(region, table, item_filter)], retention_seconds, names)
    return write, excluded


def plan_writes(
    key_change: KeyChange,
    destinations: Sequence[tuple[str, str, Mapping[str, Any] | None]],
    retention_seconds: int,
    names: AttributeNames,
) -> list[tuple[TargetWrite, bool]]:
    """:func:`plan_write` for each ``(region, table, item_filter)``, in order.

    What does not depend on the target (the change's base version, whether it is a tombstone, the
    tombstone an excluded target gets) is computed once for all of them, and the targets share the
    item objects: those that take the change share its item, the excluded ones one tombstone.
    """
    change = key_change.change
    base = base_version(change.old_image, names)
    live = not is_tombstone(change.item, names)
    excluded_item: WireItem | None = None
    writes = []
    for region, table, item_filter in destinations:
        excluded = live and not matches_filter(item_filter, change.item)
        item = change.item
        if excluded:
            if excluded_item is None:
                excluded_item = tombstone_for(change.keys, change.version, retention_seconds, names)
            item = excluded_item
        write = TargetWrite(
            region=region, table=table, item=item, version=change.version, keys=change.keys, base=base
        )
        writes.append((write, excluded))
    return writes
