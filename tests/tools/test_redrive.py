"""Redrive of the dead-letter store, of discarded batches and of a handoff queue, on simulated regions."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ddbrep.cli import main
from ddbrep.local.state import write_function_config
from ddbrep.tools.aws import Connection
from ddbrep.tools.redrive import Redrive
from replicator.adapters import AwsPorts
from replicator.core.metadata import AttributeNames, Version, pad_sequence
from replicator.core.plan import TargetWrite
from replicator.settings import Settings, Target
from tests.tools.conftest import MakeTable, put_items, scan_all, stamped

pytestmark = pytest.mark.local

A, B = "us-east-1", "eu-west-1"


@pytest.fixture
def deployment(conn: Connection, make_table: MakeTable, endpoints: dict[str, str]) -> Settings:
    source, target = make_table(A), make_table(B)
    bucket = f"dlq-{uuid.uuid4().hex[:8]}"
    conn.client("s3", A).create_bucket(Bucket=bucket)
    queue = conn.client("sqs", A).create_queue(QueueName=f"handoff-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    return Settings(
        local_region=A,
        topology="mesh",
        source_table=source,
        targets=(Target(B, target, handoff_queue_url=queue),),
        names=AttributeNames(),
        dead_letter_bucket=bucket,
        endpoint_urls=endpoints,
        write_attempts=1,
    )


def write_of(settings: Settings, item: dict[str, Any], table: str | None = None) -> dict[str, Any]:
    version = Version(int(item["rep_ts"]["N"]), item["rep_region"]["S"])
    target = settings.targets[0]
    return TargetWrite(B, table or target.table, item, version, {"pk": item["pk"]}).to_json()


def stream_record(item: dict[str, Any], sequence_number: str) -> dict[str, Any]:
    return {
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "awsRegion": A,
        "dynamodb": {
            "Keys": {"pk": item["pk"]},
            "NewImage": item,
            "SequenceNumber": sequence_number,
            "ApproximateCreationDateTime": 1_700_000_000,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_redrive_applies_what_now_succeeds_and_leaves_the_rest_with_the_new_reason(
    conn: Connection, deployment: Settings
):
    settings = deployment
    target_table = settings.targets[0].table
    ports = AwsPorts(settings, session=conn.session())
    s3 = conn.client("s3", A)
    # Given a target that already holds a newer version of one key
    put_items(conn, B, target_table, [stamped("newer-there", 60, B, body="keep")])
    # and six dead-lettered entries
    entries = {
        "applies": {"reason": "target_write_rejected", "write": write_of(settings, stamped("k1", 100, A))},
        "stale": {
            "reason": "target_write_rejected",
            "write": write_of(settings, stamped("newer-there", 50, A)),
        },
        "record": {"reason": "local_write_rejected", "record": stream_record(stamped("k5", 70, A), "500")},
        "table-gone": {
            "reason": "target_write_rejected",
            "write": write_of(settings, stamped("k3", 1, A), table="no-such-table"),
        },
        "malformed": {"reason": "malformed_record", "error": "no Keys", "record": {"eventName": "INSERT"}},
        "invalid": {
            "reason": "target_write_rejected",
            "write": write_of(settings, {"pk": {"N": "1"}, "rep_ts": {"N": "1"}, "rep_region": {"S": A}}),
        },
    }
    keys = {name: ports.dead_letter({**entry, "source_region": A}) for name, entry in entries.items()}

    # When the dead-letter store is redriven
    report = Redrive(settings, ports).dead_letters()

    # Then two applied, one was stale, three still fail and stay in place with their new reason
    assert report.counts == {
        "applied": 2,
        "stale": 1,
        "skipped": 0,
        "still_failing": 3,
        "dead_lettered": 0,
        "unrecoverable": 0,
    }
    assert not report.ok
    items = scan_all(conn, B, target_table)
    assert items["k1"]["rep_ts"] == {"N": "100"}
    assert items["k5"]["rep_ts"] == {"N": "70"}
    assert items["newer-there"]["body"] == {"S": "keep"}
    left = {o["Key"] for o in s3.list_objects_v2(Bucket=settings.dead_letter_bucket).get("Contents", [])}
    assert left == {keys["table-gone"], keys["malformed"], keys["invalid"]}

    def attempts(name: str) -> list[dict[str, Any]]:
        body = s3.get_object(Bucket=settings.dead_letter_bucket, Key=keys[name])["Body"].read()
        return list(json.loads(body)["redrive_attempts"])

    [gone] = attempts("table-gone")
    assert gone["reason"] == "target_unavailable" and "ResourceNotFoundException" in gone["error"]
    assert attempts("malformed")[0]["reason"] == "malformed_record"
    assert attempts("invalid")[0]["reason"] == "target_write_rejected"

    # And a second redrive adds a second attempt to what still fails, and applies nothing twice
    again = Redrive(settings, ports).dead_letters()
    assert again.counts["still_failing"] == 3 and again.counts["applied"] == 0
    assert len(attempts("table-gone")) == 2


def test_redrive_of_a_handoff_queue_replays_and_keeps_what_still_fails(
    conn: Connection, deployment: Settings, make_table: MakeTable
):
    # Given a handoff queue with two writes for a target table that does not exist yet
    queue = deployment.targets[0].handoff_queue_url
    settings = dataclasses.replace(
        deployment, targets=(Target(B, f"late-{uuid.uuid4().hex[:8]}", handoff_queue_url=queue),)
    )
    ports = AwsPorts(settings, session=conn.session())
    target = settings.targets[0]
    sqs = conn.client("sqs", A)
    for key in ("h1", "h2"):
        ports.handoff(target, TargetWrite.from_json(write_of(settings, stamped(key, 10, A))), "configuration")

    # When the queue is redriven while the table is still missing
    report = Redrive(settings, ports).handoff_queue(B)
    # Then both still fail and are back in the queue, visible
    assert (report.counts["applied"], report.counts["still_failing"]) == (0, 2)
    left = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    assert sorted(json.loads(msg["Body"])["write"]["keys"]["pk"]["S"] for msg in left) == ["h1", "h2"]

    # When the table exists and the queue is redriven again
    make_table(B, name=target.table)
    report = Redrive(settings, ports).handoff_queue(B)
    # Then both apply and the queue is empty
    assert (report.counts["applied"], report.counts["still_failing"]) == (2, 0)
    assert {"h1", "h2"} <= set(scan_all(conn, B, target.table))
    assert not sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages")


def test_redrive_dead_letters_a_handoff_message_for_another_table(conn: Connection, deployment: Settings):
    # Given a handoff message whose write names a table that is not this target's
    ports = AwsPorts(deployment, session=conn.session())
    target = deployment.targets[0]
    ports.handoff(
        target, TargetWrite.from_json(write_of(deployment, stamped("x", 10, A), table="payroll")), ""
    )
    # When the queue is redriven
    report = Redrive(deployment, ports).handoff_queue(B)
    # Then nothing is written anywhere and the message is parked with the reason
    assert report.counts["applied"] == 0
    assert "x" not in scan_all(conn, B, target.table)
    listing = conn.client("s3", A).list_objects_v2(
        Bucket=deployment.dead_letter_bucket, Prefix="dead-letters/"
    )
    (entry,) = listing["Contents"]
    body = conn.client("s3", A).get_object(Bucket=deployment.dead_letter_bucket, Key=entry["Key"])["Body"]
    assert json.loads(body.read())["reason"] == "handoff_rejected"


# --- batches Lambda gave up on ------------------------------------------------------------------------


@pytest.fixture
def streamed(conn: Connection, make_table: MakeTable, endpoints: dict[str, str]) -> Settings:
    """A source table with a stream (as deployed), a target, and the dead-letter bucket."""
    source, target = make_table(A, stream=True), make_table(B)
    bucket = f"dlq-{uuid.uuid4().hex[:8]}"
    conn.client("s3", A).create_bucket(Bucket=bucket)
    return Settings(
        local_region=A,
        topology="mesh",
        source_table=source,
        targets=(Target(B, target),),
        names=AttributeNames(),
        dead_letter_bucket=bucket,
        endpoint_urls=endpoints,
        write_attempts=1,
    )


def stream_of(conn: Connection, table: str) -> tuple[str, str, list[dict[str, Any]]]:
    """The table's stream ARN, its shard and the records it holds."""
    arn = conn.dynamodb(A).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = conn.client("dynamodbstreams", A)
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return arn, shard["ShardId"], streams.get_records(ShardIterator=iterator)["Records"]


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(seconds))


