"""The runbook rehearsals of docs/LOCAL.md, end to end on the session's mesh (as `local up` runs it).

Each test stages a situation of docs/OPERATIONS.md with `local fault`, runs the documented commands
(`redrive --function ... --local-state`, `verify --repair`, `local alarms`) through the command line, and
checks the data and the alarms. They share the session's cloud, so each heals what it broke (finally)
and works on its own keys. The session's alarms have 2 s periods (tests/local/conftest.py).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ddbrep.cli import main
from ddbrep.client import ReplicatedTable
from ddbrep.local.alarms import ALARM, INSUFFICIENT_DATA, OK, read_notifications
from ddbrep.local.cloud import LocalCloud
from ddbrep.local.mapping import mapping_uuid
from ddbrep.local.state import FUNCTIONS_DIR
from tests.local.support import TABLE, assert_drained, comparable, raw_item, wait_for

A, B, C = "us-east-1", "eu-west-1", "ap-southeast-2"


def log_dir(cloud: LocalCloud) -> Path:
    assert cloud.options.log_dir is not None
    return cloud.options.log_dir


def replicator(cloud: LocalCloud, region: str) -> tuple[str, dict[str, str]]:
    """The region's replicator function, as `local up` wrote it: its name and environment."""
    for path in sorted((log_dir(cloud) / FUNCTIONS_DIR / region).glob("*.json")):
        variables = json.loads(path.read_text())["Environment"]["Variables"]
        if "REP_TARGETS" in variables and path.stem.endswith("-replicator"):
            return path.stem, variables
    raise AssertionError(f"no replicator function written for {region}")


def fault(cloud: LocalCloud, *args: str) -> None:
    assert main(["local", "fault", "--log-dir", str(log_dir(cloud)), *args]) == 0


def redrive(cloud: LocalCloud, region: str, *args: str) -> int:
    name, _env = replicator(cloud, region)
    return main(
        ["redrive", "--function", name, "--region", region, "--local-state", str(log_dir(cloud)), *args]
    )


def gateway_flags(cloud: LocalCloud) -> list[str]:
    return [a for r in cloud.region_names for a in ("--endpoint", f"{r}={cloud.region(r).endpoint_url}")]


def dead_letters_of(cloud: LocalCloud, pk: str) -> set[str]:
    """The S3 keys of the source region's dead letters whose write is for ``pk``."""
    bucket = replicator(cloud, A)[1]["REP_DEAD_LETTER_BUCKET"]
    s3 = cloud.client(A, "s3")
    found = set()
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"dead-letters/{A}/").get("Contents", []):
        entry = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        if (entry.get("write") or {}).get("keys", {}).get("pk", {}).get("S") == pk:
            found.add(obj["Key"])
    return found


def key_of(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "a"}}


PREFIX = "orders-replication"
DEAD_LETTERS_A_TO_B = f"{PREFIX}-{A}-pairs-dead-letters-{A}-to-{B}-Critical"
DISCARDED_BATCHES_A = f"{PREFIX}-{A}-pairs-discarded-batches-{A}-Critical"
REPLICATOR_FAULTS_A = f"{PREFIX}-{A}-replicator-Fault-Count-Critical"


def notifications_since(cloud: LocalCloud, seen: int) -> list[dict[str, Any]]:
    """The notifications written to <log dir>/alarms.jsonl after the first ``seen``."""
    return read_notifications(log_dir(cloud))[seen:]


