"""The drain function against moto: a replay that fails hides its message for the backoff of its receive.

Uses test_handler's environment (three regions in moto, handoff queues, the function's variables).
"""

from __future__ import annotations

import json
from typing import Any

import boto3

from tests.unit.factories import item, record
from tests.unit.test_handler import AP, LOCAL, UNREACHABLE, Context, load_function, sqs_event


def received_with_count(messages: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """The drain's event, with the attributes Lambda sends (ApproximateReceiveCount among them)."""
    event = sqs_event(messages)
    for sqs_record in event["Records"]:
        sqs_record["attributes"] = {
            "ApproximateReceiveCount": str(count),
            "SentTimestamp": "1700000000000",
            "SenderId": "AROAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": "1700000000000",
        }
    return event


def hand_off_one_write(aws: dict) -> list[dict[str, Any]]:
    """ap-southeast-2 unreachable: the replicator hands a write off; the message as the drain receives it."""
    aws["monkeypatch"].setenv("REP_ENDPOINT_URLS", json.dumps({AP: UNREACHABLE}))
    handler = load_function("replicator.handler")
    new = item("order-9", LOCAL, 1_700_000_000_000_000, total=9)
    assert handler.lambda_handler({"Records": [record("INSERT", new=new, seq=90)]}, Context()) == {
        "batchItemFailures": []
    }
    sqs = boto3.client("sqs", region_name=LOCAL)
    # A zero queue timeout: the message is visible again at once unless the drain hides it itself
    sqs.set_queue_attributes(QueueUrl=aws["queues"][AP], Attributes={"VisibilityTimeout": "0"})
    return list(sqs.receive_message(QueueUrl=aws["queues"][AP], MaxNumberOfMessages=10)["Messages"])


def test_a_failed_replay_is_reported_and_hidden_for_its_backoff(aws: dict) -> None:
    # Given a handed-off write, received for the fifth time, while its target is still unreachable
    messages = hand_off_one_write(aws)
    aws["monkeypatch"].setenv("REP_DRAIN_TARGET_REGION", AP)
    drain = load_function("replicator.drain")
    # When the drain function replays it
    response = drain.lambda_handler(received_with_count(messages, 5), Context())
    # Then the message is reported as failed
    assert response == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    # And it is not visible again (the queue's own timeout is zero: the drain set its visibility)
    sqs = boto3.client("sqs", region_name=LOCAL)
    assert "Messages" not in sqs.receive_message(QueueUrl=aws["queues"][AP], MaxNumberOfMessages=10)
    attributes = sqs.get_queue_attributes(QueueUrl=aws["queues"][AP], AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "1"


def test_a_successful_replay_is_not_reported_and_lands_in_the_target(aws: dict) -> None:
    # Given the same handed-off write, and its target back
    messages = hand_off_one_write(aws)
    aws["monkeypatch"].delenv("REP_ENDPOINT_URLS")
    aws["monkeypatch"].setenv("REP_DRAIN_TARGET_REGION", AP)
    drain = load_function("replicator.drain")
    # When the drain function replays it
    response = drain.lambda_handler(received_with_count(messages, 5), Context())
    # Then nothing is reported and the write is in ap-southeast-2
    assert response == {"batchItemFailures": []}
    item = boto3.client("dynamodb", region_name=AP).get_item(TableName="orders", Key={"pk": {"S": "order-9"}})
    assert item["Item"]["total"] == {"N": "9"}