def on_failure_document(arn: str, shard: str, batch: list[dict[str, Any]], arrival: float) -> dict[str, Any]:
    """What Lambda writes to an S3 on-failure destination for a DynamoDB stream batch (AWS's documented
    shape, as ddbrep/local/mapping.py writes it): the batch's position, not its records."""
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:{A}:111111111111:function:orders-replicator",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 11,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": iso(arrival + 60),
        "DDBStreamBatchInfo": {
            "shardId": shard,
            "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": iso(arrival),
            "approximateArrivalOfLastRecord": iso(arrival),
            "batchSize": len(batch),
            "streamArn": arn,
        },
        "errorType": "",
    }


AWS_KEY = "aws/lambda/{mapping}/{shard}/2026/01/02/2026-01-02T03.04.05-{uuid}"  # AWS's documented key
STAND_IN_KEY = "aws/lambda/orders-replicator/2026/01/02/03/{uuid}"  # the local stand-in's key


def discard(conn: Connection, settings: Settings, key: str, batch: list[dict[str, Any]]) -> None:
    """Lambda gives up on ``batch`` and describes it in the bucket."""
    arn, shard, _records = stream_of(conn, settings.source_table)
    document = on_failure_document(arn, shard, batch, arrival=time.time())
    conn.client("s3", A).put_object(
        Bucket=settings.dead_letter_bucket, Key=key, Body=json.dumps(document).encode()
    )


