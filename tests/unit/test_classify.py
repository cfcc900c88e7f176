"""Classification of each kind of record (docs/DESIGN.md, The write contract), mesh and one-way."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.classify import (
    Adopt,
    Context,
    Replicate,
    Skip,
    SkipReason,
    WriteLocalTombstone,
    above_adopted_predecessor,
    classify,
)
from replicator.core.metadata import (
    LOWEST,
    AttributeNames,
    MetadataError,
    Version,
    check_metadata,
    checked_version_of,
    is_tombstone,
    mark_origin,
    stamp,
    version_of,
)
from replicator.core.records import parse_record
from tests.unit.factories import T0, item, record, tombstone_item

NAMES = AttributeNames()
MESH = Context("us-east-1", "mesh", NAMES, 604800)
ONE_WAY = Context("us-east-1", "one-way", NAMES, 604800)
T0_US = int(T0 * 1_000_000)


def decide(raw: dict, ctx: Context = MESH):
    return classify(parse_record(raw), ctx)


def test_a_local_stamped_write_is_replicated_with_its_own_version() -> None:
    decision = decide(record("INSERT", new=item("a", "us-east-1", 42, v=1), seq=7))
    assert isinstance(decision, Replicate)
    assert (decision.version.ts, decision.version.region) == (42, "us-east-1")
    assert decision.version.seq.endswith("7") and len(decision.version.seq) == 40
    assert decision.item["v"] == {"N": "1"}


def test_a_write_stamped_by_another_region_is_an_echo() -> None:
    assert decide(record("MODIFY", new=item("a", "eu-west-1", 42), old=item("a", "us-east-1", 41))) == Skip(
        SkipReason.ECHO
    )


def test_an_unstamped_insert_is_adopted_at_the_record_time() -> None:
    decision = decide(record("INSERT", new=item("a", v=1), created=T0))
    assert isinstance(decision, Adopt)
    assert decision.version[:2] == (T0_US, "us-east-1")
    assert decision.item["rep_ts"] == {"N": str(T0_US)} and decision.item["v"] == {"N": "1"}


def test_two_unstamped_writes_in_the_same_second_are_ordered_by_sequence_number() -> None:
    # AWS stream times are whole seconds: the sequence number keeps the second write the newer one
    first = decide(record("INSERT", new=item("a", v=1), created=T0, seq=10))
    second = decide(record("MODIFY", new=item("a", v=2), old=item("a", v=1), created=T0, seq=11))
    assert isinstance(first, Adopt) and isinstance(second, Adopt)
    assert second.version > first.version


def test_an_unstamped_put_over_a_newer_item_is_adopted_above_the_old_version() -> None:
    future = T0_US + 5_000_000
    decision = decide(record("MODIFY", new=item("a", v=2), old=item("a", "eu-west-1", future, v=1)))
    assert isinstance(decision, Adopt)
    assert decision.version[:2] == (future + 1, "us-east-1")


def test_an_unstamped_update_of_a_local_item_keeps_the_old_stamp_and_is_re_adopted() -> None:
    decision = decide(
        record("MODIFY", new=item("a", "us-east-1", 10, v=2), old=item("a", "us-east-1", 10, v=1))
    )
    assert isinstance(decision, Adopt)
    assert decision.version[:2] == (T0_US, "us-east-1")


def test_a_write_that_changes_nothing_is_skipped() -> None:
    same = item("a", "us-east-1", 10, v=1)
    assert decide(record("MODIFY", new=same, old=same)) == Skip(SkipReason.NO_CHANGE)


def test_a_hard_delete_becomes_a_local_tombstone_newer_than_the_deleted_version() -> None:
    future = T0_US + 9
    decision = decide(record("REMOVE", old=item("a", "us-east-1", future, v=1), created=T0))
    assert isinstance(decision, WriteLocalTombstone)
    assert decision.version[:2] == (future + 1, "us-east-1")
    assert is_tombstone(decision.item, NAMES)
    assert decision.item["rep_expires"] == {"N": str((future + 1) // 1_000_000 + 604800)}


def test_a_ttl_removal_is_not_replicated() -> None:
    assert decide(record("REMOVE", old=item("a", "us-east-1", 5), ttl=True)) == Skip(SkipReason.TTL)


def test_a_tombstone_expiry_is_not_replicated() -> None:
    raw = record("REMOVE", old=tombstone_item("a", "us-east-1", 5), ttl=True)
    assert decide(raw) == Skip(SkipReason.TOMBSTONE_EXPIRY)


def test_a_person_deleting_a_tombstone_is_a_delete_not_an_expiry() -> None:
    decision = decide(record("REMOVE", old=tombstone_item("a", "eu-west-1", 5)))
    assert isinstance(decision, WriteLocalTombstone)


def test_a_helper_delete_replicates_as_a_tombstone() -> None:
    decision = decide(
        record("MODIFY", new=tombstone_item("a", "us-east-1", 50), old=item("a", "us-east-1", 49))
    )
    assert isinstance(decision, Replicate) and is_tombstone(decision.item, NAMES)


def test_a_non_numeric_timestamp_is_malformed() -> None:
    bad = item("a", "us-east-1", None, v=1)
    bad["rep_ts"] = {"S": "yesterday"}
    with pytest.raises(MetadataError, match="rep_ts must be a non-negative whole number"):
        decide(record("INSERT", new=bad))


class TestOneWay:
    def test_a_change_takes_its_version_from_the_stream_record(self) -> None:
        decision = decide(record("INSERT", new=item("a", v=1), seq=3, created=T0), ONE_WAY)
        assert isinstance(decision, Replicate)
        assert decision.version.ts == T0_US and decision.version.region == "us-east-1"
        assert decision.item["rep_seq"] == {"S": decision.version.seq}

    def test_changes_in_the_same_second_are_ordered_by_sequence_number(self) -> None:
        first = decide(record("INSERT", new=item("a", v=1), seq=3, created=T0), ONE_WAY)
        second = decide(record("MODIFY", new=item("a", v=2), old=item("a", v=1), seq=4, created=T0), ONE_WAY)
        assert isinstance(first, Replicate) and isinstance(second, Replicate)
        assert second.version > first.version

    def test_a_delete_becomes_a_tombstone_in_the_replicas(self) -> None:
        decision = decide(record("REMOVE", old=item("a", v=1)), ONE_WAY)
        assert isinstance(decision, Replicate) and is_tombstone(decision.item, NAMES)

    def test_stamps_in_the_image_do_not_matter(self) -> None:
        decision = decide(record("INSERT", new=item("a", "eu-west-1", 1, v=1)), ONE_WAY)
        assert isinstance(decision, Replicate) and decision.version.region == "us-east-1"


class TestAfterAnAdoptedPredecessor:
    """A change of an unstamped item is versioned above that item's adoption (read back from the table)."""

    def test_a_delete_of_an_adopted_put_goes_above_the_adoption(self) -> None:
        removed = parse_record(record("REMOVE", old=item("a", v=1), created=T0))
        decision = classify(removed, MESH)
        adopted = item("a", "us-east-1", T0_US + 5_000_000, v=1)  # the put, adopted above a future item
        assert isinstance(decision, WriteLocalTombstone)
        raised = above_adopted_predecessor(decision, removed, adopted, MESH)
        assert raised.version[:2] == (T0_US + 5_000_001, "us-east-1")
        assert is_tombstone(raised.item, NAMES) and raised.item["rep_ts"] == {"N": str(T0_US + 5_000_001)}

    def test_a_stored_item_that_is_not_the_replaced_one_changes_nothing(self) -> None:
        removed = parse_record(record("REMOVE", old=item("a", v=1), created=T0))
        decision = classify(removed, MESH)
        assert isinstance(decision, WriteLocalTombstone)
        newer_elsewhere = item("a", "eu-west-1", T0_US + 5_000_000, v=9)
        assert above_adopted_predecessor(decision, removed, newer_elsewhere, MESH) == decision
        same_content_elsewhere = item("a", "eu-west-1", T0_US + 5_000_000, v=1)
        assert above_adopted_predecessor(decision, removed, same_content_elsewhere, MESH) == decision
        assert above_adopted_predecessor(decision, removed, None, MESH) == decision


