"""Helpers of the local end-to-end tests: bounded waits, region comparison, a recorder assembly."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ddbrep.local.cloud import LocalCloud
from replicator.core.metadata import AttributeNames, is_tombstone

RECORDER_DIR = Path(__file__).parent / "recorder"
TABLE = "orders"


def assert_drained(cloud: LocalCloud, timeout: float = 60.0) -> None:
    """``cloud.wait_drained``, failing with everything it found still busy (pytest cuts a long repr)."""
    drained = cloud.wait_drained(timeout)
    assert drained, str(drained)


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value, or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def raw_item(
    cloud: LocalCloud, region: str, key: Mapping[str, Any], table: str = TABLE
) -> dict[str, Any] | None:
    item = cloud.client(region).get_item(TableName=table, Key=dict(key), ConsistentRead=True).get("Item")
    return dict(item) if item else None


def scan_prefix(cloud: LocalCloud, region: str, prefix: str, table: str = TABLE) -> dict[str, dict[str, Any]]:
    """Every item of ``region`` whose pk starts with ``prefix`` (tombstones included), by key."""
    client = cloud.client(region)
    kwargs: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(pk, :p)",
        "ExpressionAttributeValues": {":p": {"S": prefix}},
    }
    items: dict[str, dict[str, Any]] = {}
    for _page in range(1000):
        page = client.scan(**kwargs)
        for item in page.get("Items", []):
            items[json.dumps({"pk": item["pk"], "sk": item.get("sk")}, sort_keys=True)] = item
        if "LastEvaluatedKey" not in page:
            break
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return items


NAMES = AttributeNames.with_prefix("rep_")


def comparable(item: Mapping[str, Any] | None) -> Any:
    """What must agree between regions: a tombstone is absent; a live item is its attributes and
    version (rep_seq, a tie-breaker taken from the source stream, is not carried by the origin)."""
    if item is None or is_tombstone(item, NAMES):
        return None
    return {k: v for k, v in item.items() if k != NAMES.seq}


def differences(cloud: LocalCloud, regions: Sequence[str], prefix: str) -> list[str]:
    """Human-readable differences between the regions' items under ``prefix`` (empty: identical)."""
    snapshots = {
        region: {k: comparable(v) for k, v in scan_prefix(cloud, region, prefix).items() if comparable(v)}
        for region in regions
    }
    reference_region, reference = regions[0], snapshots[regions[0]]
    found = []
    for region in regions[1:]:
        other = snapshots[region]
        for key in sorted(set(reference) | set(other)):
            if reference.get(key) != other.get(key):
                found.append(f"{key}: {reference_region}={reference.get(key)} {region}={other.get(key)}")
    return found


