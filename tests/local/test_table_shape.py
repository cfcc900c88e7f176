"""A table with secondary indexes, provisioned billing, a customer managed key and a deployment name,
replicated by the local runtime from its synthesized templates.

Tombstones carry only the table's keys and the metadata, so an index keyed on another attribute never
holds one: after a delete, the replica's index holds the live items and not the deleted one, while the
base table holds its tombstone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ddbrep.client import ReplicatedTable
from ddbrep.local.cloud import LocalCloud
from ddbrep.local.synth import app_context
from replicator.core.metadata import AttributeNames, is_tombstone
from tests.local.conftest import cloud_from, synthesize_in_background
from tests.local.support import TABLE, assert_drained, raw_item

SOURCE, REPLICA = "us-east-1", "eu-west-1"
NAMES = AttributeNames.with_prefix("rep_")
BY_STATUS = "by-status"
BY_UPDATED = "by-updated"


def shaped_replication() -> dict[str, Any]:
    replication: dict[str, Any] = dict(app_context()["replication"])
    replication.update(
        regions=[SOURCE, REPLICA],
        deployment_name="blue",
        kms_key_arns={SOURCE: "arn:aws:kms:us-east-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
        table={
            **replication["table"],
            "global_secondary_indexes": [
                {
                    "name": BY_STATUS,
                    "partition_key": {"name": "status", "type": "S"},
                    "sort_key": {"name": "created", "type": "N"},
                    "projection": ["total"],
                }
            ],
            "local_secondary_indexes": [
                {"name": BY_UPDATED, "sort_key": {"name": "updated", "type": "N"}, "projection": "KEYS_ONLY"}
            ],
            "billing": {
                "mode": "provisioned",
                "read_capacity": 5,
                "write_capacity": 5,
                "autoscaling": {"max_read_capacity": 50, "max_write_capacity": 50},
            },
        },
    )
    return replication


_synth = synthesize_in_background(shaped_replication(), "table-shape")


@pytest.fixture(scope="module")
def shaped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with cloud_from(_synth, tmp_path_factory.mktemp("table-shape")) as cloud:
        yield cloud


def test_the_stacks_carry_the_deployment_name_and_every_table_has_the_indexes(shaped: LocalCloud) -> None:
    assert sorted(stack.name for stack in shaped.assembly.stacks) == [
        f"Replicator-blue-{REPLICA}",
        f"Replicator-blue-{SOURCE}",
    ]
    for region in (SOURCE, REPLICA):
        table = shaped.client(region).describe_table(TableName=TABLE)["Table"]
        (index,) = table["GlobalSecondaryIndexes"]
        assert index["IndexName"] == BY_STATUS
        assert index["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["total"]}
        (local,) = table["LocalSecondaryIndexes"]
        assert local["IndexName"] == BY_UPDATED


def item(prefix: str, n: int, status: str) -> dict[str, Any]:
    return {
        "pk": {"S": f"{prefix}{n}"},
        "sk": {"S": "0"},
        "status": {"S": status},
        "created": {"N": str(n)},
        "updated": {"N": str(100 + n)},
        "total": {"N": f"{n}.50"},
    }


def query_index(cloud: LocalCloud, region: str, **request: Any) -> list[dict[str, Any]]:
    """A plain Query (no helper, no filter): exactly what the index holds."""
    return list(cloud.client(region).query(TableName=TABLE, ConsistentRead=False, **request)["Items"])


def test_a_replicas_index_holds_the_live_items_and_never_a_tombstone(shaped: LocalCloud, prefix: str) -> None:
    cloud = shaped
    status = f"{prefix}open"
    writer = ReplicatedTable(cloud.client(SOURCE), TABLE, SOURCE)
    # Given three items of one status written in the source region, and the second one deleted
    for n in range(3):
        writer.put_item(item(prefix, n, status))
    writer.delete_item({"pk": {"S": f"{prefix}1"}, "sk": {"S": "0"}})
    assert_drained(cloud, 60)
    # Then the replica's base table holds the tombstone of the deleted item
    tombstone = raw_item(cloud, REPLICA, {"pk": {"S": f"{prefix}1"}, "sk": {"S": "0"}})
    assert tombstone is not None and is_tombstone(tombstone, NAMES)
    # And its global index holds the two live items, with the projected attribute, and no tombstone
    found = query_index(
        cloud,
        REPLICA,
        IndexName=BY_STATUS,
        KeyConditionExpression="#s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": status}},
    )
    assert [(i["pk"]["S"], i["total"]["N"]) for i in found] == [
        (f"{prefix}0", "0.50"),
        (f"{prefix}2", "2.50"),
    ]
    # And its local index (keyed on an attribute a tombstone lacks) holds no tombstone either
    for n, expected in ((0, 1), (1, 0), (2, 1)):
        local = query_index(
            cloud,
            REPLICA,
            IndexName=BY_UPDATED,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{prefix}{n}"}},
        )
        assert len(local) == expected, n
