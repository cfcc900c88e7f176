"""Redrive of the dead-letter store and of a handoff queue, against simulated regions."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from ddbrep.tools.aws import Connection
from ddbrep.tools.redrive import Redrive
from replicator.adapters import AwsPorts
from replicator.core.metadata import AttributeNames, Version
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
    assert report.counts == {"applied": 2, "stale": 1, "skipped": 0, "still_failing": 3, "dead_lettered": 0}
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
    conn: Connection, deployment: Settings
):
    settings = deployment
    ports = AwsPorts(settings, session=conn.session())
    target = settings.targets[0]
    sqs = conn.client("sqs", A)
    # Given a handoff queue with a write that now applies and one whose table is still missing
    good = TargetWrite.from_json(write_of(settings, stamped("h1", 10, A)))
    bad = TargetWrite.from_json(write_of(settings, stamped("h2", 10, A), table="still-missing"))
    ports.handoff(target, good, "retryable: ServiceUnavailable")
    ports.handoff(target, bad, "configuration: ResourceNotFoundException")

    # When the queue is redriven
    report = Redrive(settings, ports).handoff_queue(B)

    # Then one applied, one still fails and is back in the queue, visible
    assert (report.counts["applied"], report.counts["still_failing"]) == (1, 1)
    assert "h1" in scan_all(conn, B, target.table)
    left = sqs.receive_message(QueueUrl=target.handoff_queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(msg["Body"])["write"]["table"] for msg in left] == ["still-missing"]
