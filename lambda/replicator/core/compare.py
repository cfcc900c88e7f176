"""When two regions agree on a key: the one definition of "converged" (verify, the demo, the tests).

A tombstone equals an absent item. Two live copies agree when their user attributes agree (set members
in any order, as DynamoDB returns them) and, unless ``ignore_metadata``, their version ``(rep_ts,
rep_region)``. ``rep_seq`` is not compared: only replicas carry it (the tie-breaker a target takes from
the source stream), never the origin's copy. One-way replicas take their versions from the stream, so
only user attributes are compared there (``ignore_metadata``).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from replicator.core.metadata import AttributeNames, WireItem, is_tombstone, user_attributes, version_of


class Kind(StrEnum):
    MISSING = "missing"  # live in the first region, absent (or a tombstone) in the second
    EXTRA = "extra"  # live in the second region, absent (or a tombstone) in the first
    DIFFERENT = "different"  # live in both, with other attributes or another version


def _canonical(value: Any) -> Any:
    """A wire value with set members sorted (DynamoDB returns sets in any order)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for kind, data in value.items():
            if kind in ("SS", "NS", "BS"):
                out[kind] = sorted(data)
            elif kind == "L":
                out[kind] = [_canonical(v) for v in data]
            elif kind == "M":
                out[kind] = {k: _canonical(v) for k, v in data.items()}
            else:
                out[kind] = data
        return out
    return value


def is_live(item: WireItem | None, names: AttributeNames) -> bool:
    """Present and not a tombstone."""
    return item is not None and not is_tombstone(item, names)


def _user(item: WireItem | None, names: AttributeNames) -> dict[str, Any]:
    return {k: _canonical(v) for k, v in user_attributes(item, names).items()}


def stamp_of(item: WireItem | None, names: AttributeNames) -> tuple[int, str]:
    """The part of the version two regions must agree on: (rep_ts, rep_region)."""
    version = version_of(item, names)
    return version.ts, version.region


def compare(
    a: WireItem | None, b: WireItem | None, names: AttributeNames, ignore_metadata: bool = False
) -> Kind | None:
    """How the two copies of one key differ, or None when they agree."""
    a_live, b_live = is_live(a, names), is_live(b, names)
    if not a_live and not b_live:
        return None
    if a_live and not b_live:
        return Kind.MISSING
    if b_live and not a_live:
        return Kind.EXTRA
    if _user(a, names) != _user(b, names):
        return Kind.DIFFERENT
    if not ignore_metadata and stamp_of(a, names) != stamp_of(b, names):
        return Kind.DIFFERENT
    return None


def differences(
    regions: Mapping[str, Mapping[str, WireItem]],
    names: AttributeNames,
    ignore_metadata: bool = False,
    limit: int = 20,
) -> list[str]:
    """Keys on which any region disagrees with the first one (``regions``: region -> key id -> item)."""
    order = list(regions)
    found: list[str] = []
    for region in order[1:]:
        first, other = regions[order[0]], regions[region]
        for key in sorted(set(first) | set(other)):
            kind = compare(first.get(key), other.get(key), names, ignore_metadata)
            if kind is not None:
                found.append(
                    f"{key}: {kind.value} ({order[0]}: {stamp_or_none(first.get(key), names)}, "
                    f"{region}: {stamp_or_none(other.get(key), names)})"
                )
                if len(found) >= limit:
                    return found
    return found


def stamp_or_none(item: WireItem | None, names: AttributeNames) -> tuple[int, str] | None:
    return stamp_of(item, names) if is_live(item, names) else None


def changed_attributes(a: WireItem | None, b: WireItem | None, names: AttributeNames) -> list[str]:
    ua, ub = _user(a, names), _user(b, names)
    changed = sorted(k for k in set(ua) | set(ub) if ua.get(k) != ub.get(k))
    if stamp_of(a, names) != stamp_of(b, names):
        changed.append(f"({names.ts}, {names.region})")
    return changed
