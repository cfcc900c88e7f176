"""What functions receive is exactly Lambda's JSON, and a failing stand-in thread keeps going.

Unit level: the serializer, the sandbox boundary, the SQS event, the on-failure documents, and the
stream poller in isolation against a scripted engine (no servers; the worker tests start a sandbox).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddbrep.local import templates
from ddbrep.local.limits import MAX_SYNC_PAYLOAD_BYTES
from ddbrep.local.mapping import S3Destination, StreamPoller, StreamSource, s3_failure_key
from ddbrep.local.sqs_source import QueueSource, split_under_payload_limit, to_sqs_record
from ddbrep.local.streams import to_lambda_record
from ddbrep.local.templates import StreamMappingSpec
from ddbrep.local.ttl import TtlSweeper, TtlTable
from ddbrep.local.worker import FunctionConfig, FunctionWorker, Invocation
from tests.local.support import RECORDER_DIR, wait_for

REGION = "eu-west-1"
STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/orders/stream/2026-01-01T00:00:00.000"
SHARD = "shardId-00000001700000000000-aaaaaaaa"
CREATED = dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)


def sdk_record(seq: int, image: dict[str, Any] | None = None, event: str = "INSERT") -> dict[str, Any]:
    """A record as boto3's dynamodbstreams GetRecords returns it from moto: bytes, datetime."""
    keys = {"pk": {"S": f"k{seq}"}}
    new = {**keys, **(image or {})}
    return {
        "eventID": f"id-{seq}",
        "eventName": event,
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": CREATED,
            "Keys": keys,
            "NewImage": new,
            "SequenceNumber": f"{seq:021d}",
            "SizeBytes": 42,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


BINARY_IMAGE = {
    "b": {"B": b"\x00\xffbinary"},
    "bs": {"BS": [b"\x01", b"\x02"]},
    "m": {"M": {"l": {"L": [{"B": b"\x03"}, {"M": {"deep": {"BS": [b"\x04"]}}}]}}},
    "n": {"N": "1.50"},
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# --- the one serializer ---------------------------------------------------------------------------------


def test_binary_values_at_any_depth_become_base64_text() -> None:
    # Given a record with binary values at the top, in a set and deep inside M and L (bytes from boto3)
    raw = sdk_record(1, BINARY_IMAGE)

    # When it is shaped as Lambda delivers it
    record = to_lambda_record(raw, region=REGION, stream_arn=STREAM_ARN, shard_id=SHARD)

    # Then every binary value is base64 text, numbers stay strings, and the event is plain JSON
    image = record.event["dynamodb"]["NewImage"]
    assert image["b"] == {"B": b64(b"\x00\xffbinary")}
    assert image["bs"] == {"BS": [b64(b"\x01"), b64(b"\x02")]}
    assert image["m"] == {"M": {"l": {"L": [{"B": b64(b"\x03")}, {"M": {"deep": {"BS": [b64(b"\x04")]}}}]}}}
    assert image["n"] == {"N": "1.50"}
    assert json.loads(json.dumps(record.event)) == record.event


def test_binary_keys_are_taken_from_the_image_not_motos_double_encoded_keys() -> None:
    # Given moto's record of a binary-keyed item: Keys base64-encoded twice, the image right
    real = b"\xff\x00k"
    raw = sdk_record(3)
    raw["dynamodb"]["Keys"] = {"pk": {"B": base64.b64encode(real)}}
    raw["dynamodb"]["NewImage"] = {"pk": {"B": real}, "v": {"N": "1"}}
    # When it is shaped as Lambda delivers it
    record = to_lambda_record(raw, region=REGION, stream_arn=STREAM_ARN, shard_id=SHARD)
    # Then Keys carry the item's bytes, as AWS's do (equal to the image's key attributes)
    assert record.event["dynamodb"]["Keys"] == {"pk": {"B": b64(real)}}
    assert record.event["dynamodb"]["NewImage"]["pk"] == {"B": b64(real)}
    # And a REMOVE takes them from its OldImage
    raw["eventName"] = "REMOVE"
    raw["dynamodb"]["OldImage"] = raw["dynamodb"].pop("NewImage")
    removed = to_lambda_record(raw, region=REGION, stream_arn=STREAM_ARN, shard_id=SHARD)
    assert removed.event["dynamodb"]["Keys"] == {"pk": {"B": b64(real)}}


def test_the_record_carries_every_field_lambda_sends() -> None:
    # Given a record as moto returns it (us-east-1, eventVersion 1.0, a datetime with milliseconds)
    raw = sdk_record(7)

    # When it is shaped as Lambda delivers it
    record = to_lambda_record(raw, region=REGION, stream_arn=STREAM_ARN, shard_id=SHARD)

    # Then it is exactly Lambda's record
    assert record.event == {
        "eventID": "id-7",
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": {
            "ApproximateCreationDateTime": int(CREATED.timestamp()),
            "Keys": {"pk": {"S": "k7"}},
            "NewImage": {"pk": {"S": "k7"}},
            "SequenceNumber": f"{7:021d}",
            "SizeBytes": 42,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": STREAM_ARN,
    }
    assert isinstance(record.event["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record.shard_id == SHARD
    assert record.payload_bytes == len(json.dumps(record.event).encode())


def test_only_ttl_deletions_carry_a_user_identity() -> None:
    # Given a REMOVE made by the TTL sweeper and one made by a user
    identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    ttl = to_lambda_record(
        sdk_record(1, event="REMOVE"), region=REGION, stream_arn=STREAM_ARN, user_identity=identity
    )
    user = to_lambda_record(sdk_record(2, event="REMOVE"), region=REGION, stream_arn=STREAM_ARN)

    # Then only the TTL deletion names the TTL service
    assert ttl.event["userIdentity"] == identity
    assert "userIdentity" not in user.event


def test_a_value_lambda_never_sends_is_refused() -> None:
    # Given an image holding a Python object that is not JSON (here a set where a list belongs)
    raw = sdk_record(1, {"odd": {"SS": {"a", "b"}}})

    # When it is shaped, Then the serializer refuses it instead of handing it to a function
    with pytest.raises(TypeError):
        to_lambda_record(raw, region=REGION, stream_arn=STREAM_ARN)


def test_ttl_sweeper_recognises_its_deletions_of_binary_keys() -> None:
    # Given a TTL table keyed by a binary attribute and the sweeper's pending deletion of one key
    class Client:
        def scan(self, **_: Any) -> dict[str, Any]:
            return {"Items": [{"pk": {"B": b"\x00\x01"}, "expires": {"N": "5"}}]}

        def delete_item(self, **_: Any) -> None:
            return None

    sweeper = TtlSweeper(Client(), [TtlTable("t", "expires", ("pk",))], clock=lambda: 100.0)
    assert sweeper.sweep() == 1

    # When its REMOVE record comes back from the stream (keys as bytes, from boto3)
    remove = {
        "eventName": "REMOVE",
        "dynamodb": {"Keys": {"pk": {"B": b"\x00\x01"}}, "OldImage": {"expires": {"N": "5"}}},
    }

    # Then it is marked as the TTL service's deletion
    assert sweeper.identity_for("t", remove) is not None


def test_ttl_sweeper_recognises_every_expiry_of_a_key_the_stream_has_not_caught_up_with() -> None:
    from botocore.exceptions import ClientError

    # Given a key expired twice (re-created by a redelivery in between) before the mapping read either
    # REMOVE, and one attempt in between that deleted nothing (the item had changed)
    outcomes = iter(["deleted", "changed", "deleted"])

    class Client:
        def scan(self, **_: Any) -> dict[str, Any]:
            return {"Items": [{"pk": {"S": "k"}, "expires": {"N": "5"}}]}

        def delete_item(self, **_: Any) -> None:
            if next(outcomes) == "changed":
                raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "DeleteItem")

    sweeper = TtlSweeper(Client(), [TtlTable("t", "expires", ("pk",))], clock=lambda: 100.0)
    assert [sweeper.sweep() for _ in range(3)] == [1, 0, 1]
    remove = {
        "eventName": "REMOVE",
        "dynamodb": {"Keys": {"pk": {"S": "k"}}, "OldImage": {"pk": {"S": "k"}, "expires": {"N": "5"}}},
    }
    # When both REMOVE records arrive, Then both are the TTL service's (not hard deletes), and no more
    assert sweeper.identity_for("t", remove) is not None
    assert sweeper.identity_for("t", remove) is not None
    assert sweeper.identity_for("t", remove) is None


# --- the sandbox boundary -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FunctionWorker, Path]]:
    directory = tmp_path_factory.mktemp("sandbox")
    config = FunctionConfig(
        name="recorder",
        region=REGION,
        handler="recorder.lambda_handler",
        environment={"RECORD_FILE": str(directory / "events.jsonl")},
        code_paths=[str(RECORDER_DIR)],
        timeout_seconds=10,
    )
    worker = FunctionWorker(config)
    try:
        yield worker, directory / "events.jsonl"
    finally:
        worker.stop()


def test_the_function_log_carries_its_lines_and_the_error_as_cloudwatch_shows_them(
    recorder: tuple[FunctionWorker, Path],
) -> None:
    # Given the function's output hook (the local log file's writer)
    worker, _ = recorder
    logged: list[str] = []
    worker.on_output = lambda _config, lines: logged.extend(lines)
    poison = sdk_record(9, {"fail": {"S": "raise"}})
    # When an invocation raises
    invocation = worker.invoke(
        {"Records": [to_lambda_record(poison, region=REGION, stream_arn=STREAM_ARN).event]}
    )
    worker.on_output = None
    # Then the log holds START, the error Lambda logs (type, message, stack trace), END and REPORT
    assert not invocation.ok
    assert logged[0] == f"START RequestId: {invocation.request_id} Version: $LATEST"
    (error_line,) = [line for line in logged if line.startswith("[ERROR] ")]
    error = json.loads(error_line.removeprefix("[ERROR] "))
    assert error["errorType"] == "RuntimeError" and "poison record" in error["errorMessage"]
    assert any("recorder.py" in frame for frame in error["stackTrace"])
    assert logged[-2] == f"END RequestId: {invocation.request_id}"
    assert logged[-1].startswith(f"REPORT RequestId: {invocation.request_id}\tDuration: ")


def test_at_the_system_log_level_warn_the_log_holds_no_platform_lines(tmp_path: Path) -> None:
    # Given a function configured as the stacks configure theirs: JSON log format, system log level WARN
    config = FunctionConfig(
        name="recorder-warn",
        region=REGION,
        handler="recorder.lambda_handler",
        environment={"RECORD_FILE": str(tmp_path / "events.jsonl")},
        code_paths=[str(RECORDER_DIR)],
        timeout_seconds=10,
        log_format="JSON",
        system_log_level="WARN",
    )
    logged: list[str] = []
    worker = FunctionWorker(config, on_output=lambda _config, lines: logged.extend(lines))
    try:
        ok = worker.invoke(
            {"Records": [to_lambda_record(sdk_record(1), region=REGION, stream_arn=STREAM_ARN).event]}
        )
        failed = worker.invoke(
            {
                "Records": [
                    to_lambda_record(
                        sdk_record(2, {"fail": {"S": "raise"}}), region=REGION, stream_arn=STREAM_ARN
                    ).event
                ]
            }
        )
    finally:
        worker.stop()
    # Then Lambda's INFO-level START / END / REPORT lines are not sent; the error still is, as JSON
    assert ok.ok and not failed.ok
    assert not [line for line in logged if line.startswith(("START", "END", "REPORT")) or "platform." in line]
    (error_line,) = logged
    error = json.loads(error_line)
    assert error["level"] == "ERROR" and error["errorType"] == "RuntimeError"
    assert error["requestId"] == failed.request_id


def test_the_template_logging_config_reaches_the_function_config() -> None:
    # Given a function resource with Lambda's advanced logging controls set
    props = {
        "Handler": "m.h",
        "FunctionName": "f",
        "LoggingConfig": {"LogFormat": "JSON", "SystemLogLevel": "WARN", "LogGroup": "/aws/lambda/f"},
    }
    # When the template reader reads it, then the sandbox will drop the platform lines as Lambda does
    spec = templates._function("S", "Fn", props, {})
    assert (spec.log_format, spec.system_log_level) == ("JSON", "WARN")
    assert (templates._function("S", "Fn", {"Handler": "m.h"}, {}).system_log_level) == "INFO"


def test_the_handler_receives_parsed_json(recorder: tuple[FunctionWorker, Path]) -> None:
    # Given a stream event built by the serializer
    worker, record_file = recorder
    event = {
        "Records": [to_lambda_record(sdk_record(1, BINARY_IMAGE), region=REGION, stream_arn=STREAM_ARN).event]
    }

    # When the function is invoked
    invocation = worker.invoke(event)

    # Then it succeeded and the handler saw exactly the JSON Lambda would send
    assert invocation.ok, invocation.payload
    assert invocation.payload == {"batchItemFailures": []}
    received = json.loads(record_file.read_text().splitlines()[-1])["event"]
    assert received == json.loads(json.dumps(event))


def test_an_event_that_is_not_json_never_reaches_the_handler(recorder: tuple[FunctionWorker, Path]) -> None:
    # Given an event holding bytes (what boto3 returns, what Lambda never sends)
    worker, _ = recorder

    # When it is invoked, Then the invoker refuses it
    with pytest.raises(TypeError):
        worker.invoke({"Records": [{"dynamodb": {"NewImage": {"b": {"B": b"\x00"}}}}]})


def test_an_event_over_6_mb_is_refused_like_lambda_refuses_it(recorder: tuple[FunctionWorker, Path]) -> None:
    # Given an event one byte over Lambda's synchronous payload limit
    worker, record_file = recorder
    before = record_file.read_text() if record_file.exists() else ""
    envelope = len(json.dumps({"Records": [""]}).encode())
    event = {"Records": ["x" * (MAX_SYNC_PAYLOAD_BYTES - envelope + 1)]}

    # When it is invoked
    invocation = worker.invoke(event)

    # Then the invocation failed as Lambda's Invoke fails, and the handler did not run
    assert not invocation.ok
    assert invocation.payload["errorType"] == "RequestEntityTooLargeException"
    assert (record_file.read_text() if record_file.exists() else "") == before


# --- the SQS event --------------------------------------------------------------------------------------


def test_sqs_records_are_shaped_as_lambda_delivers_them() -> None:
    # Given a message as boto3's ReceiveMessage returns it, with a binary attribute (bytes)
    message = {
        "MessageId": "m-1",
        "ReceiptHandle": "rh-1",
        "MD5OfBody": "md5",
        "Body": '{"k": 1}',
        "Attributes": {
            "SenderId": "AIDA",
            "ApproximateFirstReceiveTimestamp": "1700000000002",
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1700000000001",
        },
        "MessageAttributes": {
            "kind": {"StringValue": "handoff", "DataType": "String"},
            "blob": {"BinaryValue": b"\x00\x01", "DataType": "Binary"},
        },
    }
    source = QueueSource(REGION, "http://q", f"arn:aws:sqs:{REGION}:123456789012:q", client=None)

    # When it is shaped
    record = to_sqs_record(message, source)

    # Then it is exactly the record of Lambda's SQS event
    assert record == {
        "messageId": "m-1",
        "receiptHandle": "rh-1",
        "body": '{"k": 1}',
        "attributes": {
            "ApproximateReceiveCount": "2",
            "SentTimestamp": "1700000000001",
            "SenderId": "AIDA",
            "ApproximateFirstReceiveTimestamp": "1700000000002",
        },
        "messageAttributes": {
            "kind": {
                "stringValue": "handoff",
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            },
            "blob": {
                "binaryValue": b64(b"\x00\x01"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfBody": "md5",
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:123456789012:q",
        "awsRegion": REGION,
    }
    assert json.loads(json.dumps(record)) == record


def test_sqs_batches_are_split_under_the_payload_limit() -> None:
    # Given ten messages of 1 MiB (AWS's message limit since 2025): 10 MiB in all
    records = [{"body": "x" * (1024 * 1024), "messageId": str(i)} for i in range(10)]

    # When they are grouped into invocations
    batches = split_under_payload_limit(records)

    # Then every invocation stays under 6 MB, in order, and no message is left out
    assert [r["messageId"] for batch in batches for r in batch] == [str(i) for i in range(10)]
    assert all(len(json.dumps({"Records": batch}).encode()) <= MAX_SYNC_PAYLOAD_BYTES for batch in batches)
    assert len(batches) == 2


# --- the stream poller in isolation ---------------------------------------------------------------------


class ScriptedStream:
    """A dynamodbstreams client that returns the given records once, and raises when told to."""

    def __init__(self, records: list[dict[str, Any]], failures: int = 0) -> None:
        self.records = records
        self.failures = failures
        self.position: str | None = None

    def describe_stream(self, **_: Any) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": SHARD, "SequenceNumberRange": {}}]}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        self.position = kwargs.get("SequenceNumber")
        return {"ShardIterator": "it"}

    def get_records(self, **_: Any) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise KeyError("an engine answer the stand-in did not expect")
        after = [
            r
            for r in self.records
            if self.position is None or r["dynamodb"]["SequenceNumber"] > self.position
        ]
        return {"Records": after, "NextShardIterator": "next"}


class RecordingFunction:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.config = FunctionConfig("f", REGION, "m.h", {}, [])

    def invoke(self, event: Any) -> Invocation:
        self.events.append(json.loads(json.dumps(event)))
        return Invocation("req", True, None)


def run_poller(engine: ScriptedStream, function: RecordingFunction, want: int, **kwargs: Any) -> StreamPoller:
    errors: list[str] = []
    poller = StreamPoller(
        StreamMappingSpec(logical_id="M", function="F", table="T"),
        StreamSource(REGION, "orders", STREAM_ARN, engine),
        function,  # type: ignore[arg-type]
        poll_interval=0.01,
        on_error=lambda name, stats: errors.append(f"{name}: {stats.last_error}"),
        **kwargs,
    )
    poller.start()
    try:
        wait_for(lambda: sum(len(e["Records"]) for e in function.events) >= want, timeout=30)
    finally:
        poller.stop()
    poller.reported_errors = errors  # type: ignore[attr-defined]
    return poller


def delivered_keys(function: RecordingFunction) -> list[str]:
    return [r["dynamodb"]["Keys"]["pk"]["S"] for e in function.events for r in e["Records"]]


def test_a_record_that_cannot_be_serialized_does_not_stop_the_poller() -> None:
    # Given a stream whose second record cannot become Lambda's event, between two good ones
    poison = sdk_record(2, {"odd": {"SS": {"not", "json"}}})
    engine = ScriptedStream([sdk_record(1, BINARY_IMAGE), poison, sdk_record(3)])
    function = RecordingFunction()

    # When the poller runs
    poller = run_poller(engine, function, want=2)

    # Then the records around it were delivered, and the failure was counted and reported
    assert delivered_keys(function) == ["k1", "k3"]
    assert poller.stats.records_unreadable == 1
    assert poller.stats.errors == 1 and "TypeError" in str(poller.stats.last_error)
    assert poller.stats.last_error_at is not None
    assert poller.reported_errors and "stream mapping" in poller.reported_errors[0]  # type: ignore[attr-defined]


def test_an_unexpected_engine_exception_does_not_stop_the_poller() -> None:
    # Given an engine whose first two reads raise an exception nobody planned for
    engine = ScriptedStream([sdk_record(1), sdk_record(2)], failures=2)
    function = RecordingFunction()

    # When the poller runs
    poller = run_poller(engine, function, want=2)

    # Then it logged, counted and backed off, and still delivered every record
    assert delivered_keys(function) == ["k1", "k2"]
    assert poller.stats.errors == 2
    assert poller.stats.last_error == "KeyError: 'an engine answer the stand-in did not expect'"
    assert len(poller.reported_errors) == 2  # type: ignore[attr-defined]


def test_batches_stay_under_6_mb() -> None:
    # Given three records of about 2.5 MB each (DynamoDB items are smaller; the rule is Lambda's)
    big = "x" * (2_500_000)
    engine = ScriptedStream([sdk_record(i, {"v": {"S": big}}) for i in (1, 2, 3)])
    function = RecordingFunction()

    # When the poller delivers them
    run_poller(engine, function, want=3)

    # Then no invocation exceeded the synchronous payload limit and none was lost
    assert delivered_keys(function) == ["k1", "k2", "k3"]
    assert [len(e["Records"]) for e in function.events] == [2, 1]
    assert all(len(json.dumps(e).encode()) <= MAX_SYNC_PAYLOAD_BYTES for e in function.events)


# --- the on-failure destination -------------------------------------------------------------------------


def test_the_failure_document_is_the_invocation_record_lambda_writes() -> None:
    # Given a poller and a two-record batch of its shard it gives up on
    poller = StreamPoller(
        StreamMappingSpec(logical_id="M", function="F", table="T"),
        StreamSource(REGION, "orders", STREAM_ARN, ScriptedStream([])),
        RecordingFunction(),  # type: ignore[arg-type]
        clock=lambda: 1_700_000_123.456,
    )
    batch = [
        to_lambda_record(sdk_record(i), region=REGION, stream_arn=STREAM_ARN, shard_id=SHARD) for i in (1, 2)
    ]
    failed = Invocation("req-1", False, {"errorType": "RuntimeError", "errorMessage": "boom"})

    # When the document is written
    document = poller.failure_document(batch, "RetryAttemptsExhausted", failed)

    # Then it has exactly the documented fields and formats, and the batch's own shard
    assert document == {
        "requestContext": {
            "requestId": "req-1",
            "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:f",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 1,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2023-11-14T22:15:23.456Z",
        "DDBStreamBatchInfo": {
            "shardId": SHARD,
            "startSequenceNumber": f"{1:021d}",
            "endSequenceNumber": f"{2:021d}",
            "approximateArrivalOfFirstRecord": "2026-01-02T03:04:05Z",
            "approximateArrivalOfLastRecord": "2026-01-02T03:04:05Z",
            "batchSize": 2,
            "streamArn": STREAM_ARN,
        },
    }


def test_s3_destination_objects_are_named_and_filled_as_lambda_does() -> None:
    # Given an S3 on-failure destination
    class Bucket:
        objects: dict[str, bytes] = {}

        def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
            self.objects[Key] = Body

    bucket = Bucket()
    destination = S3Destination(
        bucket, "failures", "0f8fad5b-d9cb-469f-a165-70867728950e", clock=lambda: 1_700_000_123.0
    )
    document = {"DDBStreamBatchInfo": {"shardId": SHARD}, "version": "1.0"}
    event = {"Records": [{"eventID": "1"}]}

    # When a discarded batch is sent
    destination.send(document, event)

    # Then the key follows aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<UUID>
    # and the object holds the invocation record with the batch's payload
    (key,) = bucket.objects
    prefix = f"aws/lambda/0f8fad5b-d9cb-469f-a165-70867728950e/{SHARD}/2023/11/14/"
    pattern = re.escape(prefix) + r"2023-11-14T22\.15\.23-[0-9a-f-]{36}"
    assert re.fullmatch(pattern, key), key
    assert json.loads(bucket.objects[key]) == {**document, "payload": event}
    assert re.fullmatch(r"aws/lambda/u/s/\d{4}/\d{2}/\d{2}/.+", s3_failure_key("u", "s", 0.0))
