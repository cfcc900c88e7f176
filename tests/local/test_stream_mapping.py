"""The stream stand-in behaves like Lambda's event source mapping and absorbs the engine's deviations.

A one-region assembly (tests/local/support.py) runs a recorder function that keeps every event it
gets and fails on request, behind a mapping with a filter, a batching window, bisection, two retries,
partial batch responses and an on-failure queue.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ddbrep.local.cloud import LocalCloud, RuntimeOptions
from ddbrep.local.mapping import StreamPoller, StreamSource
from ddbrep.local.streams import TTL_IDENTITY
from ddbrep.local.templates import StreamMappingSpec, load_assembly
from ddbrep.local.worker import Invocation
from tests.local.support import TABLE, assert_drained, delivered_records, recorder_assembly, wait_for

REGION = "eu-west-1"
SKIP_FILTER = {"dynamodb": {"NewImage": {"skip": {"S": [{"exists": False}]}}}}


@pytest.fixture(scope="module")
def recorder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return recorder_assembly(
        tmp_path_factory.mktemp("recorder"),
        region=REGION,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        BisectBatchOnFunctionError=True,
        MaximumRetryAttempts=2,
        FilterCriteria={"Filters": [{"Pattern": json.dumps(SKIP_FILTER)}]},
    )


@pytest.fixture(scope="module")
def cloud(recorder_dir: Path) -> Iterator[LocalCloud]:
    options = RuntimeOptions(log_dir=recorder_dir / "logs", ttl_sweep_interval=0.5)
    with LocalCloud(load_assembly(recorder_dir), options) as running:
        yield running


@pytest.fixture
def pk() -> str:
    return f"k-{uuid.uuid4().hex[:8]}"


def item(pk: str, sk: str = "0", **attributes: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, **{k: {"S": v} for k, v in attributes.items()}}


def records_of(recorder_dir: Path, pk: str) -> list[dict[str, Any]]:
    return [r for r in delivered_records(recorder_dir) if r["dynamodb"]["Keys"]["pk"]["S"] == pk]


def on_failure_documents(cloud: LocalCloud) -> list[dict[str, Any]]:
    """What the on-failure queue holds (read without consuming: messages become visible at once)."""
    sqs = cloud.region(REGION).client("sqs")
    url = sqs.get_queue_url(QueueName="recorder-on-failure")["QueueUrl"]
    documents: dict[str, dict[str, Any]] = {}
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
            "Messages", []
        )
        documents.update((m["MessageId"], json.loads(m["Body"])) for m in messages)
    return list(documents.values())


# --- engine deviations ----------------------------------------------------------------------------------


def test_records_carry_the_real_region_event_version_and_whole_seconds(
    cloud: LocalCloud, recorder_dir: Path, pk: str
) -> None:
    # Given a write in the eu-west-1 region (moto says us-east-1, eventVersion 1.0, milliseconds)
    cloud.client(REGION).put_item(TableName=TABLE, Item=item(pk, v="1"))

    # When the mapping delivers it
    assert_drained(cloud, 30)
    (record,) = records_of(recorder_dir, pk)

    # Then the record is shaped as AWS delivers it
    assert record["awsRegion"] == REGION
    assert record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb"
    assert isinstance(record["dynamodb"]["ApproximateCreationDateTime"], int)
    assert record["eventSourceARN"].startswith(f"arn:aws:dynamodb:{REGION}:")
    assert "userIdentity" not in record


def test_a_write_that_changes_nothing_emits_no_record(cloud: LocalCloud, recorder_dir: Path, pk: str) -> None:
    # Given an item, written a second time unchanged (moto emits a MODIFY with equal images)
    client = cloud.client(REGION)
    client.put_item(TableName=TABLE, Item=item(pk, v="1"))
    client.put_item(TableName=TABLE, Item=item(pk, v="1"))

    # When the mapping delivers
    assert_drained(cloud, 30)
    # Then the function saw only the INSERT
    assert [r["eventName"] for r in records_of(recorder_dir, pk)] == ["INSERT"]


def test_update_item_creating_an_item_emits_one_insert(
    cloud: LocalCloud, recorder_dir: Path, pk: str
) -> None:
    # Given an UpdateItem that creates the item (moto emits a key-only INSERT, then the real one)
    cloud.client(REGION).update_item(
        TableName=TABLE,
        Key=item(pk),
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "1"}},
    )

    # When the mapping delivers
    assert_drained(cloud, 30)
    # Then the function saw one INSERT with the full image
    (record,) = records_of(recorder_dir, pk)
    assert record["eventName"] == "INSERT"
    assert record["dynamodb"]["NewImage"] == item(pk, v="1")


def test_a_key_only_put_is_still_delivered(cloud: LocalCloud, recorder_dir: Path, pk: str) -> None:
    # Given a genuine PutItem of keys only (indistinguishable from the artifact above until the next record)
    cloud.client(REGION).put_item(TableName=TABLE, Item=item(pk))

    # When the mapping delivers
    assert wait_for(lambda: records_of(recorder_dir, pk), timeout=30)

    # Then the INSERT arrives, held back only briefly
    (record,) = records_of(recorder_dir, pk)
    assert record["dynamodb"]["NewImage"] == item(pk)


def test_ttl_deletions_carry_the_ttl_service_identity(cloud: LocalCloud, recorder_dir: Path, pk: str) -> None:
    # Given an item whose TTL is in the past (moto never expires anything), and an item deleted by a user
    client = cloud.client(REGION)
    client.put_item(TableName=TABLE, Item={**item(pk, "ttl"), "expires": {"N": str(int(time.time()) - 10)}})
    client.put_item(TableName=TABLE, Item=item(pk, "user"))
    client.delete_item(TableName=TABLE, Key=item(pk, "user"))

    # When the sweeper expires it and the mapping delivers
    def removes() -> dict[str, dict[str, Any]]:
        found = {
            r["dynamodb"]["Keys"]["sk"]["S"]: r
            for r in records_of(recorder_dir, pk)
            if r["eventName"] == "REMOVE"
        }
        return found if len(found) == 2 else {}

    found = wait_for(removes, timeout=30)

    # Then only the TTL deletion is marked with the TTL service's identity
    assert found["ttl"]["userIdentity"] == TTL_IDENTITY
    assert "userIdentity" not in found["user"]


def test_writes_after_a_cancelled_transaction_are_delivered(
    cloud: LocalCloud, recorder_dir: Path, pk: str
) -> None:
    # Given a cancelled transaction (moto then orphans iterators that were held)
    client = cloud.client(REGION)
    with pytest.raises(ClientError):
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": TABLE,
                        "Item": item(pk, "tx"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                }
            ]
        )

    # When later writes happen
    client.put_item(TableName=TABLE, Item=item(pk, "after", v="1"))

    # Then they are delivered
    assert wait_for(lambda: records_of(recorder_dir, pk), timeout=30)
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in records_of(recorder_dir, pk)] == ["after"]


def test_batch_write_of_more_than_25_items_is_rejected_like_aws(cloud: LocalCloud, pk: str) -> None:
    # Given a BatchWriteItem of 26 items (moto accepts it)
    requests = [{"PutRequest": {"Item": item(pk, str(i))}} for i in range(26)]

    # When it is sent to the region's endpoint, Then it is rejected as AWS rejects it
    with pytest.raises(ClientError) as error:
        cloud.client(REGION).batch_write_item(RequestItems={TABLE: requests})
    assert error.value.response["Error"]["Code"] == "ValidationException"
    # and 25 items are accepted
    cloud.client(REGION).batch_write_item(RequestItems={TABLE: requests[:25]})


def test_disabling_a_stream_is_refused(cloud: LocalCloud) -> None:
    # Given the engine breaks a table whose stream is disabled
    # When a client disables the stream, Then the gateway refuses, and the table keeps working
    with pytest.raises(ClientError) as error:
        cloud.client(REGION).update_table(TableName=TABLE, StreamSpecification={"StreamEnabled": False})
    assert error.value.response["Error"]["Code"] == "ValidationException"
    cloud.client(REGION).put_item(TableName=TABLE, Item=item("still-works"))


def test_event_source_mappings_are_never_created_in_the_engine(cloud: LocalCloud) -> None:
    # Given a mapping created inside moto would empty the stream for good
    # When a client tries to create one, Then the gateway refuses
    with pytest.raises(ClientError):
        cloud.client(REGION, "lambda").create_event_source_mapping(
            FunctionName="recorder",
            EventSourceArn="arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/x",
        )


def test_engine_errors_on_reads_are_retried() -> None:
    # Given a stream whose first GetRecords answers HTTP 500 (moto does so for a bad iterator)
    class FlakyStreams:
        calls = 0

        def describe_stream(self, **_: Any) -> dict[str, Any]:
            return {"StreamDescription": {"Shards": [{"ShardId": "s-1", "SequenceNumberRange": {}}]}}

        def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
            return {"ShardIterator": "it"}

        def get_records(self, **_: Any) -> dict[str, Any]:
            self.calls += 1
            if self.calls == 1:
                raise ClientError(
                    {"Error": {"Code": "InternalFailure"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                    "GetRecords",
                )
            return {"Records": []}

    class NoFunction:
        config = None

        def invoke(self, event: Any) -> Invocation:
            raise AssertionError("nothing to deliver")

    streams = FlakyStreams()
    poller = StreamPoller(
        StreamMappingSpec(logical_id="M", function="F", table="T"),
        StreamSource(REGION, TABLE, "arn", streams),
        NoFunction(),  # type: ignore[arg-type]
        poll_interval=0.01,
    )

    # When the poller runs
    poller.start()
    try:
        assert wait_for(lambda: poller.quiet_since() is not None, timeout=10)
    finally:
        poller.stop()

    # Then it counted the engine error and kept polling
    assert poller.stats.engine_errors == 1
    assert streams.calls >= 2


def test_disabling_a_mapping_waits_for_the_poll_in_flight() -> None:
    # Given a poller in the middle of a read (GetRecords has not answered yet)
    entered, release = threading.Event(), threading.Event()

    class SlowStreams:
        reads = 0

        def describe_stream(self, **_: Any) -> dict[str, Any]:
            return {"StreamDescription": {"Shards": [{"ShardId": "s-1", "SequenceNumberRange": {}}]}}

        def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
            return {"ShardIterator": "it"}

        def get_records(self, **_: Any) -> dict[str, Any]:
            self.reads += 1
            entered.set()
            release.wait(10)
            return {"Records": []}

    streams = SlowStreams()
    poller = StreamPoller(
        StreamMappingSpec(logical_id="M", function="F", table="T"),
        StreamSource(REGION, TABLE, "arn", streams),
        None,  # type: ignore[arg-type]
        poll_interval=0.01,
    )
    poller.start()
    try:
        assert entered.wait(10)
        # When the mapping is disabled
        pausing = threading.Thread(target=poller.pause)
        pausing.start()
        # Then disabling does not return while the read that may hold new records is in flight
        pausing.join(0.3)
        assert pausing.is_alive()
        release.set()
        pausing.join(10)
        assert not pausing.is_alive()
        # And no read starts while it is disabled; enabling it reads on
        reads = streams.reads
        time.sleep(0.2)
        assert streams.reads == reads
        poller.resume()
        assert wait_for(lambda: streams.reads > reads, timeout=10)
    finally:
        release.set()
        poller.stop()


# --- Lambda's mapping semantics -------------------------------------------------------------------------


def test_filtered_out_records_never_reach_the_function(
    cloud: LocalCloud, recorder_dir: Path, pk: str
) -> None:
    # Given writes that the mapping's filter excludes, and one it passes
    client = cloud.client(REGION)
    client.put_item(TableName=TABLE, Item=item(pk, "skipped", skip="yes"))
    client.put_item(TableName=TABLE, Item=item(pk, "kept"))

    # When the mapping delivers
    assert_drained(cloud, 30)
    # Then only the record that matched the filter was delivered
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in records_of(recorder_dir, pk)] == ["kept"]


def test_partial_failure_checkpoints_at_the_lowest_failure(
    cloud: LocalCloud, recorder_dir: Path, pk: str
) -> None:
    # Given three records in one batch, the middle one reported as failed on every attempt
    client = cloud.client(REGION)
    for sk, extra in (("1", {}), ("2", {"fail": "report"}), ("3", {})):
        client.put_item(TableName=TABLE, Item=item(pk, sk, **extra))

    # When the mapping delivers, retries twice and gives up
    def gave_up() -> list[dict[str, Any]]:
        return [
            d for d in on_failure_documents(cloud) if d["DDBStreamBatchInfo"]["startSequenceNumber"] in seqs()
        ]

    def seqs() -> set[str]:
        return {
            r["dynamodb"]["SequenceNumber"]
            for r in records_of(recorder_dir, pk)
            if r["dynamodb"]["Keys"]["sk"]["S"] == "2"
        }

    documents = wait_for(gave_up, timeout=30)

    # Then the record before the failure was delivered once; the retries started at the failed record;
    # and the on-failure destination describes the batch from that record
    delivered = [r["dynamodb"]["Keys"]["sk"]["S"] for r in records_of(recorder_dir, pk)]
    assert delivered.count("1") == 1
    assert delivered.count("2") == 3  # first attempt + two retries
    (document,) = documents
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert document["DDBStreamBatchInfo"]["batchSize"] == 2


def test_function_errors_bisect_down_to_the_poison_record(
    cloud: LocalCloud, recorder_dir: Path, pk: str
) -> None:
    # Given a batch with one record that makes the function raise
    client = cloud.client(REGION)
    for sk, extra in (("1", {}), ("2", {"fail": "raise"}), ("3", {}), ("4", {})):
        client.put_item(TableName=TABLE, Item=item(pk, sk, **extra))

    # When the mapping delivers
    def poison_parked() -> list[dict[str, Any]]:
        poison = {
            r["dynamodb"]["SequenceNumber"]
            for r in records_of(recorder_dir, pk)
            if r["dynamodb"]["Keys"]["sk"]["S"] == "2"
        }
        return [
            d for d in on_failure_documents(cloud) if d["DDBStreamBatchInfo"]["startSequenceNumber"] in poison
        ]

    documents = wait_for(poison_parked, timeout=30)
    assert_drained(cloud, 30)
    # Then the batch was split until the poison record was alone; it alone went to the destination,
    # and every other record was delivered
    (document,) = documents
    assert document["DDBStreamBatchInfo"]["batchSize"] == 1
    assert document["responseContext"]["functionError"] == "Unhandled"
    delivered = {r["dynamodb"]["Keys"]["sk"]["S"] for r in records_of(recorder_dir, pk)}
    assert delivered == {"1", "2", "3", "4"}
    assert sum(p.stats.bisections for p in cloud.stream_pollers) >= 2


@pytest.mark.parametrize(
    ("cap", "waits"),
    [(None, [0.25, 0.5, 1.0, 2.0, 4.0]), (1.0, [0.25, 0.5, 1.0, 1.0, 1.0])],
)
def test_retries_of_a_failing_batch_back_off_up_to_the_runtimes_cap(
    cap: float | None, waits: list[float]
) -> None:
    # Given a mapping that retries a failing batch up to 5 times, with or without the local time compression
    poller = StreamPoller(
        StreamMappingSpec(logical_id="M", function="F", table="T", max_retry_attempts=5),
        StreamSource(REGION, TABLE, "arn", None),
        None,  # type: ignore[arg-type]
        max_retry_backoff=cap,
    )
    slept: list[float] = []
    poller._stop.wait = lambda delay: slept.append(delay) or False  # type: ignore[method-assign,func-returns-value]
    discarded: list[str] = []
    poller._discard = lambda _batch, condition, _invocation: discarded.append(condition)  # type: ignore[method-assign]
    # When the batch fails every time
    for _ in range(6):
        poller._retry_or_discard([], None)  # type: ignore[arg-type]
    # Then it waits longer each time, up to 4 s (or the cap), and gives up after the 5th retry
    assert slept == waits
    assert discarded == ["RetryAttemptsExhausted"]
