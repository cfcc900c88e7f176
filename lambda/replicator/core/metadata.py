"""Item metadata and versions: the vocabulary of the replication protocol (docs/DESIGN.md, Item metadata).

Items stay in DynamoDB's wire format (``{"S": "..."}``) everywhere; only the few metadata values
that decisions need are read out of it here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

WireItem = Mapping[str, Mapping[str, Any]]

# AWS stream sequence numbers are 21 to 40 digits: zero-padded to 40 they compare as strings.
SEQUENCE_WIDTH = 40


@dataclass(frozen=True)
class AttributeNames:
    """Names of the metadata attributes (one prefix, configurable)."""

    region: str = "rep_region"
    ts: str = "rep_ts"
    deleted: str = "rep_deleted"
    expires: str = "rep_expires"
    seq: str = "rep_seq"

    @classmethod
    def with_prefix(cls, prefix: str = "rep_", ttl: str | None = None) -> AttributeNames:
        return cls(
            region=f"{prefix}region",
            ts=f"{prefix}ts",
            deleted=f"{prefix}deleted",
            expires=ttl or f"{prefix}expires",
            seq=f"{prefix}seq",
        )

    @property
    def protocol(self) -> tuple[str, ...]:
        """The attributes the protocol owns (the TTL attribute may be the application's own)."""
        return (self.region, self.ts, self.deleted, self.seq)


class Version(NamedTuple):
    """A write's version ``(rep_ts, rep_region, rep_seq)``, ordered lexicographically.

    ``seq`` (the source stream's zero-padded sequence number, or "") only breaks ties between two
    writes of the same region with the same timestamp, which can only come from the same stream.
    """

    ts: int
    region: str
    seq: str = ""


LOWEST = Version(-1, "", "")


def supersedes(incoming: Version, stored: Version) -> bool:
    """Does the protocol's guard (core/conditions.version_guard) let ``incoming`` replace ``stored``?

    The Version order, except at one point: a stored version without ``seq`` (a writer's own version,
    as its region stores it) is not replaced by a copy of the same ``(ts, region)`` that carries one
    (the replicator's copy of that very write): they are the same write.
    """
    if (incoming.ts, incoming.region) != (stored.ts, stored.region):
        return (incoming.ts, incoming.region) > (stored.ts, stored.region)
    return bool(incoming.seq) and bool(stored.seq) and incoming.seq > stored.seq


class MetadataError(ValueError):
    """An item's metadata is unreadable (for example a non-numeric rep_ts)."""


def pad_sequence(sequence_number: str) -> str:
    if not sequence_number.isdigit():
        raise MetadataError(f"sequence number {sequence_number!r} is not a string of digits")
    return sequence_number.zfill(SEQUENCE_WIDTH)


def version_of(item: WireItem | None, names: AttributeNames) -> Version:
    """The version an item carries; LOWEST for a missing item or one without ``rep_ts``.

    MetadataError for metadata no writer following the contract produces: a ``rep_ts`` that is not a
    non-negative whole number of microseconds, a ``rep_region`` that is not a non-empty string, a
    ``rep_seq`` that is not a string of digits, a ``rep_deleted`` that is not a boolean. Such a value
    would be silently dropped or wrongly applied, so the record goes to the dead-letter store instead.
    """
    if not item:
        return LOWEST
    check_metadata(item, names)
    return checked_version_of(item, names)


def checked_version_of(item: WireItem | None, names: AttributeNames) -> Version:
    """:func:`version_of` of an item whose metadata :func:`check_metadata` already accepted."""
    if not item or names.ts not in item:
        return LOWEST
    region = item.get(names.region, {}).get("S", "")
    seq = item.get(names.seq, {}).get("S", "")
    return Version(int(item[names.ts]["N"]), str(region), str(seq))


def check_metadata(item: WireItem, names: AttributeNames) -> None:
    """Raise MetadataError naming the first protocol attribute of ``item`` that has the wrong shape."""
    if names.ts in item:
        raw_ts = item[names.ts].get("N")
        if not isinstance(raw_ts, str) or not raw_ts.isdigit():
            raise MetadataError(
                f"{names.ts} must be a non-negative whole number (N) of microseconds since the epoch, "
                f"got {dict(item[names.ts])!r}"
            )
    if names.region in item:
        region = item[names.region].get("S")
        if not isinstance(region, str) or not region:
            raise MetadataError(
                f"{names.region} must be a non-empty string (S) naming the writer's region, "
                f"got {dict(item[names.region])!r}"
            )
    if names.seq in item:
        seq = item[names.seq].get("S")
        if not isinstance(seq, str) or not seq.isdigit():
            raise MetadataError(f"{names.seq} must be a string (S) of digits, got {dict(item[names.seq])!r}")
    if names.deleted in item and not isinstance(item[names.deleted].get("BOOL"), bool):
        raise MetadataError(
            f"{names.deleted} must be a boolean (BOOL), got {dict(item[names.deleted])!r}: "
            "a tombstone written with another type would replicate as a live item"
        )


def is_stamped(item: WireItem | None, names: AttributeNames) -> bool:
    return bool(item) and names.ts in item and names.region in item  # type: ignore[operator]


def region_of(item: WireItem | None, names: AttributeNames) -> str | None:
    if not item or names.region not in item:
        return None
    value = item[names.region].get("S")
    return str(value) if value is not None else None


def is_tombstone(item: WireItem | None, names: AttributeNames) -> bool:
    return bool(item) and item.get(names.deleted, {}).get("BOOL") is True  # type: ignore[union-attr]


def stamp(item: WireItem, version: Version, names: AttributeNames) -> dict[str, Any]:
    """A copy of ``item`` carrying ``version`` (``rep_seq`` only when the version has one)."""
    stamped = dict(item)
    stamped.pop(names.seq, None)  # re-added last when the version has one (the comprehension's order)
    stamped[names.ts] = {"N": str(version.ts)}
    stamped[names.region] = {"S": version.region}
    if version.seq:
        stamped[names.seq] = {"S": version.seq}
    return stamped


def tombstone(keys: WireItem, version: Version, expires_at: int, names: AttributeNames) -> dict[str, Any]:
    """The item that stands for a delete: keys, version, deleted flag and TTL."""
    item = stamp(keys, version, names)
    item[names.deleted] = {"BOOL": True}
    item[names.expires] = {"N": str(expires_at)}
    return item


def tombstone_for(
    keys: WireItem, version: Version, retention_seconds: int, names: AttributeNames
) -> dict[str, Any]:
    """A tombstone that expires ``retention_seconds`` after its version's time.

    Derived from the version, not the wall clock: a retried or replayed change yields the same item.
    """
    return tombstone(keys, version, version.ts // 1_000_000 + retention_seconds, names)


def mark_origin(item: WireItem, origin_region: str, names: AttributeNames) -> dict[str, Any]:
    """A copy of ``item`` for another region (backfill, repair), marked with the region it came from.

    A copy of an item that was never stamped by the contract keeps the lowest version (no ``rep_ts``:
    any live write wins over it) and gets ``rep_region`` = its origin. Without that mark the target's
    replicator would take the copy for an unstamped local write and adopt it with a fresh version, which
    would beat every older live write still on its way there.

    A half-stamped item (``rep_ts`` without ``rep_region``) is an unstamped write for the protocol (the
    origin's replicator adopts it, see ``classify``), so its copy is marked the same way and its
    ``rep_ts`` dropped: kept, the copy would be adopted by the target's replicator for the same reason.
    An item with ``rep_region`` (with or without ``rep_ts``) is copied as it is.
    """
    copied = dict(item)
    if names.region not in copied:
        copied.pop(names.ts, None)
        copied.pop(names.seq, None)
        copied[names.region] = {"S": origin_region}
    return copied


def user_attributes(item: WireItem | None, names: AttributeNames) -> dict[str, Any]:
    """The item without the protocol's metadata (what the application sees)."""
    if not item:
        return {}
    return {k: v for k, v in item.items() if k not in names.protocol}
