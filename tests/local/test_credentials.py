"""Assumed-role credentials that expire while a process lives, against the local gateways.

moto never expires credentials; the gateways do, as AWS does (faults.CredentialLedger), with the
session shortened to seconds. First the enforcement itself (and the old static-key client failing
on it), then the deployed replicator writing cross-account across several credential lifetimes, and
the runbook's rehearsal (docs/LOCAL.md): the role refused by STS (`local fault deny-role`), the pair's
writes handed off, then replayed by the drain once the role is allowed again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ddbrep.cli import main
from ddbrep.client import ReplicatedTable
from ddbrep.local.alarms import ALARM, OK
from ddbrep.local.cloud import LocalCloud, RuntimeOptions
from ddbrep.local.faults import EXPIRED_TOKEN_MESSAGE, CredentialLedger, Proxy, access_denied_message
from ddbrep.local.regions import DUMMY_CREDENTIALS, Region, start_region, stop_region
from ddbrep.local.synth import app_context, synthesize
from ddbrep.local.templates import load_assembly
from replicator.client_factory import ClientFactory
from replicator.core import metrics_names as m
from tests.local.support import TABLE, assert_drained, comparable, raw_item, wait_for

REGION = "eu-west-1"
SESSION_SECONDS = 2


@pytest.fixture(scope="module")
def region(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Region]:
    started = start_region(REGION, tmp_path_factory.mktemp("credentials"))
    try:
        started.client("dynamodb").create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield started
    finally:
        stop_region(started)


@pytest.fixture
def gateway(region: Region) -> Iterator[tuple[Proxy, CredentialLedger]]:
    ledger = CredentialLedger(session_seconds=SESSION_SECONDS)
    proxy = Proxy(region.engine_url, credentials=ledger).start()
    try:
        yield proxy, ledger
    finally:
        proxy.stop()


def base_session() -> boto3.session.Session:
    return boto3.session.Session(
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def role_arn(region: Region) -> str:
    account = region.client("sts").get_caller_identity()["Account"]  # the server's own account
    return f"arn:aws:iam::{account}:role/orders-replica-writer"


def static_key_clients(url: str, role: str) -> tuple[Any, Any, str]:
    """What AwsPorts did before: one AssumeRole, its keys copied into clients for good."""
    sts = base_session().client("sts", region_name=REGION, endpoint_url=url)
    creds = sts.assume_role(RoleArn=role, RoleSessionName="static")["Credentials"]
    keys = {
        "aws_access_key_id": creds["AccessKeyId"],
        "aws_secret_access_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }
    session = boto3.session.Session(**keys)
    dynamodb = session.client("dynamodb", region_name=REGION, endpoint_url=url)
    sqs = session.client("sqs", region_name=REGION, endpoint_url=url)
    return dynamodb, sqs, creds["AccessKeyId"]


def put(client: Any, pk: str) -> None:
    client.put_item(TableName="orders", Item={"pk": {"S": pk}})


def test_the_gateway_refuses_credentials_past_their_expiration_as_aws_does(
    region: Region, gateway: tuple[Proxy, CredentialLedger]
) -> None:
    proxy, ledger = gateway
    # Given clients built from static keys of one AssumeRole through the gateway
    dynamodb, sqs, key = static_key_clients(proxy.url, role_arn(region))
    put(dynamodb, "static-before")
    # When the credentials' session ends
    assert wait_for(lambda: ledger.is_expired(key, time.time()), timeout=SESSION_SECONDS + 5)
    # Then DynamoDB answers ExpiredTokenException and SQS ExpiredToken, HTTP 400, with AWS's message
    with pytest.raises(ClientError) as dynamodb_error:
        put(dynamodb, "static-after")
    with pytest.raises(ClientError) as sqs_error:
        sqs.list_queues()
    for raised, code in ((dynamodb_error, "ExpiredTokenException"), (sqs_error, "ExpiredToken")):
        response = raised.value.response
        assert response["Error"]["Code"] == code
        assert response["Error"]["Message"] == EXPIRED_TOKEN_MESSAGE
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ledger.rejected == 2
    # And the write after expiry never reached the table
    assert "Item" not in region.client("dynamodb").get_item(
        TableName="orders", Key={"pk": {"S": "static-after"}}
    )


def test_a_factory_client_keeps_writing_across_expirations(
    region: Region, gateway: tuple[Proxy, CredentialLedger]
) -> None:
    proxy, ledger = gateway
    # Given one client from the factory, as a container keeps it
    factory = ClientFactory(
        base_session(), Config(retries={"total_max_attempts": 1}), endpoint_urls={REGION: proxy.url}
    )
    client = factory.client("dynamodb", REGION, role_arn(region))
    put(client, "factory-0")
    first_key = factory.credentials(REGION, role_arn(region)).access_key
    # When it keeps writing until its first credentials have expired, and after
    written = 1
    while not ledger.is_expired(first_key, time.time()):
        put(client, f"factory-{written}")
        written += 1
        time.sleep(0.2)
    put(client, f"factory-{written}")
    # Then every write landed, none was refused, and the gateway issued new credentials
    engine = region.client("dynamodb")
    for n in range(written + 1):
        assert "Item" in engine.get_item(TableName="orders", Key={"pk": {"S": f"factory-{n}"}}), n
    assert ledger.rejected == 0
    assert len(ledger.expirations) > 1


# --- the deployment: a cross-account pair replicated by the unmodified functions ----------------------


def pair_role(replication: dict[str, Any]) -> str:
    return str(replication["pairs"][f"us-east-1->{REGION}"]["role_arn"])


def cross_account_replication() -> dict[str, Any]:
    replication: dict[str, Any] = dict(app_context()["replication"])
    account = replication["account"]
    replication["regions"] = ["us-east-1", REGION]
    # The role lives in the target table's account (the local engine keeps one account per region)
    replication["pairs"] = {
        f"us-east-1->{REGION}": {"role_arn": f"arn:aws:iam::{account}:role/orders-writer"}
    }
    return replication


@pytest.fixture(scope="module")
def cross_account(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    assembly = load_assembly(synthesize(cross_account_replication()))
    options = RuntimeOptions(
        max_visibility_timeout=2,
        sts_session_seconds=SESSION_SECONDS,
        log_dir=Path(tmp_path_factory.mktemp("cross-account")),
        seed=7,
        alarm_period_seconds=2,  # the runbook's alarm in seconds (tests/local/conftest.py)
        alarm_interval_seconds=0.5,
    )
    with LocalCloud(assembly, options) as cloud:
        yield cloud


def test_cross_account_replication_keeps_flowing_after_the_first_credentials_expire(
    cross_account: LocalCloud, prefix: str
) -> None:
    cloud = cross_account
    ledger = cloud.credentials[REGION]
    handed_off = cloud.metrics.total(m.HANDED_OFF)  # the module's cloud: another test may hand off
    writer = ReplicatedTable(cloud.client("us-east-1"), TABLE, "us-east-1")
    # Given the replicator has assumed its role in eu-west-1 for a first write
    writer.put_item({"pk": {"S": f"{prefix}0"}, "sk": {"S": "0"}})
    assert wait_for(lambda: ledger.expirations, timeout=30)
    first = min(ledger.expirations.items(), key=lambda kv: kv[1])[0]
    # When writes keep coming until those credentials have expired, and after
    count = 1
    while not ledger.is_expired(first, time.time()):
        writer.put_item({"pk": {"S": f"{prefix}{count}"}, "sk": {"S": "0"}})
        count += 1
        time.sleep(0.3)
    for n in range(count, count + 5):
        writer.put_item({"pk": {"S": f"{prefix}{n}"}, "sk": {"S": "0"}})
    count += 5
    # Then every write reaches eu-west-1 directly: none refused, none handed off, credentials renewed
    assert_drained(cloud, 60)
    missing = [
        n
        for n in range(count)
        if raw_item(cloud, REGION, {"pk": {"S": f"{prefix}{n}"}, "sk": {"S": "0"}}) is None
    ]
    assert missing == []
    assert ledger.rejected == 0
    assert cloud.metrics.total(m.HANDED_OFF) == handed_off
    assert len(ledger.expirations) > 1


def handoff_reason(cloud: LocalCloud, pk: str, timeout: float) -> str | None:
    """The ``reason`` of the handed-off write for ``pk`` in us-east-1's queue for REGION, read as an
    operator polls the queue: received when the drain does not hold it, and made visible again."""
    sqs = cloud.client("us-east-1", "sqs")
    url = sqs.get_queue_url(QueueName=f"{TABLE}-handoff-{REGION}")["QueueUrl"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, WaitTimeSeconds=1).get("Messages", []):
            sqs.change_message_visibility(
                QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
            )
            body = json.loads(message["Body"])
            if body["write"]["keys"]["pk"]["S"] == pk:
                return str(body["reason"])
    return None


def test_rehearse_a_role_sts_refuses_and_the_drain_replaying_once_it_is_allowed(
    cross_account: LocalCloud, prefix: str
) -> None:
    cloud = cross_account
    assert cloud.options.log_dir is not None
    fault = ["local", "fault", "--log-dir", str(cloud.options.log_dir)]
    role = pair_role(cross_account_replication())
    pair = {m.SOURCE_REGION: "us-east-1", m.TARGET_REGION: REGION}
    key = {"pk": {"S": f"{prefix}denied"}, "sk": {"S": "0"}}
    assert_drained(cloud, 60)
    handed_off = cloud.metrics.total(m.HANDED_OFF, **pair)
    replayed = cloud.metrics.total(m.HANDOFF_REPLAYED, **pair)
    replay_failed = cloud.metrics.total(m.HANDOFF_REPLAY_FAILED, **pair)
    dead_lettered = cloud.metrics.total(m.DEAD_LETTERED)
    try:
        # Given the pair's role refused by STS (its trust policy no longer allows the replicator)
        assert main([*fault, "deny-role", role, "--seconds", "120"]) == 0
        # When a write is made in us-east-1
        ReplicatedTable(cloud.client("us-east-1"), TABLE, "us-east-1").put_item({**key, "body": {"S": "v1"}})
        # Then it is handed off for eu-west-1, and the drain's replays are refused too: it waits
        assert wait_for(lambda: cloud.metrics.total(m.HANDED_OFF, **pair) > handed_off, timeout=30)
        assert wait_for(
            lambda: cloud.metrics.total(m.HANDOFF_REPLAY_FAILED, **pair) > replay_failed, timeout=30
        )
        assert cloud.backlog() >= 1
        assert raw_item(cloud, REGION, key) is None
        assert cloud.faults.denied_assume_roles > 0
        # And the handed-off write names the cause, as the runbook says
        reason = handoff_reason(cloud, key["pk"]["S"], timeout=20)
        assert reason == f"configuration: AccessDenied: {access_denied_message(role)}"
        # And the pair's waiting alarm fires (the runbook's alarm for it: docs/OPERATIONS.md, Handoff)
        waiting = alarm_named(cloud, WAITING)
        assert wait_for(lambda: cloud.alarm_states()[waiting].state == ALARM, timeout=30)
    finally:
        # When the role is allowed again (local fault heal)
        assert main([*fault, "heal"]) == 0
    # Then the drain replays it on its own: the item is in eu-west-1, and nothing was dead-lettered
    assert_drained(cloud, 60)
    assert comparable(raw_item(cloud, REGION, key)) == comparable(raw_item(cloud, "us-east-1", key))
    assert cloud.metrics.total(m.HANDOFF_REPLAYED, **pair) > replayed
    assert cloud.metrics.total(m.DEAD_LETTERED) == dead_lettered
    # and the waiting alarm is back to OK
    assert wait_for(lambda: cloud.alarm_states()[alarm_named(cloud, WAITING)].state == OK, timeout=30)


WAITING = f"handoffs-handoff-waiting-us-east-1-to-{REGION}-Critical"


def alarm_named(cloud: LocalCloud, suffix: str) -> str:
    (name,) = (n for n in cloud.alarm_states() if n.endswith(suffix) and "us-east-1" in n)
    return name
