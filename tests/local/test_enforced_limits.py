"""The region gateway rejects what AWS rejects and moto accepts: item size, SQS message size; pages stop
at 1 MB. One moto server and its gateway, started on a free port and stopped by PID.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from ddbrep.local.faults import Proxy
from ddbrep.local.limits import (
    MAX_ITEM_BYTES,
    SQS_MESSAGE_BYTES_AWS,
    SQS_MESSAGE_BYTES_STRICT,
    item_size_bytes,
)
from ddbrep.local.regions import Region, start_region, stop_region

REGION = "eu-west-1"
TABLE = "limits"


@pytest.fixture(scope="module")
def region() -> Iterator[Region]:
    engine = start_region(REGION)
    gateway = Proxy(engine.engine_url).start()
    engine.endpoint_url = gateway.url
    try:
        engine.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield engine
    finally:
        gateway.stop()
        stop_region(engine)


def gateway(region: Region, service: str = "dynamodb") -> Any:
    return region.client(service, engine=False)


def key(sk: str = "0") -> dict[str, Any]:
    return {"pk": {"S": "p"}, "sk": {"S": sk}}


# 205,000 NULLs in a list: 1 + 3 + 205,000 * 2 bytes for DynamoDB (each element costs 1 byte of
# overhead), about 205,000 bytes for moto, which counts no overhead and accepts it.
MANY_SMALL_ELEMENTS = {**key("many"), "l": {"L": [{"NULL": True}] * 205_000}}


def test_item_size_follows_dynamodb_rules() -> None:
    # Given values of every kind, When their sizes are computed, Then they follow the Developer Guide
    assert item_size_bytes({"name": {"S": "héllo"}}) == 4 + 6  # UTF-8 names and values
    assert item_size_bytes({"n": {"N": "12345"}}) == 1 + 4  # 1 byte per 2 significant digits (3), plus 1
    assert item_size_bytes({"n": {"N": "-0.0012300"}}) == 1 + 3  # zeroes trimmed: "123" is 2 bytes, plus 1
    assert item_size_bytes({"b": {"B": "AAEC"}}) == 1 + 3  # raw bytes of the base64 text
    assert item_size_bytes({"b": {"B": b"\x00\x01\x02"}}) == 1 + 3
    assert item_size_bytes({"f": {"BOOL": False}, "z": {"NULL": True}}) == 2 + 2
    assert item_size_bytes({"m": {"M": {"a": {"S": "x"}}}}) == 1 + 3 + (1 + 1 + 1)
    assert item_size_bytes({"l": {"L": []}}) == 1 + 3
    assert item_size_bytes(MANY_SMALL_ELEMENTS) > MAX_ITEM_BYTES


@pytest.mark.parametrize("operation", ["PutItem", "BatchWriteItem", "TransactWriteItems"])
def test_items_over_400_kb_are_rejected_like_aws(region: Region, operation: str) -> None:
    # Given an item over 400 KB by DynamoDB's rules that moto would store
    client = gateway(region)
    write = {
        "PutItem": lambda item: client.put_item(TableName=TABLE, Item=item),
        "BatchWriteItem": lambda item: client.batch_write_item(
            RequestItems={TABLE: [{"PutRequest": {"Item": item}}]}
        ),
        "TransactWriteItems": lambda item: client.transact_write_items(
            TransactItems=[{"Put": {"TableName": TABLE, "Item": item}}]
        ),
    }[operation]

    # When it is written through the region's endpoint, Then AWS's error comes back
    with pytest.raises(ClientError) as error:
        write(MANY_SMALL_ELEMENTS)
    assert error.value.response["Error"]["Code"] == "ValidationException"
    assert error.value.response["Error"]["Message"] == "Item size has exceeded the maximum allowed size"
    # and nothing was stored
    assert "Item" not in client.get_item(TableName=TABLE, Key=key("many"))


def test_moto_already_rejects_large_strings_and_growing_updates(region: Region) -> None:
    # Given moto checks its own size (405,000 bytes, no List/Map overhead) on puts and updates
    client = gateway(region)

    # When a 406,000-byte string is put, or an update grows an item past the limit, Then AWS's error
    with pytest.raises(ClientError) as put_error:
        client.put_item(TableName=TABLE, Item={**key("big"), "v": {"S": "x" * 406_000}})
    assert put_error.value.response["Error"]["Code"] == "ValidationException"
    client.put_item(TableName=TABLE, Item={**key("grow"), "v": {"S": "x" * 300_000}})
    with pytest.raises(ClientError) as update_error:
        client.update_item(
            TableName=TABLE,
            Key=key("grow"),
            UpdateExpression="SET w = :w",
            ExpressionAttributeValues={":w": {"S": "y" * 200_000}},
        )
    assert update_error.value.response["Error"]["Code"] == "ValidationException"


def test_query_and_scan_pages_stop_at_1_mb_and_resume_exactly(region: Region) -> None:
    # Given 25 items of about 100 KB under one partition key (2.5 MB)
    client = gateway(region)
    for n in range(25):
        client.put_item(
            TableName=TABLE, Item={"pk": {"S": "pages"}, "sk": {"S": f"{n:03d}"}, "v": {"S": "z" * 100_000}}
        )

    for operation in ("query", "scan"):
        # When every page is read
        kwargs: dict[str, Any] = {"TableName": TABLE}
        if operation == "query":
            kwargs |= {
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": "pages"}},
            }
        else:
            kwargs |= {"FilterExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "pages"}}}
        seen: list[str] = []
        pages = 0
        for _ in range(100):
            page = getattr(client, operation)(**kwargs)
            pages += 1
            # Then no page carries more than 1 MB of items
            assert sum(item_size_bytes(item) for item in page["Items"]) <= 1024 * 1024
            seen.extend(item["sk"]["S"] for item in page["Items"])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        # and LastEvaluatedKey resumes exactly: every item once, over several pages
        assert sorted(seen) == [f"{n:03d}" for n in range(25)], operation
        assert pages >= 3, operation


def test_sqs_messages_over_256_kib_are_rejected(region: Region) -> None:
    # Given a queue (moto accepts 1 MiB, and counts characters, not bytes)
    sqs = gateway(region, "sqs")
    url = sqs.create_queue(QueueName="limits")["QueueUrl"]

    # When a message of exactly 256 KiB is sent, Then it is accepted
    sqs.send_message(QueueUrl=url, MessageBody="m" * SQS_MESSAGE_BYTES_STRICT)

    # When one byte more is sent (here as a 2-byte UTF-8 character), Then AWS's error comes back
    for body in ("m" * (SQS_MESSAGE_BYTES_STRICT + 1), "é" * (SQS_MESSAGE_BYTES_STRICT // 2 + 1)):
        with pytest.raises(ClientError) as error:
            sqs.send_message(QueueUrl=url, MessageBody=body)
        assert error.value.response["Error"]["Code"] == "InvalidParameterValue"

    # and message attributes count toward the limit, in batches too
    with pytest.raises(ClientError) as error:
        sqs.send_message(
            QueueUrl=url,
            MessageBody="m" * (SQS_MESSAGE_BYTES_STRICT - 10),
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "x" * 20}},
        )
    assert error.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as error:
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "MessageBody": "m" * 100_000} for i in range(3)],
        )
    assert error.value.response["Error"]["Code"] == "BatchRequestTooLong"


def test_the_sqs_limit_follows_the_runtime_option(region: Region) -> None:
    # Given a gateway configured with AWS's limit since 2025 (RuntimeOptions.sqs_max_message_bytes)
    relaxed = Proxy(region.engine_url, sqs_max_message_bytes=SQS_MESSAGE_BYTES_AWS).start()
    try:
        client = boto3.session.Session().client(
            "sqs",
            region_name=REGION,
            endpoint_url=relaxed.url,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        url = client.create_queue(QueueName="limits-relaxed")["QueueUrl"]

        # When a 512 KiB message is sent, Then it is accepted; over 1 MiB it is not
        client.send_message(QueueUrl=url, MessageBody="m" * (512 * 1024))
        with pytest.raises(ClientError):
            client.send_message(QueueUrl=url, MessageBody="m" * (SQS_MESSAGE_BYTES_AWS + 1))
    finally:
        relaxed.stop()