def replicated(item: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """The copy a target holds of a replicated local write: the item and the record's sequence number."""
    return {**item, "rep_seq": {"S": pad_sequence(record["dynamodb"]["SequenceNumber"])}}


ALL_COUNTS_ZERO = {
    o: 0 for o in ("applied", "stale", "skipped", "still_failing", "dead_lettered", "unrecoverable")
}


@pytest.mark.parametrize("key_format", [AWS_KEY, STAND_IN_KEY], ids=["aws-key", "stand-in-key"])
def test_redrive_reads_a_discarded_batch_again_from_the_stream_and_applies_it(
    conn: Connection, streamed: Settings, key_format: str
):
    settings = streamed
    s3 = conn.client("s3", A)
    # Given three local writes in the source's stream
    items = [stamped("k1", 100, A, body="one"), stamped("k2", 200, A, body="two"), stamped("k3", 300, A)]
    put_items(conn, A, settings.source_table, items)
    _arn, shard, records = stream_of(conn, settings.source_table)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in records] == ["k1", "k2", "k3"]
    # and Lambda gave up on the batch of the first two and described it in the bucket
    key = key_format.format(mapping=uuid.uuid4(), shard=shard, uuid=uuid.uuid4())
    discard(conn, settings, key, records[:2])

    # When the discarded batches are redriven
    report = Redrive(settings, AwsPorts(settings, session=conn.session())).discarded_batches()

    # Then the batch's two records are in the target, and nothing outside the range is
    assert report.counts == {**ALL_COUNTS_ZERO, "applied": 1}
    assert report.ok and report.repair_commands == []
    assert scan_all(conn, B, settings.targets[0].table) == {
        "k1": replicated(items[0], records[0]),
        "k2": replicated(items[1], records[1]),
    }
    # And the recovered document is gone
    assert "Contents" not in s3.list_objects_v2(Bucket=settings.dead_letter_bucket)


