"""Stream records as Lambda delivers them, from what the local engine (moto) returns.

Pure functions: no I/O. Each absorbs one measured deviation of moto's DynamoDB Streams from AWS
(shared/LOCAL-ENGINE.md); docs/LOCAL.md lists them with the decisions taken.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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

    event: dict[str, Any]
    sequence_number: str
    created_at: float  # epoch seconds as the engine reported them (milliseconds in moto)

    @property
    def event_name(self) -> str:
        return str(self.event["eventName"])

    @property
    def size_bytes(self) -> int:
        return int(self.event["dynamodb"].get("SizeBytes", 0))


def to_lambda_record(
    raw: Mapping[str, Any],
    *,
    region: str,
    stream_arn: str,
    whole_seconds: bool = True,
    user_identity: Mapping[str, str] | None = None,
) -> Record:
    """A record shaped as Lambda delivers it from AWS.

    moto says awsRegion us-east-1 and eventVersion 1.0 for every table, never sets userIdentity, and
    reports ApproximateCreationDateTime in milliseconds where AWS reports whole seconds (rounded down
    here unless ``whole_seconds`` is False).
    """
    dynamodb = dict(raw["dynamodb"])
    created = creation_seconds(dynamodb["ApproximateCreationDateTime"])
    dynamodb["ApproximateCreationDateTime"] = math.floor(created) if whole_seconds else round(created, 3)
    event: dict[str, Any] = {
        "eventID": raw.get("eventID", ""),
        "eventName": raw["eventName"],
        "eventVersion": EVENT_VERSION,
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if user_identity:
        event["userIdentity"] = dict(user_identity)
    return Record(event=event, sequence_number=str(dynamodb["SequenceNumber"]), created_at=created)


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
