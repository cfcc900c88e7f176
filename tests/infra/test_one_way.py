"""One-way: one source replicates to read-only replicas; no event filter, no writes to the source."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import Synthesized
from tests.infra.templates import resources_for, role_statements

pytestmark = pytest.mark.infra

SOURCE = "us-east-1"
REPLICAS = ("eu-central-1", "ap-northeast-1")


def test_source_has_one_unfiltered_mapping(one_way: Synthesized) -> None:
    (mapping,) = [
        m["Properties"]
        for m in one_way.resources(SOURCE, "AWS::Lambda::EventSourceMapping").values()
        if "StreamArn" in json.dumps(m["Properties"]["EventSourceArn"])
    ]
    assert "FilterCriteria" not in mapping
    assert mapping["StartingPosition"] == "TRIM_HORIZON"


@pytest.mark.parametrize("replica", REPLICAS)
def test_replica_regions_hold_only_their_table(one_way: Synthesized, replica: str) -> None:
    types = {r["Type"] for r in one_way.template(replica)["Resources"].values()}
    assert types - {"AWS::CDK::Metadata"} == {"AWS::DynamoDB::Table"}
    table = one_way.only(replica, "AWS::DynamoDB::Table")["Properties"]
    assert table["TableName"] == "catalog"
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


def test_source_replicates_to_every_replica_and_never_writes_itself(one_way: Synthesized) -> None:
    statements = role_statements(one_way.template(SOURCE), "catalog-replicator")
    assert resources_for(statements, "dynamodb:PutItem") == {
        f"arn:aws:dynamodb:{replica}:444444444444:table/catalog" for replica in REPLICAS
    }
    assert not resources_for(statements, "dynamodb:UpdateItem")
    queues = {q["Properties"]["QueueName"] for q in one_way.resources(SOURCE, "AWS::SQS::Queue").values()}
    assert queues == {f"catalog-handoff-{r}{s}" for r in REPLICAS for s in ("", "-dlq")}


def test_account_override_from_the_command_line(one_way: Synthesized) -> None:
    assert one_way.config.account == "444444444444"
    assert one_way.only(SOURCE, "AWS::S3::Bucket")["Properties"]["BucketName"] == (
        "catalog-replicator-444444444444-us-east-1"
    )
