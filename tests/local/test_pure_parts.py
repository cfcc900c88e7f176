"""The runtime's pure parts: engine-artifact removal, partial batch responses, template resolution."""

from __future__ import annotations

from typing import Any

import pytest

from ddbrep.local.faults import aws_rejection
from ddbrep.local.mapping import parse_batch_item_failures
from ddbrep.local.sqs_source import failed_message_ids
from ddbrep.local.streams import drop_engine_artifacts, to_lambda_record
from ddbrep.local.templates import Resolver, TemplateError, parse_stack

KEYS = {"pk": {"S": "a"}}


def raw(event: str, seq: int, new: Any = None, old: Any = None, created: float = 100.0) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {
        "Keys": KEYS,
        "SequenceNumber": f"{seq:021d}",
        "ApproximateCreationDateTime": created,
        "SizeBytes": 10,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        dynamodb["NewImage"] = new
    if old is not None:
        dynamodb["OldImage"] = old
    return {"eventName": event, "eventID": str(seq), "dynamodb": dynamodb}


def test_the_key_only_insert_before_a_full_insert_is_dropped() -> None:
    # Given moto's two INSERTs for an UpdateItem that creates an item
    records = [raw("INSERT", 1, KEYS), raw("INSERT", 2, {**KEYS, "v": {"S": "1"}})]
    # When cleaned, Then only the full INSERT remains and reading resumes after both
    cleaned = drop_engine_artifacts(records, now=100.0)
    assert [r["dynamodb"]["SequenceNumber"] for r in cleaned.records] == [f"{2:021d}"]
    assert cleaned.last_consumed == f"{2:021d}" and cleaned.dropped == 1


def test_a_trailing_key_only_insert_is_held_then_delivered() -> None:
    # Given a key-only INSERT that ends the read
    records = [raw("INSERT", 1, KEYS, created=100.0)]
    # When it is fresh, Then it is held back (not consumed); once old enough, it is delivered
    assert drop_engine_artifacts(records, now=100.2).last_consumed is None
    assert len(drop_engine_artifacts(records, now=102.0).records) == 1


def test_a_modify_that_changes_nothing_is_dropped() -> None:
    image = {**KEYS, "v": {"S": "1"}}
    cleaned = drop_engine_artifacts([raw("MODIFY", 1, image, image)], now=100.0)
    assert cleaned.records == () and cleaned.last_consumed == f"{1:021d}"


def test_records_are_reshaped_as_aws_delivers_them() -> None:
    record = to_lambda_record(raw("INSERT", 1, KEYS, created=100.75), region="eu-west-1", stream_arn="arn:s")
    assert record.event["awsRegion"] == "eu-west-1" and record.event["eventVersion"] == "1.1"
    assert record.event["dynamodb"]["ApproximateCreationDateTime"] == 100
    assert record.created_at == 100.75


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (None, None),
        ({}, None),
        ({"batchItemFailures": []}, None),
        ({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}, 1),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, "invalid"),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, "invalid"),
        ({"batchItemFailures": [{"itemIdentifier": "9"}]}, "invalid"),
        ({"batchItemFailures": [{"wrong": "2"}]}, "invalid"),
    ],
)
def test_partial_batch_responses_are_read_as_lambda_reads_them(payload: Any, expected: Any) -> None:
    assert parse_batch_item_failures(payload, ["1", "2", "3"]) == expected


def test_sqs_partial_responses_keep_only_the_failed_messages() -> None:
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ["a", "b"]) == {"b"}
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "x"}]}, ["a", "b"]) is None
    assert failed_message_ids(None, ["a"]) == set()


def test_intrinsics_resolve_to_local_names() -> None:
    # Given a stack whose function environment references a queue and a bucket
    template = {
        "Resources": {
            "Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "q"}},
            "F": {
                "Type": "AWS::Lambda::Function",
                "Properties": {
                    "Handler": "m.h",
                    "Environment": {
                        "Variables": {
                            "URL": {"Ref": "Q"},
                            "ARN": {"Fn::GetAtt": ["Q", "Arn"]},
                            "JOINED": {"Fn::Join": ["/", [{"Ref": "AWS::Region"}, "x"]]},
                            "SUB": {"Fn::Sub": "${AWS::AccountId}-${Q.Arn}"},
                        }
                    },
                },
            },
        }
    }
    stack = parse_stack("S", "eu-west-1", "111111111111", template)
    resolver = Resolver(stack, refs={"Q": "http://local/q"}, attributes={("Q", "Arn"): "arn:q"})

    # When the environment is resolved, Then every value is a local string
    assert resolver.environment(stack.function("F")) == {
        "URL": "http://local/q",
        "ARN": "arn:q",
        "JOINED": "eu-west-1/x",
        "SUB": "111111111111-arn:q",
    }
    with pytest.raises(TemplateError):
        resolver.resolve({"Fn::ImportValue": "elsewhere"})


def test_gateways_reject_what_aws_rejects() -> None:
    headers = {"X-Amz-Target": "DynamoDB_20120810.BatchWriteItem"}
    body = b'{"RequestItems": {"t": [' + b",".join([b'{"PutRequest": {}}'] * 26) + b"]}}"
    rejection = aws_rejection("POST", "/", headers, body)
    assert rejection is not None and rejection[0] == 400
    assert aws_rejection("POST", "/", headers, body.replace(b"[" + b'{"PutRequest": {}},', b"[", 1)) is None
