"""Bad input: each kind of malformed record gets a clear reason (parse_record)."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from replicator.core.records import KEY_TYPES, MalformedRecord, _check_image_keys, _keys, parse_record
from replicator.core.wire import WireFormatError, validate_value
from tests.unit.factories import item, record
from tests.unit.test_wire import hostile_values

GOOD = record("MODIFY", new=item("a", "us-east-1", 5, v=1), old=item("a", "us-east-1", 4, v=0))


def broken(mutate) -> dict:
    raw = copy.deepcopy(GOOD)
    mutate(raw)
    return raw


def test_a_well_formed_record_is_parsed() -> None:
    parsed = parse_record(GOOD)
    assert parsed.event_name == "MODIFY"
    assert parsed.keys == {"pk": {"S": "a"}}
    assert parsed.creation_time_us == 1_700_000_000_000_000


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r["dynamodb"].pop("Keys"), "no dynamodb.Keys"),
        (lambda r: r.update(eventName="UPSERT"), "unknown eventName 'UPSERT'"),
        (lambda r: r["dynamodb"].pop("NewImage"), "no NewImage; the stream view type must be"),
        (lambda r: r["dynamodb"].pop("OldImage"), "no OldImage; the stream view type must be"),
        (lambda r: r["dynamodb"].update(SequenceNumber="12ab"), "is not a string of digits"),
        (
            lambda r: r["dynamodb"].update(ApproximateCreationDateTime="yesterday"),
            "is not a time in epoch seconds",
        ),
        (lambda r: r.pop("dynamodb"), "no 'dynamodb' object"),
        (lambda r: r["dynamodb"]["NewImage"].pop("pk"), "lacks key attributes"),
    ],
    ids=[
        "no-keys",
        "unknown-event",
        "no-new-image",
        "no-old-image",
        "bad-seq",
        "bad-time",
        "no-dynamodb",
        "image-without-key",
    ],
)
def test_each_malformed_record_names_what_is_wrong(mutate, reason: str) -> None:
    with pytest.raises(MalformedRecord, match=reason):
        parse_record(broken(mutate))


# --- the shortcuts of parse_record against the checks they skip ---------------------------------------

_key_values = st.sampled_from([{"S": "a"}, {"S": "b"}, {"N": "1"}, {"N": "1.0"}, {"B": "YQ=="}, {"S": ""}])
_key_sets = st.dictionaries(st.sampled_from(["pk", "sk"]), _key_values, min_size=1, max_size=2)
_images = st.dictionaries(st.sampled_from(["pk", "sk", "v"]), _key_values, max_size=3)


def _image_key_error_as_before(image_name: str, image: dict, keys: dict) -> str | None:
    """The image-key check as it was written before its shortcut (the reference)."""
    if any(k not in image for k in keys):
        return f"dynamodb.{image_name} lacks key attributes {sorted(keys)}"
    if any(image[k] != keys[k] for k in keys):
        differing = sorted(k for k in keys if image[k] != keys[k])
        return (
            f"dynamodb.{image_name} has other values for key attributes {differing} than dynamodb.Keys: "
            "writing it would change another item"
        )
    return None


@given(_key_sets, _images, st.sampled_from(["NewImage", "OldImage"]))
def test_the_image_key_check_refuses_exactly_what_it_refused_before(
    keys: dict, image: dict, name: str
) -> None:
    expected = _image_key_error_as_before(name, image, keys)
    try:
        _check_image_keys(name, image, keys)
    except MalformedRecord as err:
        assert str(err) == expected
    else:
        assert expected is None


@given(hostile_values, hostile_values)
def test_the_key_shortcut_refuses_exactly_what_the_full_check_refuses(pk: object, sk: object) -> None:
    raw = copy.deepcopy(GOOD)
    raw["dynamodb"]["Keys"] = {"pk": pk, "sk": sk}
    try:
        _keys(raw["dynamodb"])
        shortcut = None
    except MalformedRecord as err:
        shortcut = str(err)
    assert shortcut == _keys_error_without_shortcut(raw["dynamodb"]["Keys"])


def _keys_error_without_shortcut(keys: dict) -> str | None:
    """What the key check said when every key went through the full validation (the reference)."""
    for name, value in keys.items():
        try:
            validate_value(value, f"dynamodb.Keys.{name}")
        except WireFormatError as err:
            return str(err)
        tag, inner = next(iter(value.items()))
        if tag not in KEY_TYPES:
            return f"dynamodb.Keys.{name} is of type {tag}; key attributes are S, N or B"
        if tag in ("S", "B") and inner == "":
            return f"dynamodb.Keys.{name} is empty; DynamoDB keys cannot be empty"
    return None