def test_a_copy_without_metadata_is_marked_with_its_origin_and_stays_the_lowest_version() -> None:
    copy = mark_origin(item("a", v=1), "us-east-1", NAMES)
    assert copy["rep_region"] == {"S": "us-east-1"} and "rep_ts" not in copy
    assert version_of(copy, NAMES) == LOWEST
    # in the target region it is a replicated write, not an unstamped local one to adopt
    assert decide(record("INSERT", new=copy), Context("eu-west-1", "mesh", NAMES, 604800)) == Skip(
        SkipReason.ECHO
    )
    stamped = item("b", "eu-west-1", 5, v=1)
    assert mark_origin(stamped, "us-east-1", NAMES) == stamped


_metadata_values = st.one_of(
    st.sampled_from([{"N": "5"}, {"N": "-1"}, {"N": "1.5"}, {"S": "us-east-1"}, {"S": ""}, {"S": "0" * 40}]),
    st.sampled_from([{"BOOL": True}, {"BOOL": False}, {"NULL": True}, {"S": "12"}, {}]),
)
metadata_items = st.dictionaries(
    st.sampled_from(["pk", "rep_ts", "rep_region", "rep_seq", "rep_deleted", "rep_expires"]),
    _metadata_values,
    max_size=6,
)


@given(metadata_items)
def test_a_checked_items_version_is_read_as_version_of_reads_it(image: dict) -> None:
    # classify checks each image's metadata once, then reads its versions without checking again
    try:
        check_metadata(image, NAMES)
    except MetadataError:
        return
    assert checked_version_of(image, NAMES) == version_of(image, NAMES)


def _stamp_as_before(item: dict, version: Version) -> dict:
    """stamp as it was written before it copied the item with dict() (the reference)."""
    stamped = {k: v for k, v in item.items() if k != NAMES.seq}
    stamped[NAMES.ts] = {"N": str(version.ts)}
    stamped[NAMES.region] = {"S": version.region}
    if version.seq:
        stamped[NAMES.seq] = {"S": version.seq}
    return stamped


@given(
    metadata_items,
    st.builds(Version, st.integers(0, 10), st.sampled_from(["us-east-1"]), st.sampled_from(["", "0" * 40])),
)
def test_stamp_gives_the_same_item_in_the_same_order(image: dict, version: Version) -> None:
    stamped = stamp(image, version, NAMES)
    assert list(stamped.items()) == list(_stamp_as_before(image, version).items())
    assert stamped is not image
