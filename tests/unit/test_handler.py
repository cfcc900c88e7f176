"""The replicator and drain functions end to end against moto (in-process), with Lambda-shaped events.

Exact batchItemFailures, metrics emitted, dead-lettered content, handoff when one target is down.
"""

from __future__ import annotations

import copy
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from ddbrep.local.worker import LambdaContext
from tests.unit.conftest import AP, EU, LOCAL
from tests.unit.factories import item, record

EVENTS = Path(__file__).parent.parent / "fixtures" / "events"
UNREACHABLE = "http://127.0.0.1:9"  # nothing listens on the discard port: connection refused at once


def Context() -> LambdaContext:
    return LambdaContext.for_function("replicator", timeout_seconds=60)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def load_function(module: str) -> Any:
    """Import the function module afresh (it reads its settings at import, like a Lambda cold start)."""
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def table_items(region: str) -> dict[str, dict[str, Any]]:
    items = boto3.client("dynamodb", region_name=region).scan(TableName="orders")["Items"]
    return {i["pk"]["S"]: i for i in items}


def sqs_event(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The drain function's event for messages received from a handoff queue (Lambda's SQS shape)."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:{LOCAL}:123456789012:orders-handoff-{AP}",
                "awsRegion": LOCAL,
                "md5OfBody": "",
            }
            for m in messages
        ]
    }


def emf_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def metric_total(lines: list[dict[str, Any]], name: str, **dims: str) -> float:
    total = 0.0
    for line in lines:
        if name in line and all(line.get(k) == v for k, v in dims.items()):
            value = line[name]
            total += sum(value) if isinstance(value, list) else value
    return total


def test_a_mesh_batch_reaches_every_target(aws: dict, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a batch with local writes, a helper delete, an echo and a TTL removal
    handler = load_function("replicator.handler")
    # When the replicator runs
    response = handler.lambda_handler(load_event("mesh_batch.json"), Context())
    # Then nothing failed, and both targets hold the latest version of each local write
    assert response == {"batchItemFailures": []}
    for region in (EU, AP):
        items = table_items(region)
        assert set(items) == {"order-1", "order-2"}  # the echo (order-3) and the TTL removal are not sent
        assert items["order-1"]["total"] == {"N": "12"}
        assert items["order-2"]["rep_deleted"] == {"BOOL": True}
    # And the metrics say so, per region pair
    lines = emf_lines(capsys.readouterr().out)
    for region in (EU, AP):
        pair = {"SourceRegion": LOCAL, "TargetRegion": region}
        assert metric_total(lines, "TombstonesWritten", **pair) == 1
        # the applied writes are ReplicationLatency's SampleCount: one value per write, one write per key
        # (coalesced); RecordsReplicated, the same number, is not emitted (core/metrics_names.py)
        assert (
            len(
                [
                    v
                    for line in lines
                    if line.get("TargetRegion") == region
                    for v in line.get("ReplicationLatency", [])
                ]
            )
            == 2
        )
    assert not [line for line in lines if "RecordsReplicated" in line]
    assert metric_total(lines, "EchoSkipped", SourceRegion=LOCAL) == 1
    assert metric_total(lines, "TtlSkipped", SourceRegion=LOCAL) == 1
    assert all("service" not in line for line in lines)


def test_a_redelivered_batch_is_harmless(aws: dict, capsys: pytest.CaptureFixture[str]) -> None:
    handler = load_function("replicator.handler")
    event = load_event("mesh_batch.json")
    handler.lambda_handler(event, Context())
    before = {r: table_items(r) for r in (EU, AP)}
    capsys.readouterr()
    # When Lambda delivers the same batch again
    assert handler.lambda_handler(copy.deepcopy(event), Context()) == {"batchItemFailures": []}
    # Then nothing changes, and every write counts as stale
    assert {r: table_items(r) for r in (EU, AP)} == before
    lines = emf_lines(capsys.readouterr().out)
    assert metric_total(lines, "StaleSkipped", SourceRegion=LOCAL, TargetRegion=EU) == 2
    assert not [line for line in lines if "ReplicationLatency" in line]  # nothing applied


def test_malformed_records_are_dead_lettered_and_the_rest_applied(aws: dict, capsys) -> None:
    # Given a batch with one good record and four malformed ones
    handler = load_function("replicator.handler")
    response = handler.lambda_handler(load_event("malformed_batch.json"), Context())
    # Then the batch succeeds, the good record is replicated, and each bad one is in the store with a reason
    assert response == {"batchItemFailures": []}
    assert set(table_items(EU)) == {"order-9"}
    s3 = boto3.client("s3", region_name=LOCAL)
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket="orders-replicator", Prefix="dead-letters/")["Contents"]
    ]
    entries = [json.loads(s3.get_object(Bucket="orders-replicator", Key=k)["Body"].read()) for k in keys]
    reasons = sorted(e["error"] for e in entries)
    assert len(entries) == 4
    assert all(e["reason"] == "malformed_record" and e["record"] for e in entries)
    assert any("rep_ts must be a non-negative whole number" in r for r in reasons)
    assert any("no dynamodb.Keys" in r for r in reasons)
    assert any("unknown eventName 'UPSERT'" in r for r in reasons)
    assert any("NEW_AND_OLD_IMAGES (it is KEYS_ONLY)" in r for r in reasons)
    assert metric_total(emf_lines(capsys.readouterr().out), "MalformedRecords", SourceRegion=LOCAL) == 4