def test_a_redriven_discarded_batch_keeps_binary_values_bytes_exact(conn: Connection, streamed: Settings):
    settings = streamed
    # Given a discarded batch with a binary value (GetRecords returns bytes; Lambda delivers base64 text)
    item = {**stamped("bin", 100, A), "blob": {"B": b"\x00\xff\x10"}}
    put_items(conn, A, settings.source_table, [item])
    _arn, _shard, records = stream_of(conn, settings.source_table)
    discard(conn, settings, STAND_IN_KEY.format(uuid=uuid.uuid4()), records)

    # When the discarded batches are redriven
    report = Redrive(settings, AwsPorts(settings, session=conn.session())).discarded_batches()

    # Then the target holds the same bytes, not their base64 text
    assert report.counts == {**ALL_COUNTS_ZERO, "applied": 1}
    assert scan_all(conn, B, settings.targets[0].table) == {"bin": replicated(item, records[0])}


def test_a_discarded_batch_older_than_the_streams_retention_is_marked_unrecoverable(
    conn: Connection, streamed: Settings
):
    settings = streamed
    s3 = conn.client("s3", A)
    # Given a discarded batch whose records arrived 25 hours ago (the stream keeps them 24 hours)
    put_items(conn, A, settings.source_table, [stamped("old", 100, A)])
    arn, shard, records = stream_of(conn, settings.source_table)
    now = time.time()
    key = STAND_IN_KEY.format(uuid=uuid.uuid4())
    document = on_failure_document(arn, shard, records, arrival=now - 25 * 3600)
    s3.put_object(Bucket=settings.dead_letter_bucket, Key=key, Body=json.dumps(document).encode())

    # When the discarded batches are redriven
    report = Redrive(
        settings, AwsPorts(settings, session=conn.session()), clock=lambda: now
    ).discarded_batches()

    # Then nothing is written, the batch is unrecoverable, and verify --repair is the way
    assert report.counts["unrecoverable"] == 1 and not report.ok
    sequence = records[0]["dynamodb"]["SequenceNumber"]
    assert report.samples == [
        {
            "entry": key,
            "outcome": "unrecoverable",
            "reason": "not_retained",
            "error": f"shard {shard}, sequence numbers {sequence}..{sequence}, 1 records: "
            "its records are older than the stream's 24-hour retention",
        }
    ]
    assert report.repair_commands == [
        f"python -m ddbrep verify --table {settings.source_table} --source {A} "
        f"--target {B}={settings.targets[0].table} --repair"
    ]
    assert scan_all(conn, B, settings.targets[0].table) == {}
    # And the document stays, marked unrecoverable, with the reason
    kept = json.loads(s3.get_object(Bucket=settings.dead_letter_bucket, Key=key)["Body"].read())
    assert kept["unrecoverable"] is True
    assert kept["redrive_attempts"] == [
        {"at": now, "reason": "not_retained", "error": report.samples[0]["error"]}
    ]
    assert kept["DDBStreamBatchInfo"] == document["DDBStreamBatchInfo"]


