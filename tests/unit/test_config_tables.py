"""replication.tables: several tables in one deployment, each error naming its key path and the fix."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from stacks import defaults
from stacks.config import load_config, replicator_environment
from tests.unit.test_config import error_of

ORDERS: dict[str, Any] = {"name": "orders", "partition_key": {"name": "pk", "type": "S"}}
CUSTOMERS: dict[str, Any] = {"name": "customers", "partition_key": {"name": "id", "type": "S"}}


def tables(*blocks: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "topology": "mesh",
        "regions": ["us-east-1", "eu-west-1"],
        "tables": list(blocks) or [ORDERS, CUSTOMERS],
    }
    block.update(overrides)
    return block


def test_table_and_tables_together_name_both_keys() -> None:
    message = error_of(tables(table=ORDERS))
    assert "replication.table and replication.tables are both given" in message
    assert "Fix:" in message


@pytest.mark.parametrize("value", [[], {}, "orders"])
def test_tables_must_be_a_non_empty_list(value: Any) -> None:
    message = error_of(tables(tables=value))
    assert "replication.tables must be a non-empty JSON list of table blocks" in message
    assert "Fix:" in message


def test_an_entry_must_be_an_object() -> None:
    assert "replication.tables[1] must be a JSON object" in error_of(tables(ORDERS, "customers"))  # type: ignore[arg-type]


def test_too_many_tables() -> None:
    many = [{**ORDERS, "name": f"t{i:03d}"} for i in range(defaults.MAX_TABLES + 1)]
    message = error_of(tables(*many))
    assert f"lists {defaults.MAX_TABLES + 1} tables, more than the {defaults.MAX_TABLES}" in message
    assert "Fix: split the tables" in message


def test_two_tables_of_one_name_name_the_second_key() -> None:
    message = error_of(tables(ORDERS, {**CUSTOMERS, "name": "orders"}))
    assert (
        "replication.tables[1].name = 'orders' is also the name of replication.tables[0] in us-east-1"
        in message
    )
    assert "Fix: give each table its own name" in message


def test_a_per_region_name_clash_names_the_region() -> None:
    message = error_of(
        tables(ORDERS, {**CUSTOMERS, "name": {"us-east-1": "customers", "eu-west-1": "orders"}})
    )
    assert (
        "replication.tables[1].name = 'orders' is also the name of replication.tables[0] in eu-west-1"
        in message
    )


def test_names_that_give_the_same_resource_names_clash() -> None:
    message = error_of(tables({**ORDERS, "name": "orders.v2"}, {**CUSTOMERS, "name": "orders-v2"}))
    assert "replication.tables[1].name = 'orders-v2' gives the same resource names as 'orders.v2'" in message


def test_an_unknown_key_of_an_entry_names_its_path() -> None:
    message = error_of(tables(ORDERS, {**CUSTOMERS, "ttl": "x"}))
    assert "replication.tables[1].ttl is not a known key" in message
    assert "pairs, partition_key" in message  # the keys an entry takes, pairs among them


def test_pairs_is_not_a_key_of_the_table_shorthand() -> None:
    block = {"topology": "mesh", "regions": ["us-east-1", "eu-west-1"], "table": {**ORDERS, "pairs": {}}}
    message = error_of(block)
    assert "replication.table.pairs is not a known key" in message
    assert "Fix: per pair settings go under replication.pairs" in message


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ({"name": "customers"}, "replication.tables[1].partition_key is required"),
        (
            {**CUSTOMERS, "partition_key": {"name": "id", "type": "X"}},
            "replication.tables[1].partition_key.type",
        ),
        (
            {**CUSTOMERS, "billing": {"mode": "provisioned", "read_capacity": 0, "write_capacity": 5}},
            "replication.tables[1].billing.read_capacity = 0 is out of range",
        ),
        ({**CUSTOMERS, "table_class": "COLD"}, "replication.tables[1].table_class = 'COLD'"),
        (
            {**CUSTOMERS, "adopt_existing": ["us-west-1"]},
            "replication.tables[1].adopt_existing names 'us-west-1'",
        ),
        (
            {**CUSTOMERS, "adopt_existing": ["eu-west-1"], "billing": {"mode": "on_demand"}},
            "replication.tables[1].billing cannot be combined with replication.tables[1].adopt_existing",
        ),
        (
            {**CUSTOMERS, "global_secondary_indexes": [{"name": "by-x", "partition_key": {"name": "x"}}]},
            "replication.tables[1].global_secondary_indexes[0].projection is required",
        ),
        ({**CUSTOMERS, "tags": {"aws:x": "y"}}, "replication.tables[1].tags.aws:x is not a tag key"),
        (
            {**CUSTOMERS, "point_in_time_recovery": "yes"},
            "replication.tables[1].point_in_time_recovery = 'yes'",
        ),
        ({**CUSTOMERS, "name": {"us-east-1": "customers"}}, "replication.tables[1].name must name the table"),
        (
            {**CUSTOMERS, "pairs": {"us-east-1->us-west-1": {}}},
            "replication.tables[1].pairs.us-east-1->us-west-1 is not a replication path",
        ),
        (
            {**CUSTOMERS, "pairs": {"us-east-1->eu-west-1": {"item_filter": {"tier": "gold"}}}},
            "replication.tables[1].pairs.us-east-1->eu-west-1.item_filter is not a valid event pattern",
        ),
        (
            {**CUSTOMERS, "pairs": {"us-east-1->eu-west-1": {"filter": {}}}},
            "us-east-1->eu-west-1.filter is not a known key",
        ),
        ({**CUSTOMERS, "pairs": []}, "replication.tables[1].pairs must be a JSON object"),
    ],
)
def test_every_table_key_error_names_the_entrys_path(entry: dict[str, Any], key: str) -> None:
    message = error_of(tables(ORDERS, entry))
    assert key in message
    assert "Fix" in message or "must" in message


def test_the_table_shorthand_and_a_one_entry_list_are_the_same_plan() -> None:
    block = tables(ORDERS)
    listed = load_config(block)
    shorthand = load_config({**{k: v for k, v in block.items() if k != "tables"}, "table": ORDERS})
    assert replace(listed, tables=()) == replace(shorthand, tables=())
    assert replace(listed.tables[0], path="") == replace(shorthand.tables[0], path="")
    assert (listed.tables[0].path, shorthand.tables[0].path) == ("replication.tables[0]", "replication.table")
    (table,) = listed.tables
    assert table.regions == listed.regions and table.metrics_namespace == defaults.METRICS_NAMESPACE


def test_each_table_is_its_own_unit_with_its_own_names() -> None:
    config = load_config(tables(deployment_name="blue"))
    orders, customers = config.tables
    assert config.regions == orders.regions  # the first table's view
    east = customers.region("us-east-1")
    assert east.table_name == "customers"
    assert east.replicator_function_name == "blue-customers-replicator"
    assert east.backfill_function_name == "blue-customers-backfill"
    (target,) = east.targets
    assert (target.table, target.handoff_queue_name, target.drain_function_name) == (
        "customers",
        "blue-customers-handoff-eu-west-1",
        "blue-customers-drain-eu-west-1",
    )
    assert east.alarm_prefix == "blue-customers-replication-us-east-1"
    # Shared per region, named after the first table as in a one-table deployment.
    first = orders.region("us-east-1")
    assert (
        east.dead_letter_bucket == first.dead_letter_bucket == "blue-orders-replicator-111111111111-us-east-1"
    )
    assert east.alarm_topic_name == first.alarm_topic_name == "blue-orders-replication-alarms"
    assert east.stack_id == first.stack_id
    assert (first.object_key_table, east.object_key_table) == (None, "customers")
    assert customers.metrics_namespace == f"{defaults.METRICS_NAMESPACE}/customers"
    assert config.dashboard_name == "blue-orders-replication"


def test_each_table_keeps_its_own_keys_ttl_and_shape() -> None:
    customers = {
        **CUSTOMERS,
        "ttl_attribute": "expires_at",
        "point_in_time_recovery": False,
        "global_secondary_indexes": [
            {"name": "by-email", "partition_key": {"name": "email"}, "projection": "ALL"}
        ],
    }
    config = load_config(tables(ORDERS, customers))
    view = config.for_table(config.table("customers"))
    assert view.partition_key.name == "id" and view.sort_key is None
    assert view.ttl_attribute == "expires_at" and not view.point_in_time_recovery
    assert [i.name for i in view.table_shape.global_indexes] == ["by-email"]
    assert config.table_shape.global_indexes == () and config.ttl_attribute == "rep_expires"
    env = replicator_environment(view, view.region("eu-west-1"))
    assert env["REP_SOURCE_TABLE"] == "customers" and env["REP_TTL_ATTRIBUTE"] == "expires_at"
    assert env["REP_OBJECT_KEY_TABLE"] == "customers"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == f"{defaults.METRICS_NAMESPACE}/customers"
    assert "REP_OBJECT_KEY_TABLE" not in replicator_environment(config, config.region("eu-west-1"))


def test_a_tables_pairs_replace_the_deployments_entry_for_that_table() -> None:
    gold = {"tier": {"S": ["gold"]}}
    eu = {"tenant": {"S": [{"prefix": "eu-"}]}}
    config = load_config(
        tables(
            ORDERS,
            {**CUSTOMERS, "pairs": {"us-east-1->eu-west-1": {"item_filter": gold}}},
            pairs={"us-east-1->eu-west-1": {"item_filter": eu}, "eu-west-1->us-east-1": {"item_filter": eu}},
        )
    )
    orders, customers = config.tables
    assert orders.region("us-east-1").targets[0].item_filter == eu
    assert customers.region("us-east-1").targets[0].item_filter == gold
    assert customers.region("eu-west-1").targets[0].item_filter == eu  # not given for this table


def test_each_tables_warnings_name_its_path() -> None:
    customers = {
        **CUSTOMERS,
        "global_secondary_indexes": [
            {"name": "by-id", "partition_key": {"name": "rep_region"}, "projection": "KEYS_ONLY"}
        ],
    }
    config = load_config(tables(ORDERS, customers))
    assert config.warnings == ()
    (warning,) = config.tables[1].warnings
    assert warning.message.startswith("replication.tables[1].global_secondary_indexes[0]")


def test_table_lookup_by_any_regions_name() -> None:
    config = load_config(
        tables(ORDERS, {**CUSTOMERS, "name": {"us-east-1": "cust_use1", "eu-west-1": "cust_euw1"}})
    )
    assert config.table("cust_euw1") is config.tables[1]
    with pytest.raises(KeyError):
        config.table("nope")


def test_add_region_works_on_the_table_named_by_table() -> None:
    from ddbrep.tools.add_region import table_view
    from ddbrep.tools.aws import ToolError

    config = load_config(tables())
    view = table_view(config, "customers")
    assert view.region("us-east-1").replicator_function_name == "customers-replicator"
    assert view.tables == (config.tables[1],)
    with pytest.raises(ToolError) as raised:
        table_view(config, "invoices")
    assert "--table invoices is not a table of the deployment" in str(raised.value)
    assert "orders, customers" in str(raised.value)
    single = load_config(tables(ORDERS))
    assert table_view(single, "anything") is single  # AddRegion's own check names the table to pass


def test_add_regions_state_file_is_per_table_with_several_tables() -> None:
    from pathlib import Path

    from ddbrep.tools.add_region import default_state_path

    assert default_state_path("sa-east-1") == Path(".ddbrep/add-region-sa-east-1.json")
    assert default_state_path("sa-east-1", "customers") == Path(".ddbrep/add-region-sa-east-1-customers.json")


def test_a_tables_environment_over_lambdas_4_kb_names_the_table_and_its_filters() -> None:
    big = {"tenant": {"S": [f"tenant-{n:04d}" for n in range(400)]}}
    message = error_of(tables(ORDERS, {**CUSTOMERS, "pairs": {"us-east-1->eu-west-1": {"item_filter": big}}}))
    assert (
        "replication.tables[1]: the environment of customers-drain-eu-west-1 in us-east-1 would be" in message
    )
    assert f"more than Lambda's {defaults.LAMBDA_ENVIRONMENT_LIMIT_BYTES}" in message
    assert "Fix: shorten the item filters of this table's pairs (replication.tables[1].pairs" in message
    # the same filter, a quarter of the size, fits
    small = {"tenant": {"S": [f"tenant-{n:04d}" for n in range(100)]}}
    load_config(tables(ORDERS, {**CUSTOMERS, "pairs": {"us-east-1->eu-west-1": {"item_filter": small}}}))


def test_the_second_tables_settings_put_its_objects_under_its_own_prefixes() -> None:
    from replicator.settings import parse_settings

    config = load_config(tables())
    first, second = (
        parse_settings(replicator_environment(view, view.region("us-east-1")))
        for view in map(config.for_table, config.tables)
    )
    assert (first.dead_letter_prefix(), first.handoff_prefix(), first.conflict_prefix()) == (
        "dead-letters/",
        "handoff/",
        "conflicts/",
    )
    assert (second.dead_letter_prefix(), second.handoff_prefix(), second.conflict_prefix()) == (
        "dead-letters/tables/customers/",
        "handoff/tables/customers/",
        "conflicts/tables/customers/",
    )
    assert first.dead_letter_bucket == second.dead_letter_bucket
    assert (first.source_table, second.source_table) == ("orders", "customers")
