"""The default deployment (cdk.json: three-region mesh): every default lands in the templates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stacks import defaults
from tests.infra.conftest import Synthesized
from tests.infra.templates import function_named, render, resources_for, role_statements

pytestmark = pytest.mark.infra

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
ACCOUNT = defaults.PLACEHOLDER_ACCOUNT


def test_one_stack_per_region_with_explicit_env(mesh3: Synthesized) -> None:
    assert tuple(mesh3.templates) == REGIONS
    assert [p.stack_id for p in mesh3.config.regions] == [f"Replicator-{r}" for r in REGIONS]


@pytest.mark.parametrize("region", REGIONS)
def test_table_has_stream_ttl_encryption_pitr_and_is_retained(mesh3: Synthesized, region: str) -> None:
    table = mesh3.only(region, "AWS::DynamoDB::Table")
    props = table["Properties"]
    assert props["TableName"] == "orders"
    assert props["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    assert props["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
    ]
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "rep_expires", "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert props["DeletionProtectionEnabled"] is True
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


@pytest.mark.parametrize("region", REGIONS)
def test_exactly_one_stream_mapping_with_the_default_settings(mesh3: Synthesized, region: str) -> None:
    mappings = [
        m["Properties"]
        for m in mesh3.resources(region, "AWS::Lambda::EventSourceMapping").values()
        if "StreamArn" in json.dumps(m["Properties"]["EventSourceArn"])
    ]
    assert len(mappings) == 1
    mapping = render(mappings[0])
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    assert mapping["BatchSize"] == defaults.BATCH_SIZE
    assert mapping["MaximumBatchingWindowInSeconds"] == defaults.BATCHING_WINDOW_SECONDS
    assert mapping["ParallelizationFactor"] == defaults.PARALLELIZATION_FACTOR
    assert mapping["MaximumRetryAttempts"] == defaults.RETRY_ATTEMPTS
    assert mapping["MaximumRecordAgeInSeconds"] == defaults.MAX_RECORD_AGE_SECONDS
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"].startswith("<DeadLetterStoreBucket")
    patterns = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [
        {"dynamodb": {"NewImage": {"rep_region": {"S": [region]}}}},
        {"dynamodb": {"NewImage": {"rep_region": {"S": [{"exists": False}]}}}},
    ]


@pytest.mark.parametrize("region", REGIONS)
def test_replicator_function_runtime_layer_and_environment(mesh3: Synthesized, region: str) -> None:
    template = mesh3.template(region)
    _, function = function_named(template, "orders-replicator")
    props = function["Properties"]
    assert props["Runtime"] == "python3.13"
    assert props["Handler"] == "replicator.handler.lambda_handler"
    assert props["MemorySize"] == defaults.FUNCTION_MEMORY_MB
    assert props["Timeout"] == defaults.FUNCTION_TIMEOUT_SECONDS
    (layer,) = props["Layers"]
    parameter = template["Parameters"][layer["Ref"]]
    assert parameter["Type"] == "AWS::SSM::Parameter::Value<String>"
    assert props["Architectures"] == ["arm64"]
    # the arm64 layer: an x86_64 layer would not load native parts of Powertools' dependencies on arm64
    layer_path = f"/aws/service/powertools/python/arm64/python3.13/{defaults.POWERTOOLS_VERSION}"
    assert parameter["Default"] == layer_path
    env = props["Environment"]["Variables"]
    assert all(isinstance(v, str) for v in env.values()), "every value is a literal string"
    targets = [r for r in REGIONS if r != region]
    assert env == {
        "REP_LOCAL_REGION": region,
        "REP_TOPOLOGY": "mesh",
        "REP_SOURCE_TABLE": "orders",
        "REP_TARGETS": env["REP_TARGETS"],
        "REP_ATTRIBUTE_PREFIX": "rep_",
        "REP_TTL_ATTRIBUTE": "rep_expires",
        "REP_MAX_CLOCK_SKEW_SECONDS": str(defaults.MAX_CLOCK_SKEW_SECONDS),
        "REP_TOMBSTONE_RETENTION_SECONDS": str(defaults.TOMBSTONE_RETENTION_DAYS * 86_400),
        "REP_DEAD_LETTER_BUCKET": f"orders-replicator-{ACCOUNT}-{region}",
        "REP_MAX_WORKERS": str(defaults.MAX_WORKERS),
        "REP_WRITE_ATTEMPTS": str(defaults.WRITE_ATTEMPTS),
        "REP_RETRY_BASE_DELAY_MS": str(defaults.RETRY_BASE_DELAY_MS),
        "REP_CONFLICT_LOG_MAX_RECORDS": str(defaults.CONFLICT_LOG_MAX_RECORDS),
        "REP_CONFLICT_LOG_IMAGES": "false",
        "POWERTOOLS_METRICS_NAMESPACE": defaults.METRICS_NAMESPACE,
    }
    assert json.loads(env["REP_TARGETS"]) == [
        {
            "region": target,
            "table": "orders",
            "handoff_queue_url": f"https://sqs.{region}.amazonaws.com/{ACCOUNT}/orders-handoff-{target}",
            "role_arn": None,
            "item_filter": None,
        }
        for target in targets
    ]


@pytest.mark.parametrize("region", REGIONS)
def test_handoff_queue_dead_letter_queue_and_drain_per_target(mesh3: Synthesized, region: str) -> None:
    template = mesh3.template(region)
    queues = {q["Properties"]["QueueName"]: q for q in mesh3.resources(region, "AWS::SQS::Queue").values()}
    for target in (r for r in REGIONS if r != region):
        queue = queues[f"orders-handoff-{target}"]["Properties"]
        dlq = queues[f"orders-handoff-{target}-dlq"]["Properties"]
        for props in (queue, dlq):
            assert props["MessageRetentionPeriod"] == 14 * 86_400
            assert props["SqsManagedSseEnabled"] is True
        visibility = defaults.DRAIN_TIMEOUT_SECONDS * defaults.HANDOFF_VISIBILITY_FACTOR
        assert queue["VisibilityTimeout"] == visibility
        assert queue["RedrivePolicy"]["maxReceiveCount"] == defaults.HANDOFF_MAX_RECEIVE_COUNT
        drain_id, drain = function_named(template, f"orders-drain-{target}")
        assert drain["Properties"]["Handler"] == "replicator.drain.lambda_handler"
        assert drain["Properties"]["Environment"]["Variables"]["REP_DRAIN_TARGET_REGION"] == target
        (mapping,) = [
            m["Properties"]
            for m in mesh3.resources(region, "AWS::Lambda::EventSourceMapping").values()
            if m["Properties"]["FunctionName"] == {"Ref": drain_id}
        ]
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["BatchSize"] == defaults.DRAIN_BATCH_SIZE
    assert len(queues) == 2 * (len(REGIONS) - 1)


@pytest.mark.parametrize("region", REGIONS)
def test_each_drain_can_postpone_its_own_messages_for_the_whole_retention(
    mesh3: Synthesized, region: str
) -> None:
    template = mesh3.template(region)
    queues = {
        q["Properties"]["QueueName"]: (i, q) for i, q in mesh3.resources(region, "AWS::SQS::Queue").items()
    }
    for target in (r for r in REGIONS if r != region):
        queue_id, queue = queues[f"orders-handoff-{target}"]
        props = queue["Properties"]
        # The deployed receive count, under the drain's backoff, outlasts the deployed retention
        span = defaults.HANDOFF_BACKOFF.least_total(props["RedrivePolicy"]["maxReceiveCount"])
        assert span >= props["MessageRetentionPeriod"] * defaults.HANDOFF_BACKOFF_MARGIN
        # And the drain may change the visibility of its own queue's messages, and of no other queue's
        statements = role_statements(template, f"orders-drain-{target}")
        allowed = [s["Resource"] for s in statements if "sqs:ChangeMessageVisibility" in s["Action"]]
        assert allowed == [[f"<{queue_id}.Arn>"]]


@pytest.mark.parametrize("region", REGIONS)
def test_queues_and_bucket_refuse_insecure_transport(mesh3: Synthesized, region: str) -> None:
    policies = list(mesh3.resources(region, "AWS::SQS::QueuePolicy").values()) + list(
        mesh3.resources(region, "AWS::S3::BucketPolicy").values()
    )
    assert len(policies) == 2 * (len(REGIONS) - 1) + 1
    for policy in policies:
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        insecure = {"Bool": {"aws:SecureTransport": "false"}}
        assert any(s["Effect"] == "Deny" and s["Condition"] == insecure for s in statements)


@pytest.mark.parametrize("region", REGIONS)
def test_dead_letter_bucket_is_encrypted_private_and_retained(mesh3: Synthesized, region: str) -> None:
    bucket = mesh3.only(region, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert props["BucketName"] == f"orders-replicator-{ACCOUNT}-{region}"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert bucket["DeletionPolicy"] == "Retain"


def test_replicator_permissions_are_least_privilege(mesh3: Synthesized) -> None:
    region = "us-east-1"
    statements = role_statements(mesh3.template(region), "orders-replicator")
    own_table = "<ReplicaTable3918B83D.Arn>"
    # Writes: its own table (mesh adoption, local tombstones) and the targets' tables by convention.
    assert resources_for(statements, "dynamodb:PutItem") == {
        own_table,
        f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/orders",
        f"arn:aws:dynamodb:ap-southeast-2:{ACCOUNT}:table/orders",
    }
    assert not resources_for(statements, "dynamodb:UpdateItem")  # the code never updates in place
    assert resources_for(statements, "dynamodb:GetRecords") == {"<ReplicaTable3918B83D.StreamArn>"}
    assert resources_for(statements, "dynamodb:ListStreams") == {"*"}
    assert {r.split("Queue")[0] for r in resources_for(statements, "sqs:SendMessage")} == {
        "<Handoffeuwest1",
        "<Handoffapsoutheast2",
    }
    assert resources_for(statements, "s3:PutObject") == {
        "<DeadLetterStoreBucket91718C52.Arn>/aws/lambda/*",
        "<DeadLetterStoreBucket91718C52.Arn>/conflicts/*",
        "<DeadLetterStoreBucket91718C52.Arn>/dead-letters/*",
        "<DeadLetterStoreBucket91718C52.Arn>/handoff/*",
    }
    actions = {a for s in statements for a in s["Action"]}
    assert not any(a.endswith("*") for a in actions), f"no wildcard actions: {sorted(actions)}"
    assert "sts:AssumeRole" not in actions


def test_drain_permissions_are_least_privilege(mesh3: Synthesized) -> None:
    statements = role_statements(mesh3.template("eu-west-1"), "orders-drain-us-east-1")
    target_table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/orders"
    assert resources_for(statements, "dynamodb:PutItem") == {target_table}
    assert resources_for(statements, "s3:GetObject") == {"<DeadLetterStoreBucket91718C52.Arn>/handoff/*"}
    assert resources_for(statements, "s3:PutObject") == {
        "<DeadLetterStoreBucket91718C52.Arn>/conflicts/*",
        "<DeadLetterStoreBucket91718C52.Arn>/dead-letters/*",
    }
    queues = resources_for(statements, "sqs:DeleteMessage")
    assert {r.split("Queue")[0] for r in queues} == {"<Handoffuseast1"}
    assert "sqs:SendMessage" not in {a for s in statements for a in s["Action"]}


def test_no_cross_stack_or_cross_region_references(mesh3: Synthesized) -> None:
    for template in mesh3.templates.values():
        text = json.dumps(template)
        assert "Fn::ImportValue" not in text
        assert "Outputs" not in template or not any("Export" in o for o in template["Outputs"].values())


def test_cdk_nag_ran_and_every_finding_is_acknowledged_with_a_reason(mesh3: Synthesized) -> None:
    report = json.loads((mesh3.outdir / "validation-report.json").read_text())
    (nag,) = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert nag["conclusion"] == "success"
    assert nag["violations"] == []
    for finding in nag["suppressedViolations"]:
        assert len(finding["reason"]) > 40, f"{finding['acknowledgedId']} needs a real reason"


def test_every_item_copy_in_the_bucket_expires(mesh3: Synthesized) -> None:
    # Given the dead-letter store of a source region
    bucket = mesh3.only("us-east-1", "AWS::S3::Bucket")
    rules = {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}
    # Then handoff payloads live as long as their queue messages, dead letters and Lambda's
    # discarded-batch documents for the dead-letter retention, and noncurrent versions one day
    assert rules["ExpireHandoffPayloads"]["Prefix"] == defaults.HANDOFF_PREFIX
    assert rules["ExpireHandoffPayloads"]["ExpirationInDays"] == defaults.HANDOFF_RETENTION_DAYS + 1
    for rule_id, prefix in (
        ("ExpireDeadLetters", defaults.DEAD_LETTER_PREFIX),
        ("ExpireDiscardedBatches", defaults.ON_FAILURE_PREFIX),
        ("ExpireConflictLog", defaults.CONFLICT_PREFIX),
    ):
        assert rules[rule_id]["Prefix"] == prefix
        assert rules[rule_id]["ExpirationInDays"] == defaults.DEAD_LETTER_RETENTION_DAYS
    assert defaults.DEAD_LETTER_RETENTION_DAYS > defaults.TOMBSTONE_RETENTION_DAYS
    catch_all = rules["ExpireNoncurrentVersions"]
    assert "Prefix" not in catch_all
    assert catch_all["NoncurrentVersionExpiration"] == {"NoncurrentDays": defaults.NONCURRENT_VERSION_DAYS}
    assert catch_all["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert all(r["Status"] == "Enabled" for r in rules.values())


def _actions(statements: list[dict[str, Any]]) -> set[str]:
    return {a for s in statements if s["Effect"] == "Allow" for a in s["Action"]}


def test_each_role_has_exactly_the_actions_its_code_calls(mesh3: Synthesized) -> None:
    # A new permission must be a deliberate change of this list.
    template = mesh3.template("us-east-1")
    assert _actions(role_statements(template, "orders-replicator")) == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
        "dynamodb:GetItem",  # the local table only: the adoption floor reads the stored item
        "dynamodb:PutItem",
        "sqs:SendMessage",
        "s3:PutObject",
        "s3:ListBucket",  # the on-failure destination (Lambda checks the bucket)
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }
    statements = role_statements(template, "orders-replicator")
    assert resources_for(statements, "dynamodb:GetItem") == {"<ReplicaTable3918B83D.Arn>"}
    drain = role_statements(template, "orders-drain-eu-west-1")
    assert _actions(drain) == {
        "dynamodb:PutItem",
        "s3:GetObject",
        "s3:PutObject",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_drains_replay_a_backlog_at_bounded_concurrency(mesh3: Synthesized) -> None:
    # Given every drain's SQS mapping in a region (one per target)
    mappings = [
        m["Properties"]
        for m in mesh3.resources("us-east-1", "AWS::Lambda::EventSourceMapping").values()
        if "StartingPosition" not in m["Properties"]  # SQS mappings have none; the stream's has one
    ]
    assert len(mappings) == 2
    # Then each replays at most DRAIN_MAX_CONCURRENCY batches at a time
    assert all(m["ScalingConfig"] == {"MaximumConcurrency": defaults.DRAIN_MAX_CONCURRENCY} for m in mappings)
    assert defaults.DRAIN_MAX_CONCURRENCY == 2


@pytest.mark.parametrize("region", REGIONS)
def test_every_function_runs_on_arm64(mesh3: Synthesized, region: str) -> None:
    """GIVEN the default app WHEN synthesized THEN every Lambda function (replicator, drains, backfill,
    custom resources of this app's own) runs on arm64, the architecture the layer parameter names."""
    template = mesh3.template(region)
    functions = {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function" and "Layers" in resource["Properties"]
    }
    assert functions, "the app's functions use the Powertools layer"
    assert {logical_id: props.get("Architectures") for logical_id, props in functions.items()} == {
        logical_id: ["arm64"] for logical_id in functions
    }
