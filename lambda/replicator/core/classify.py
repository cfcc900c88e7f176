"""Classification of one stream record into what the replicator must do (docs/DESIGN.md, The write contract).

Pure: no I/O. Given a record and the local deployment's facts, returns one decision:

- Replicate: a change to send to every target (a local write, a tombstone, or a one-way change);
- Adopt: write an unstamped local write's image back with a local version (conditional put), so the
  stamped version replicates (mesh);
- WriteLocalTombstone: turn a hard DeleteItem into a tombstone in the local table (mesh);
- Skip: nothing to do, for a named reason (echo, TTL removal, tombstone expiry, no change);
- Reject: a version further ahead of this region's clock than the maximum clock skew (dead-lettered).

Metadata of the wrong shape (an empty ``rep_region``, a negative ``rep_ts``, a ``rep_deleted`` that is
not a boolean) raises MetadataError, and the record goes to the dead-letter store with that reason.

Half-stamped writes break the contract in one of two ways, and both are unstamped writes here:
``rep_ts`` without ``rep_region`` and ``rep_region`` = this region without ``rep_ts`` are adopted (the
record's image gets a fresh local version). ``rep_region`` = another region without ``rep_ts`` is how
a backfilled or repaired copy arrives (``mark_origin``): an echo, not replicated again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from replicator.core import defaults
from replicator.core.metadata import (
    AttributeNames,
    Version,
    WireItem,
    check_metadata,
    checked_version_of,
    is_tombstone,
    pad_sequence,
    region_of,
    stamp,
    tombstone_for,
    user_attributes,
    version_of,
)
from replicator.core.records import StreamRecord

MESH = "mesh"
ONE_WAY = "one-way"


class SkipReason(StrEnum):
    ECHO = "echo"
    TTL = "ttl"
    TOMBSTONE_EXPIRY = "tombstone_expiry"
    NO_CHANGE = "no_change"


class RejectReason(StrEnum):
    FUTURE_VERSION = "future_version"


@dataclass(frozen=True)
class Context:
    """What classification needs to know about the deployment."""

    local_region: str
    topology: str
    names: AttributeNames
    tombstone_retention_seconds: int
    # Versions beyond now + skew are refused; now_us None: no bound (set per batch by the engine).
    max_clock_skew_seconds: int = defaults.MAX_CLOCK_SKEW_SECONDS
    now_us: int | None = None


class Replicate(NamedTuple):
    """Send ``item`` (already carrying ``version``) to every target.

    Immutable like the other decisions; a NamedTuple because one is built per replicated record of
    every batch, and a frozen dataclass's __init__ costs about three times as much.
    """

    keys: WireItem
    item: WireItem
    version: Version
    old_image: WireItem | None


@dataclass(frozen=True)
class Adopt:
    """Write the unstamped change back to the local table as ``item``, stamped with ``version``.

    A put of the record's image, not an in-place stamp: if a replicated write lands on the unstamped
    item before adoption, the conditional put still lets the greater version win, and the unstamped
    write's content is not lost. (A later unstamped write is adopted from its own, later record.)
    """

    keys: WireItem
    item: WireItem
    version: Version


@dataclass(frozen=True)
class WriteLocalTombstone:
    """Replace a hard-deleted local item by a tombstone carrying ``item``'s version."""

    keys: WireItem
    item: WireItem
    version: Version


@dataclass(frozen=True)
class Skip:
    reason: SkipReason


@dataclass(frozen=True)
class Reject:
    """Refuse the record: it goes to the dead-letter store with ``reason`` and ``message``."""

    reason: RejectReason
    message: str


Decision = Replicate | Adopt | WriteLocalTombstone | Skip | Reject


def _next_version(record: StreamRecord, previous: Version, region: str) -> Version:
    """A local version newer than both the record's time and the version it replaces.

    The record's sequence number orders two such versions made in the same second (AWS stream
    times are whole seconds): without it the second of two quick unstamped writes would be stale.
    """
    return Version(
        max(record.creation_time_us, previous.ts + 1), region, pad_sequence(record.sequence_number)
    )


def classify(record: StreamRecord, ctx: Context) -> Decision:
    # MetadataError: dead-lettered with the reason. Checked here once: the versions of the record's
    # images are then read without checking again (checked_version_of).
    if record.new_image is not None:
        check_metadata(record.new_image, ctx.names)
    if record.old_image is not None:
        check_metadata(record.old_image, ctx.names)
    if record.event_name == "REMOVE":
        decision = _classify_remove(record, ctx)
    elif ctx.topology == ONE_WAY:
        decision = _classify_one_way_write(record, ctx)
    else:
        decision = _classify_mesh_write(record, ctx)
    return _within_clock_skew(decision, ctx)


def _within_clock_skew(decision: Decision, ctx: Context) -> Decision:
    """A version from the future would beat every later write of its key until the clocks caught up."""
    if ctx.now_us is None or isinstance(decision, (Skip, Reject)):
        return decision
    limit = ctx.now_us + ctx.max_clock_skew_seconds * 1_000_000
    if decision.version.ts <= limit:
        return decision
    ahead = (decision.version.ts - ctx.now_us) / 1_000_000
    return Reject(
        RejectReason.FUTURE_VERSION,
        f"version {decision.version.ts} ({ctx.names.ts}, microseconds) is {ahead:.0f} s ahead of this "
        f"region's clock, more than the maximum clock skew of {ctx.max_clock_skew_seconds} s: the writer's "
        "clock runs ahead. Fix the writer's time (NTP), then rewrite the item; redriving this entry "
        "will be refused again",
    )


