"""Several tables in one deployment: one replication unit per table per region (its function, mapping,
handoff queues and drains, grants and alarms), sharing the region's bucket and topic; the first table's
resources are those of a one-table deployment, so adding a table replaces nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks import defaults
from tests.infra.conftest import CUSTOMERS_FILTER, Synthesized
from tests.infra.templates import function_named, render, resources_for, role_statements

pytestmark = pytest.mark.infra

REGIONS = ("us-east-1", "eu-west-1")
OTHER = {"us-east-1": "eu-west-1", "eu-west-1": "us-east-1"}
TABLES = ("orders", "customers")


def env_of(synth: Synthesized, region: str, function_name: str) -> dict[str, str]:
    _, function = function_named(synth.template(region), function_name)
    return function["Properties"]["Environment"]["Variables"]


def test_tables_with_one_entry_is_the_table_shorthand_byte_for_byte(
    one_table: Synthesized, one_table_listed: Synthesized
) -> None:
    for region in REGIONS:
        assert json.dumps(one_table_listed.template(region), sort_keys=True) == json.dumps(
            one_table.template(region), sort_keys=True
        )


# What the second table changes among the first table's resources: the topic lets the second table's
# alarms publish too, and the dashboard shows both tables. Nothing else is touched.
SHARED_AND_CHANGED = {"AWS::SNS::TopicPolicy", "AWS::CloudWatch::Dashboard"}


def test_adding_a_table_keeps_every_resource_of_the_first(
    one_table: Synthesized, two_tables: Synthesized
) -> None:
    for region in REGIONS:
        before = one_table.template(region)["Resources"]
        after = two_tables.template(region)["Resources"]
        assert before.keys() <= after.keys(), f"{region}: logical ids of the first table changed"
        changed = {k for k in before if before[k] != after[k]}
        assert {before[k]["Type"] for k in changed} <= SHARED_AND_CHANGED, sorted(changed)
        assert len(after) > len(before)


def test_one_mapping_and_one_replicator_per_table(two_tables: Synthesized) -> None:
    for region in REGIONS:
        mappings = two_tables.resources(region, "AWS::Lambda::EventSourceMapping").values()
        stream_mappings = [m for m in mappings if "StartingPosition" in m["Properties"]]
        assert len(stream_mappings) == 2
        tables = {
            render(m["Properties"]["EventSourceArn"]).split(".")[0].strip("<")  # <LogicalId.StreamArn>
            for m in stream_mappings
        }
        table_ids = set(two_tables.resources(region, "AWS::DynamoDB::Table"))
        assert tables == table_ids and len(table_ids) == 2
        for mapping in stream_mappings:  # the same mesh filters on each
            patterns = [json.loads(f["Pattern"]) for f in mapping["Properties"]["FilterCriteria"]["Filters"]]
            assert {"dynamodb": {"NewImage": {"rep_region": {"S": [region]}}}} in patterns
        for table in TABLES:
            env = env_of(two_tables, region, f"{table}-replicator")
            assert env["REP_SOURCE_TABLE"] == table
            assert [t["table"] for t in json.loads(env["REP_TARGETS"])] == [table]
            assert env["REP_DEAD_LETTER_BUCKET"] == f"orders-replicator-111111111111-{region}"
            assert len(json.dumps(env)) < 4096  # Lambda's limit on a function's environment


def test_each_table_has_its_own_handoff_queues_and_drains(two_tables: Synthesized) -> None:
    for region in REGIONS:
        queues = {
            q["Properties"]["QueueName"] for q in two_tables.resources(region, "AWS::SQS::Queue").values()
        }
        target = OTHER[region]
        assert queues == {f"{table}-handoff-{target}{suffix}" for table in TABLES for suffix in ("", "-dlq")}
        for table in TABLES:
            env = env_of(two_tables, region, f"{table}-drain-{target}")
            assert env["REP_DRAIN_TARGET_REGION"] == target
            assert env["REP_SOURCE_TABLE"] == table
            (entry,) = json.loads(env["REP_TARGETS"])
            assert entry["handoff_queue_url"].endswith(f"/{table}-handoff-{target}")


def test_only_the_second_table_keys_its_objects_and_metrics_by_table(two_tables: Synthesized) -> None:
    orders = env_of(two_tables, "us-east-1", "orders-replicator")
    customers = env_of(two_tables, "us-east-1", "customers-replicator")
    assert "REP_OBJECT_KEY_TABLE" not in orders
    assert orders["POWERTOOLS_METRICS_NAMESPACE"] == defaults.METRICS_NAMESPACE
    assert customers["REP_OBJECT_KEY_TABLE"] == "customers"
    assert customers["POWERTOOLS_METRICS_NAMESPACE"] == f"{defaults.METRICS_NAMESPACE}/customers"
    assert env_of(two_tables, "us-east-1", "customers-drain-eu-west-1")["REP_OBJECT_KEY_TABLE"] == "customers"


def test_a_tables_own_pair_filter_applies_to_that_table_only(two_tables: Synthesized) -> None:
    def filters(region: str, table: str) -> dict[str, Any]:
        targets = json.loads(env_of(two_tables, region, f"{table}-replicator")["REP_TARGETS"])
        return {t["region"]: t["item_filter"] for t in targets}

    assert filters("us-east-1", "customers") == {"eu-west-1": CUSTOMERS_FILTER}
    assert filters("us-east-1", "orders") == {"eu-west-1": None}
    assert filters("eu-west-1", "customers") == {"us-east-1": None}


def test_each_function_writes_only_its_own_table(two_tables: Synthesized) -> None:
    for region in REGIONS:
        target = OTHER[region]
        template = two_tables.template(region)
        tables = two_tables.resources(region, "AWS::DynamoDB::Table")
        local_arn = {t["Properties"]["TableName"]: f"<{logical_id}.Arn>" for logical_id, t in tables.items()}
        for table in TABLES:
            remote = f"arn:aws:dynamodb:{target}:111111111111:table/{table}"
            replicator = role_statements(template, f"{table}-replicator")
            assert resources_for(replicator, "dynamodb:PutItem") == {remote, local_arn[table]}
            assert resources_for(replicator, "dynamodb:GetItem") == {local_arn[table]}
            stream = resources_for(replicator, "dynamodb:GetRecords")
            assert stream == {f"<{_table_id(tables, table)}.StreamArn>"}
            assert resources_for(replicator, "sqs:SendMessage") == {
                f"<{_queue_id(two_tables, region, f'{table}-handoff-{target}')}.Arn>"
            }
            drain = role_statements(template, f"{table}-drain-{target}")
            assert resources_for(drain, "dynamodb:PutItem") == {remote}


def test_the_second_tables_objects_are_granted_under_its_prefix(two_tables: Synthesized) -> None:
    template = two_tables.template("us-east-1")
    bucket = next(iter(two_tables.resources("us-east-1", "AWS::S3::Bucket")))
    puts = resources_for(role_statements(template, "customers-replicator"), "s3:PutObject")
    table_prefixes = {
        f"<{bucket}.Arn>/{defaults.object_prefix(p, 'customers')}*"
        for p in (defaults.DEAD_LETTER_PREFIX, defaults.HANDOFF_PREFIX, defaults.CONFLICT_PREFIX)
    }
    assert table_prefixes <= puts
    assert f"<{bucket}.Arn>/{defaults.DEAD_LETTER_PREFIX}*" not in puts
    assert len(two_tables.resources("us-east-1", "AWS::S3::Bucket")) == 1


def test_alarms_per_table_and_one_topic_both_may_publish_to(two_tables: Synthesized) -> None:
    names = [
        a["Properties"]["AlarmName"]
        for a in two_tables.resources("us-east-1", "AWS::CloudWatch::Alarm").values()
    ]
    for table in TABLES:
        mine = [n for n in names if n.startswith(f"{table}-replication-us-east-1-")]
        assert any("replicator" in n for n in mine) and any("handoff" in n for n in mine)
    assert len(names) == len(set(names))
    (topic,) = two_tables.resources("us-east-1", "AWS::SNS::Topic").values()
    assert topic["Properties"]["TopicName"] == "orders-replication-alarms"
    (policy,) = two_tables.resources("us-east-1", "AWS::SNS::TopicPolicy").values()
    statements = render(policy["Properties"]["PolicyDocument"]["Statement"])
    (publish,) = [s for s in statements if s.get("Sid") == "CloudWatchAlarmsOfThisStackPublish"]
    assert publish["Condition"]["ArnLike"]["aws:SourceArn"] == [
        f"arn:aws:cloudwatch:us-east-1:111111111111:alarm:{table}-replication-us-east-1-*" for table in TABLES
    ]
    actions = {
        render(a["Properties"].get("AlarmActions", [None])[0])
        for a in two_tables.resources("us-east-1", "AWS::CloudWatch::Alarm").values()
    }
    assert len(actions) == 1  # every alarm of both tables notifies the one topic


def test_one_dashboard_with_each_tables_metrics(two_tables: Synthesized) -> None:
    (dashboard,) = two_tables.resources("us-east-1", "AWS::CloudWatch::Dashboard").values()
    body = json.loads(render(dashboard["Properties"]["DashboardBody"]))
    metrics = [
        m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"].get("metrics", [])
    ]
    namespaces = {
        m[0] for m in metrics if isinstance(m[0], str) and m[0].startswith(defaults.METRICS_NAMESPACE)
    }
    assert namespaces == {defaults.METRICS_NAMESPACE, f"{defaults.METRICS_NAMESPACE}/customers"}
    text = json.dumps(body)
    for table in TABLES:
        assert f"{table}-replicator" in text and f"{table}-handoff-eu-west-1" in text


def test_each_table_has_its_backfill_job_with_a_stable_output(two_tables: Synthesized) -> None:
    outputs = two_tables.template("us-east-1")["Outputs"]
    assert {"BackfillStateMachineArn", "BackfillStateMachineArncustomers"} <= outputs.keys()
    machines = two_tables.resources("us-east-1", "AWS::StepFunctions::StateMachine")
    assert len(machines) == 2


def _table_id(tables: dict[str, dict[str, Any]], name: str) -> str:
    return next(k for k, t in tables.items() if t["Properties"]["TableName"] == name)


def _queue_id(synth: Synthesized, region: str, name: str) -> str:
    return next(
        k
        for k, q in synth.resources(region, "AWS::SQS::Queue").items()
        if q["Properties"]["QueueName"] == name
    )
