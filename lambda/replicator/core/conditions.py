"""The conditional-write expressions of the protocol (docs/DESIGN.md, Item metadata and versions).

Every write the protocol makes (to a target, an adoption, a local tombstone, a backfill, a repair, a
replay) is the same conditional put: it applies only over an older version. That is what makes
retries, duplicates and out-of-order delivery harmless. ``guarded_put`` returns the keyword arguments
for the low-level client's PutItem: it is where an item leaves the protocol's event form for the SDK
(binary values decoded from base64 exactly once, ``core.wire``); numbers stay strings.
"""

from __future__ import annotations

import functools
from typing import Any

from replicator.core.metadata import AttributeNames, Version, WireItem
from replicator.core.wire import to_sdk


def version_guard(
    version: Version, names: AttributeNames, tag: str = "r"
) -> tuple[str, dict[str, str], dict[str, Any]]:
    """(condition, attribute names, values): the stored item is older than ``version``.

    An item without metadata is the lowest version. An equal version is stale (a duplicate), except
    that ``rep_seq`` orders two writes of one region that carry the same timestamp. A stored item with
    that timestamp and region but no ``rep_seq`` is the writer's own version as its region stores it
    (or a copy of it made from there): a replicator's copy of it, which carries its stream record's
    sequence number, is the same write and stale there, so a copy written back into its own region
    never replaces the original (and never replicates again). ``tag`` names the placeholders
    (``#<tag>ts``...) so the guard can join an application's own expression.
    """
    condition, attribute_names = _guard_expression(names.ts, names.region, names.seq, tag, bool(version.seq))
    ts, region, seq = f":{tag}ts", f":{tag}reg", f":{tag}seq"
    values: dict[str, Any] = {ts: {"N": str(version.ts)}, region: {"S": version.region}}
    if version.seq:
        values[seq] = {"S": version.seq}
    return condition, dict(attribute_names), values


@functools.lru_cache(maxsize=32)
def _guard_expression(
    ts_name: str, region_name: str, seq_name: str, tag: str, with_seq: bool
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The guard's condition text and attribute names: the same for every version (with or without a
    ``seq``), so built once, not once per write (keyed by the names' strings, whose hashes are cached)."""
    ts, region, seq = f"{tag}ts", f"{tag}reg", f"{tag}seq"
    condition = f"attribute_not_exists(#{ts}) OR #{ts} < :{ts} OR (#{ts} = :{ts} AND #{region} < :{region})"
    attribute_names = [(f"#{ts}", ts_name), (f"#{region}", region_name)]
    if with_seq:
        condition += f" OR (#{ts} = :{ts} AND #{region} = :{region} AND #{seq} < :{seq})"
        attribute_names.append((f"#{seq}", seq_name))
    return condition, tuple(attribute_names)


def guarded_put(
    table: str, item: WireItem, version: Version, names: AttributeNames, *, return_replaced: bool = False
) -> dict[str, Any]:
    """PutItem that applies only if the stored item is older than ``version`` (last writer wins).

    ``item`` is in event form (binary as base64 text); the request carries it in SDK form (bytes).
    ``return_replaced`` asks for the item the put replaced (``ReturnValues=ALL_OLD``: no extra
    capacity, the answer carries the old item), which the conflict rule needs.
    """
    condition, attribute_names, values = version_guard(version, names)
    request: dict[str, Any] = {
        "TableName": table,
        "Item": to_sdk(item),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": attribute_names,
        "ExpressionAttributeValues": values,
    }
    if return_replaced:
        request["ReturnValues"] = "ALL_OLD"
    return request