def test_redrive_command_says_when_the_stream_is_gone_and_exits_non_zero(
    conn: Connection, streamed: Settings, endpoints: dict[str, str], tmp_path: Path, capsys
):
    settings = streamed
    target = settings.targets[0]
    s3 = conn.client("s3", A)
    # Given a discarded batch of a stream that no longer exists (its table was deleted)
    put_items(conn, A, settings.source_table, [stamped("gone", 100, A)])
    arn, shard, records = stream_of(conn, settings.source_table)
    key = AWS_KEY.format(mapping=uuid.uuid4(), shard=shard, uuid=uuid.uuid4())
    s3.put_object(
        Bucket=settings.dead_letter_bucket,
        Key=key,
        Body=json.dumps(on_failure_document(arn, shard, records, arrival=time.time())).encode(),
    )
    conn.dynamodb(A).delete_table(TableName=settings.source_table)
    env = {
        "REP_LOCAL_REGION": A,
        "REP_TOPOLOGY": "mesh",
        "REP_SOURCE_TABLE": settings.source_table,
        "REP_TARGETS": json.dumps([{"region": B, "table": target.table}]),
        "REP_DEAD_LETTER_BUCKET": settings.dead_letter_bucket,
    }
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps(env))
    endpoint_flags = [arg for region, url in endpoints.items() for arg in ("--endpoint", f"{region}={url}")]

    # When redrive runs from the command line
    code = main(["redrive", "--env-file", str(env_file), *endpoint_flags])

    # Then it exits with 1 and says that the stream no longer holds the batch, and what to run instead
    assert code == 1
    out = capsys.readouterr().out
    assert (
        "discarded_batches: applied 0, stale 0, skipped 0, still_failing 0, dead_lettered 0, unrecoverable 1"
        in out
    )
    assert f"unrecoverable: {key}: not_retained: shard {shard}" in out
    assert "the stream answers ResourceNotFoundException" in out
    assert "1 discarded batch(es) can no longer be read from the stream" in out
    assert (
        f"    python -m ddbrep verify --table {settings.source_table} --source {A} "
        f"--target {B}={target.table} --repair\n"
    ) in out
    # And the document stays in the bucket, marked unrecoverable
    kept = json.loads(s3.get_object(Bucket=settings.dead_letter_bucket, Key=key)["Body"].read())
    assert kept["unrecoverable"] is True


# --- never done while writes are parked; entries that need a person ----------------------------------

BIG = "x" * (401 * 1024)  # over DynamoDB's 400 KB item limit on its own


def env_file(settings: Settings, tmp_path: Path) -> Path:
    """The function's environment, as `--env-file` takes it."""
    target = settings.targets[0]
    env = {
        "REP_LOCAL_REGION": A,
        "REP_TOPOLOGY": "mesh",
        "REP_SOURCE_TABLE": settings.source_table,
        "REP_TARGETS": json.dumps(
            [{"region": B, "table": target.table, "handoff_queue_url": target.handoff_queue_url}]
        ),
        "REP_DEAD_LETTER_BUCKET": settings.dead_letter_bucket,
        "REP_WRITE_ATTEMPTS": "1",
    }
    path = tmp_path / "env.json"
    path.write_text(json.dumps(env))
    return path


def endpoint_flags(endpoints: dict[str, str]) -> list[str]:
    return [arg for region, url in endpoints.items() for arg in ("--endpoint", f"{region}={url}")]


def hand_off(conn: Connection, settings: Settings, *keys: str) -> None:
    ports = AwsPorts(settings, session=conn.session())
    for key in keys:
        ports.handoff(settings.targets[0], TargetWrite.from_json(write_of(settings, stamped(key, 10, A))), "")


def test_a_handoff_redrive_with_a_message_in_flight_says_not_done_and_exits_1(
    conn: Connection, deployment: Settings, endpoints: dict[str, str], tmp_path: Path, capsys
):
    settings = deployment
    queue = settings.targets[0].handoff_queue_url
    sqs = conn.client("sqs", A)
    # Given two handed-off writes, one of which the drain function has just received (invisible)
    hand_off(conn, settings, "held")
    sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=600)
    hand_off(conn, settings, "free")

    # When the operator redrives the queue only
    code = main(
        [
            "redrive",
            "--env-file",
            str(env_file(settings, tmp_path)),
            "--handoff-queue",
            B,
            "--skip-dead-letters",
            "--skip-discarded-batches",
            *endpoint_flags(endpoints),
        ]
    )

    # Then the visible write is applied, but the run is not reported clean: one write is in flight
    out = capsys.readouterr().out
    assert code == 1
    assert (
        f"handoff_queue:{B}: applied 1, stale 0, skipped 0, still_failing 0, dead_lettered 0, "
        "unrecoverable 0\n" in out
    )
    assert "  queue now: waiting 0, in_flight 1, delayed 0 (SQS approximate counts)\n" in out
    assert "  NOT DONE: 1 write(s) are still in the queue but were not replayed: in flight" in out
    assert "run this again with --wait 60" in out
    assert set(scan_all(conn, B, settings.targets[0].table)) == {"free"}


