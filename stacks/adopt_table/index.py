"""Custom resource: adopt an existing table for replication without touching its data.

Create/Update: check the key schema, enable a NEW_AND_OLD_IMAGES stream (unless one is already on),
enable TTL on the configured attribute (unless already on), enable PITR when asked; return the stream ARN.
Delete: nothing. The table, its stream, TTL and backups are the user's and stay as they are.
Runs in Lambda (python3.13, boto3 from the runtime); no other dependency.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import boto3

dynamodb = boto3.client("dynamodb")


class AdoptionError(Exception):
    """The table cannot be adopted as it is; the message says what to change."""


def handler(event: dict[str, Any], context: Any) -> None:
    props = event["ResourceProperties"]
    physical_id = event.get("PhysicalResourceId") or props["TableName"]
    try:
        data = {} if event["RequestType"] == "Delete" else adopt(props)
        respond(event, context, "SUCCESS", physical_id, data, "")
    except Exception as err:
        respond(event, context, "FAILED", physical_id, {}, f"{type(err).__name__}: {err}"[:1000])


def adopt(props: dict[str, Any]) -> dict[str, str]:
    name = props["TableName"]
    table = dynamodb.describe_table(TableName=name)["Table"]
    expected = json.loads(props["KeySchema"])
    actual = [{"AttributeName": k["AttributeName"], "KeyType": k["KeyType"]} for k in table["KeySchema"]]
    if actual != expected:
        raise AdoptionError(f"table {name} has key schema {actual}, the configuration says {expected}")
    stream = table.get("StreamSpecification") or {}
    if stream.get("StreamEnabled"):
        if stream.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
            raise AdoptionError(
                f"table {name} already has a {stream.get('StreamViewType')} stream; replication needs "
                "NEW_AND_OLD_IMAGES. Switch its view type (disable, then enable) and deploy again"
            )
    else:
        dynamodb.update_table(
            TableName=name,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 5, "MaxAttempts": 50})
    _enable_ttl(name, props["TtlAttribute"])
    if props.get("PointInTimeRecovery") == "true":
        dynamodb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    table = dynamodb.describe_table(TableName=name)["Table"]
    return {"StreamArn": table["LatestStreamArn"], "TableArn": table["TableArn"]}


def _enable_ttl(name: str, attribute: str) -> None:
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    status = ttl.get("TimeToLiveStatus", "DISABLED")
    if status in ("ENABLED", "ENABLING"):
        if ttl.get("AttributeName") != attribute:
            raise AdoptionError(
                f"table {name} expires items on {ttl.get('AttributeName')!r}; set "
                "replication.table.ttl_attribute to that attribute (tombstones will use it) "
                f"instead of {attribute!r}"
            )
        return
    if status == "DISABLING":
        raise AdoptionError(f"table {name} is disabling TTL; deploy again once that has finished")
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
    )


def respond(
    event: dict[str, Any], context: Any, status: str, physical_id: str, data: dict[str, Any], reason: str
) -> None:
    body = json.dumps(
        {
            "Status": status,
            "Reason": reason or f"see CloudWatch log stream {getattr(context, 'log_stream_name', '')}",
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": ""}
    )
    # The pre-signed CloudFormation response URL (https).
    with urllib.request.urlopen(request, timeout=30):
        pass