def notified(
    cloud: LocalCloud, seen: int, alarm: str, state: str, after: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """The first notification since ``seen`` (and after the notification ``after``) of ``alarm`` going
    to ``state``."""
    documents = notifications_since(cloud, seen)
    if after is not None:
        documents = documents[documents.index(after) + 1 :]
    for document in documents:
        if document["AlarmName"] == alarm and document["NewStateValue"] == state:
            return document
    return None


def wait_state(cloud: LocalCloud, alarm: str, state: str, timeout: float = 30) -> bool:
    return bool(wait_for(lambda: cloud.alarm_states()[alarm].state == state, timeout=timeout))


def test_every_alarm_of_the_shipped_templates_is_evaluated(mesh: LocalCloud):
    # Given the shipped app's templates (loading them refuses any alarm the evaluator cannot evaluate)
    in_templates = {
        str(resource["Properties"]["AlarmName"])
        for stack in mesh.assembly.stacks
        for resource in stack.resources.values()
        if resource.get("Type") == "AWS::CloudWatch::Alarm"
    }
    # Then every one of them is evaluated, with its intrinsics resolved to the local resources
    states = mesh.alarm_states()
    assert in_templates and set(states) == in_templates
    for state in states.values():
        assert all(isinstance(v, str) and "{" not in v for _k, v in state.alarm.query.dimensions)
        assert state.state in (OK, ALARM, INSUFFICIENT_DATA)
    # (the discarded-batches alarm watches the UUID the stand-in reports its discards with)
    stack = mesh.assembly.stacks_in(A)[0]
    (mapping,) = stack.stream_mappings
    dimensions = dict(states[DISCARDED_BATCHES_A].alarm.query.dimensions)
    assert dimensions == {"EventSourceMappingUUID": mapping_uuid(A, stack.account, mapping.logical_id)}


def test_rehearse_an_alarm_notification_and_its_return_to_ok(mesh: LocalCloud, prefix: str, capsys):
    pk = f"{prefix}alarmed"
    # Given the pair's dead-letter alarm at rest (an earlier test's dead letters are periods ago)
    assert wait_state(mesh, DEAD_LETTERS_A_TO_B, OK)
    seen = len(read_notifications(log_dir(mesh)))
    # When a write cannot be applied in the targets (local fault oversize: a dead letter per target)
    fault(mesh, "oversize", A, TABLE, "--key", f"pk={pk}", "--key", "sk=a")
    # Then the alarm goes to ALARM and its notification is written, shaped as CloudWatch's SNS message
    alarmed = wait_for(lambda: notified(mesh, seen, DEAD_LETTERS_A_TO_B, ALARM), timeout=30)
    assert alarmed, notifications_since(mesh, seen)
    assert alarmed["OldStateValue"] == OK and alarmed["Region"] == "US East (N. Virginia)"
    assert alarmed["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [")
    assert alarmed["Trigger"]["Metrics"][0]["MetricStat"]["Metric"]["MetricName"] == "DeadLettered"
    # And `local alarms` shows it
    capsys.readouterr()
    assert main(["local", "alarms", "--log-dir", str(log_dir(mesh)), "--region", A, "--last", "50"]) == 0
    out = capsys.readouterr().out
    assert f"OK -> ALARM  {DEAD_LETTERS_A_TO_B}: Threshold Crossed" in out

    # When the operator follows the runbook (Redrive): the item is made smaller at the source, and the
    # dead letters are redriven (resolved as stale)
    ReplicatedTable(mesh.client(A), TABLE, A).put_item({**key_of(pk), "payload": {"S": "small"}})
    assert wait_for(lambda: (raw_item(mesh, B, key_of(pk)) or {}).get("payload") == {"S": "small"})
    redrive(mesh, A, "--skip-discarded-batches")
    # Then the alarm is back to OK, notified, and no dead letter of the key is left
    back = wait_for(lambda: notified(mesh, seen, DEAD_LETTERS_A_TO_B, OK, after=alarmed), timeout=30)
    assert back and back["OldStateValue"] == ALARM and back["StateChangeTime"] > alarmed["StateChangeTime"]
    assert wait_state(mesh, DEAD_LETTERS_A_TO_B, OK)
    assert dead_letters_of(mesh, pk) == set()


def test_rehearse_redrive_of_an_item_too_large_for_the_targets(mesh: LocalCloud, prefix: str, capsys):
    pk = f"{prefix}big"
    # Given (local fault oversize) an item that fits the source but not a target with its metadata
    fault(mesh, "oversize", A, TABLE, "--key", f"pk={pk}", "--key", "sk=a")
    entries = wait_for(lambda: (found := dead_letters_of(mesh, pk)) and len(found) == 2 and found, timeout=60)
    assert entries, "no dead letter per target"
    capsys.readouterr()

    # When the operator redrives (runbook: Redrive)
    code = redrive(mesh, A, "--skip-discarded-batches")
    # Then it does not say done: both entries are listed as needing a person, with the fix
    out = capsys.readouterr().out
    assert code == 1
    for entry in entries:
        assert f"    {entry}: target_write_rejected: the item is over DynamoDB's 400 KB" in out

    # When the person shrinks the item at the source, it replicates, and the operator redrives again
    ReplicatedTable(mesh.client(A), TABLE, A).put_item({**key_of(pk), "payload": {"S": "small"}})
    for region in (B, C):
        assert wait_for(
            lambda r=region: (raw_item(mesh, r, key_of(pk)) or {}).get("payload") == {"S": "small"}
        )
    redrive(mesh, A, "--skip-discarded-batches")
    # Then both entries are resolved as stale and gone; the targets keep the small version
    out = capsys.readouterr().out
    assert dead_letters_of(mesh, pk) == set()
    assert not any(entry in out for entry in entries)
    assert raw_item(mesh, B, key_of(pk)) == raw_item(mesh, C, key_of(pk))


def discarded_batches(cloud: LocalCloud) -> set[str]:
    """The S3 keys of the documents the source region's stream mapping wrote for batches it gave up on."""
    bucket = replicator(cloud, A)[1]["REP_DEAD_LETTER_BUCKET"]
    listing = cloud.client(A, "s3").list_objects_v2(Bucket=bucket, Prefix="aws/lambda/")
    return {obj["Key"] for obj in listing.get("Contents", [])}


def test_rehearse_a_discarded_batch_and_its_redrive(mesh: LocalCloud, prefix: str, capsys):
    pk = f"{prefix}discarded"
    assert_drained(mesh, 60)
    before = discarded_batches(mesh)
    assert wait_state(mesh, DISCARDED_BATCHES_A, OK)
    seen = len(read_notifications(log_dir(mesh)))
    try:
        # Given us-east-1's replicator failing every invocation (local fault break: a bad deploy)
        fault(mesh, "break", A, "--seconds", "300")
        # When a write is made there: the mapping retries the batch, then gives up on it (runbook:
        # Discarded batch) and describes it in the dead-letter bucket
        ReplicatedTable(mesh.client(A), TABLE, A).put_item({**key_of(pk), "body": {"S": "v1"}})
        documents = wait_for(lambda: discarded_batches(mesh) - before, timeout=90)
        assert documents, "the batch was not discarded"
        assert raw_item(mesh, B, key_of(pk)) is None and raw_item(mesh, C, key_of(pk)) is None
        # And the region's alarms say so (runbook: Alarm notifications): the replicator's errors while
        # it retried, then the discarded batch
        alarmed = {
            alarm: wait_for(lambda a=alarm: notified(mesh, seen, a, ALARM), timeout=10)
            for alarm in (REPLICATOR_FAULTS_A, DISCARDED_BATCHES_A)
        }
        assert all(alarmed.values()), notifications_since(mesh, seen)
    finally:
        fault(mesh, "heal", A)
    capsys.readouterr()
    # When the cause is fixed and the operator redrives the discarded batches
    code = redrive(mesh, A, "--skip-dead-letters")
    # Then the batch's write is in every region, and its document is gone
    out = capsys.readouterr().out
    assert code == 0, out
    for region in (B, C):
        assert comparable(raw_item(mesh, region, key_of(pk))) == comparable(raw_item(mesh, A, key_of(pk)))
    assert not documents & discarded_batches(mesh)
    # And both alarms are back to OK
    for alarm, document in alarmed.items():
        assert wait_for(lambda a=alarm, d=document: notified(mesh, seen, a, OK, after=d), timeout=30), alarm
        assert wait_state(mesh, alarm, OK)


def test_rehearse_a_target_table_that_disappears_and_the_handoff_redrive(
    mesh: LocalCloud, prefix: str, capsys
):
    pk = f"{prefix}handed"
    try:
        # Given eu-west-1's table gone for the other regions (local fault hide-table)
        fault(mesh, "hide-table", B, TABLE, "--seconds", "300")
        # When a write is made in us-east-1: it reaches ap-southeast-2, and waits in the handoff queue
        ReplicatedTable(mesh.client(A), TABLE, A).put_item({**key_of(pk), "body": {"S": "v1"}})
        assert wait_for(lambda: raw_item(mesh, C, key_of(pk)), timeout=60)
        assert raw_item(mesh, B, key_of(pk)) is None
    finally:
        fault(mesh, "heal", B)
    capsys.readouterr()
    # When the table is back and the operator redrives the queue (runbook: Handoff), waiting for writes
    # the drain function holds
    code = redrive(
        mesh, A, "--handoff-queue", B, "--skip-dead-letters", "--skip-discarded-batches", "--wait", "60"
    )
    # Then the queue is reported empty only when it is, and the write is in eu-west-1
    out = capsys.readouterr().out
    assert code == 0, out
    assert "  queue now: waiting 0, in_flight 0, delayed 0 (SQS approximate counts)\n" in out
    assert comparable(raw_item(mesh, B, key_of(pk))) == comparable(raw_item(mesh, A, key_of(pk)))


def test_rehearse_verify_and_repair_while_a_replicator_is_stopped(mesh: LocalCloud, prefix: str, capsys):
    pk = f"{prefix}missed"
    assert_drained(mesh, 60)
    verify = [
        "verify",
        "--table",
        TABLE,
        "--source",
        A,
        "--target",
        B,
        "--samples",
        "1000",
        *gateway_flags(mesh),
    ]
    try:
        # Given us-east-1's replicator stopped (local fault stop) and a write there
        fault(mesh, "stop", A)
        ReplicatedTable(mesh.client(A), TABLE, A).put_item({**key_of(pk), "body": {"S": "v1"}})
        capsys.readouterr()
        # When the operator verifies the pair (runbook: Verify and repair)
        code = main([*verify, "--json"])
        report = json.loads(capsys.readouterr().out)
        # Then the key is reported missing in eu-west-1
        assert code == 1
        assert key_of(pk) in [sample["key"] for sample in report["samples"]["missing"]]
        # When it is repaired, and verified again
        assert main([*verify, "--repair"]) == 0
        assert main(verify) == 0
        # Then eu-west-1 holds the source's version
        assert raw_item(mesh, B, key_of(pk))["rep_ts"] == raw_item(mesh, A, key_of(pk))["rep_ts"]
    finally:
        fault(mesh, "resume", A)
    # And once resumed, the replicator's own delivery changes nothing (stale)
    assert_drained(mesh, 60)
    assert raw_item(mesh, B, key_of(pk))["body"] == {"S": "v1"}


def test_rehearse_a_backfill_of_data_written_while_replication_was_off(
    mesh: LocalCloud, prefix: str, capsys, tmp_path: Path
):
    keys = [key_of(f"{prefix}old-{i}") for i in range(12)]
    assert_drained(mesh, 60)
    try:
        # Given us-east-1's replicator stopped (local fault stop) and items written there meanwhile:
        # data the other regions never received, as before replication started
        fault(mesh, "stop", A)
        table = ReplicatedTable(mesh.client(A), TABLE, A)
        for i, key in enumerate(keys):
            table.put_item({**key, "body": {"S": f"v{i}"}})
        assert all(raw_item(mesh, B, key) is None for key in keys)
        capsys.readouterr()

        # When the operator backfills the other regions (runbook: Backfill), twice (a re-run)
        def backfill(checkpoint: str, *flags: str) -> list[str]:
            targets = ["--target", B, "--target", C, "--checkpoint", str(tmp_path / checkpoint)]
            return ["backfill", "--source", A, "--table", TABLE, *targets, *flags, *gateway_flags(mesh)]

        assert main(backfill("first.json", "--no-progress")) == 0
        first = capsys.readouterr().out
        assert main(backfill("again.json", "--json", "--read-first")) == 0
        second = json.loads(capsys.readouterr().out)["totals"]
    finally:
        fault(mesh, "resume", A)
    # Then every item is in both regions with the source's version, and the re-run wrote nothing
    for key in keys:
        for region in (B, C):
            assert comparable(raw_item(mesh, region, key)) == comparable(raw_item(mesh, A, key))
    assert "backfill done:" in first and "failed 0" in first
    # (the table holds other tests' items too: every copy already there is "unchanged", none failed)
    assert second["unchanged"] >= 2 * len(keys) and second["failed"] == 0
    # And once resumed, the replicator's own delivery changes nothing (the copies hold the same version)
    assert_drained(mesh, 60)
    assert all(raw_item(mesh, B, key)["body"] == raw_item(mesh, A, key)["body"] for key in keys)


def test_a_notification_is_published_to_an_alarm_topic_that_exists(mesh: LocalCloud, prefix: str):
    # Given a topic created by hand in us-east-1's engine (the runtime creates none), with a queue
    # subscribed, and an alarm whose AlarmActions name it (as with alarms.topic_arns)
    sns, sqs = mesh.region(A).client("sns"), mesh.region(A).client("sqs")
    topic = sns.create_topic(Name=f"{prefix}alarms")["TopicArn"]
    queue = sqs.create_queue(QueueName=f"{prefix}inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(
        TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"}
    )
    alarm = replace(
        mesh.alarm_states()[DEAD_LETTERS_A_TO_B].alarm,
        alarm_actions=(topic, f"arn:aws:sns:{A}:{mesh.assembly.stacks[0].account}:{prefix}absent"),
    )
    document = {"AlarmName": alarm.name, "NewStateValue": ALARM, "Region": "US East (N. Virginia)"}
    # When its notification is published
    mesh._publish_alarm(alarm, document)
    # Then the topic's subscriber receives the document (and the absent topic is skipped)
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2).get("Messages", [])
    assert [json.loads(m["Body"]) for m in messages] == [document]
