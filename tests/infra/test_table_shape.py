"""A real team's table in every region: indexes, provisioned capacity with auto scaling, table class, tags,
customer managed keys on every store of item copies, and a deployment name in every stack id and name.

One rich three-region mesh is synthesized once for the module (cdk-nag runs on it as on every synth), and
a small one-way deployment for on-demand maximum throughput.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.infra.conftest import Synthesized, synthesize
from tests.infra.templates import resources_for, role_statements

pytestmark = pytest.mark.infra

ACCOUNT = "555555555555"
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
KEY_USE1 = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_EUW1 = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/mrk-1234abcd12ab34cd56ef1234567890ab"
KEYS = {"us-east-1": KEY_USE1, "eu-west-1": KEY_EUW1}  # ap-southeast-2 keeps AWS-managed encryption
DEPLOYMENT = "orders-blue"
STEM = f"{DEPLOYMENT}-orders"

RICH: dict[str, Any] = {
    "account": ACCOUNT,
    "deployment_name": DEPLOYMENT,
    "topology": "mesh",
    "regions": list(REGIONS),
    "kms_key_arns": KEYS,
    "tags": {"cost-center": "1234"},
    "table": {
        "name": "orders",
        "partition_key": {"name": "pk", "type": "S"},
        "sort_key": {"name": "sk", "type": "S"},
        "global_secondary_indexes": [
            {
                "name": "by-status",
                "partition_key": {"name": "status", "type": "S"},
                "sort_key": {"name": "created", "type": "N"},
                "projection": ["total", "rep_deleted"],
            },
            {"name": "by-customer", "partition_key": {"name": "customer", "type": "S"}, "projection": "ALL"},
            # Keyed on the table's own keys: tombstones appear in it, and KEYS_ONLY hides their flag.
            {
                "name": "by-sk",
                "partition_key": {"name": "sk", "type": "S"},
                "sort_key": {"name": "pk", "type": "S"},
                "projection": "KEYS_ONLY",
            },
        ],
        "local_secondary_indexes": [
            {"name": "by-updated", "sort_key": {"name": "updated", "type": "N"}, "projection": "KEYS_ONLY"}
        ],
        "billing": {
            "mode": "provisioned",
            "read_capacity": 10,
            "write_capacity": 30,
            "autoscaling": {"max_read_capacity": 100, "max_write_capacity": 300, "target_utilization": 60},
        },
        "table_class": "STANDARD_INFREQUENT_ACCESS",
        "tags": {"team": "orders"},
    },
    "backfill": {"enabled": True},
}
GLOBAL_INDEXES = ("by-status", "by-customer", "by-sk")

ON_DEMAND: dict[str, Any] = {
    "topology": "one-way",
    "source": "us-east-1",
    "replicas": ["eu-west-1"],
    "table": {
        "name": "catalog",
        "partition_key": {"name": "sku", "type": "S"},
        "global_secondary_indexes": [
            {"name": "by-brand", "partition_key": {"name": "brand", "type": "S"}, "projection": "KEYS_ONLY"}
        ],
        "billing": {"mode": "on_demand", "max_read_request_units": 500, "max_write_request_units": 200},
        "table_class": "STANDARD",
    },
}


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(tmp_path_factory.mktemp("rich"), RICH)


@pytest.fixture(scope="module")
def on_demand(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(tmp_path_factory.mktemp("on-demand"), ON_DEMAND)


def table_props(synth: Synthesized, region: str) -> dict[str, Any]:
    props: dict[str, Any] = synth.only(region, "AWS::DynamoDB::Table")["Properties"]
    return props


def named(synth: Synthesized, region: str, kind: str, name_key: str) -> dict[str, dict[str, Any]]:
    return {r["Properties"][name_key]: r["Properties"] for r in synth.resources(region, kind).values()}


# --- the table ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", REGIONS)
def test_every_region_has_the_indexes_with_their_projections(rich: Synthesized, region: str) -> None:
    props = table_props(rich, region)
    indexes = {i["IndexName"]: i for i in props["GlobalSecondaryIndexes"]}
    assert tuple(indexes) == GLOBAL_INDEXES
    assert indexes["by-status"]["KeySchema"] == [
        {"AttributeName": "status", "KeyType": "HASH"},
        {"AttributeName": "created", "KeyType": "RANGE"},
    ]
    assert indexes["by-status"]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": ["total", "rep_deleted"],
    }
    assert indexes["by-customer"]["Projection"] == {"ProjectionType": "ALL"}
    assert indexes["by-sk"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    (local,) = props["LocalSecondaryIndexes"]
    assert local == {
        "IndexName": "by-updated",
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "updated", "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    # One attribute-definition list for the table's keys and every index key
    assert props["AttributeDefinitions"] == [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "status", "AttributeType": "S"},
        {"AttributeName": "created", "AttributeType": "N"},
        {"AttributeName": "customer", "AttributeType": "S"},
        {"AttributeName": "updated", "AttributeType": "N"},
    ]


@pytest.mark.parametrize("region", REGIONS)
def test_provisioned_capacity_for_the_table_and_each_global_index(rich: Synthesized, region: str) -> None:
    props = table_props(rich, region)
    capacity = {"ReadCapacityUnits": 10, "WriteCapacityUnits": 30}
    assert "BillingMode" not in props or props["BillingMode"] == "PROVISIONED"
    assert props["ProvisionedThroughput"] == capacity
    assert [i["ProvisionedThroughput"] for i in props["GlobalSecondaryIndexes"]] == [capacity] * 3


@pytest.mark.parametrize("region", REGIONS)
def test_auto_scaling_tracks_reads_and_writes_of_the_table_and_each_global_index(
    rich: Synthesized, region: str
) -> None:
    targets = rich.resources(region, "AWS::ApplicationAutoScaling::ScalableTarget")
    table_id = next(iter(rich.resources(region, "AWS::DynamoDB::Table")))
    scaled = {}
    for logical_id, target in targets.items():
        props = target["Properties"]
        parts = props["ResourceId"]["Fn::Join"][1]
        assert parts[:2] == ["table/", {"Ref": table_id}]
        resource = parts[2] if len(parts) > 2 else ""
        scaled[(resource, props["ScalableDimension"])] = (
            logical_id,
            props["MinCapacity"],
            props["MaxCapacity"],
        )
    expected = {}
    for resource, kind in [("", "table"), *((f"/index/{name}", "index") for name in GLOBAL_INDEXES)]:
        expected[(resource, f"dynamodb:{kind}:ReadCapacityUnits")] = (10, 100)
        expected[(resource, f"dynamodb:{kind}:WriteCapacityUnits")] = (30, 300)
    assert {key: value[1:] for key, value in scaled.items()} == expected
    policies = rich.resources(region, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
    tracked = {p["Properties"]["ScalingTargetId"]["Ref"]: p["Properties"] for p in policies}
    assert set(tracked) == {logical_id for logical_id, _, _ in scaled.values()}
    for policy in tracked.values():
        assert policy["PolicyType"] == "TargetTrackingScaling"
        assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 60


@pytest.mark.parametrize("region", REGIONS)
def test_table_class_and_tags(rich: Synthesized, region: str) -> None:
    props = table_props(rich, region)
    assert props["TableClass"] == "STANDARD_INFREQUENT_ACCESS"
    assert {t["Key"]: t["Value"] for t in props["Tags"]} == {"cost-center": "1234", "team": "orders"}


@pytest.mark.parametrize("region", REGIONS)
def test_deployment_tags_are_on_every_taggable_resource_and_table_tags_on_the_table_only(
    rich: Synthesized, region: str
) -> None:
    kinds = ("AWS::SQS::Queue", "AWS::S3::Bucket", "AWS::Lambda::Function", "AWS::IAM::Role")
    tagged = [r for kind in kinds for r in rich.resources(region, kind).values()]
    assert tagged
    for resource in tagged:
        assert {t["Key"]: t["Value"] for t in resource["Properties"]["Tags"]} == {"cost-center": "1234"}


@pytest.mark.parametrize("region", REGIONS)
def test_the_table_is_encrypted_with_its_regions_key(rich: Synthesized, region: str) -> None:
    sse = table_props(rich, region)["SSESpecification"]
    if region in KEYS:
        assert sse == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": KEYS[region]}
    else:
        assert sse == {"SSEEnabled": True}  # AWS-managed, as before the key existed


@pytest.mark.parametrize("region", REGIONS)
def test_handoff_queues_and_their_dead_letter_queues_use_the_key(rich: Synthesized, region: str) -> None:
    queues = list(named(rich, region, "AWS::SQS::Queue", "QueueName").values())
    assert len(queues) == 2 * (len(REGIONS) - 1)
    for queue in queues:
        if region in KEYS:
            assert queue["KmsMasterKeyId"] == KEYS[region]
            assert "SqsManagedSseEnabled" not in queue
        else:
            assert queue["SqsManagedSseEnabled"] is True
            assert "KmsMasterKeyId" not in queue


@pytest.mark.parametrize("region", REGIONS)
def test_the_dead_letter_bucket_uses_the_key_with_a_bucket_key(rich: Synthesized, region: str) -> None:
    bucket = rich.only(region, "AWS::S3::Bucket")["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    if region in KEYS:
        assert rule == {
            "BucketKeyEnabled": True,
            "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KEYS[region]},
        }
    else:
        assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def kms_grants(synth: Synthesized, region: str, function: str) -> dict[str, set[str]]:
    statements = role_statements(synth.template(region), function)
    actions = {a for s in statements for a in s["Action"] if a.startswith("kms:")}
    return {action: resources_for(statements, action) for action in actions}


@pytest.mark.parametrize(
    ("region", "function", "keys"),
    [
        # its own region's stores, and the tables it writes in the other regions that have a key
        ("us-east-1", f"{STEM}-replicator", {KEY_USE1, KEY_EUW1}),
        ("us-east-1", f"{STEM}-backfill", {KEY_USE1, KEY_EUW1}),
        ("us-east-1", f"{STEM}-drain-eu-west-1", {KEY_USE1, KEY_EUW1}),
        ("us-east-1", f"{STEM}-drain-ap-southeast-2", {KEY_USE1}),
        # a region without a key still needs the keys of the tables it writes
        ("ap-southeast-2", f"{STEM}-replicator", {KEY_USE1, KEY_EUW1}),
        ("ap-southeast-2", f"{STEM}-drain-eu-west-1", {KEY_EUW1}),
        ("eu-west-1", f"{STEM}-drain-ap-southeast-2", {KEY_EUW1}),
    ],
)
def test_functions_may_decrypt_and_generate_data_keys_with_exactly_the_keys_they_use(
    rich: Synthesized, region: str, function: str, keys: set[str]
) -> None:
    assert kms_grants(rich, region, function) == {"kms:Decrypt": keys, "kms:GenerateDataKey": keys}


def test_a_deployment_without_keys_grants_no_kms_action(mesh3: Synthesized) -> None:
    for function in ("orders-replicator", "orders-drain-eu-west-1"):
        assert kms_grants(mesh3, "us-east-1", function) == {}


# --- the deployment name ----------------------------------------------------------------------------


def test_stack_ids_carry_the_deployment_name(rich: Synthesized) -> None:
    assert [p.stack_id for p in rich.config.regions] == [f"Replicator-{DEPLOYMENT}-{r}" for r in REGIONS]
    names = sorted(p.name for p in rich.outdir.glob("*.template.json"))
    assert names == sorted(f"Replicator-{DEPLOYMENT}-{r}.template.json" for r in REGIONS)


@pytest.mark.parametrize("region", REGIONS)
def test_every_physical_name_carries_the_deployment_name(rich: Synthesized, region: str) -> None:
    others = [r for r in REGIONS if r != region]
    functions = set(named(rich, region, "AWS::Lambda::Function", "FunctionName"))
    assert functions == {
        f"{STEM}-replicator",
        f"{STEM}-backfill",
        *(f"{STEM}-drain-{t}" for t in others),
    }
    assert set(named(rich, region, "AWS::SQS::Queue", "QueueName")) == {
        name for t in others for name in (f"{STEM}-handoff-{t}", f"{STEM}-handoff-{t}-dlq")
    }
    assert set(named(rich, region, "AWS::S3::Bucket", "BucketName")) == {
        f"{STEM}-replicator-{ACCOUNT}-{region}"
    }
    assert set(named(rich, region, "AWS::StepFunctions::StateMachine", "StateMachineName")) == {
        f"{STEM}-backfill"
    }
    log_groups = set(named(rich, region, "AWS::Logs::LogGroup", "LogGroupName"))
    assert log_groups == {f"/aws/lambda/{f}" for f in functions} | {f"/aws/vendedlogs/states/{STEM}-backfill"}
    alarms = set(named(rich, region, "AWS::CloudWatch::Alarm", "AlarmName"))
    assert alarms and all(a.startswith(f"{STEM}-replication-{region}") for a in alarms)
    dashboards = set(named(rich, region, "AWS::CloudWatch::Dashboard", "DashboardName"))
    assert dashboards == ({f"{STEM}-replication"} if region == REGIONS[0] else set())
    assert table_props(rich, region)["TableName"] == "orders"  # the user's table keeps its name


def test_the_default_cdk_json_keeps_todays_stack_ids_and_names(mesh3: Synthesized) -> None:
    assert [p.stack_id for p in mesh3.config.regions] == [f"Replicator-{r}" for r in REGIONS]
    names = sorted(p.name for p in mesh3.outdir.glob("*.template.json"))
    assert names == sorted(f"Replicator-{r}.template.json" for r in REGIONS)
    for region in REGIONS:
        others = [r for r in REGIONS if r != region]
        assert set(named(mesh3, region, "AWS::Lambda::Function", "FunctionName")) == {
            "orders-replicator",
            *(f"orders-drain-{t}" for t in others),
        }
        assert set(named(mesh3, region, "AWS::SQS::Queue", "QueueName")) == {
            name for t in others for name in (f"orders-handoff-{t}", f"orders-handoff-{t}-dlq")
        }
        assert set(named(mesh3, region, "AWS::S3::Bucket", "BucketName")) == {
            f"orders-replicator-111111111111-{region}"
        }
        alarms = set(named(mesh3, region, "AWS::CloudWatch::Alarm", "AlarmName"))
        assert alarms and all(a.startswith(f"orders-replication-{region}") for a in alarms)
        props = table_props(mesh3, region)
        # today's table: on demand, AWS-managed key, no index, class or tag written
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["SSESpecification"] == {"SSEEnabled": True}
        for absent in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "TableClass", "Tags"):
            assert absent not in props
    assert not mesh3.resources("us-east-1", "AWS::ApplicationAutoScaling::ScalableTarget")


# --- warnings, cdk-nag and cfn-lint --------------------------------------------------------------------


def warnings_of(synth: Synthesized, region: str) -> list[str]:
    """The warning annotations of a region's stack (in its metadata file next to the template)."""
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    (artifact,) = [
        a for a in manifest["artifacts"].values() if a.get("environment", "").endswith(f"/{region}")
    ]
    metadata = json.loads((synth.outdir / artifact["additionalMetadataFile"]).read_text())
    return [
        entry["data"]
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:warning"
    ]


