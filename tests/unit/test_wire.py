"""The one crossing between Lambda's event form (base64 text) and the SDK form (bytes), and validation."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.wire import WireFormatError, from_sdk, to_sdk, validate_item


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