def _classify_remove(record: StreamRecord, ctx: Context) -> Decision:
    names = ctx.names
    if record.is_ttl_removal:
        # Every region expires its own copy (and its own tombstones) from the same replicated TTL value.
        if is_tombstone(record.old_image, names):
            return Skip(SkipReason.TOMBSTONE_EXPIRY)
        return Skip(SkipReason.TTL)
    # Any other REMOVE is a hard delete, even of a tombstone: skipping it would let an older write
    # arriving later recreate the item in this region only.
    if ctx.topology == ONE_WAY:
        version = _one_way_version(record, ctx)
        item = tombstone_for(record.keys, version, ctx.tombstone_retention_seconds, names)
        return Replicate(record.keys, item, version, record.old_image)
    previous = checked_version_of(record.old_image, names)
    version = _next_version(record, previous, ctx.local_region)
    item = tombstone_for(record.keys, version, ctx.tombstone_retention_seconds, names)
    return WriteLocalTombstone(record.keys, item, version)


def _one_way_version(record: StreamRecord, ctx: Context) -> Version:
    return Version(record.creation_time_us, ctx.local_region, pad_sequence(record.sequence_number))


def _unchanged(record: StreamRecord) -> bool:
    # moto emits MODIFY for a write that changes nothing (AWS does not): nothing to replicate.
    return record.event_name == "MODIFY" and record.new_image == record.old_image


def _classify_one_way_write(record: StreamRecord, ctx: Context) -> Decision:
    if _unchanged(record):
        return Skip(SkipReason.NO_CHANGE)
    assert record.new_image is not None  # parse_record guarantees it for INSERT/MODIFY
    version = _one_way_version(record, ctx)
    return Replicate(record.keys, stamp(record.new_image, version, ctx.names), version, record.old_image)


def _classify_mesh_write(record: StreamRecord, ctx: Context) -> Decision:
    names = ctx.names
    new_image = record.new_image
    assert new_image is not None  # parse_record guarantees it for INSERT/MODIFY
    writer = region_of(new_image, names)
    if writer is not None and writer != ctx.local_region:
        # A replicated write arriving here (or an unstamped update of another region's item,
        # which cannot be told apart: documented limitation).
        return Skip(SkipReason.ECHO)
    if _unchanged(record):
        return Skip(SkipReason.NO_CHANGE)
    new_version = checked_version_of(new_image, names)
    if writer is None or names.ts not in new_image:
        # An unstamped insert or full put: adopt it; the stamped version then replicates.
        version = _next_version(record, checked_version_of(record.old_image, names), ctx.local_region)
        return Adopt(record.keys, stamp(new_image, version, names), version)
    if record.event_name == "MODIFY" and record.old_image is not None:
        old_version = checked_version_of(record.old_image, names)
        if old_version == new_version and user_attributes(record.old_image, names) != user_attributes(
            new_image, names
        ):
            # An unstamped UpdateItem of a local item kept the old stamp: re-stamp it.
            version = _next_version(record, old_version, ctx.local_region)
            return Adopt(record.keys, stamp(new_image, version, names), version)
    # A version this replicator stamped (an adoption, a local tombstone) keeps its sequence number, so
    # every copy carries the very version its region stores: a copy written back into this region (a
    # backfill or repair from another region) is then a duplicate there, not a newer version that
    # would replicate again. A writer's own version has none: the record's orders it within its ts.
    version = Version(
        new_version.ts, ctx.local_region, new_version.seq or pad_sequence(record.sequence_number)
    )
    return Replicate(record.keys, stamp(new_image, version, names), version, record.old_image)


def replaces_unstamped(record: StreamRecord, names: AttributeNames) -> bool:
    """The record replaced an unstamped item: its real version is that item's adoption, not in the image."""
    return record.old_image is not None and names.ts not in record.old_image


def above_adopted_predecessor(
    decision: Adopt | WriteLocalTombstone,
    record: StreamRecord,
    stored: WireItem | None,
    ctx: Context,
) -> Adopt | WriteLocalTombstone:
    """Raise a local version above the adoption of the unstamped item the record replaced.

    An unstamped put P replacing an item of version V is adopted at max(time, V + 1). A later change
    of P (an unstamped put or a hard delete) sees only P's unstamped image, so its own version would
    come from its record time alone and could fall below P's adoption: the later change would lose
    and the earlier one survive. ``stored`` is the local item read before writing: when it is P's
    adoption (stamped by this region, same attributes as the replaced image), the new version goes
    just above it.
    """
    names = ctx.names
    if stored is None or not replaces_unstamped(record, names):
        return decision
    # Only the local adoption of that very image counts: an identical item from another region is not it.
    if region_of(stored, names) != ctx.local_region:
        return decision
    if user_attributes(stored, names) != user_attributes(record.old_image, names):
        return decision
    predecessor = version_of(stored, names)
    if predecessor < decision.version:
        return decision
    version = Version(predecessor.ts + 1, decision.version.region, decision.version.seq)
    if isinstance(decision, Adopt):
        return Adopt(decision.keys, stamp(decision.item, version, names), version)
    item = tombstone_for(decision.keys, version, ctx.tombstone_retention_seconds, names)
    return WriteLocalTombstone(decision.keys, item, version)
