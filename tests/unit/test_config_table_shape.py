"""stacks/config: the shape of a created table (indexes, billing, class, tags), customer managed keys and
deployment names. Each bad configuration fails synth with a message naming its key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from stacks import defaults
from stacks.config import (
    AutoScaling,
    GlobalIndex,
    KeyAttribute,
    LocalIndex,
    OnDemand,
    Projection,
    Provisioned,
    TableShape,
    load_config,
)
from tests.unit.test_config import ROOT, error_of, mesh, one_way

KEY_USE1 = "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_EUW1 = "arn:aws:kms:eu-west-1:111111111111:key/mrk-1234abcd12ab34cd56ef1234567890ab"
TABLE_PATH = "replication.table"


def table(**overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "name": "orders",
        "partition_key": {"name": "pk", "type": "S"},
        "sort_key": {"name": "sk", "type": "S"},
    }
    block.update(overrides)
    return block


def gsi(name: str = "by-status", projection: Any = "ALL", **keys: Any) -> dict[str, Any]:
    return {
        "name": name,
        "partition_key": keys.get("partition_key", {"name": "status", "type": "S"}),
        **({"sort_key": keys["sort_key"]} if "sort_key" in keys else {}),
        "projection": projection,
    }


def lsi(name: str = "by-updated", projection: Any = "KEYS_ONLY", **keys: Any) -> dict[str, Any]:
    return {"name": name, "sort_key": {"name": "updated", "type": "N"}, "projection": projection, **keys}


def shape_error(**table_overrides: Any) -> str:
    return error_of(mesh(table=table(**table_overrides)))


def provisioned(**settings: Any) -> dict[str, Any]:
    return {"mode": "provisioned", "read_capacity": 10, "write_capacity": 30, **settings}


# ------------------------------------------------------------------------------------------ the plan


def test_no_shape_keys_keep_todays_table() -> None:
    config = load_config(mesh())
    assert config.table_shape == TableShape()
    assert config.table_shape.billing == OnDemand()
    assert config.table_shape.table_class is None
    assert config.deployment_name is None
    assert config.tags == {}
    assert config.warnings == ()
    assert {plan.kms_key_arn for plan in config.regions} == {None}


def test_a_rich_table_becomes_its_plan() -> None:
    config = load_config(
        mesh(
            table=table(
                global_secondary_indexes=[
                    gsi(sort_key={"name": "created", "type": "N"}, projection=["total", "rep_deleted"]),
                    gsi("by-customer", partition_key={"name": "customer", "type": "S"}),
                ],
                local_secondary_indexes=[lsi()],
                billing=provisioned(
                    autoscaling={
                        "max_read_capacity": 100,
                        "max_write_capacity": 300,
                        "target_utilization": 60,
                    }
                ),
                table_class="STANDARD_INFREQUENT_ACCESS",
                tags={"team": "orders"},
            ),
            tags={"cost-center": "1234"},
        )
    )
    shape = config.table_shape
    assert shape.global_indexes == (
        GlobalIndex(
            "by-status",
            KeyAttribute("status", "S"),
            KeyAttribute("created", "N"),
            Projection("INCLUDE", ("total", "rep_deleted")),
        ),
        GlobalIndex("by-customer", KeyAttribute("customer", "S"), None, Projection("ALL")),
    )
    assert shape.local_indexes == (
        LocalIndex("by-updated", KeyAttribute("updated", "N"), Projection("KEYS_ONLY")),
    )
    assert shape.billing == Provisioned(10, 30, AutoScaling(100, 300, 60))
    assert shape.table_class == "STANDARD_INFREQUENT_ACCESS"
    assert shape.tags == {"team": "orders"}
    assert config.tags == {"cost-center": "1234"}


def test_on_demand_maximum_throughput() -> None:
    billing = {"mode": "on_demand", "max_read_request_units": 500, "max_write_request_units": 200}
    config = load_config(mesh(table=table(billing=billing)))
    assert config.table_shape.billing == OnDemand(500, 200)


def test_autoscaling_target_defaults_to_seventy_percent() -> None:
    billing = provisioned(autoscaling={"max_read_capacity": 10, "max_write_capacity": 30})
    config = load_config(mesh(table=table(billing=billing)))
    assert config.table_shape.billing == Provisioned(10, 30, AutoScaling(10, 30, 70))
    assert defaults.AUTOSCALING_TARGET_UTILIZATION == 70


def test_exactly_twenty_global_and_five_local_indexes_are_accepted() -> None:
    globals_ = [gsi(f"gsi{i:02}", partition_key={"name": f"a{i}", "type": "S"}) for i in range(20)]
    locals_ = [lsi(f"lsi{i}", sort_key={"name": f"b{i}", "type": "N"}) for i in range(5)]
    config = load_config(
        mesh(table=table(global_secondary_indexes=globals_, local_secondary_indexes=locals_))
    )
    assert len(config.table_shape.global_indexes) == 20
    assert len(config.table_shape.local_indexes) == 5


def test_a_local_index_may_restate_the_tables_partition_key() -> None:
    local = lsi(partition_key={"name": "pk", "type": "S"})
    config = load_config(mesh(table=table(local_secondary_indexes=[local])))
    assert config.table_shape.local_indexes[0].name == "by-updated"


def test_an_index_key_may_reuse_a_table_key_of_the_same_type() -> None:
    inverted = gsi("by-sk", partition_key={"name": "sk", "type": "S"}, sort_key={"name": "pk", "type": "S"})
    config = load_config(mesh(table=table(global_secondary_indexes=[inverted])))
    assert config.table_shape.global_indexes[0].partition_key == KeyAttribute("sk", "S")


def test_customer_managed_keys_per_region() -> None:
    config = load_config(mesh(kms_key_arns={"us-east-1": KEY_USE1, "eu-west-1": KEY_EUW1}))
    assert config.region("us-east-1").kms_key_arn == KEY_USE1
    assert config.region("eu-west-1").kms_key_arn == KEY_EUW1


def test_a_region_may_keep_aws_managed_encryption() -> None:
    config = load_config(mesh(kms_key_arns={"us-east-1": KEY_USE1}))
    assert config.region("eu-west-1").kms_key_arn is None


def test_a_deployment_name_goes_into_the_stack_id_and_every_physical_name() -> None:
    config = load_config(mesh(deployment_name="blue", account="222222222222", backfill={"enabled": True}))
    plan = config.region("us-east-1")
    assert plan.stack_id == "Replicator-blue-us-east-1"
    assert plan.dead_letter_bucket == "blue-orders-replicator-222222222222-us-east-1"
    assert plan.replicator_function_name == "blue-orders-replicator"
    assert plan.backfill_function_name == "blue-orders-backfill"
    assert plan.alarm_topic_name == "blue-orders-replication-alarms"
    assert plan.alarm_prefix == "blue-orders-replication-us-east-1"
    (target,) = plan.targets
    assert target.handoff_queue_name == "blue-orders-handoff-eu-west-1"
    assert target.handoff_dlq_name == "blue-orders-handoff-eu-west-1-dlq"
    assert target.drain_function_name == "blue-orders-drain-eu-west-1"
    assert target.handoff_queue_url.endswith("/222222222222/blue-orders-handoff-eu-west-1")
    assert config.dashboard_name == "blue-orders-replication"
    assert plan.table_name == "orders"  # the table is the user's: its name is never changed


def test_without_a_deployment_name_every_name_is_the_first_releases() -> None:
    # Renaming a stack creates a new one and orphans the retained table: upgrades keep every name.
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    config = load_config(copy.deepcopy(context[defaults.CONTEXT_KEY]))
    assert [p.stack_id for p in config.regions] == [
        "Replicator-us-east-1",
        "Replicator-eu-west-1",
        "Replicator-ap-southeast-2",
    ]
    plan = config.region("us-east-1")
    assert plan.dead_letter_bucket == "orders-replicator-111111111111-us-east-1"
    assert plan.replicator_function_name == "orders-replicator"
    assert [t.handoff_queue_name for t in plan.targets] == [
        "orders-handoff-eu-west-1",
        "orders-handoff-ap-southeast-2",
    ]
    assert config.dashboard_name == "orders-replication"


def test_a_long_dotted_table_name_keeps_its_bucket_name() -> None:
    # The hash of a cut bucket name is still taken over the table name as given (dots included):
    # the value the first release computed.
    name = "Customer.Orders_" + "x" * 60
    plan = load_config(mesh(table={"name": name, "partition_key": {"name": "pk"}})).region("us-east-1")
    assert plan.dead_letter_bucket == "customer-orders-xxxxxx-1df2e8-replicator-111111111111-us-east-1"


# --------------------------------------------------------------------------------------- the warnings


def test_provisioned_writes_without_autoscaling_in_a_mesh_of_three_warn() -> None:
    block = mesh(regions=["us-east-1", "eu-west-1", "ap-southeast-2"], table=table(billing=provisioned()))
    (warning,) = load_config(block).warnings
    assert warning.id == "ProvisionedWriteCapacity"
    assert "replication.table.billing" in warning.message
    assert "all 3 regions" in warning.message and "autoscaling" in warning.message


@pytest.mark.parametrize(
    "block",
    [
        mesh(table=table(billing=provisioned())),  # two regions: each table takes twice its own writes
        mesh(
            regions=["us-east-1", "eu-west-1", "ap-southeast-2"],
            table=table(billing=provisioned(autoscaling={"max_read_capacity": 10, "max_write_capacity": 90})),
        ),
        one_way(table=table(billing=provisioned())),  # a replica takes the source's writes only
    ],
    ids=["two-region mesh", "autoscaling", "one-way"],
)
def test_no_capacity_warning_where_the_rule_does_not_apply(block: dict[str, Any]) -> None:
    assert load_config(block).warnings == ()


def test_an_index_that_holds_tombstones_without_their_flag_warns() -> None:
    inverted = gsi(
        "by-sk",
        partition_key={"name": "sk", "type": "S"},
        sort_key={"name": "pk", "type": "S"},
        projection="KEYS_ONLY",
    )
    (warning,) = load_config(mesh(table=table(global_secondary_indexes=[inverted]))).warnings
    assert warning.id == "TombstonesInIndex-by-sk"
    assert "replication.table.global_secondary_indexes[0]" in warning.message
    assert "'rep_deleted'" in warning.message


@pytest.mark.parametrize("projection", ["ALL", ["rep_deleted"]])
def test_an_index_that_holds_tombstones_with_their_flag_does_not_warn(projection: Any) -> None:
    inverted = gsi("by-sk", partition_key={"name": "sk", "type": "S"}, projection=projection)
    assert load_config(mesh(table=table(global_secondary_indexes=[inverted]))).warnings == ()


def test_a_sparse_index_does_not_warn() -> None:
    # A tombstone has no "status": it never appears in the index.
    assert (
        load_config(mesh(table=table(global_secondary_indexes=[gsi(projection="KEYS_ONLY")]))).warnings == ()
    )


# ------------------------------------------------------------------------------------ one test per error


def test_two_indexes_with_one_name_are_refused_across_global_and_local() -> None:
    message = shape_error(global_secondary_indexes=[gsi("by-x")], local_secondary_indexes=[lsi("by-x")])
    assert "replication.table.local_secondary_indexes[0].name = 'by-x'" in message
    assert "replication.table.global_secondary_indexes[0]" in message
    assert "share one namespace" in message


def test_two_global_indexes_with_one_name_are_refused() -> None:
    message = shape_error(global_secondary_indexes=[gsi("by-x"), gsi("by-x")])
    assert "replication.table.global_secondary_indexes[1].name" in message


def test_a_local_index_needs_a_table_sort_key() -> None:
    message = error_of(
        mesh(table={"name": "orders", "partition_key": {"name": "pk"}, "local_secondary_indexes": [lsi()]})
    )
    assert "replication.table.local_secondary_indexes[0]" in message
    assert "without a sort key" in message and "global secondary index" in message


def test_a_local_index_with_another_partition_key_is_refused() -> None:
    message = shape_error(local_secondary_indexes=[lsi(partition_key={"name": "tenant", "type": "S"})])
    assert "replication.table.local_secondary_indexes[0].partition_key = 'tenant'" in message
    assert "table's partition key 'pk'" in message


def test_a_local_index_restating_the_partition_key_with_another_type_is_refused() -> None:
    message = shape_error(local_secondary_indexes=[lsi(partition_key={"name": "pk", "type": "N"})])
    assert "replication.table.local_secondary_indexes[0].partition_key" in message


@pytest.mark.parametrize("projection", ["INCLUDE", "all", {"type": "ALL"}, 3, None])
def test_a_projection_other_than_the_three_forms_is_refused(projection: Any) -> None:
    message = shape_error(global_secondary_indexes=[gsi(projection=projection)])
    assert "replication.table.global_secondary_indexes[0].projection" in message
    assert '"ALL", "KEYS_ONLY", or a list' in message


def test_an_empty_include_list_is_refused() -> None:
    message = shape_error(local_secondary_indexes=[lsi(projection=[])])
    assert "replication.table.local_secondary_indexes[0].projection is an empty INCLUDE list" in message


@pytest.mark.parametrize("attribute", ["pk", "sk", "status", "created"])
def test_an_include_list_naming_a_key_attribute_is_refused(attribute: str) -> None:
    index = gsi(sort_key={"name": "created", "type": "N"}, projection=["total", attribute])
    message = shape_error(global_secondary_indexes=[index])
    assert "replication.table.global_secondary_indexes[0].projection" in message
    assert f"the key attribute {attribute!r}" in message


def test_an_include_list_naming_an_attribute_twice_is_refused() -> None:
    message = shape_error(global_secondary_indexes=[gsi(projection=["total", "total"])])
    assert "lists 'total' more than once" in message


def test_more_than_a_hundred_projected_attributes_in_all_are_refused() -> None:
    indexes = [
        gsi(f"gsi{i}", partition_key={"name": f"a{i}", "type": "S"}, projection=[f"x{j}" for j in range(34)])
        for i in range(3)
    ]
    message = shape_error(global_secondary_indexes=indexes)
    assert "project 102 non-key attributes" in message and "100 per table" in message


def test_provisioned_billing_without_capacity_is_refused() -> None:
    message = shape_error(billing={"mode": "provisioned", "read_capacity": 5})
    assert "replication.table.billing is provisioned without write_capacity" in message


def test_provisioned_billing_without_any_capacity_names_both() -> None:
    message = shape_error(billing={"mode": "provisioned"})
    assert "without read_capacity and write_capacity" in message


@pytest.mark.parametrize(
    ("autoscaling", "key"),
    [
        (
            {"max_read_capacity": 9, "max_write_capacity": 30},
            "max_read_capacity = 9 is below read_capacity = 10",
        ),
        (
            {"max_read_capacity": 10, "max_write_capacity": 29},
            "max_write_capacity = 29 is below write_capacity",
        ),
    ],
)
def test_an_autoscaling_maximum_below_the_base_capacity_is_refused(
    autoscaling: dict[str, int], key: str
) -> None:
    message = shape_error(billing=provisioned(autoscaling=autoscaling))
    assert "replication.table.billing.autoscaling." in message
    assert key in message


def test_an_autoscaling_maximum_is_required() -> None:
    message = shape_error(billing=provisioned(autoscaling={"max_read_capacity": 20}))
    assert "replication.table.billing.autoscaling.max_write_capacity is required" in message


@pytest.mark.parametrize("target", [19, 91, 0, 100])
def test_a_target_utilization_outside_twenty_to_ninety_is_refused(target: int) -> None:
    autoscaling = {"max_read_capacity": 20, "max_write_capacity": 60, "target_utilization": target}
    message = shape_error(billing=provisioned(autoscaling=autoscaling))
    assert f"replication.table.billing.autoscaling.target_utilization = {target} is out of range" in message
    assert "20 to 90" in message


@pytest.mark.parametrize("target", [20, 90])
def test_a_target_utilization_at_the_bounds_is_accepted(target: int) -> None:
    autoscaling = {"max_read_capacity": 20, "max_write_capacity": 60, "target_utilization": target}
    billing = load_config(mesh(table=table(billing=provisioned(autoscaling=autoscaling)))).table_shape.billing
    assert isinstance(billing, Provisioned) and billing.autoscaling is not None
    assert billing.autoscaling.target_utilization == target


def test_an_unknown_billing_mode_is_refused() -> None:
    message = shape_error(billing={"mode": "PAY_PER_REQUEST"})
    assert "replication.table.billing.mode = 'PAY_PER_REQUEST' is not a billing mode" in message
    assert "on_demand, provisioned" in message


def test_capacity_under_on_demand_billing_says_which_mode_it_belongs_to() -> None:
    message = shape_error(billing={"mode": "on_demand", "write_capacity": 5})
    assert 'replication.table.billing.write_capacity applies to billing mode "provisioned" only' in message


def test_on_demand_maximums_under_provisioned_billing_are_refused() -> None:
    message = shape_error(billing=provisioned(max_read_request_units=5))
    assert 'replication.table.billing.max_read_request_units applies to billing mode "on_demand"' in message


def test_a_capacity_that_is_not_a_positive_integer_is_refused() -> None:
    message = shape_error(billing=provisioned(read_capacity=0))
    assert "replication.table.billing.read_capacity = 0 is out of range" in message


@pytest.mark.parametrize(
    ("kms_key_arns", "expected"),
    [
        ({"us-west-2": KEY_USE1}, "replication.kms_key_arns.us-west-2 names a region outside the deployment"),
        (
            {"us-east-1": "arn:aws:kms:us-east-1:111111111111:alias/orders"},
            "replication.kms_key_arns.us-east-1 = 'arn:aws:kms:us-east-1:111111111111:alias/orders' is not "
            "a KMS key ARN",
        ),
        ({"us-east-1": "1234abcd-12ab-34cd-56ef-1234567890ab"}, "is not a KMS key ARN"),
        (
            {"eu-west-1": KEY_USE1},
            "replication.kms_key_arns.eu-west-1 = " + repr(KEY_USE1) + " is a key in us-east-1",
        ),
        ("arn:aws:kms:us-east-1:111111111111:key/x", "replication.kms_key_arns must be an object"),
    ],
    ids=["region outside", "alias", "bare key id", "other region", "not an object"],
)
def test_bad_customer_managed_keys_are_refused(kms_key_arns: Any, expected: str) -> None:
    assert expected in error_of(mesh(kms_key_arns=kms_key_arns))


def test_an_unknown_table_class_is_refused() -> None:
    message = shape_error(table_class="INFREQUENT_ACCESS")
    assert "replication.table.table_class = 'INFREQUENT_ACCESS' is not a table class" in message
    assert "STANDARD, STANDARD_INFREQUENT_ACCESS" in message


def test_more_than_twenty_global_indexes_are_refused() -> None:
    indexes = [gsi(f"gsi{i:02}", partition_key={"name": f"a{i}", "type": "S"}) for i in range(21)]
    message = shape_error(global_secondary_indexes=indexes)
    assert "replication.table.global_secondary_indexes lists 21 global secondary indexes" in message
    assert "at most 20" in message


def test_more_than_five_local_indexes_are_refused() -> None:
    indexes = [lsi(f"lsi{i}", sort_key={"name": f"b{i}", "type": "N"}) for i in range(6)]
    message = shape_error(local_secondary_indexes=indexes)
    assert "replication.table.local_secondary_indexes lists 6 local secondary indexes" in message
    assert "at most 5" in message


def test_an_attribute_with_two_types_across_the_table_and_its_indexes_is_refused() -> None:
    message = shape_error(
        global_secondary_indexes=[
            gsi(sort_key={"name": "created", "type": "N"}),
            gsi("by-created", partition_key={"name": "created", "type": "S"}),
        ]
    )
    assert "replication.table.global_secondary_indexes[1].partition_key.type = 'S'" in message
    assert "'created' is declared 'N' at replication.table.global_secondary_indexes[0].sort_key" in message


def test_an_index_key_with_another_type_than_the_tables_key_is_refused() -> None:
    message = shape_error(local_secondary_indexes=[lsi(sort_key={"name": "sk", "type": "N"})])
    assert "replication.table.local_secondary_indexes[0].sort_key.type = 'N'" in message
    assert "declared 'S' at replication.table.sort_key" in message


def test_a_table_sort_key_named_like_its_partition_key_is_refused() -> None:
    message = shape_error(sort_key={"name": "pk", "type": "S"})
    assert "replication.table.sort_key.name = 'pk' is also the partition key" in message


def test_an_index_sort_key_named_like_its_partition_key_is_refused() -> None:
    index = gsi(sort_key={"name": "status", "type": "S"})
    message = shape_error(global_secondary_indexes=[index])
    assert (
        "replication.table.global_secondary_indexes[0].sort_key.name = 'status' is also the partition"
        in message
    )


def test_a_local_index_sorted_by_the_partition_key_is_refused() -> None:
    message = shape_error(local_secondary_indexes=[lsi(sort_key={"name": "pk", "type": "S"})])
    assert (
        "replication.table.local_secondary_indexes[0].sort_key.name = 'pk' is also the partition key"
        in message
    )


def test_the_tombstone_flag_cannot_be_an_index_key() -> None:
    message = shape_error(global_secondary_indexes=[gsi(partition_key={"name": "rep_deleted", "type": "S"})])
    assert "replication.table.global_secondary_indexes[0].partition_key.name = 'rep_deleted'" in message
    assert "BOOL" in message


def test_an_index_on_a_metadata_attribute_must_have_its_type() -> None:
    message = shape_error(global_secondary_indexes=[gsi(partition_key={"name": "rep_ts", "type": "S"})])
    assert "replication.table.global_secondary_indexes[0].partition_key.type = 'S'" in message
    assert "Fix: type 'N'" in message


def test_a_global_index_needs_a_partition_key() -> None:
    message = shape_error(global_secondary_indexes=[{"name": "by-x", "projection": "ALL"}])
    assert "replication.table.global_secondary_indexes[0].partition_key is required" in message


def test_indexes_must_be_a_list() -> None:
    message = shape_error(global_secondary_indexes=gsi())
    assert "replication.table.global_secondary_indexes must be a JSON list" in message


def test_an_unknown_key_in_an_index_is_refused() -> None:
    message = shape_error(global_secondary_indexes=[{**gsi(), "projection_type": "ALL"}])
    assert "replication.table.global_secondary_indexes[0].projection_type is not a known key" in message


@pytest.mark.parametrize(
    "key", ["global_secondary_indexes", "local_secondary_indexes", "billing", "table_class", "tags"]
)
def test_shape_keys_are_refused_with_an_adopted_table(key: str) -> None:
    values = {
        "global_secondary_indexes": [gsi()],
        "local_secondary_indexes": [lsi()],
        "billing": provisioned(),
        "table_class": "STANDARD",
        "tags": {"team": "orders"},
    }
    message = shape_error(adopt_existing=["eu-west-1"], **{key: values[key]})
    assert f"replication.table.{key} cannot be combined with replication.table.adopt_existing" in message


@pytest.mark.parametrize(
    "name", ["Blue", "blue_green", "-blue", "blue-", "blue--green", "1blue", "b" * 33, ""]
)
def test_a_bad_deployment_name_is_refused(name: str) -> None:
    message = error_of(mesh(deployment_name=name))
    assert "replication.deployment_name" in message


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({"aws:cost": "x"}, "replication.tags.aws:cost is not a tag key"),
        ({"team": 3}, "replication.tags.team = 3 is not a tag value"),
        ({"k" * 129: "x"}, "is not a tag key"),
        ({f"t{i}": "x" for i in range(51)}, "51 tags"),
        (["team"], "replication.tags must be a JSON object"),
    ],
)
def test_bad_tags_are_refused(tags: Any, expected: str) -> None:
    assert expected in error_of(mesh(tags=tags))


def test_more_than_fifty_tags_on_the_table_together_are_refused() -> None:
    top = {f"a{i}": "x" for i in range(30)}
    message = error_of(mesh(tags=top, table=table(tags={f"b{i}": "x" for i in range(21)})))
    assert "replication.tags and replication.table.tags give the table 51 tags" in message
