"""Every attribute type, binary keys included, replicated bytes-exact by the function (moto, in-process).

The events are what Lambda delivers: JSON, binary values as base64 text. What the targets must hold is
what the writer wrote: the bytes, not their base64 text (the bug this guards: replicas stored
``b"aGVsbG8="`` for a writer's ``b"hello"``).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ParamValidationError

from replicator.adapters import describe_error
from replicator.core.errors import ErrorKind, classify_error
from replicator.core.wire import from_sdk
from tests.unit.conftest import create_table
from tests.unit.factories import record
from tests.unit.test_handler import (
    AP,
    EU,
    LOCAL,
    UNREACHABLE,
    Context,
    load_function,
    sqs_event,
)

NOW_US = int(time.time() * 1_000_000)

# The writer's item in the SDK's form (what boto3 takes): every type, binary at every depth.
WRITTEN: dict[str, Any] = {
    "id": {"B": b"\x00\x01key\xff"},
    "blob": {"B": b"hello"},
    "empty_blob": {"B": b""},
    "blobs": {"BS": [b"a", b"\x00\xfe"]},
    "text": {"S": "h\u00e9llo \U0001f600"},
    "empty_text": {"S": ""},
    "big_number": {"N": "12345678901234567890123456789012345678"},
    "small_number": {"N": "-0.000000000000000000000000000000000000001"},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "tags": {"SS": ["x", "y"]},
    "counts": {"NS": ["1", "2.5"]},
    "doc": {
        "M": {
            "inner": {"B": b"\xde\xad\xbe\xef"},
            "list": {"L": [{"B": b"in-list"}, {"M": {"bs": {"BS": [b"deep"]}}}, {"N": "3"}, {"S": ""}]},
            "empty_list": {"L": []},
            "empty_map": {"M": {}},
        }
    },
}


def create_binary_tables() -> None:
    for region in (LOCAL, EU, AP):
        create_table(region, "blobs", key=("id", "B"))


@pytest.fixture
def blobs(aws: dict) -> dict:
    create_binary_tables()
    targets = [{"region": r, "table": "blobs", "handoff_queue_url": aws["queues"][r]} for r in (EU, AP)]
    aws["monkeypatch"].setenv("REP_SOURCE_TABLE", "blobs")
    aws["monkeypatch"].setenv("REP_TARGETS", json.dumps(targets))
    return aws


def lambda_event(*records: dict[str, Any]) -> dict[str, Any]:
    """Through JSON text, as Lambda hands the event to the function."""
    return json.loads(json.dumps({"Records": list(records)}))


def stored(region: str) -> dict[str, Any]:
    response = boto3.client("dynamodb", region_name=region).get_item(
        TableName="blobs", Key={"id": WRITTEN["id"]}
    )
    return dict(response["Item"])


def user_part(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if not k.startswith("rep_")}
    for name in ("blobs", "tags", "counts"):  # sets come back in any order
        tag = next(iter(out[name]))
        out[name] = {tag: sorted(out[name][tag])}
    return out


EXPECTED = user_part(dict(WRITTEN))


def stamped_insert(seq: int) -> dict[str, Any]:
    image = {**from_sdk(WRITTEN), "rep_region": {"S": LOCAL}, "rep_ts": {"N": str(NOW_US)}}
    return record("INSERT", new=image, seq=seq, created=time.time(), key_names=("id",))


def test_every_type_reaches_every_target_bytes_exact(blobs: dict) -> None:
    # Given a stamped local write of every type, delivered as Lambda's JSON (binary as base64 text)
    event = lambda_event(stamped_insert(seq=1))
    assert event["Records"][0]["dynamodb"]["NewImage"]["blob"] == {"B": base64.b64encode(b"hello").decode()}
    # When the replicator runs
    handler = load_function("replicator.handler")
    assert handler.lambda_handler(event, Context()) == {"batchItemFailures": []}
    # Then both targets hold the writer's bytes and values, not base64 text
    for region in (EU, AP):
        assert user_part(stored(region)) == EXPECTED


def test_an_unstamped_binary_write_is_adopted_bytes_exact(blobs: dict) -> None:
    # Given an unstamped put of every type in the source table, and its stream record
    boto3.client("dynamodb", region_name=LOCAL).put_item(TableName="blobs", Item=WRITTEN)
    image = from_sdk(WRITTEN)
    raw = record("INSERT", new=image, seq=2, created=time.time(), key_names=("id",))
    # When the replicator adopts it
    handler = load_function("replicator.handler")
    assert handler.lambda_handler(lambda_event(raw), Context()) == {"batchItemFailures": []}
    # Then the source item is stamped and still holds exactly the bytes written
    source = stored(LOCAL)
    assert source["rep_region"] == {"S": LOCAL}
    assert user_part(source) == EXPECTED


def test_a_handed_off_binary_write_is_drained_bytes_exact(blobs: dict) -> None:
    # Given ap-southeast-2 unreachable: the write is parked in its handoff queue (JSON)
    blobs["monkeypatch"].setenv("REP_ENDPOINT_URLS", json.dumps({AP: UNREACHABLE}))
    handler = load_function("replicator.handler")
    assert handler.lambda_handler(lambda_event(stamped_insert(seq=3)), Context()) == {"batchItemFailures": []}
    sqs = boto3.client("sqs", region_name=LOCAL)
    messages = sqs.receive_message(QueueUrl=blobs["queues"][AP], MaxNumberOfMessages=10)["Messages"]
    # When the region is back and the drain replays the queue
    blobs["monkeypatch"].delenv("REP_ENDPOINT_URLS")
    blobs["monkeypatch"].setenv("REP_DRAIN_TARGET_REGION", AP)
    drain = load_function("replicator.drain")
    assert drain.lambda_handler(sqs_event(messages), Context()) == {"batchItemFailures": []}
    # Then the replayed copy is bytes-exact too
    assert user_part(stored(AP)) == EXPECTED
    assert stored(AP) == stored(EU)


def test_a_request_botocore_refuses_is_a_permanent_error_not_an_outage() -> None:
    # Given botocore's client-side validation error (raised before anything is sent)
    code, status, _ = describe_error(ParamValidationError(report="Invalid type for parameter Item.v.S"))
    # Then it is the record's permanent error: dead-lettered, the target not marked down
    assert classify_error(code, status) is ErrorKind.PERMANENT
