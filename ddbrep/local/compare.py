"""Compare a table across local regions: what must agree once replication has drained.

A tombstone equals an absent item; a live item is its attributes and version (``rep_seq``, the
tie-breaker a replica takes from the source stream, is not carried by the origin's copy).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from replicator.core.metadata import AttributeNames, is_tombstone


def scan_all(client: Any, table: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    request: dict[str, Any] = {"TableName": table, **kwargs}
    for _page in range(100_000):
        page = client.scan(**request)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return items


def comparable(item: Mapping[str, Any] | None, names: AttributeNames) -> dict[str, Any] | None:
    if item is None or is_tombstone(item, names):
        return None
    return {k: v for k, v in item.items() if k != names.seq}


def live_items(
    items: Sequence[Mapping[str, Any]], key_names: Sequence[str], names: AttributeNames
) -> dict[str, dict[str, Any]]:
    """Live items by canonical key."""
    live = {}
    for item in items:
        value = comparable(item, names)
        if value is not None:
            live[json.dumps({k: item[k] for k in key_names}, sort_keys=True)] = value
    return live


def differences(snapshots: Mapping[str, Mapping[str, Mapping[str, Any]]], limit: int = 20) -> list[str]:
    """Differences of every region against the first one (empty: identical)."""
    regions = list(snapshots)
    if not regions:
        return []
    reference = snapshots[regions[0]]
    found: list[str] = []
    for region in regions[1:]:
        other = snapshots[region]
        for key in sorted(set(reference) | set(other)):
            if reference.get(key) != other.get(key):
                found.append(f"{key}: {regions[0]}={reference.get(key)} {region}={other.get(key)}")
                if len(found) >= limit:
                    return found
    return found
