"""stacks/config/: the cdk.json context -> deployment plan. Pure: no CDK, runs in milliseconds."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from stacks import defaults
from stacks.config import (
    BackfillSettings,
    ConfigError,
    drain_environment,
    event_filters,
    load_config,
    parse_context,
    replicator_environment,
)

ROOT = Path(__file__).resolve().parents[2]


def mesh(**overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "topology": "mesh",
        "regions": ["us-east-1", "eu-west-1"],
        "table": {"name": "orders", "partition_key": {"name": "pk", "type": "S"}},
    }
    block.update(overrides)
    return block


def one_way(**overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "topology": "one-way",
        "source": "us-east-1",
        "replicas": ["eu-west-1", "ap-southeast-2"],
        "table": {"name": "orders", "partition_key": {"name": "pk", "type": "S"}},
    }
    block.update(overrides)
    return block


def error_of(block: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        load_config(block)
    return str(raised.value)


# ------------------------------------------------------------------------------------ one test per error


def test_unknown_region_names_the_key_and_the_fix() -> None:
    message = error_of(mesh(regions=["us-east-1", "eu-west-9"]))
    assert "replication.regions[1]" in message
    assert "'eu-west-9'" in message
    assert "Fix:" in message


def test_duplicate_region_is_rejected() -> None:
    message = error_of(mesh(regions=["us-east-1", "eu-west-1", "us-east-1"]))
    assert "replication.regions" in message
    assert "more than once" in message


def test_fewer_than_two_regions_is_rejected() -> None:
    message = error_of(mesh(regions=["us-east-1"]))
    assert "replication.regions" in message
    assert "at least two" in message


def test_one_way_without_replicas_is_rejected() -> None:
    message = error_of(one_way(replicas=[]))
    assert "replication.replicas" in message
    assert "at least one" in message


def test_pair_from_a_region_to_itself_is_rejected() -> None:
    message = error_of(mesh(pairs={"us-east-1->us-east-1": {"item_filter": {"a": {"S": ["b"]}}}}))
    assert "replication.pairs.us-east-1->us-east-1" in message
    assert "to itself" in message


def test_one_way_replica_equal_to_the_source_is_rejected() -> None:
    message = error_of(one_way(replicas=["eu-west-1", "us-east-1"]))
    assert "replication.replicas" in message
    assert "itself" in message


def test_bad_key_type_is_rejected() -> None:
    message = error_of(mesh(table={"name": "orders", "partition_key": {"name": "pk", "type": "STRING"}}))
    assert "replication.table.partition_key.type" in message
    assert "S (string), N (number) or B (binary)" in message


@pytest.mark.parametrize("batch_size", [0, 10_001])
def test_batch_size_out_of_lambda_range_is_rejected(batch_size: int) -> None:
    message = error_of(mesh(stream={"batch_size": batch_size}))
    assert "replication.stream.batch_size" in message
    assert "1 to 10000" in message


def test_batch_size_out_of_range_in_a_source_override_names_that_source() -> None:
    message = error_of(mesh(sources={"eu-west-1": {"batch_size": 20_000}}))
    assert "replication.sources.eu-west-1.batch_size" in message


def test_unknown_topology_is_rejected() -> None:
    message = error_of(mesh(topology="star"))
    assert "replication.topology" in message
    assert "mesh, one-way" in message


def test_unknown_key_under_the_replication_block_is_rejected() -> None:
    message = error_of(mesh(regoins=["us-east-1"]))
    assert "replication.regoins is not a known key" in message
    assert "regions" in message


def test_unknown_key_in_a_nested_block_is_rejected() -> None:
    message = error_of(mesh(table={"name": "orders", "partition_key": {"name": "pk"}, "ttl": "x"}))
    assert "replication.table.ttl is not a known key" in message


def test_mapping_setting_under_a_pair_says_where_it_belongs() -> None:
    message = error_of(mesh(pairs={"us-east-1->eu-west-1": {"batch_size": 10}}))
    assert "replication.pairs.us-east-1->eu-west-1.batch_size" in message
    assert "single event source mapping" in message


def test_pair_that_is_not_a_path_of_a_one_way_deployment_is_rejected() -> None:
    message = error_of(one_way(pairs={"eu-west-1->us-east-1": {}}))
    assert "not a replication path" in message


def test_missing_block_says_how_to_add_it() -> None:
    with pytest.raises(ConfigError, match=r"cdk\.json"):
        load_config(None)


def test_a_mesh_pair_writing_another_account_is_refused() -> None:
    # Given a mesh (every stack in account 111111111111) with one direction writing account 333333333333
    role = "arn:aws:iam::333333333333:role/replica-writer"
    message = error_of(mesh(pairs={"us-east-1->eu-west-1": {"role_arn": role}}))
    # Then synth fails naming the key, both accounts and the fix
    assert "replication.pairs.us-east-1->eu-west-1.role_arn" in message
    assert "333333333333" in message and "111111111111" in message and "one-way" in message


def test_a_mesh_pair_may_write_through_a_role_of_its_own_account() -> None:
    role = "arn:aws:iam::111111111111:role/replica-writer"
    config = load_config(mesh(pairs={"us-east-1->eu-west-1": {"role_arn": role}}))
    assert config.region("us-east-1").targets[0].role_arn == role


def test_bad_role_arn_is_rejected() -> None:
    message = error_of(mesh(pairs={"us-east-1->eu-west-1": {"role_arn": "arn:aws:iam::12:user/x"}}))
    assert "replication.pairs.us-east-1->eu-west-1.role_arn" in message


def test_tombstones_that_expire_before_a_handed_off_write_can_arrive_are_rejected() -> None:
    message = error_of(mesh(tombstone_retention_days=7))
    assert "replication.tombstone_retention_days = 7" in message
    assert "at least 16" in message and "handoff_retention_days" in message


def test_shorter_handoff_retention_allows_shorter_tombstones() -> None:
    config = load_config(mesh(tombstone_retention_days=7, handoff_retention_days=5))
    assert config.tombstone_retention_seconds == 7 * 86_400
    assert {t.handoff_retention_days for r in config.regions for t in r.targets} == {5}


@pytest.mark.parametrize("skew", [0, 86_401, "5m", True])
def test_a_clock_skew_bound_out_of_range_names_the_key(skew: object) -> None:
    message = error_of(mesh(max_clock_skew_seconds=skew))
    assert "replication.max_clock_skew_seconds" in message


def test_the_clock_skew_bound_reaches_the_function() -> None:
    config = load_config(mesh(max_clock_skew_seconds=120))
    plan = config.regions[0]
    assert replicator_environment(config, plan)["REP_MAX_CLOCK_SKEW_SECONDS"] == "120"


def test_every_writer_of_tombstones_uses_the_one_retention_definition() -> None:
    # The function's settings, the client helper, verify --repair and the stacks: one value, from the core.
    import inspect

    from ddbrep.client import ReplicatedTable
    from ddbrep.tools.verify import Verify
    from replicator.core import defaults as core_defaults
    from replicator.settings import Settings

    expected = core_defaults.TOMBSTONE_RETENTION_SECONDS
    assert expected > (core_defaults.HANDOFF_RETENTION_DAYS + core_defaults.STREAM_RETENTION_DAYS) * 86_400
    assert expected == defaults.TOMBSTONE_RETENTION_DAYS * 86_400
    assert load_config(mesh()).tombstone_retention_seconds == expected
    assert Settings.__dataclass_fields__["tombstone_retention_seconds"].default == expected
    helper_default = inspect.signature(ReplicatedTable).parameters["tombstone_retention_seconds"].default
    assert helper_default == expected
    assert Verify.__dataclass_fields__["retention_seconds"].default == expected


def test_handoff_retention_beyond_what_sqs_keeps_is_rejected() -> None:
    assert "replication.handoff_retention_days" in error_of(mesh(handoff_retention_days=15))


def test_an_item_filter_that_is_not_a_valid_pattern_names_the_pair() -> None:
    message = error_of(mesh(pairs={"us-east-1->eu-west-1": {"item_filter": {"tier": {"S": "gold"}}}}))
    assert "replication.pairs.us-east-1->eu-west-1.item_filter is not a valid event pattern" in message


def test_topic_in_another_region_is_rejected() -> None:
    topic = "arn:aws:sns:eu-west-1:111111111111:ops"
    message = error_of(mesh(alarms={"topic_arns": {"us-east-1": topic}}))
    assert "replication.alarms.topic_arns.us-east-1" in message
    assert "another region" in message


def test_account_must_have_twelve_digits() -> None:
    message = error_of(mesh(account="1234"))
    assert "replication.account" in message
    assert "-c account=" in message


def test_table_name_per_region_must_cover_every_region() -> None:
    message = error_of(mesh(table={"name": {"us-east-1": "orders"}, "partition_key": {"name": "pk"}}))
    assert "replication.table.name" in message
    assert "eu-west-1" in message


def test_log_retention_must_be_one_cloudwatch_accepts() -> None:
    message = error_of(mesh(function={"log_retention_days": 31}))
    assert "replication.function.log_retention_days" in message


def test_backfill_that_is_not_an_object_is_rejected() -> None:
    message = error_of(mesh(backfill=True))
    assert "replication.backfill must be a JSON object" in message


def test_unknown_key_in_the_backfill_block_is_rejected() -> None:
    message = error_of(mesh(backfill={"enabled": True, "segmnets": 8}))
    assert "replication.backfill.segmnets is not a known key" in message
    assert "segments" in message


def test_backfill_enabled_must_be_a_boolean() -> None:
    message = error_of(mesh(backfill={"enabled": "yes"}))
    assert "replication.backfill.enabled = 'yes' must be true or false" in message


@pytest.mark.parametrize("segments", [0, 1001])
def test_backfill_segments_beyond_what_the_state_machine_can_list_are_rejected(segments: int) -> None:
    message = error_of(mesh(backfill={"segments": segments}))
    assert f"replication.backfill.segments = {segments} is out of range" in message
    assert "States.ArrayRange" in message
    assert "1 to 1000" in message


@pytest.mark.parametrize("max_concurrency", [0, 10_001])
def test_backfill_concurrency_beyond_the_distributed_map_limit_is_rejected(max_concurrency: int) -> None:
    message = error_of(mesh(backfill={"max_concurrency": max_concurrency}))
    assert f"replication.backfill.max_concurrency = {max_concurrency} is out of range" in message
    assert "1 to 10000" in message


@pytest.mark.parametrize("page_size", [0, 10_001])
def test_backfill_page_size_out_of_range_is_rejected(page_size: int) -> None:
    message = error_of(mesh(backfill={"page_size": page_size}))
    assert f"replication.backfill.page_size = {page_size} is out of range" in message
    assert "1 to 10000" in message


def test_backfill_negative_write_budget_is_rejected() -> None:
    message = error_of(mesh(backfill={"items_per_second_per_segment": -1}))
    assert "replication.backfill.items_per_second_per_segment = -1 is out of range" in message
    assert "0 means no budget" in message


def test_backfill_segments_must_be_an_integer() -> None:
    message = error_of(mesh(backfill={"segments": "16"}))
    assert "replication.backfill.segments = '16' must be an integer" in message


def test_backfill_page_that_takes_longer_than_the_stop_margin_at_the_budget_is_rejected() -> None:
    margin = defaults.BACKFILL_STOP_MARGIN_SECONDS
    message = error_of(mesh(backfill={"page_size": 2 * margin + 1, "items_per_second_per_segment": 2}))
    assert "replication.backfill.page_size" in message
    assert f"longer than {margin} s" in message
    assert f"Fix: set page_size to at most {2 * margin}" in message


# ------------------------------------------------------------------------------------------- the plan


def test_backfill_is_off_by_default_with_the_defaults_of_stacks_defaults() -> None:
    backfill = load_config(mesh()).backfill
    assert backfill == BackfillSettings()
    assert backfill.enabled is defaults.BACKFILL_ENABLED is False
    assert (
        backfill.segments,
        backfill.max_concurrency,
        backfill.page_size,
        backfill.items_per_second_per_segment,
    ) == (
        defaults.BACKFILL_SEGMENTS,
        defaults.BACKFILL_MAX_CONCURRENCY,
        defaults.BACKFILL_PAGE_SIZE,
        defaults.BACKFILL_ITEMS_PER_SECOND_PER_SEGMENT,
    )


def test_backfill_block_sets_every_knob_and_names_the_job_after_the_table() -> None:
    block = {
        "enabled": True,
        "segments": 1000,
        "max_concurrency": 10_000,
        "page_size": 120,
        "items_per_second_per_segment": 2,
    }
    config = load_config(mesh(backfill=block))
    assert config.backfill == BackfillSettings(**block)
    assert config.region("eu-west-1").backfill_function_name == "orders-backfill"


def test_mesh_defaults_are_those_of_stacks_defaults() -> None:
    config = load_config(mesh())
    assert config.account == defaults.PLACEHOLDER_ACCOUNT
    assert config.attribute_prefix == defaults.ATTRIBUTE_PREFIX
    assert config.ttl_attribute == "rep_expires"
    assert config.tombstone_retention_seconds == defaults.TOMBSTONE_RETENTION_DAYS * 86_400
    assert config.point_in_time_recovery is True
    assert config.deletion_protection is True
    assert config.sort_key is None
    assert config.dashboard_region == "us-east-1"
    for plan in config.regions:
        assert plan.stream.batch_size == defaults.BATCH_SIZE
        assert plan.stream.retry_attempts == defaults.RETRY_ATTEMPTS
        assert [t.region for t in plan.targets] == [r for r in config.region_names if r != plan.region]


def test_mesh_targets_carry_literal_queue_urls_in_the_source_region() -> None:
    config = load_config(mesh(account="222222222222"))
    target = config.region("us-east-1").targets[0]
    assert target.region == "eu-west-1"
    assert (
        target.handoff_queue_url
        == "https://sqs.us-east-1.amazonaws.com/222222222222/orders-handoff-eu-west-1"
    )
    assert target.handoff_dlq_name == "orders-handoff-eu-west-1-dlq"
    assert target.drain_function_name == "orders-drain-eu-west-1"


def test_one_way_replicas_have_no_targets() -> None:
    config = load_config(one_way())
    assert config.region("us-east-1").is_source
    assert not config.region("eu-west-1").is_source
    assert event_filters(config, config.region("us-east-1")) == []


def test_mesh_event_filter_is_the_two_patterns_of_design_section_6() -> None:
    config = load_config(mesh(attribute_prefix="x_"))
    assert event_filters(config, config.region("eu-west-1")) == [
        {"dynamodb": {"NewImage": {"x_region": {"S": ["eu-west-1"]}}}},
        {"dynamodb": {"NewImage": {"x_region": {"S": [{"exists": False}]}}}},
    ]


def test_replicator_environment_matches_the_function_settings_contract() -> None:
    from replicator.settings import parse_settings

    item_filter = {"tenant": {"S": [{"prefix": "eu-"}]}}
    role = "arn:aws:iam::333333333333:role/replica-writer"
    config = load_config(
        one_way(pairs={"us-east-1->eu-west-1": {"item_filter": item_filter, "role_arn": role}})
    )
    plan = config.region("us-east-1")
    settings = parse_settings(drain_environment(config, plan, plan.targets[0]))
    assert settings.local_region == "us-east-1"
    assert settings.dead_letter_bucket == "orders-replicator-111111111111-us-east-1"
    assert settings.drain_target_region == "eu-west-1"
    assert settings.target("eu-west-1").item_filter == item_filter
    assert settings.target("eu-west-1").role_arn == role
    assert plan.targets[0].table_account == "333333333333"
    assert "REP_ENDPOINT_URLS" not in replicator_environment(config, plan)
    assert "POWERTOOLS_SERVICE_NAME" not in replicator_environment(config, plan)


def test_long_table_names_still_give_valid_physical_names() -> None:
    name = "Customer.Orders_" + "x" * 120
    config = load_config(mesh(table={"name": name, "partition_key": {"name": "pk"}}))
    plan = config.region("us-east-1")
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", plan.dead_letter_bucket)
    assert len(plan.replicator_function_name) <= 64
    assert len(plan.backfill_function_name) <= 64
    assert len(plan.targets[0].drain_function_name) <= 64
    assert len(plan.targets[0].handoff_dlq_name) <= 80
    assert "." not in plan.targets[0].handoff_queue_name


def test_context_given_on_the_command_line_is_parsed_as_json() -> None:
    block = mesh()
    assert parse_context(json.dumps(block)) == block
    assert load_config(json.dumps(block), account="444444444444").account == "444444444444"


def test_cdk_json_default_is_a_three_region_mesh() -> None:
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    config = load_config(copy.deepcopy(context[defaults.CONTEXT_KEY]))
    assert config.topology == "mesh"
    assert config.region_names == ("us-east-1", "eu-west-1", "ap-southeast-2")
    assert config.partition_key.name == "pk"
    assert config.sort_key is not None and config.sort_key.name == "sk"


def test_powertools_version_equals_the_pin_in_requirements_dev() -> None:
    pins = (ROOT / "requirements-dev.txt").read_text()
    match = re.search(r"^aws-lambda-powertools==(\S+)", pins, re.MULTILINE)
    assert match is not None
    assert match.group(1) == defaults.POWERTOOLS_VERSION
    assert defaults.POWERTOOLS_LAYER_PARAMETER.endswith(f"/{defaults.PYTHON_RUNTIME}/{match.group(1)}")


def test_dead_letters_are_kept_longer_than_tombstones_by_default() -> None:
    config = load_config(mesh())
    assert config.dead_letter_retention_days == defaults.DEAD_LETTER_RETENTION_DAYS
    assert config.dead_letter_retention_days > defaults.TOMBSTONE_RETENTION_DAYS


def test_dead_letters_expiring_before_their_tombstones_names_the_key() -> None:
    message = error_of(mesh(dead_letter_retention_days=10))
    assert "replication.dead_letter_retention_days = 10 is out of range" in message
    assert "tombstone_retention_days" in message


@pytest.mark.parametrize("value", [1, 1001])
def test_drain_concurrency_outside_what_lambda_allows_names_the_key(value: int) -> None:
    message = error_of(mesh(function={"drain_max_concurrency": value}))
    assert "replication.function.drain_max_concurrency" in message


def test_metrics_flush_seconds_reaches_the_replicator_only_when_set() -> None:
    from replicator.settings import parse_settings

    # Given the default: the environment (and so the template) of a deployment made before the knob
    default = load_config(mesh())
    assert "REP_METRICS_FLUSH_SECONDS" not in replicator_environment(default, default.region("us-east-1"))
    # When set, the replicator reads it back
    config = load_config(mesh(function={"metrics_flush_seconds": 30}))
    plan = config.region("us-east-1")
    assert parse_settings(replicator_environment(config, plan)).metrics_flush_seconds == 30
    # And a buffered latency is never held longer than a minute (a fifth of an alarm period)
    assert "replication.function.metrics_flush_seconds" in error_of(
        mesh(function={"metrics_flush_seconds": 61})
    )