def test_a_delayed_handoff_message_is_reported_and_the_queue_is_not_clean(
    conn: Connection, deployment: Settings
):
    settings = deployment
    queue = settings.targets[0].handoff_queue_url
    # Given a write sent to the queue with a delay (not yet visible)
    body = json.dumps({"write": write_of(settings, stamped("later", 10, A))})
    conn.client("sqs", A).send_message(QueueUrl=queue, MessageBody=body, DelaySeconds=600)

    # When the queue is redriven
    report = Redrive(settings, AwsPorts(settings, session=conn.session())).handoff_queue(B)

    # Then nothing was replayed, the delayed write is counted, and the run is not ok
    assert report.counts["applied"] == 0
    assert report.queue == {"waiting": 0, "in_flight": 0, "delayed": 1}
    assert not report.ok
    assert report.to_json()["queue"] == {"waiting": 0, "in_flight": 0, "delayed": 1}


def test_with_wait_a_handoff_redrive_replays_what_becomes_visible_and_ends_clean(
    conn: Connection, deployment: Settings
):
    settings = deployment
    queue = settings.targets[0].handoff_queue_url
    # Given a write the drain function holds for one more second
    hand_off(conn, settings, "soon")
    conn.client("sqs", A).receive_message(QueueUrl=queue, MaxNumberOfMessages=1, VisibilityTimeout=1)

    # When the queue is redriven with time to wait for it
    report = Redrive(settings, AwsPorts(settings, session=conn.session())).handoff_queue(B, wait_seconds=30)

    # Then it is replayed in the same run and the queue is empty
    assert report.counts["applied"] == 1
    assert report.queue == {"waiting": 0, "in_flight": 0, "delayed": 0}
    assert report.ok
    assert set(scan_all(conn, B, settings.targets[0].table)) == {"soon"}


def too_large(pk: str, ts: int) -> dict[str, Any]:
    return stamped(pk, ts, A, body=BIG)


def test_a_too_large_dead_letter_is_resolved_as_stale_once_the_target_holds_a_newer_version(
    conn: Connection, deployment: Settings
):
    settings = deployment
    s3 = conn.client("s3", A)
    ports = AwsPorts(settings, session=conn.session())
    error = "ItemTooLarge: the item is 410000 bytes with its replication metadata"
    # Given two dead letters of items too large for the target; one key has since been shrunk at the
    # source and the smaller, newer version has replicated
    put_items(conn, B, settings.targets[0].table, [stamped("shrunk", 200, A, body="small")])
    shrunk = ports.dead_letter(
        {
            "reason": "target_write_rejected",
            "error": error,
            "write": write_of(settings, too_large("shrunk", 100)),
        }
    )
    still_big = ports.dead_letter(
        {
            "reason": "target_write_rejected",
            "error": error,
            "write": write_of(settings, too_large("big", 100)),
        }
    )

    # When the dead letters are redriven
    report = Redrive(settings, ports).dead_letters()

    # Then the superseded one is stale and removed; the other stays and is listed as needing a person
    assert (report.counts["stale"], report.counts["still_failing"]) == (1, 1)
    left = {o["Key"] for o in s3.list_objects_v2(Bucket=settings.dead_letter_bucket).get("Contents", [])}
    assert left == {still_big} and shrunk not in left
    [person] = report.needs_person
    assert person["entry"] == still_big
    assert person["reason"] == "target_write_rejected"
    assert person["fix"].startswith("the item is over DynamoDB's 400 KB with its replication metadata")
    assert "shrink it at the source" in person["fix"]
    assert scan_all(conn, B, settings.targets[0].table)["shrunk"]["body"] == {"S": "small"}


