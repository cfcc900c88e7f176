"""Stream records as Lambda delivers them, from what the local engine (moto) returns.

Pure functions: no I/O. Each absorbs one measured deviation of moto's DynamoDB Streams from AWS
(docs/LOCAL.md lists them with the decisions taken).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from replicator.core import wire  # the product's one crossing between SDK form and event form

TTL_IDENTITY = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
EVENT_VERSION = "1.1"
# How long a key-only INSERT at the end of a read waits for the full INSERT moto emits right after it
# for an UpdateItem that creates an item. Both are written by one request, so this is generous.
KEY_ONLY_INSERT_HOLD_SECONDS = 1.0


def creation_seconds(value: Any) -> float:
    """ApproximateCreationDateTime as epoch seconds (boto3 parses it into a datetime)."""
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


@dataclass(frozen=True)
class Record:
    """One stream record in Lambda's event shape, with the facts the poller needs."""

    event: dict[str, Any]  # exactly what json.loads of Lambda's event JSON gives
    sequence_number: str
    created_at: float  # epoch seconds as the engine reported them (milliseconds in moto)
    shard_id: str = ""
    payload_bytes: int = 0  # length of the record's JSON text, for the 6 MB invocation limit

    @property
    def event_name(self) -> str:
        return str(self.event["eventName"])

    @property
    def size_bytes(self) -> int:
        return int(self.event["dynamodb"]["SizeBytes"])


_IMAGES = ("Keys", "NewImage", "OldImage")


def to_lambda_record(
    raw: Mapping[str, Any],
    *,
    region: str,
    stream_arn: str,
    shard_id: str = "",
    whole_seconds: bool = True,
    user_identity: Mapping[str, str] | None = None,
) -> Record:
    """The record as Lambda delivers it from AWS, from what boto3's GetRecords returned.

    The one serializer of stream events: the result is JSON (it is built, then passed through JSON
    text and back), so nothing a handler receives can be a Python object Lambda never sends. Images
    go through ``wire.from_sdk``: boto3 hands binary values (B, BS members, at any depth) as bytes,
    Lambda as base64 text. moto says awsRegion us-east-1 and eventVersion 1.0 for every table, never
    sets userIdentity, and reports ApproximateCreationDateTime in milliseconds where AWS reports whole
    seconds (rounded down here unless ``whole_seconds`` is False).

    Raises ValueError (or TypeError) for a record that cannot be delivered as Lambda would.
    """
    source = raw["dynamodb"]
    created = creation_seconds(source["ApproximateCreationDateTime"])
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": math.floor(created) if whole_seconds else round(created, 3)
    }
    for image in _IMAGES:
        if image in source:
            dynamodb[image] = wire.from_sdk(source[image])
    dynamodb["Keys"] = record_keys(source)
    dynamodb["SequenceNumber"] = str(source["SequenceNumber"])
    dynamodb["SizeBytes"] = int(source["SizeBytes"])
    dynamodb["StreamViewType"] = str(source["StreamViewType"])
    event = lambda_event_record(
        str(raw["eventID"]), str(raw["eventName"]), dynamodb, region, stream_arn, user_identity
    )
    text = json.dumps(event, allow_nan=False)
    return Record(
        event=json.loads(text),
        sequence_number=dynamodb["SequenceNumber"],
        created_at=created,
        shard_id=shard_id,
        payload_bytes=len(text.encode("utf-8")),
    )