@pytest.mark.parametrize("region", REGIONS)
def test_an_index_that_shows_tombstones_is_a_synth_warning_on_each_table(
    rich: Synthesized, region: str
) -> None:
    (warning,) = warnings_of(rich, region)
    assert "global_secondary_indexes[2]" in warning and "'by-sk'" in warning
    assert "[ack: ddbrep:TombstonesInIndex-by-sk]" in warning


def test_cdk_nag_passes_with_every_new_resource(rich: Synthesized, on_demand: Synthesized) -> None:
    for synth in (rich, on_demand):
        report = json.loads((synth.outdir / "validation-report.json").read_text())
        (nag,) = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
        assert nag["conclusion"] == "success"
        assert nag["violations"] == []


def test_cfn_lint_finds_no_error(rich: Synthesized, on_demand: Synthesized) -> None:
    from tests.infra.test_cli_synth import assert_cfn_lint_clean

    assert_cfn_lint_clean(rich.outdir, on_demand.outdir)


# --- on demand --------------------------------------------------------------------------------------


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-1"])
def test_on_demand_maximum_throughput_caps_the_table_and_each_global_index(
    on_demand: Synthesized, region: str
) -> None:
    props = table_props(on_demand, region)
    maximum = {"MaxReadRequestUnits": 500, "MaxWriteRequestUnits": 200}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["OnDemandThroughput"] == maximum
    (index,) = props["GlobalSecondaryIndexes"]
    assert index["OnDemandThroughput"] == maximum
    assert "ProvisionedThroughput" not in index
    assert props["TableClass"] == "STANDARD"  # given explicitly: written
    assert not on_demand.resources(region, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert warnings_of(on_demand, region) == []
