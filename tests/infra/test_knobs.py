"""Every context knob, set away from its default on a two-region mesh, lands in the templates."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import ITEM_FILTER, REPLICA_ROLE, Synthesized
from tests.infra.templates import function_named, render, resources_for, role_statements

pytestmark = pytest.mark.infra


def stream_mapping(synth: Synthesized, region: str) -> dict:
    (mapping,) = [
        m["Properties"]
        for m in synth.resources(region, "AWS::Lambda::EventSourceMapping").values()
        if "StreamArn" in json.dumps(m["Properties"]["EventSourceArn"])
    ]
    return render(mapping)


def test_table_name_keys_ttl_and_table_switches(mesh2: Synthesized) -> None:
    for region, name in (("us-west-2", "orders_usw2"),):
        props = mesh2.only(region, "AWS::DynamoDB::Table")["Properties"]
        assert props["TableName"] == name
        assert props["KeySchema"] == [
            {"AttributeName": "tenant", "KeyType": "HASH"},
            {"AttributeName": "seq", "KeyType": "RANGE"},
        ]
        assert {"AttributeName": "seq", "AttributeType": "N"} in props["AttributeDefinitions"]
        assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is False
        assert props["DeletionProtectionEnabled"] is False


def test_stream_block_and_per_source_override(mesh2: Synthesized) -> None:
    usw2 = stream_mapping(mesh2, "us-west-2")
    assert usw2["BatchSize"] == 250
    assert usw2["MaximumBatchingWindowInSeconds"] == 5
    assert usw2["ParallelizationFactor"] == 4
    assert usw2["MaximumRetryAttempts"] == 3
    assert usw2["MaximumRecordAgeInSeconds"] == 3600
    euw1 = stream_mapping(mesh2, "eu-west-1")
    assert euw1["BatchSize"] == 50  # sources.eu-west-1 overrides stream.batch_size only
    assert euw1["ParallelizationFactor"] == 4


def test_attribute_prefix_reaches_the_filter_and_the_environment(mesh2: Synthesized) -> None:
    patterns = [
        json.loads(f["Pattern"]) for f in stream_mapping(mesh2, "eu-west-1")["FilterCriteria"]["Filters"]
    ]
    assert patterns[0] == {"dynamodb": {"NewImage": {"x_region": {"S": ["eu-west-1"]}}}}
    _, function = function_named(mesh2.template("eu-west-1"), "orders-euw1-replicator")
    env = function["Properties"]["Environment"]["Variables"]
    assert env["REP_ATTRIBUTE_PREFIX"] == "x_"
    assert env["REP_TTL_ATTRIBUTE"] == "expires_at"
    assert env["REP_TOMBSTONE_RETENTION_SECONDS"] == str(10 * 86_400)
    queues = mesh2.resources("eu-west-1", "AWS::SQS::Queue").values()  # handoff_retention_days: 7
    assert queues and all(q["Properties"]["MessageRetentionPeriod"] == 7 * 86_400 for q in queues)
    assert env["REP_SOURCE_TABLE"] == "orders.euw1"
    assert json.loads(env["REP_TARGETS"])[0]["table"] == "orders_usw2"


def test_function_settings(mesh2: Synthesized) -> None:
    template = mesh2.template("us-west-2")
    _, function = function_named(template, "orders_usw2-replicator")
    props = function["Properties"]
    assert (props["MemorySize"], props["Timeout"]) == (1024, 120)
    env = props["Environment"]["Variables"]
    assert (env["REP_MAX_WORKERS"], env["REP_WRITE_ATTEMPTS"], env["REP_RETRY_BASE_DELAY_MS"]) == (
        "8",
        "6",
        "100",
    )
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "Orders/Replication"
    assert (env["REP_CONFLICT_LOG_MAX_RECORDS"], env["REP_CONFLICT_LOG_IMAGES"]) == ("25", "true")
    retentions = {
        g["Properties"]["RetentionInDays"]
        for g in mesh2.resources("us-west-2", "AWS::Logs::LogGroup").values()
    }
    assert retentions == {90}


def test_item_filter_and_cross_account_role_of_a_pair(mesh2: Synthesized) -> None:
    template = mesh2.template("us-west-2")
    _, function = function_named(template, "orders_usw2-replicator")
    (target,) = json.loads(function["Properties"]["Environment"]["Variables"]["REP_TARGETS"])
    assert target["item_filter"] == ITEM_FILTER
    assert target["role_arn"] == REPLICA_ROLE
    statements = role_statements(template, "orders_usw2-replicator")
    assert resources_for(statements, "sts:AssumeRole") == {REPLICA_ROLE}
    # A pair with a role writes through it: no direct grant on the target table.
    assert resources_for(statements, "dynamodb:PutItem") == {"<ReplicaTable3918B83D.Arn>"}
    drain = role_statements(template, "orders_usw2-drain-eu-west-1")
    assert resources_for(drain, "sts:AssumeRole") == {REPLICA_ROLE}
    assert not resources_for(drain, "dynamodb:PutItem")


def test_pair_without_settings_keeps_direct_writes(mesh2: Synthesized) -> None:
    statements = role_statements(mesh2.template("eu-west-1"), "orders-euw1-replicator")
    assert "arn:aws:dynamodb:us-west-2:222222222222:table/orders_usw2" in resources_for(
        statements, "dynamodb:PutItem"
    )
    assert not resources_for(statements, "sts:AssumeRole")


def test_an_existing_table_is_adopted_in_place_never_created(mesh2: Synthesized) -> None:
    assert not mesh2.resources("eu-west-1", "AWS::DynamoDB::Table")
    (adoption,) = mesh2.resources("eu-west-1", "Custom::AdoptedTable").values()
    assert adoption["DeletionPolicy"] == "Retain"
    props = adoption["Properties"]
    assert props["TableName"] == "orders.euw1"
    assert json.loads(props["KeySchema"]) == [
        {"AttributeName": "tenant", "KeyType": "HASH"},
        {"AttributeName": "seq", "KeyType": "RANGE"},
    ]
    assert (props["TtlAttribute"], props["PointInTimeRecovery"]) == ("expires_at", "false")
    mapping = stream_mapping(mesh2, "eu-west-1")
    assert mapping["EventSourceArn"].startswith("<ReplicaTableAdoptedTable") and mapping[
        "EventSourceArn"
    ].endswith(".StreamArn>")
    statements = role_statements(mesh2.template("eu-west-1"), "orders-euw1-replicator")
    own = "arn:aws:dynamodb:eu-west-1:222222222222:table/orders.euw1"
    assert own in resources_for(statements, "dynamodb:PutItem")
    assert own in resources_for(statements, "dynamodb:GetItem")
