"""A typed, validated view of one DynamoDB stream record as Lambda delivers it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from replicator.core.metadata import WireItem
from replicator.core.wire import WireFormatError, _is_object, _plainly_valid, validate_item, validate_value

KEY_TYPES = ("S", "N", "B")  # DynamoDB key attributes are strings, numbers or binaries

EVENT_NAMES = ("INSERT", "MODIFY", "REMOVE")
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


class MalformedRecord(ValueError):
    """A stream record the replicator cannot interpret; it goes to the dead-letter store with this reason."""


class StreamRecord(NamedTuple):
    """The parts of a stream record the protocol decides on.

    Immutable; a NamedTuple rather than a frozen dataclass because one is built per record of every
    batch, and a frozen dataclass's __init__ costs about three times as much.
    """

    event_name: str
    keys: WireItem
    new_image: WireItem | None
    old_image: WireItem | None
    sequence_number: str
    approximate_creation_time: float  # seconds since the epoch (AWS: whole seconds)
    user_identity: Mapping[str, Any] | None
    view_type: str
    raw: Mapping[str, Any]

    @property
    def key_id(self) -> str:
        """A canonical string for the item's key (wire format, sorted attribute names)."""
        return key_id(self.keys)

    @property
    def is_ttl_removal(self) -> bool:
        identity = self.user_identity or {}
        return identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL

    @property
    def creation_time_us(self) -> int:
        return round(self.approximate_creation_time * 1_000_000)


def key_id(keys: WireItem) -> str:
    """A canonical string for a key in event form (binary values are base64 text, so it is JSON)."""
    return _KEY_ENCODER.encode(keys)


# What json.dumps(keys, sort_keys=True, separators=(",", ":")) uses, built once instead of per key.
_KEY_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _image(dynamodb: Mapping[str, Any], name: str) -> WireItem | None:
    image = dynamodb.get(name)
    if image is None:
        return None
    if not isinstance(image, dict):
        raise MalformedRecord(f"dynamodb.{name} must be an object in DynamoDB JSON")
    try:
        validate_item(image, f"dynamodb.{name}")
    except WireFormatError as err:
        raise MalformedRecord(str(err)) from None
    return image


def _keys(dynamodb: Mapping[str, Any]) -> WireItem:
    keys = dynamodb.get("Keys")
    if not _is_object(keys) or not keys:
        raise MalformedRecord("record has no dynamodb.Keys")
    if len(keys) > 2:
        raise MalformedRecord(f"dynamodb.Keys has {len(keys)} attributes; a key has one or two")
    for name, value in keys.items():
        if not _plainly_valid(value, 1):  # the shortcut decides the common keys without a path
            try:
                validate_value(value, f"dynamodb.Keys.{name}")
            except WireFormatError as err:
                raise MalformedRecord(str(err)) from None
        tag, inner = next(iter(value.items()))
        if tag not in KEY_TYPES:
            raise MalformedRecord(f"dynamodb.Keys.{name} is of type {tag}; key attributes are S, N or B")
        if tag in ("S", "B") and inner == "":
            raise MalformedRecord(f"dynamodb.Keys.{name} is empty; DynamoDB keys cannot be empty")
    return keys


def _check_image_keys(image_name: str, image: WireItem, keys: WireItem) -> None:
    """The image must hold the record's key: writing it would otherwise change another item."""
    for name, value in keys.items():
        if image.get(name) != value:
            break
    else:
        return  # the common case: every key attribute present and equal
    if any(k not in image for k in keys):
        raise MalformedRecord(f"dynamodb.{image_name} lacks key attributes {sorted(keys)}")
    differing = sorted(k for k in keys if image[k] != keys[k])
    raise MalformedRecord(
        f"dynamodb.{image_name} has other values for key attributes {differing} than dynamodb.Keys: "
        "writing it would change another item"
    )


def parse_record(raw: Mapping[str, Any]) -> StreamRecord:
    """Validate and view one record of a Lambda DynamoDB stream event; MalformedRecord says what is wrong."""
    if not _is_object(raw):
        raise MalformedRecord("record is not a JSON object")
    event_name = raw.get("eventName")
    if event_name not in EVENT_NAMES:
        raise MalformedRecord(f"unknown eventName {event_name!r}; expected one of {EVENT_NAMES}")
    dynamodb = raw.get("dynamodb")
    if not _is_object(dynamodb):
        raise MalformedRecord("record has no 'dynamodb' object")
    keys = _keys(dynamodb)
    sequence_number = dynamodb.get("SequenceNumber")
    if not isinstance(sequence_number, str) or not sequence_number.isdigit():
        raise MalformedRecord(f"dynamodb.SequenceNumber {sequence_number!r} is not a string of digits")
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, bool) or not isinstance(created, (int, float)) or not 0 <= created < 1e11:
        raise MalformedRecord(
            f"dynamodb.ApproximateCreationDateTime {created!r} is not a time in epoch seconds"
        )
    view_type = str(dynamodb.get("StreamViewType", "NEW_AND_OLD_IMAGES"))
    new_image = _image(dynamodb, "NewImage")
    old_image = _image(dynamodb, "OldImage")
    if event_name in ("INSERT", "MODIFY") and new_image is None:
        raise MalformedRecord(
            f"{event_name} record has no NewImage; the stream view type must be NEW_AND_OLD_IMAGES "
            f"(it is {view_type})"
        )
    if event_name == "MODIFY" and old_image is None:
        raise MalformedRecord(
            "MODIFY record has no OldImage; the stream view type must be NEW_AND_OLD_IMAGES "
            f"(it is {view_type})"
        )
    if new_image is not None:
        _check_image_keys("NewImage", new_image, keys)
    if old_image is not None:
        _check_image_keys("OldImage", old_image, keys)
    identity = raw.get("userIdentity")
    return StreamRecord(
        event_name=event_name,
        keys=keys,
        new_image=new_image,
        old_image=old_image,
        sequence_number=sequence_number,
        approximate_creation_time=float(created),
        user_identity=identity if isinstance(identity, Mapping) else None,
        view_type=view_type,
        raw=raw,
    )
