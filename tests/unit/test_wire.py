"""The one crossing between Lambda's event form (base64 text) and the SDK form (bytes), and validation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.wire import (
    _PLAIN_NUMBER,
    MAX_DEPTH,
    MAX_NUMBER_DIGITS,
    WireFormatError,
    _plainly_valid,
    from_sdk,
    item_size_bytes,
    size_over_limit,
    to_sdk,
    validate_item,
    validate_value,
    value_to_sdk,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


EVENT_ITEM: dict[str, Any] = {
    "pk": {"B": b64(b"\x00key\xff")},
    "blob": {"B": b64(b"hello")},
    "empty": {"B": ""},
    "blobs": {"BS": [b64(b"a"), b64(b"\x00\x01")]},
    "nested": {"M": {"deep": {"L": [{"B": b64(b"x")}, {"M": {"bs": {"BS": [b64(b"y")]}}}, {"S": "s"}]}}},
    "n": {"N": "12345678901234567890123456789012345678"},
    "s": {"S": ""},
    "flag": {"BOOL": False},
    "nothing": {"NULL": True},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "-2.5e3"]},
}


def test_to_sdk_decodes_every_binary_once_at_any_depth() -> None:
    # GIVEN an item as Lambda delivers it WHEN it crosses into the SDK
    sdk = to_sdk(EVENT_ITEM)
    # THEN binary values are the writer's bytes, and nothing else changed
    assert sdk["pk"] == {"B": b"\x00key\xff"}
    assert sdk["blob"] == {"B": b"hello"}
    assert sdk["empty"] == {"B": b""}
    assert sdk["blobs"] == {"BS": [b"a", b"\x00\x01"]}
    deep = sdk["nested"]["M"]["deep"]["L"]
    assert deep[0] == {"B": b"x"} and deep[1] == {"M": {"bs": {"BS": [b"y"]}}} and deep[2] == {"S": "s"}
    assert sdk["n"] == EVENT_ITEM["n"] and sdk["ns"] == EVENT_ITEM["ns"]


def test_from_sdk_is_the_inverse_and_json_serializable() -> None:
    event = from_sdk(to_sdk(EVENT_ITEM))
    assert event == EVENT_ITEM
    assert json.loads(json.dumps(event)) == EVENT_ITEM


def test_crossing_twice_the_same_way_is_refused() -> None:
    with pytest.raises(WireFormatError, match="already bytes"):
        to_sdk(to_sdk(EVENT_ITEM))
    with pytest.raises(WireFormatError, match="is text"):
        from_sdk(EVENT_ITEM)


binary = st.binary(max_size=64)
values: st.SearchStrategy[dict[str, Any]] = st.recursive(
    st.one_of(
        binary.map(lambda b: {"B": b}),
        st.lists(binary, min_size=1, max_size=4, unique=True).map(lambda bs: {"BS": bs}),
        st.text(max_size=8).map(lambda s: {"S": s}),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: {"L": items}),
        st.dictionaries(st.text(min_size=1, max_size=4), children, max_size=3).map(lambda m: {"M": m}),
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(min_size=1, max_size=6), values, max_size=5))
def test_sdk_items_round_trip_bytes_exact(item: dict[str, Any]) -> None:
    event = from_sdk(item)
    validate_item(json.loads(json.dumps(event)))
    assert to_sdk(json.loads(json.dumps(event))) == item


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"a": {"S": 5}}, r"item\.a\.S must be a string"),
        ({"a": {"X": "1"}}, "unknown type tag 'X'"),
        ({"a": {"S": "x", "N": "1"}}, "exactly one type tag"),
        ({"a": "plain"}, "exactly one type tag"),
        ({"a": {"N": "12a"}}, "must be a number"),
        ({"a": {"N": 5}}, "must be a number"),
        ({"a": {"N": "1" * 39}}, "more than 38 significant digits"),
        ({"a": {"N": "1e126"}}, "outside DynamoDB's number range"),
        ({"a": {"N": "-1E-131"}}, "outside DynamoDB's number range"),
        ({"a": {"B": "not base64!"}}, "not valid base64"),
        ({"a": {"B": 12}}, "must be base64 text"),
        ({"a": {"BOOL": "true"}}, "must be true or false"),
        ({"a": {"NULL": False}}, "must be true"),
        ({"a": {"M": []}}, "must be an object"),
        ({"a": {"L": {}}}, "must be a list"),
        ({"a": {"SS": []}}, "no empty sets"),
        ({"a": {"SS": ["x", "x"]}}, "duplicate members"),
        ({"a": {"NS": ["1", "x"]}}, r"NS\[1\] must be a number"),
        ({"a": {"L": [{"M": {"b": {"BS": ["%%"]}}}]}}, r"item\.a\.L\[0\]\.M\.b\.BS\[0\] is not valid base64"),
        ({"": {"S": "x"}}, "empty or non-text name"),
        ([1, 2], "must be an object of attributes"),
    ],
)
def test_hostile_values_are_named_by_path(item: Any, message: str) -> None:
    with pytest.raises(WireFormatError, match=message):
        validate_item(item)


def test_valid_item_passes_validation() -> None:
    validate_item(EVENT_ITEM)
    validate_item({"big": {"N": "9.9999999999999999999999999999999999999E+125"}, "small": {"N": "1E-130"}})
    validate_item({"zero": {"N": "0E-500"}, "negative": {"N": "-0.5"}})


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "leaf"}
    for _ in range(depth - 1):
        value = {"M": {"m": value}}
    return value


def test_nesting_is_refused_past_dynamodbs_32_levels() -> None:
    validate_item({"a": _nested(MAX_DEPTH)})
    with pytest.raises(WireFormatError, match="nests deeper than DynamoDB's 32 levels"):
        validate_item({"a": _nested(MAX_DEPTH + 1)})


# Anything JSON can hold, shaped like DynamoDB JSON often enough to reach every branch of the checks.
_TAGS = st.sampled_from(["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS", "X"])
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=6),
    st.sampled_from(["1", "-0.5", ".5", "5.", "+1", " 1", "1e5", "1" * 38, "1" * 39, "0" * 40, "-", "aGk="]),
)
hostile_values = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(_TAGS, children, min_size=1, max_size=2),
        st.dictionaries(st.text(max_size=3), children, max_size=2).map(lambda m: {"M": m}),
        st.lists(children, max_size=3).map(lambda items: {"L": items}),
    ),
    max_leaves=12,
)


@given(hostile_values)
def test_the_validation_shortcut_never_accepts_what_the_full_check_refuses(value: Any) -> None:
    # The shortcut may only say "valid" for values the full check accepts; "not sure" is always allowed.
    if _plainly_valid(value, 1):
        validate_value(value, "v")


def test_the_validation_shortcut_takes_the_common_values() -> None:
    nested = {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}]}}}
    common = {"s": {"S": "x"}, "n": {"N": "-12.5"}, "m": nested}
    assert all(_plainly_valid(value, 1) for value in common.values())
    # and leaves binary, sets, exponents and long numbers to the full check
    assert not any(
        _plainly_valid(value, 1)
        for value in ({"B": "aGk="}, {"SS": ["a"]}, {"N": "1e5"}, {"N": "1" * 39}, {"S": 5}, _nested(33))
    )


sized_values = st.recursive(
    st.one_of(
        st.text(max_size=40).map(lambda s: {"S": s}),  # non-ASCII and astral characters included
        st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: {"N": str(d)}),
        st.binary(max_size=40).map(lambda b: {"B": base64.b64encode(b).decode()}),
        st.booleans().map(lambda b: {"BOOL": b}),
        st.just({"NULL": True}),
        st.lists(st.text(max_size=5), min_size=1, max_size=3, unique=True).map(lambda ss: {"SS": ss}),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda items: {"L": items}),
        st.dictionaries(st.text(max_size=4), children, max_size=3).map(lambda m: {"M": m}),
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(min_size=1, max_size=6), sized_values, max_size=5), st.integers(-2, 2))
def test_the_size_shortcut_decides_like_the_exact_size(item: dict[str, Any], offset: int) -> None:
    # Whatever the item, "over the limit" agrees with the exact size, at the limit and around it
    exact = item_size_bytes(item)
    assert len(json.dumps(item)) >= exact  # what the shortcut relies on: JSON never undercounts
    limit = max(0, exact + offset)
    assert size_over_limit(item, limit) == (exact if exact > limit else None)


@given(st.dictionaries(st.text(min_size=1, max_size=6), sized_values, max_size=5))
def test_to_sdk_skips_only_values_the_conversion_would_return_as_they_are(item: dict[str, Any]) -> None:
    # The shortcut (values tagged other than B, BS, M, L are not converted) against converting each value
    converted = to_sdk(item)
    assert converted == {name: value_to_sdk(value) for name, value in item.items()}
    assert to_sdk(from_sdk(converted)) == converted  # and bytes-exact across the boundary


@given(st.dictionaries(st.text(min_size=1, max_size=6), sized_values, max_size=5), st.integers(-2, 2))
def test_the_size_shortcut_never_undercounts_in_either_form(item: dict[str, Any], offset: int) -> None:
    # ascii() of the item, in event form (base64 text) and in SDK form (bytes), bounds its exact size
    sdk = to_sdk(item)
    exact = item_size_bytes(item)
    assert item_size_bytes(sdk) == exact
    assert len(ascii(item)) >= exact and len(ascii(sdk)) >= exact
    limit = max(0, exact + offset)
    assert size_over_limit(sdk, limit) == (exact if exact > limit else None)


def test_the_size_shortcut_bounds_every_kind_of_character() -> None:
    # one, two, three and four UTF-8 bytes, control characters and quotes
    for text in ("a", "\x00", "'\"", "\xe9", "\u20ac", "\U0001f600"):
        item = {text: {"S": text * 50}, "n": {"N": "1" * 38}, "l": {"L": [{"S": text}] * 5}}
        assert len(ascii(item)) >= item_size_bytes(item)


@given(st.text(max_size=40) | st.from_regex(r"-?[0-9]{0,40}(\.[0-9]*)?", fullmatch=True))
def test_the_whole_number_shortcut_takes_exactly_what_the_plain_number_pattern_takes(text: str) -> None:
    # ASCII digits skip the pattern; anything else (other scripts' digits included) still asks it
    took = _plainly_valid({"N": text}, 1)
    assert took == (len(text) <= MAX_NUMBER_DIGITS and bool(_PLAIN_NUMBER.fullmatch(text)))
    if took:
        validate_value({"N": text}, "v")
