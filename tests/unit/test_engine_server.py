"""The region engine's fixes (ddbrep/local/engine_server.py): stream numbers unique under concurrent writes,
conditional writes one at a time per item, long polls that end when a message becomes receivable; and the
queue age it answers."""

from __future__ import annotations

import threading
import time
import urllib.error
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from moto.dynamodb.models import table as moto_table

from ddbrep.local.engine_server import (
    age_of_oldest_message,
    serialize_item_writes,
    serialize_stream_appends,
    wake_long_polls_when_messages_become_visible,
)
from ddbrep.local.regions import ACCOUNT_ID, start_region, stop_region


class SlowRecord:
    """moto's StreamRecord, slow to build: widens the window between numbering and appending."""

    def __init__(self, _table: Any, _view: Any, _event: Any, _old: Any, _new: Any, seq: int) -> None:
        time.sleep(0.0005)
        self.seq = seq


def sequence_numbers_of_concurrent_adds(threads: int = 8, each: int = 40) -> list[int]:
    table = SimpleNamespace(
        stream_specification={"StreamViewType": "NEW_AND_OLD_IMAGES"}, lambda_event_source_mappings={}
    )
    shard = moto_table.StreamShard("123456789012", table)  # type: ignore[arg-type]

    def write() -> None:
        for _ in range(each):
            shard.add(None, None)

    workers = [threading.Thread(target=write) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [record.seq for record in shard.items]


@pytest.fixture
def slow_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_table, "StreamRecord", SlowRecord)
    monkeypatch.setattr(moto_table.StreamShard, "add", moto_table.StreamShard.add)  # restored after


def test_moto_alone_numbers_two_concurrent_writes_the_same(slow_records: None) -> None:
    # the engine deviation the server fixes: without it, concurrent writes share sequence numbers
    numbers = sequence_numbers_of_concurrent_adds()
    assert any(count > 1 for count in Counter(numbers).values())


def test_the_region_server_numbers_every_write_once_in_order(slow_records: None) -> None:
    serialize_stream_appends()
    numbers = sequence_numbers_of_concurrent_adds()
    assert len(numbers) == 320
    assert numbers == sorted(set(numbers))  # unique, increasing in stream order, none skipped
    assert numbers[-1] - numbers[0] == len(numbers) - 1


# --- ApproximateAgeOfOldestMessage, as SQS reports it --------------------------------------------------


def _message(sent_ms: float, receives: int) -> SimpleNamespace:
    return SimpleNamespace(sent_timestamp=sent_ms, approximate_receive_count=receives)


def test_the_age_is_the_oldest_message_not_yet_received_three_times() -> None:
    # SQS moves a message received 3 times and not deleted to the back, and the metric reports the next
    messages = [_message(1_000, 3), _message(5_000, 2), _message(9_000, 0)]
    assert age_of_oldest_message(messages, now_ms=11_000) == 6.0
    # only poison pills, or no message: SQS reports nothing
    assert age_of_oldest_message([_message(1_000, 5)], now_ms=11_000) is None
    assert age_of_oldest_message([], now_ms=11_000) is None


@pytest.mark.local
def test_the_region_server_answers_a_queues_age_of_oldest_message() -> None:
    region = start_region("us-east-1")
    try:
        sqs = region.client("sqs")
        url = sqs.create_queue(QueueName="handoff")["QueueUrl"]
        assert region.queue_age_of_oldest_message(ACCOUNT_ID, "handoff") is None  # empty: no datapoint
        sqs.send_message(QueueUrl=url, MessageBody="first")
        time.sleep(1.1)
        sqs.send_message(QueueUrl=url, MessageBody="second")
        age = region.queue_age_of_oldest_message(ACCOUNT_ID, "handoff")
        assert age is not None and 1.0 <= age < 30
        # the first is received three times and never deleted (a write the drain cannot replay yet)
        for _ in range(3):
            received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0)
            assert received["Messages"][0]["Body"] == "first"
        younger = region.queue_age_of_oldest_message(ACCOUNT_ID, "handoff")
        assert younger is not None and younger < age - 0.5
        with pytest.raises(urllib.error.HTTPError):
            region.queue_age_of_oldest_message(ACCOUNT_ID, "no-such-queue")
    finally:
        stop_region(region)