def recorder_assembly(directory: Path, region: str = "eu-west-1", **mapping: Any) -> Path:
    """A one-stack cloud assembly: a table with a stream and TTL, the recorder function, one stream
    mapping (``mapping`` overrides its properties), an on-failure queue."""
    properties: dict[str, Any] = {
        "FunctionName": {"Ref": "Recorder"},
        "EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]},
        "StartingPosition": "TRIM_HORIZON",
        "BatchSize": 100,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["OnFailure", "Arn"]}}},
    }
    properties.update(mapping)
    template = {
        "Resources": {
            "Table": {
                "Type": "AWS::DynamoDB::Table",
                "Properties": {
                    "TableName": TABLE,
                    "KeySchema": [
                        {"AttributeName": "pk", "KeyType": "HASH"},
                        {"AttributeName": "sk", "KeyType": "RANGE"},
                    ],
                    "AttributeDefinitions": [
                        {"AttributeName": "pk", "AttributeType": "S"},
                        {"AttributeName": "sk", "AttributeType": "S"},
                    ],
                    "BillingMode": "PAY_PER_REQUEST",
                    "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
                    "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": True},
                },
            },
            "OnFailure": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "recorder-on-failure"}},
            "Recorder": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "FunctionName": "recorder",
                    "Handler": "recorder.lambda_handler",
                    "Timeout": 10,
                    "Environment": {"Variables": {"RECORD_FILE": str(directory / "events.jsonl")}},
                },
                "Metadata": {"aws:asset:path": str(RECORDER_DIR)},
            },
            "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": properties},
        }
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Recorder.template.json").write_text(json.dumps(template))
    manifest = {
        "version": "55.0.0",
        "artifacts": {
            "Recorder": {
                "type": "aws:cloudformation:stack",
                "environment": f"aws://123456789012/{region}",
                "properties": {"templateFile": "Recorder.template.json"},
            }
        },
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def recorded(directory: Path) -> list[dict[str, Any]]:
    """The events the recorder function received, in order."""
    path = directory / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def delivered_records(directory: Path) -> list[dict[str, Any]]:
    return [record for entry in recorded(directory) for record in entry["event"]["Records"]]


# --- every DynamoDB type --------------------------------------------------------------------------

SET_TAGS = ("SS", "NS", "BS")
METADATA_PREFIX = "rep_"


def every_type() -> dict[str, Any]:
    """The non-key attributes of an item of every DynamoDB type, in the SDK's form (binary as bytes):
    text that is not ASCII and an empty string, numbers with 38 significant digits and tiny exponents,
    binary that is empty or not UTF-8, sets of each kind, binary and binary sets nested in maps and
    lists several levels deep."""
    return {
        "text": {"S": "h\u00e9llo \u4e16\u754c \U0001f600"},
        "empty_text": {"S": ""},
        "big_number": {"N": "12345678901234567890123456789012345678"},
        "small_number": {"N": "-0.000000000000000000000000000000000000001"},
        "tiny_number": {"N": "-9.9999999999999999999999999999999999999E-120"},
        "blob": {"B": b"hello"},
        "empty_blob": {"B": b""},
        "not_utf8": {"B": b"\xff\xfe\x00\x80\xc3\x28"},
        "flag": {"BOOL": False},
        "nothing": {"NULL": True},
        "tags": {"SS": ["\u00e9t\u00e9", "x", "y"]},
        "counts": {"NS": ["1", "2.5", "-1E-100"]},
        "blobs": {"BS": [b"a", b"\x00\xfe", b"\xff"]},
        "doc": {
            "M": {
                "inner": {"B": b"\xde\xad\xbe\xef"},
                "level2": {
                    "M": {
                        "list": {
                            "L": [
                                {"B": b"in-list\x00"},
                                {
                                    "M": {
                                        "level4": {
                                            "M": {"bs": {"BS": [b"deep", b"\x01"]}, "b": {"B": b"\x02"}}
                                        }
                                    }
                                },
                                {"L": [{"BS": [b"\x03"]}, {"N": "3"}, {"S": ""}, {"NULL": True}]},
                            ]
                        }
                    }
                },
                "empty_list": {"L": []},
                "empty_map": {"M": {}},
            }
        },
    }


def canonical(value: Mapping[str, Any]) -> dict[str, Any]:
    """A value in DynamoDB JSON with set members sorted, at any depth (DynamoDB returns sets in any order)."""
    (tag, inner), *_ = value.items()
    if tag in SET_TAGS:
        return {tag: sorted(inner)}
    if tag == "L":
        return {"L": [canonical(member) for member in inner]}
    if tag == "M":
        return {"M": {name: canonical(member) for name, member in inner.items()}}
    return dict(value)


def user_view(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An item's own attributes, keys included, without the replication metadata, sets sorted."""
    if item is None:
        return None
    return {name: canonical(value) for name, value in item.items() if not name.startswith(METADATA_PREFIX)}


@contextlib.contextmanager
def index_rejecting_empty(
    cloud: LocalCloud, region: str, index: str, attribute: str = "ref"
) -> Iterator[None]:
    """A global secondary index on ``attribute`` added to one region's table by hand (schema drift):
    that region rejects an item whose ``attribute`` is an empty string (a permanent error), which the
    other regions accept. Removed again on the way out."""
    client = cloud.client(region)
    # moto's UpdateTable replaces the attribute definitions instead of adding to them (AWS adds): restate
    # the table's own, or its key attributes lose their types for every later DescribeTable.
    keys = client.describe_table(TableName=TABLE)["Table"]["AttributeDefinitions"]
    client.update_table(
        TableName=TABLE,
        AttributeDefinitions=[*keys, {"AttributeName": attribute, "AttributeType": "S"}],
        GlobalSecondaryIndexUpdates=[
            {
                "Create": {
                    "IndexName": index,
                    "KeySchema": [{"AttributeName": attribute, "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            }
        ],
    )
    try:
        yield
    finally:
        indexes = client.describe_table(TableName=TABLE)["Table"].get("GlobalSecondaryIndexes", [])
        if any(existing["IndexName"] == index for existing in indexes):
            client.update_table(
                TableName=TABLE,
                AttributeDefinitions=keys,
                GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": index}}],
            )
