"""Fixtures of the unit tests that run the functions against moto in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

LOCAL, EU, AP = "us-east-1", "eu-west-1", "ap-southeast-2"


def create_table(region: str, name: str = "orders", key: tuple[str, str] = ("pk", "S")) -> None:
    """A table with a stream as deployed (NEW_AND_OLD_IMAGES), keyed by ``key`` (name, type)."""
    boto3.client("dynamodb", region_name=region).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": key[0], "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key[0], "AttributeType": key[1]}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    for var, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": LOCAL,
    }.items():
        monkeypatch.setenv(var, value)
    with mock_aws():
        for region in (LOCAL, EU, AP):
            create_table(region)
        boto3.client("s3", region_name=LOCAL).create_bucket(Bucket="orders-replicator")
        sqs = boto3.client("sqs", region_name=LOCAL)
        queues = {r: sqs.create_queue(QueueName=f"orders-handoff-{r}")["QueueUrl"] for r in (EU, AP)}
        env = {
            "REP_LOCAL_REGION": LOCAL,
            "REP_TOPOLOGY": "mesh",
            "REP_SOURCE_TABLE": "orders",
            "REP_TARGETS": json.dumps(
                [{"region": r, "table": "orders", "handoff_queue_url": queues[r]} for r in (EU, AP)]
            ),
            "REP_DEAD_LETTER_BUCKET": "orders-replicator",
            "REP_WRITE_ATTEMPTS": "2",
            "REP_RETRY_BASE_DELAY_MS": "1",
            "POWERTOOLS_METRICS_NAMESPACE": "Test",
        }
        for var, value in env.items():
            monkeypatch.setenv(var, value)
        yield {"queues": queues, "monkeypatch": monkeypatch}