def test_an_item_too_large_once_stamped_is_dead_lettered(aws: dict) -> None:
    handler = load_function("replicator.handler")
    big = item("huge", "us-east-1", 1_700_000_000_000_000, blob="x" * 410_000)
    response = handler.lambda_handler({"Records": [record("INSERT", new=big, seq=40)]}, Context())
    assert response == {"batchItemFailures": []}
    s3 = boto3.client("s3", region_name=LOCAL)
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket="orders-replicator", Prefix="dead-letters/")["Contents"]
    ]
    entries = [json.loads(s3.get_object(Bucket="orders-replicator", Key=k)["Body"].read()) for k in keys]
    assert {e["target_region"] for e in entries} == {EU, AP}
    # refused before sending, with the size and the fix (DynamoDB would answer a ValidationException)
    assert all(
        e["reason"] == "target_write_rejected" and "ItemTooLarge" in e["error"] and "409600" in e["error"]
        for e in entries
    )
    assert all(e["record"]["dynamodb"]["NewImage"]["blob"]["S"] == "x" * 410_000 for e in entries)


def test_one_target_down_is_handed_off_while_the_other_gets_every_write(aws: dict, capsys) -> None:
    # Given ap-southeast-2 unreachable
    aws["monkeypatch"].setenv("REP_ENDPOINT_URLS", json.dumps({AP: UNREACHABLE}))
    handler = load_function("replicator.handler")
    # When a batch is replicated
    response = handler.lambda_handler(load_event("mesh_batch.json"), Context())
    # Then the batch succeeds, eu-west-1 has every write, and ap-southeast-2's queue holds the rest in full
    assert response == {"batchItemFailures": []}
    assert set(table_items(EU)) == {"order-1", "order-2"}
    sqs = boto3.client("sqs", region_name=LOCAL)
    messages = sqs.receive_message(QueueUrl=aws["queues"][AP], MaxNumberOfMessages=10)["Messages"]
    writes = {json.loads(m["Body"])["write"]["keys"]["pk"]["S"]: json.loads(m["Body"]) for m in messages}
    assert set(writes) == {"order-1", "order-2"}
    assert writes["order-1"]["write"]["item"]["total"] == {"N": "12"}
    assert (
        "EndpointConnectionError" in writes["order-1"]["reason"]
        or "NetworkError" in writes["order-1"]["reason"]
    )
    assert metric_total(emf_lines(capsys.readouterr().out), "HandedOff", TargetRegion=AP) == 2

    # When the region is back and the drain function replays the queue
    aws["monkeypatch"].delenv("REP_ENDPOINT_URLS")
    aws["monkeypatch"].setenv("REP_DRAIN_TARGET_REGION", AP)
    drain = load_function("replicator.drain")
    assert drain.lambda_handler(sqs_event(messages), Context()) == {"batchItemFailures": []}
    # Then ap-southeast-2 converges with eu-west-1
    assert table_items(AP) == table_items(EU)