def test_the_redrive_command_lists_the_entries_that_need_a_person_and_not_the_transient_ones(
    conn: Connection, deployment: Settings, endpoints: dict[str, str], tmp_path: Path, capsys
):
    settings = deployment
    ports = AwsPorts(settings, session=conn.session())
    # Given a dead letter too large to ever write, and one for a target table that does not exist yet
    big = ports.dead_letter(
        {"reason": "target_write_rejected", "error": "", "write": write_of(settings, too_large("big", 1))}
    )
    ports.dead_letter(
        {
            "reason": "target_write_rejected",
            "write": write_of(settings, stamped("k", 1, A), table="not-yet"),
        }
    )

    # When the operator redrives the dead letters
    code = main(
        [
            "redrive",
            "--env-file",
            str(env_file(settings, tmp_path)),
            "--skip-discarded-batches",
            *endpoint_flags(endpoints),
        ]
    )

    # Then it exits 1 and names only the too-large entry as needing a person, with its fix
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "dead_letters: applied 0, stale 0, skipped 0, still_failing 2, dead_lettered 0, unrecoverable 0\n"
        in out
    )
    assert "  1 entry(ies) need a person (a redrive alone never clears them):\n" in out
    assert f"    {big}: target_write_rejected: the item is over DynamoDB's 400 KB" in out


# --- the function's settings on simulated regions -------------------------------------------------------


def test_redrive_of_a_function_reads_its_environment_from_what_local_up_wrote(
    conn: Connection, deployment: Settings, endpoints: dict[str, str], tmp_path: Path, capsys
):
    settings = deployment
    target = settings.targets[0]
    # Given the state `local up` leaves for a function: its environment, with its own endpoints
    variables = json.loads(env_file(settings, tmp_path).read_text())
    variables["REP_ENDPOINT_URLS"] = json.dumps(endpoints)
    write_function_config(tmp_path / "local", A, "orders-replicator", variables)
    # and one dead letter that now applies
    AwsPorts(settings, session=conn.session()).dead_letter(
        {"reason": "target_write_rejected", "write": write_of(settings, stamped("k", 5, A))}
    )

    # When the operator redrives the function by name, as in AWS, pointing at the local state
    code = main(
        [
            "redrive",
            "--function",
            "orders-replicator",
            "--region",
            A,
            "--local-state",
            str(tmp_path / "local"),
            "--skip-discarded-batches",
        ]
    )

    # Then it uses the function's settings and endpoints: the entry applies
    assert code == 0
    assert "dead_letters: applied 1, stale 0, skipped 0, still_failing 0" in capsys.readouterr().out
    assert scan_all(conn, B, target.table)["k"]["rep_ts"] == {"N": "5"}


def test_redrive_of_an_unknown_local_function_names_the_functions_that_exist(tmp_path: Path, capsys):
    # Given local state for one function
    write_function_config(tmp_path, A, "orders-replicator", {"REP_LOCAL_REGION": A})
    # When redrive names another
    code = main(["redrive", "--function", "orders-drain", "--region", A, "--local-state", str(tmp_path)])
    # Then it exits 2 and says which functions there are
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: --local-state: no function orders-drain in {A} under {tmp_path} "
        f"(there: {A}/orders-replicator)\n"
    )


def test_redrive_of_a_function_lambda_does_not_know_says_function_and_how_to_go_local(
    endpoints: dict[str, str], capsys
):
    # When redrive names a function that is not deployed in the (simulated) region
    code = main(["redrive", "--function", "orders-replicator", "--region", A, *endpoint_flags(endpoints)])
    # Then the error is about a function, not a table, and names the local ways
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(
        f"error: function orders-replicator not found in {A}: check --function and --region"
    )
    assert "pass --local-state <its --log-dir> (default out/local); otherwise --env-file" in err