# --- long polls end when a message becomes receivable ----------------------------------------------------


@pytest.fixture
def restored_sqs(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.sqs.models import Queue, SQSBackend

    monkeypatch.setattr(Queue, "wait_for_messages", Queue.wait_for_messages)  # restored after
    monkeypatch.setattr(SQSBackend, "change_message_visibility", SQSBackend.change_message_visibility)


def long_poll_while_a_message_is_made_visible() -> list[str]:
    """The bodies a 1-second long poll receives while, 0.2 s into it, the message it waits for (in
    flight for 30 s) is made visible again with ChangeMessageVisibility (in-process moto)."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="handoff")["QueueUrl"]
        sqs.send_message(QueueUrl=url, MessageBody="waiting")
        held = sqs.receive_message(QueueUrl=url, VisibilityTimeout=30)["Messages"][0]
        received: list[str] = []
        poll = threading.Thread(
            target=lambda: received.extend(
                m["Body"] for m in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", [])
            )
        )
        poll.start()
        time.sleep(0.2)
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=held["ReceiptHandle"], VisibilityTimeout=0)
        poll.join()
        return received


def test_moto_alone_ends_a_long_poll_empty_though_its_message_became_visible(restored_sqs: None) -> None:
    # the engine deviation the server fixes: moto looks again only after a second, and then gives up
    assert long_poll_while_a_message_is_made_visible() == []


def test_the_region_servers_long_poll_receives_a_message_as_soon_as_it_is_visible(restored_sqs: None) -> None:
    wake_long_polls_when_messages_become_visible()
    assert long_poll_while_a_message_is_made_visible() == ["waiting"]


# --- conditional writes, one at a time per item -----------------------------------------------------------


class SlowItem(moto_table.Item):
    """moto's Item, slow to build: widens the window between reading the stored item and replacing it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.0005)
        super().__init__(*args, **kwargs)


def replaced_versions_of_concurrent_guarded_puts(threads: int = 8, each: int = 15) -> tuple[list[int], int]:
    """Every applied put's replaced version (ALL_OLD), and the version stored at the end."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        replaced: list[int] = []
        lock = threading.Lock()

        def write(offset: int) -> None:
            for i in range(each):
                ts = i * threads + offset + 1
                try:
                    answer = client.put_item(
                        TableName="t",
                        Item={"pk": {"S": "k"}, "ts": {"N": str(ts)}},
                        ConditionExpression="attribute_not_exists(ts) OR ts < :ts",
                        ExpressionAttributeValues={":ts": {"N": str(ts)}},
                        ReturnValues="ALL_OLD",
                    )
                except client.exceptions.ConditionalCheckFailedException:
                    continue
                with lock:
                    replaced.append(int(answer.get("Attributes", {}).get("ts", {}).get("N", "0")))

        workers = [threading.Thread(target=write, args=(t,)) for t in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        stored = int(client.get_item(TableName="t", Key={"pk": {"S": "k"}})["Item"]["ts"]["N"])
        return replaced, stored


@pytest.fixture
def slow_items(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb import responses

    monkeypatch.setattr(moto_table, "Item", SlowItem)
    for name in ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items"):
        monkeypatch.setattr(responses.DynamoHandler, name, getattr(responses.DynamoHandler, name))


def test_moto_alone_lets_two_concurrent_conditional_puts_replace_the_same_version(slow_items: None) -> None:
    # the engine deviation the server fixes: both pass their condition against one stored version
    replaced, _stored = replaced_versions_of_concurrent_guarded_puts()
    assert any(count > 1 for count in Counter(replaced).values())


def test_the_region_server_applies_conditional_puts_one_at_a_time(slow_items: None) -> None:
    serialize_item_writes()
    replaced, stored = replaced_versions_of_concurrent_guarded_puts()
    # each stored version is replaced once at most (a chain of versions, as DynamoDB makes it), and the
    # greatest version written is the one stored
    assert all(count == 1 for count in Counter(replaced).values())
    assert stored == 8 * 15
