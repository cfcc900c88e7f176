"""The conflict rule: which applied writes overwrote a concurrent write of another region (pure).

Last writer wins settles every conflict; this module only tells a real conflict from the ordinary
traffic around it, so conflicts can be counted (``ConflictsLost``) and logged.

A write ``w`` of region T *lost a conflict* when, in T's own table, it was overwritten by a replicated
write ``v`` of another region R whose writer had not seen ``w``: the state R's table held just before
``v`` (the stream record's OldImage, the write's *base*) is older than ``w``. Each lost write is
therefore found exactly once: where it was made, when the concurrent winner lands there. Its copies
elsewhere, duplicates and redeliveries never count:

- a duplicate or a redelivery carries a version the target already holds: the conditional put fails
  (StaleSkipped) and nothing is overwritten;
- a write overwritten by a later write of its own region, or by a write made over it (R had received
  ``w``, or something newer, before writing ``v``: the base is at least ``w``), was updated, not lost;
- a write that fails against a newer copy in a third region is that copy's conflict, found in the
  copy's own region.

Writes without knowledge of what they replaced (an adopted unstamped write, a hard delete turned into
a tombstone: their base carries no version) count as concurrent with whatever they overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from replicator.core.metadata import LOWEST, AttributeNames, Version, WireItem, version_of


def base_version(old_image: WireItem | None, names: AttributeNames) -> Version:
    """The version the writer's table held before the write: LOWEST when it held none (or unstamped)."""
    return version_of(old_image, names) if old_image else LOWEST


def lost_conflict(write: Version, base: Version | None, replaced: Version | None, target_region: str) -> bool:
    """Did applying ``write`` (made over ``base``) in ``target_region`` overwrite a concurrent write?

    ``replaced`` is the version the target held until the write applied (None: it held no item).
    Only the target's own writes are judged here: that is where each of them can lose, once.
    """
    if replaced is None or replaced == LOWEST:
        return False
    if replaced.region != target_region or write.region == target_region:
        return False
    return (base or LOWEST) < replaced


def overwrote_own_write(write: Version, replaced: Version | None, target_region: str) -> bool:
    """Did a copy at ``write`` (a backfill's) overwrite a write made in ``target_region`` itself?

    Such a write may have lost a conflict, or been updated over: the copy comes from a scan, which
    does not know the state its writer saw (its base), so the rule above cannot tell. The backfill
    counts these apart (``overwrote``), as possible conflicts.
    """
    if replaced is None or replaced == LOWEST:
        return False
    return replaced.region == target_region and write.region != target_region


@dataclass(frozen=True)
class LostConflict:
    """One lost conflict, as the conflict log stores it (``losing_image`` only when configured)."""

    keys: WireItem
    losing: Version
    winning: Version
    at: float  # epoch seconds, when the winner overwrote the loser
    losing_image: WireItem | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "keys": dict(self.keys),
            "losing": _version_json(self.losing),
            "winning": _version_json(self.winning),
            "at": self.at,
        }
        if self.losing_image is not None:
            doc["losing_image"] = dict(self.losing_image)
        return doc


def _version_json(version: Version) -> dict[str, Any]:
    return {"ts": version.ts, "region": version.region, "seq": version.seq}


def version_from_json(doc: Any) -> Version:
    return Version(int(doc["ts"]), str(doc["region"]), str(doc.get("seq", "")))
