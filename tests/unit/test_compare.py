"""The one definition of "converged": verify, the demo and the chaos tests all use core.compare."""

from __future__ import annotations

from replicator.core.compare import Kind, compare, differences
from replicator.core.metadata import AttributeNames

NAMES = AttributeNames()
A = {"pk": {"S": "k"}, "tags": {"SS": ["a", "b"]}, "rep_ts": {"N": "5"}, "rep_region": {"S": "us-east-1"}}


def test_sets_in_another_order_and_rep_seq_do_not_make_a_difference() -> None:
    b = {**A, "tags": {"SS": ["b", "a"]}, "rep_seq": {"S": "0" * 40}}
    assert compare(A, b, NAMES) is None


def test_a_tombstone_equals_an_absent_item() -> None:
    tombstone = {
        "pk": {"S": "k"},
        "rep_ts": {"N": "6"},
        "rep_region": {"S": "x"},
        "rep_deleted": {"BOOL": True},
    }
    assert compare(tombstone, None, NAMES) is None
    assert compare(A, tombstone, NAMES) is Kind.MISSING
    assert compare(None, A, NAMES) is Kind.EXTRA


def test_another_version_or_value_is_a_difference_unless_metadata_is_ignored() -> None:
    newer = {**A, "rep_ts": {"N": "6"}}
    assert compare(A, newer, NAMES) is Kind.DIFFERENT
    assert compare(A, newer, NAMES, ignore_metadata=True) is None
    assert compare(A, {**A, "tags": {"SS": ["a"]}}, NAMES, ignore_metadata=True) is Kind.DIFFERENT


def test_differences_name_each_disagreeing_key_against_the_first_region() -> None:
    regions = {"r1": {"k1": A, "k2": A}, "r2": {"k1": A}, "r3": {"k1": {**A, "rep_ts": {"N": "9"}}, "k2": A}}
    found = differences(regions, NAMES)
    assert found == [
        "k2: missing (r1: (5, 'us-east-1'), r2: None)",
        "k1: different (r1: (5, 'us-east-1'), r3: (9, 'us-east-1'))",
    ]
    assert differences({"r1": {"k1": A}, "r2": {"k1": dict(A)}}, NAMES) == []