def test_a_failed_handoff_reports_the_earliest_sequence_number_of_the_key(aws: dict) -> None:
    # Given ap-southeast-2 unreachable AND its handoff queue missing
    aws["monkeypatch"].setenv("REP_ENDPOINT_URLS", json.dumps({AP: UNREACHABLE}))
    aws["monkeypatch"].setenv(
        "REP_TARGETS",
        json.dumps(
            [
                {"region": EU, "table": "orders", "handoff_queue_url": aws["queues"][EU]},
                {"region": AP, "table": "orders", "handoff_queue_url": aws["queues"][AP] + "-missing"},
            ]
        ),
    )
    handler = load_function("replicator.handler")
    # When a batch with two records of order-1 and one of order-2 is replicated
    response = handler.lambda_handler(load_event("mesh_batch.json"), Context())
    # Then each failed key reports its earliest record: order-1 -> seq 1, order-2 -> seq 3
    failed = sorted(f["itemIdentifier"] for f in response["batchItemFailures"])
    assert failed == [str(100_000_000_000_000_000_000 + 1), str(100_000_000_000_000_000_000 + 3)]
    # And eu-west-1 still received everything
    assert set(table_items(EU)) == {"order-1", "order-2"}


def test_an_item_too_large_for_a_queue_message_is_handed_off_through_s3(aws: dict) -> None:
    # Given ap-southeast-2 unreachable and a 300 KB item (over the 200 KB inline limit of a handoff message)
    aws["monkeypatch"].setenv("REP_ENDPOINT_URLS", json.dumps({AP: UNREACHABLE}))
    handler = load_function("replicator.handler")
    big = item("big", "us-east-1", 1_700_000_000_000_000, blob="y" * 300_000)
    # When it is replicated
    assert handler.lambda_handler({"Records": [record("INSERT", new=big, seq=50)]}, Context()) == {
        "batchItemFailures": []
    }
    # Then the queue holds a pointer, and the content is in the bucket under handoff/
    sqs = boto3.client("sqs", region_name=LOCAL)
    (message,) = sqs.receive_message(QueueUrl=aws["queues"][AP], MaxNumberOfMessages=10)["Messages"]
    pointer = json.loads(message["Body"])["s3"]
    assert pointer["bucket"] == "orders-replicator" and pointer["key"].startswith(f"handoff/{AP}/")
    # And once the region is back, the drain function follows the pointer and applies the write
    aws["monkeypatch"].delenv("REP_ENDPOINT_URLS")
    aws["monkeypatch"].setenv("REP_DRAIN_TARGET_REGION", AP)
    drain = load_function("replicator.drain")
    assert drain.lambda_handler(sqs_event([message]), Context()) == {"batchItemFailures": []}
    assert table_items(AP)["big"]["blob"] == {"S": "y" * 300_000}


def test_an_invocation_prints_one_metric_document_per_target_and_no_other_line(
    aws: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a batch replicated to two targets (the source also counts records of its own)
    handler = load_function("replicator.handler")
    # When the replicator runs
    assert handler.lambda_handler(load_event("mesh_batch.json"), Context()) == {"batchItemFailures": []}
    # Then the log holds exactly one EMF document per target region, the source's metrics inside one
    # of them under the [SourceRegion] dimension set, and no line per record (log bytes are billed)
    out = capsys.readouterr().out.splitlines()
    lines = emf_lines("\n".join(out))
    assert len(out) == len(lines) == 2
    assert sorted(line["TargetRegion"] for line in lines) == sorted([EU, AP])
    source_sets = [
        d
        for line in lines
        for d in line["_aws"]["CloudWatchMetrics"]
        if d["Dimensions"] == [["SourceRegion"]]
    ]
    assert len(source_sets) == 1
    assert {m["Name"] for m in source_sets[0]["Metrics"]} >= {"RecordsReceived", "EchoSkipped", "TtlSkipped"}


def test_with_a_flush_interval_a_warm_replicator_prints_two_invocations_as_one(
    aws: dict, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given function.metrics_flush_seconds: 60 (REP_METRICS_FLUSH_SECONDS)
    monkeypatch.setenv("REP_METRICS_FLUSH_SECONDS", "60")
    handler = load_function("replicator.handler")
    event = load_event("mesh_batch.json")
    # When a warm environment runs a batch, then the same batch again (all stale: no failure)
    handler.lambda_handler(event, Context())
    assert emf_lines(capsys.readouterr().out) == []  # held for the interval
    handler.lambda_handler(copy.deepcopy(event), Context())
    assert emf_lines(capsys.readouterr().out) == []
    # Then the flush prints both invocations' metrics in one document per target
    handler.metrics.flush()
    lines = emf_lines(capsys.readouterr().out)
    assert sorted(line["TargetRegion"] for line in lines) == sorted([EU, AP])
    assert metric_total(lines, "StaleSkipped", SourceRegion=LOCAL, TargetRegion=EU) == 2  # the 2nd batch
    assert metric_total(lines, "RecordsReceived", SourceRegion=LOCAL) == 2 * len(event["Records"])
