"""Template assertions on the deployed backfill job (a test stack holding only that construct)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.infra

ACCOUNT, REGION = "111111111111", "us-east-1"
SEGMENTS = 8
TARGETS = [
    {"region": "eu-west-1", "table": "orders"},
    {"region": "ap-south-1", "table": "orders-eu", "item_filter": {"tenant": {"S": [{"prefix": "eu-"}]}}},
    {"region": "sa-east-1", "table": "orders", "role_arn": "arn:aws:iam::333333333333:role/writer"},
]

# What stacks/config/environment.backfill_environment writes; the construct passes it through.
ENVIRONMENT = {
    "REP_LOCAL_REGION": REGION,
    "REP_SOURCE_TABLE": "orders",
    "REP_TARGETS": json.dumps(TARGETS),
    "BACKFILL_PAGE_SIZE": "250",
    "BACKFILL_ITEMS_PER_SECOND": "50",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from aws_cdk import App, Environment, Stack, Validations
    from cdk_nag import AwsSolutionsChecks

    from stacks.backfill_job import BackfillJob, BackfillTarget
    from stacks.runtime import FunctionRuntime

    outdir: Path = tmp_path_factory.mktemp("cdk.out")
    app = App(outdir=str(outdir))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))  # an unacknowledged finding fails synth
    stack = Stack(app, "BackfillTest", env=Environment(account=ACCOUNT, region=REGION))
    runtime = FunctionRuntime(stack, "Runtime", log_retention_days=30)
    BackfillJob(
        stack,
        "Backfill",
        runtime=runtime,
        function_name="orders-backfill",
        source_table_name="orders",
        targets=[BackfillTarget(**{k: v for k, v in t.items() if k != "item_filter"}) for t in TARGETS],
        environment=ENVIRONMENT,
        segments=SEGMENTS,
        max_concurrency=4,
    )
    return dict(app.synth().get_stack_by_name("BackfillTest").template)


def resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def definition(template: dict[str, Any]) -> dict[str, Any]:
    [machine] = resources(template, "AWS::StepFunctions::StateMachine")
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(p if isinstance(p, str) else "ARN" for p in parts)
    return dict(json.loads(text))


def backfill_function(template: dict[str, Any]) -> dict[str, Any]:
    [function] = [
        f
        for f in resources(template, "AWS::Lambda::Function")
        if f["Properties"]["FunctionName"] == "orders-backfill"
    ]
    return function


def test_one_child_execution_per_segment_loops_until_its_segment_is_done(template: dict[str, Any]):
    states = definition(template)["States"]
    assert states["ListSegments"]["Parameters"] == {"segments.$": f"States.ArrayRange(0, {SEGMENTS - 1}, 1)"}
    each = states["EachSegment"]
    assert each["Type"] == "Map"
    assert each["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert each["MaxConcurrency"] == 4
    assert each["ItemSelector"] == {
        "segment.$": "$$.Map.Item.Value",
        "total_segments": SEGMENTS,
    }
    child = each["ItemProcessor"]["States"]
    assert each["ItemProcessor"]["StartAt"] == "CopyPages"
    assert child["CopyPages"]["Next"] == "SegmentDone"
    assert child["SegmentDone"]["Choices"] == [
        {"Variable": "$.done", "BooleanEquals": True, "Next": "SegmentCopied"}
    ]
    assert child["SegmentDone"]["Default"] == "CopyPages"  # the hand-over loop
    assert any(r["ErrorEquals"] == ["States.TaskFailed"] for r in child["CopyPages"]["Retry"])


def test_the_function_runs_the_shared_segment_worker_on_python_3_13(template: dict[str, Any]):
    props = backfill_function(template)["Properties"]
    assert props["Handler"] == "replicator.backfill_job.lambda_handler"
    assert props["Runtime"] == "python3.13"
    assert props["Timeout"] == 900
    # the environment comes from the config layer (its values: tests/infra/test_backfill_wiring.py)
    assert props["Environment"]["Variables"] == ENVIRONMENT


def test_the_function_can_read_the_source_and_put_into_targets_only(template: dict[str, Any]):
    role_name = backfill_function(template)["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for policy in resources(template, "AWS::IAM::Policy")
        if {"Ref": role_name} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_action = {json.dumps(s["Action"]): s["Resource"] for s in statements}
    source = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders"
    assert _arns(by_action[json.dumps(["dynamodb:DescribeTable", "dynamodb:Scan"])]) == [source]
    assert sorted(_arns(by_action[json.dumps("dynamodb:PutItem")])) == [
        f"arn:aws:dynamodb:ap-south-1:{ACCOUNT}:table/orders-eu",
        f"arn:aws:dynamodb:eu-west-1:{ACCOUNT}:table/orders",
    ]
    assert by_action[json.dumps("sts:AssumeRole")] == TARGETS[2]["role_arn"]
    every_action = {
        a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert every_action == {
        "dynamodb:DescribeTable",
        "dynamodb:Scan",
        "dynamodb:PutItem",
        "sts:AssumeRole",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    }


def test_the_state_machine_is_traced_and_logged(template: dict[str, Any]):
    [machine] = resources(template, "AWS::StepFunctions::StateMachine")
    props = machine["Properties"]
    assert props["TracingConfiguration"] == {"Enabled": True}
    assert props["LoggingConfiguration"]["Level"] == "ALL"
    assert props["LoggingConfiguration"]["IncludeExecutionData"] is False


def _arns(value: Any) -> list[str]:
    """ARNs with CDK's partition token read as ``aws``."""

    def text(part: Any) -> str:
        return part if isinstance(part, str) else "aws" if part == {"Ref": "AWS::Partition"} else "?"

    values = value if isinstance(value, list) else [value]
    return [v if isinstance(v, str) else "".join(text(p) for p in v["Fn::Join"][1]) for v in values]


def test_the_local_interpreter_loads_the_synthesized_definition(template: dict[str, Any]):
    """ddbrep/local/states.py refuses any state, field or intrinsic it does not implement: the definition
    CDK synthesizes for the job must be one it runs (a change to the job that it does not implement fails
    here, not in a rehearsal)."""
    from ddbrep.local.states import load_definition
    from ddbrep.local.templates import Resolver, StackSpec

    [machine] = resources(template, "AWS::StepFunctions::StateMachine")
    [function_id] = [k for k, r in template["Resources"].items() if r is backfill_function(template)]
    resolver = Resolver(StackSpec(name="BackfillTest", region=REGION, account=ACCOUNT, resources={}))
    arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:orders-backfill"
    resolver.attributes[(function_id, "Arn")] = arn
    workflow = load_definition(resolver.resolve(machine["Properties"]["DefinitionString"]))
    assert workflow.resources() == [arn]
    copy_pages = workflow.states["EachSegment"].processor.states["CopyPages"]  # type: ignore[union-attr]
    assert copy_pages.retry[-1].errors == ("States.TaskFailed",) and copy_pages.retry[-1].max_attempts == 6
