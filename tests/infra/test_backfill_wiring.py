"""The deployed backfill job is wired into every source region by `replication.backfill`, and only then."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from stacks import defaults
from tests.infra.conftest import ITEM_FILTER, ONE_WAY, REPLICA_ROLE, TWO_REGION_MESH, Synthesized, synthesize
from tests.infra.templates import function_named, render, resources_for, role_statements

pytestmark = pytest.mark.infra

STATE_MACHINE = "AWS::StepFunctions::StateMachine"
BACKFILL = TWO_REGION_MESH["backfill"]
MESH2_BACKFILL_FUNCTIONS = {"us-west-2": "orders_usw2-backfill", "eu-west-1": "orders-euw1-backfill"}


@pytest.fixture(scope="module")
def one_way_backfill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    replication = copy.deepcopy(ONE_WAY)
    replication["backfill"] = {"enabled": True}
    yield synthesize(tmp_path_factory.mktemp("oneway-backfill"), replication)


def state_machine(synth: Synthesized, region: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(properties, parsed definition) of the region's one state machine."""
    props = synth.only(region, STATE_MACHINE)["Properties"]
    return props, json.loads(render(props["DefinitionString"]))


def backfill_environment(synth: Synthesized, region: str, name: str) -> dict[str, str]:
    _, function = function_named(synth.template(region), name)
    return dict(function["Properties"]["Environment"]["Variables"])


def replicator_targets(synth: Synthesized, region: str) -> list[dict[str, Any]]:
    env = backfill_environment(synth, region, synth.config.region(region).replicator_function_name)
    return [{k: v for k, v in t.items() if k != "handoff_queue_url"} for t in json.loads(env["REP_TARGETS"])]


# --- enabled: every source region of a mesh gets one job, with the configured knobs -----------------------


@pytest.mark.parametrize("region", ["us-west-2", "eu-west-1"])
def test_each_mesh_region_gets_one_state_machine_with_the_configured_segments_and_concurrency(
    mesh2: Synthesized, region: str
) -> None:
    props, definition = state_machine(mesh2, region)
    assert props["StateMachineName"] == MESH2_BACKFILL_FUNCTIONS[region]
    states = definition["States"]
    last = BACKFILL["segments"] - 1
    assert states["ListSegments"]["Parameters"] == {"segments.$": f"States.ArrayRange(0, {last}, 1)"}
    assert states["EachSegment"]["ItemSelector"]["total_segments"] == BACKFILL["segments"]
    assert states["EachSegment"]["MaxConcurrency"] == BACKFILL["max_concurrency"]


@pytest.mark.parametrize("region", ["us-west-2", "eu-west-1"])
def test_the_state_machine_arn_is_a_stack_output(mesh2: Synthesized, region: str) -> None:
    (machine_id,) = mesh2.resources(region, STATE_MACHINE)
    output = mesh2.template(region)["Outputs"]["BackfillStateMachineArn"]  # the name the runbook uses
    assert output["Value"] == {"Ref": machine_id}
    assert "Export" not in output  # read by operators, not imported by other stacks


@pytest.mark.parametrize("region", ["us-west-2", "eu-west-1"])
def test_the_job_copies_to_the_replicators_targets_with_the_same_filter_role_and_metadata_names(
    mesh2: Synthesized, region: str
) -> None:
    env = backfill_environment(mesh2, region, MESH2_BACKFILL_FUNCTIONS[region])
    assert json.loads(env["REP_TARGETS"]) == replicator_targets(mesh2, region)
    assert env["REP_SOURCE_TABLE"] == mesh2.config.region(region).table_name
    assert (env["REP_ATTRIBUTE_PREFIX"], env["REP_TTL_ATTRIBUTE"]) == ("x_", "expires_at")
    assert (env["BACKFILL_PAGE_SIZE"], env["BACKFILL_ITEMS_PER_SECOND"]) == (
        str(BACKFILL["page_size"]),
        str(BACKFILL["items_per_second_per_segment"]),
    )
    # and retries its writes as the replicator does (one environment layer for both)
    replicator = backfill_environment(mesh2, region, mesh2.config.region(region).replicator_function_name)
    for name in ("REP_WRITE_ATTEMPTS", "REP_RETRY_BASE_DELAY_MS"):
        assert env[name] == replicator[name]


def test_a_filtered_cross_account_pair_is_backfilled_through_its_role_with_its_filter(
    mesh2: Synthesized,
) -> None:
    name = MESH2_BACKFILL_FUNCTIONS["us-west-2"]
    (target,) = json.loads(backfill_environment(mesh2, "us-west-2", name)["REP_TARGETS"])
    assert (target["item_filter"], target["role_arn"]) == (ITEM_FILTER, REPLICA_ROLE)
    statements = role_statements(mesh2.template("us-west-2"), name)
    assert resources_for(statements, "sts:AssumeRole") == {REPLICA_ROLE}
    assert not resources_for(statements, "dynamodb:PutItem")  # the replica account's role writes it
    reverse = role_statements(mesh2.template("eu-west-1"), MESH2_BACKFILL_FUNCTIONS["eu-west-1"])
    assert resources_for(reverse, "dynamodb:PutItem") == {
        "arn:aws:dynamodb:us-west-2:222222222222:table/orders_usw2"
    }


def test_the_job_logs_are_kept_as_long_as_the_functions_logs(mesh2: Synthesized) -> None:
    groups = {
        render(g["Properties"].get("LogGroupName")): g["Properties"]["RetentionInDays"]
        for g in mesh2.resources("eu-west-1", "AWS::Logs::LogGroup").values()
    }
    assert groups["/aws/vendedlogs/states/orders-euw1-backfill"] == 90
    assert groups["/aws/lambda/orders-euw1-backfill"] == 90


def test_one_way_deploys_the_job_in_the_source_only_with_the_default_knobs(
    one_way_backfill: Synthesized,
) -> None:
    _, definition = state_machine(one_way_backfill, "us-east-1")
    each = definition["States"]["EachSegment"]
    assert each["ItemSelector"]["total_segments"] == defaults.BACKFILL_SEGMENTS
    assert each["MaxConcurrency"] == defaults.BACKFILL_MAX_CONCURRENCY
    env = backfill_environment(one_way_backfill, "us-east-1", "catalog-backfill")
    assert [t["region"] for t in json.loads(env["REP_TARGETS"])] == ["eu-central-1", "ap-northeast-1"]
    assert env["BACKFILL_PAGE_SIZE"] == str(defaults.BACKFILL_PAGE_SIZE)
    assert env["BACKFILL_ITEMS_PER_SECOND"] == str(defaults.BACKFILL_ITEMS_PER_SECOND_PER_SEGMENT)
    for replica in ("eu-central-1", "ap-northeast-1"):
        assert not one_way_backfill.resources(replica, STATE_MACHINE)
        assert not one_way_backfill.resources(replica, "AWS::Lambda::Function")


# --- disabled (the default): no backfill resources at all ----------------------------------------------


def test_the_default_mesh_has_no_backfill_resources(mesh3: Synthesized) -> None:
    assert mesh3.config.backfill.enabled is defaults.BACKFILL_ENABLED is False
    for region, template in mesh3.templates.items():
        assert not mesh3.resources(region, STATE_MACHINE)
        assert "backfill" not in json.dumps(template).lower()


def test_the_default_one_way_deployment_has_no_backfill_resources(one_way: Synthesized) -> None:
    for region, template in one_way.templates.items():
        assert not one_way.resources(region, STATE_MACHINE)
        assert "backfill" not in json.dumps(template).lower()
