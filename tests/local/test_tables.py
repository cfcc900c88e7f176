"""Two tables in one deployment, replicated by the local runtime from their synthesized templates: each
table has its own replicator, mapping and drains in each region, writes to both tables in both regions
converge, and the second table's index never holds a tombstone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ddbrep.client import ReplicatedTable
from ddbrep.local import metric_store
from ddbrep.local.cloud import LocalCloud
from ddbrep.local.synth import app_context
from replicator.core.metadata import AttributeNames, is_tombstone
from tests.local.conftest import cloud_from, synthesize_in_background
from tests.local.support import assert_drained, comparable, raw_item, scan_prefix, wait_for

EAST, WEST = "us-east-1", "eu-west-1"
REGIONS = (EAST, WEST)
ORDERS, CUSTOMERS = "orders", "customers"
BY_EMAIL = "by-email"
NAMES = AttributeNames.with_prefix("rep_")


def two_tables() -> dict[str, Any]:
    replication: dict[str, Any] = dict(app_context()["replication"])
    orders = replication.pop("table")
    replication.update(
        regions=list(REGIONS),
        tables=[
            orders,
            {
                "name": CUSTOMERS,
                "partition_key": {"name": "pk", "type": "S"},
                "global_secondary_indexes": [
                    {"name": BY_EMAIL, "partition_key": {"name": "email", "type": "S"}, "projection": "ALL"}
                ],
            },
        ],
    )
    return replication


_synth = synthesize_in_background(two_tables(), "tables")


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with cloud_from(_synth, tmp_path_factory.mktemp("tables")) as running:
        yield running


def live(cloud: LocalCloud, region: str, table: str, prefix: str) -> dict[str, Any]:
    items = scan_prefix(cloud, region, prefix, table=table)
    return {key: comparable(item) for key, item in items.items() if comparable(item) is not None}


def test_each_table_runs_its_own_replicator_and_drains(cloud: LocalCloud) -> None:
    for region in REGIONS:
        other = WEST if region == EAST else EAST
        functions = {f.spec.name for f in cloud.functions_in(region)}
        assert {
            f"{ORDERS}-replicator",
            f"{CUSTOMERS}-replicator",
            f"{ORDERS}-drain-{other}",
            f"{CUSTOMERS}-drain-{other}",
        } <= functions
        tables = set(cloud.client(region).list_tables()["TableNames"])
        assert {ORDERS, CUSTOMERS} <= tables
        # one stream mapping per table, each invoking that table's replicator, one queue mapping per drain
        (stack,) = cloud.assembly.stacks_in(region)
        wired = {(stack.table(m.table).name, stack.function(m.function).name) for m in stack.stream_mappings}
        assert wired == {(ORDERS, f"{ORDERS}-replicator"), (CUSTOMERS, f"{CUSTOMERS}-replicator")}
        assert len(stack.queue_mappings) == 2


def test_writes_to_both_tables_in_both_regions_converge(cloud: LocalCloud, prefix: str) -> None:
    # Given writes, updates and deletes to both tables, made in both regions at once
    for region in REGIONS:
        orders = ReplicatedTable(cloud.client(region), ORDERS, region)
        customers = ReplicatedTable(cloud.client(region), CUSTOMERS, region)
        for n in range(4):
            orders.put_item({"pk": {"S": f"{prefix}{region}-{n}"}, "sk": {"S": "0"}, "total": {"N": str(n)}})
            customers.put_item(
                {"pk": {"S": f"{prefix}{region}-{n}"}, "email": {"S": f"{prefix}{n}@{region}"}}
            )
        # the same key in both regions: one of the two writes wins everywhere
        orders.put_item({"pk": {"S": f"{prefix}shared"}, "sk": {"S": "0"}, "by": {"S": region}})
        customers.put_item({"pk": {"S": f"{prefix}shared"}, "email": {"S": f"{prefix}shared@{region}"}})
        orders.delete_item({"pk": {"S": f"{prefix}{region}-0"}, "sk": {"S": "0"}})
        customers.delete_item({"pk": {"S": f"{prefix}{region}-1"}})
    assert_drained(cloud, 90)

    # Then each table holds the same live items in both regions
    for table in (ORDERS, CUSTOMERS):
        east, west = live(cloud, EAST, table, prefix), live(cloud, WEST, table, prefix)
        assert east == west, table
        assert len(east) == 2 * 3 + 1, table  # four per region, one deleted, plus the shared key
    # and neither table received the other's items
    orders_keys = {k for k in live(cloud, EAST, ORDERS, prefix)}
    assert all('"sk"' in k and '"S": "0"' in k for k in orders_keys)
    assert all("email" in item for item in live(cloud, WEST, CUSTOMERS, prefix).values())


def test_the_second_tables_index_never_holds_a_tombstone(cloud: LocalCloud, prefix: str) -> None:
    writer = ReplicatedTable(cloud.client(EAST), CUSTOMERS, EAST)
    email = f"{prefix}gone@example.com"
    # Given a customer written in one region, then deleted
    writer.put_item({"pk": {"S": f"{prefix}c"}, "email": {"S": email}})
    assert_drained(cloud, 60)
    assert raw_item(cloud, WEST, {"pk": {"S": f"{prefix}c"}}, table=CUSTOMERS) is not None
    writer.delete_item({"pk": {"S": f"{prefix}c"}})
    assert_drained(cloud, 60)
    for region in REGIONS:
        # Then the base table of each region holds its tombstone
        tombstone = raw_item(cloud, region, {"pk": {"S": f"{prefix}c"}}, table=CUSTOMERS)
        assert tombstone is not None and is_tombstone(tombstone, NAMES), region
        # and the index holds nothing for that email
        found = cloud.client(region).query(
            TableName=CUSTOMERS,
            IndexName=BY_EMAIL,
            KeyConditionExpression="email = :e",
            ExpressionAttributeValues={":e": {"S": email}},
        )["Items"]
        assert found == [], region


def test_each_tables_handoff_queue_and_drain_replay_its_writes_after_an_outage(
    cloud: LocalCloud, prefix: str
) -> None:
    drains = {table: f"{table}-drain-{WEST}" for table in (ORDERS, CUSTOMERS)}
    before = {t: cloud.metrics.total(metric_store.INVOCATIONS, FunctionName=f) for t, f in drains.items()}
    # Given eu-west-1 cut off while us-east-1 writes to both tables
    cloud.faults.isolate(WEST, seconds=120)
    try:
        ReplicatedTable(cloud.client(EAST), ORDERS, EAST).put_item(
            {"pk": {"S": f"{prefix}o"}, "sk": {"S": "0"}, "n": {"N": "1"}}
        )
        ReplicatedTable(cloud.client(EAST), CUSTOMERS, EAST).put_item(
            {"pk": {"S": f"{prefix}c"}, "email": {"S": f"{prefix}c@example.com"}}
        )

        # Then each table's write waits in that table's own handoff queue
        def handed_off() -> bool:
            sqs = cloud.client(EAST, "sqs")
            counts = {}
            for table in (ORDERS, CUSTOMERS):
                url = sqs.get_queue_url(QueueName=f"{table}-handoff-{WEST}")["QueueUrl"]
                attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                counts[table] = int(attributes["ApproximateNumberOfMessages"]) + int(
                    attributes["ApproximateNumberOfMessagesNotVisible"]
                )
            return all(counts.values())

        assert wait_for(handed_off, timeout=60)
    finally:
        cloud.faults.heal(WEST)

    # When the region is back, each table's drain replays its own queue into its own table
    assert_drained(cloud, 120)
    assert raw_item(cloud, WEST, {"pk": {"S": f"{prefix}o"}, "sk": {"S": "0"}}) is not None
    assert raw_item(cloud, WEST, {"pk": {"S": f"{prefix}c"}}, table=CUSTOMERS) is not None
    assert raw_item(cloud, WEST, {"pk": {"S": f"{prefix}c"}, "sk": {"S": "0"}}) is None
    for table, function in drains.items():
        assert cloud.metrics.total(metric_store.INVOCATIONS, FunctionName=function) > before[table], table