def lambda_event_record(
    event_id: str,
    event_name: str,
    dynamodb: Mapping[str, Any],
    region: str,
    stream_arn: str,
    user_identity: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One record of a Lambda DynamoDB stream event around its ``dynamodb`` part (event form).

    The one place the envelope is spelled: the stand-in's serializer above, the unit tests' record
    factory and the handler benchmark all build their records here.
    """
    event: dict[str, Any] = {
        "eventID": event_id,
        "eventName": event_name,
        "eventVersion": EVENT_VERSION,
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dict(dynamodb),
        "eventSourceARN": stream_arn,
    }
    if user_identity:
        event["userIdentity"] = dict(user_identity)
    return event


def record_of_images(
    event_name: str,
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    *,
    sequence_number: str,
    created: float,
    key_names: tuple[str, ...],
    region: str,
    stream_arn: str,
    ttl: bool = False,
) -> dict[str, Any]:
    """A record as Lambda delivers it, from images already in event form (binary as base64 text)."""
    image = new or old or {}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": math.floor(created),  # AWS streams: whole seconds
        "Keys": {name: image[name] for name in key_names},
        "SequenceNumber": sequence_number,
        "SizeBytes": len(json.dumps(image)),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        dynamodb["NewImage"] = dict(new)
    if old is not None:
        dynamodb["OldImage"] = dict(old)
    return lambda_event_record(
        f"evt-{sequence_number}", event_name, dynamodb, region, stream_arn, TTL_IDENTITY if ttl else None
    )


def record_keys(source: Mapping[str, Any]) -> dict[str, Any]:
    """The record's Keys in event form, taken from its image when it has one.

    moto base64-encodes binary key values in ``Keys`` a second time (its images are right): for
    ``pk = b"\\xff\\x00k"`` boto3 returns ``Keys {"pk": {"B": b"/wBr"}}``. AWS's Keys equal the image's
    key attributes, so reading them from the image is right on both. A KEYS_ONLY record has no image:
    its Keys pass as they are (the product deploys NEW_AND_OLD_IMAGES).
    """
    image = source.get("NewImage") or source.get("OldImage")
    if image and all(name in image for name in source["Keys"]):
        return wire.from_sdk({name: image[name] for name in source["Keys"]})
    return wire.from_sdk(source["Keys"])


def is_no_op_modify(raw: Mapping[str, Any]) -> bool:
    """moto emits MODIFY for a write that changes nothing; AWS emits no record at all."""
    dynamodb = raw.get("dynamodb", {})
    return (
        raw.get("eventName") == "MODIFY"
        and "NewImage" in dynamodb
        and dynamodb.get("NewImage") == dynamodb.get("OldImage")
    )


def _is_key_only_insert(raw: Mapping[str, Any]) -> bool:
    dynamodb = raw.get("dynamodb", {})
    return raw.get("eventName") == "INSERT" and dynamodb.get("NewImage") == dynamodb.get("Keys")


def _is_full_insert_of(raw: Mapping[str, Any], keys: Any) -> bool:
    dynamodb = raw.get("dynamodb", {})
    return (
        raw.get("eventName") == "INSERT" and dynamodb.get("Keys") == keys and dynamodb.get("NewImage") != keys
    )


@dataclass(frozen=True)
class Cleaned:
    """The records AWS would have emitted, and where reading may resume."""

    records: tuple[Mapping[str, Any], ...]
    last_consumed: str | None  # sequence number of the last engine record consumed (delivered or dropped)
    dropped: int


def drop_engine_artifacts(
    raws: Sequence[Mapping[str, Any]],
    now: float,
    hold_seconds: float = KEY_ONLY_INSERT_HOLD_SECONDS,
    created_at: Callable[[Mapping[str, Any]], float] = lambda r: creation_seconds(
        r["dynamodb"]["ApproximateCreationDateTime"]
    ),
) -> Cleaned:
    """Remove what moto emits and AWS does not, in stream order.

    - a MODIFY whose NewImage equals its OldImage (a write that changed nothing);
    - the key-only INSERT moto emits before the real INSERT of an UpdateItem that creates an item.
      A key-only INSERT that ends the read is held back (not consumed) for up to ``hold_seconds``
      so that its companion can arrive; a genuine key-only PutItem is delivered after that.
    """
    kept: list[Mapping[str, Any]] = []
    last: str | None = None
    dropped = 0
    for index, raw in enumerate(raws):
        if is_no_op_modify(raw):
            dropped += 1
            last = raw["dynamodb"]["SequenceNumber"]
            continue
        if _is_key_only_insert(raw):
            keys = raw["dynamodb"]["Keys"]
            following = raws[index + 1] if index + 1 < len(raws) else None
            if following is None and now - created_at(raw) < hold_seconds:
                break  # wait for the companion INSERT: resume before this record next time
            if following is not None and _is_full_insert_of(following, keys):
                dropped += 1
                last = raw["dynamodb"]["SequenceNumber"]
                continue
        kept.append(raw)
        last = raw["dynamodb"]["SequenceNumber"]
    return Cleaned(records=tuple(kept), last_consumed=last, dropped=dropped)
