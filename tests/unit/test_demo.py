"""The demo's deployment: cdk.json's, with a second table when it replicates one."""

from __future__ import annotations

import pytest

from ddbrep.demo import DEMO_INDEX, DEMO_TABLE, demo_replication, key_of
from ddbrep.local.synth import app_context
from ddbrep.local.templates import TableSpec
from stacks.config import load_config


def test_a_one_table_deployment_gets_the_customers_table_with_its_index() -> None:
    shipped = app_context()["replication"]
    block = demo_replication(shipped)
    config = load_config(block)  # a valid deployment, as synth reads it
    assert [t.names for t in config.tables] == [(shipped["table"]["name"],), (DEMO_TABLE,)]
    [index] = config.tables[1].table_shape.global_indexes
    assert index.name == DEMO_INDEX
    assert "table" in shipped  # cdk.json's block is not changed


def test_a_deployment_of_several_tables_is_run_as_it_is() -> None:
    block = {**app_context()["replication"]}
    block["tables"] = [block.pop("table")]
    assert demo_replication(block) == block


def table(*keys: tuple[str, str, str]) -> TableSpec:
    return TableSpec(
        logical_id="T",
        name="t",
        key_schema=tuple({"AttributeName": n, "KeyType": k} for n, k, _ in keys),
        attribute_definitions=tuple({"AttributeName": n, "AttributeType": t} for n, _, t in keys),
        stream_view_type="NEW_AND_OLD_IMAGES",
        ttl_attribute=None,
    )


def test_keys_follow_the_table_key_schema() -> None:
    assert key_of(table(("pk", "HASH", "S"), ("sk", "RANGE", "S")), "demo-1") == {
        "pk": {"S": "demo-1"},
        "sk": {"S": "0"},
    }
    assert key_of(table(("id", "HASH", "B")), "demo-1") == {"id": {"B": b"demo-1"}}
    with pytest.raises(ValueError, match="is a number"):
        key_of(table(("id", "HASH", "N")), "demo-1")