def test_two_tables_sharing_a_bucket_each_redrive_only_their_own_dead_letters(
    conn: Connection, deployment: Settings, make_table: MakeTable
):
    # Given a second table of the deployment (REP_OBJECT_KEY_TABLE set), sharing the first's bucket
    first = deployment
    second_target = make_table(B)
    second = dataclasses.replace(
        first,
        source_table=make_table(A),
        targets=(dataclasses.replace(first.targets[0], table=second_target),),
        object_key_table="customers",
    )
    first_ports = AwsPorts(first, session=conn.session())
    second_ports = AwsPorts(second, session=conn.session())
    # and a dead letter of each table
    first_key = first_ports.dead_letter(
        {
            "reason": "target_write_rejected",
            "source_region": A,
            "write": write_of(first, stamped("o1", 100, A)),
        }
    )
    second_key = second_ports.dead_letter(
        {
            "reason": "target_write_rejected",
            "source_region": A,
            "write": write_of(second, stamped("c1", 100, A)),
        }
    )
    assert first_key.startswith(f"dead-letters/{A}/")
    assert second_key.startswith(f"dead-letters/tables/customers/{A}/")

    # When the second table's dead letters are redriven
    report = Redrive(second, second_ports).dead_letters()

    # Then only its own entry is replayed, into its own target table; the first table's stays put
    assert report.counts["applied"] == 1
    assert set(scan_all(conn, B, second_target)) == {"c1"}
    assert scan_all(conn, B, first.targets[0].table) == {}
    left = {
        o["Key"] for o in conn.client("s3", A).list_objects_v2(Bucket=first.dead_letter_bucket)["Contents"]
    }
    assert left == {first_key}
    # and the first table's redrive replays its own
    assert Redrive(first, first_ports).dead_letters().counts["applied"] == 1
    assert set(scan_all(conn, B, first.targets[0].table)) == {"o1"}


def test_a_discarded_batch_of_another_table_is_left_for_that_tables_redrive(
    conn: Connection, streamed: Settings, make_table: MakeTable
):
    # Given two tables of one deployment whose mappings share the region's bucket
    first = streamed
    second = dataclasses.replace(
        first,
        source_table=make_table(A, stream=True),
        targets=(Target(B, make_table(B)),),
        object_key_table="customers",
    )
    s3 = conn.client("s3", A)
    put_items(conn, A, first.source_table, [stamped("o1", 100, A)])
    put_items(conn, A, second.source_table, [stamped("c1", 100, A)])
    # and Lambda gave up on a batch of each table's stream
    keys = {}
    for settings in (first, second):
        _arn, _shard, records = stream_of(conn, settings.source_table)
        keys[settings.source_table] = STAND_IN_KEY.format(uuid=uuid.uuid4())
        discard(conn, settings, keys[settings.source_table], records)

    # When the second table's discarded batches are redriven
    report = Redrive(second, AwsPorts(second, session=conn.session())).discarded_batches()

    # Then only its own batch is replayed, into its own target; the first table's document stays
    assert report.counts == {**ALL_COUNTS_ZERO, "applied": 1}
    assert set(scan_all(conn, B, second.targets[0].table)) == {"c1"}
    assert scan_all(conn, B, first.targets[0].table) == {}
    left = {o["Key"] for o in s3.list_objects_v2(Bucket=first.dead_letter_bucket)["Contents"]}
    assert left == {keys[first.source_table]}
    # and the first table's redrive replays its own
    again = Redrive(first, AwsPorts(first, session=conn.session())).discarded_batches()
    assert again.counts == {**ALL_COUNTS_ZERO, "applied": 1}
    assert set(scan_all(conn, B, first.targets[0].table)) == {"o1"}
