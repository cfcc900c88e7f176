"""One-way and partial replication of a table whose partition and sort keys are binary, end to end.

cdk.json's table has string keys; this module synthesizes the same app with ``partition_key`` and
``sort_key`` of type B, replicated one way from us-east-1 to eu-west-1 (with an item filter on the
pair: partial replication) and to ap-southeast-2 (everything). Items of every type are written with
boto3 (binary as ``bytes``) through the source's gateway and read back from the replicas.

The synthesis (tens of seconds on a fresh machine, cached afterwards) starts in the background when
this module is collected, so it overlaps with the tests that run first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from ddbrep.local.cloud import LocalCloud
from ddbrep.local.synth import app_context
from replicator.core.metadata import AttributeNames, is_tombstone
from tests.local.conftest import cloud_from, synthesize_in_background
from tests.local.support import TABLE, assert_drained, every_type, raw_item, user_view

NAMES = AttributeNames.with_prefix("rep_")
DRAIN_TIMEOUT = 60.0
SOURCE, FILTERED, FULL = "us-east-1", "eu-west-1", "ap-southeast-2"
ITEM_FILTER = {"tier": {"S": ["gold"]}}


# moto 5.2.5's stream records carry binary KEY values base64-encoded twice in dynamodb.Keys (its
# images are right); the stream stand-in takes Keys from the image (streams._keys), as AWS's are equal.


def binary_keys_replication() -> dict[str, Any]:
    replication: dict[str, Any] = dict(app_context()["replication"])
    replication.pop("regions", None)
    replication.update(
        topology="one-way",
        source=SOURCE,
        replicas=[FILTERED, FULL],
        table={
            **replication["table"],
            "partition_key": {"name": "pk", "type": "B"},
            "sort_key": {"name": "sk", "type": "B"},
        },
        pairs={f"{SOURCE}->{FILTERED}": {"item_filter": ITEM_FILTER}},
    )
    return replication


_synth = synthesize_in_background(binary_keys_replication(), "binary-keys")


@pytest.fixture(scope="module")
def binary_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    """A running one-way deployment of the table with binary keys."""
    with cloud_from(_synth, tmp_path_factory.mktemp("binary-keys")) as cloud:
        yield cloud


@pytest.fixture
def key_prefix() -> bytes:
    """Key bytes of the test's own, not valid UTF-8 (tests share the cloud, never keys)."""
    return b"\xff\x00" + uuid.uuid4().bytes


def key(prefix: bytes, name: bytes) -> dict[str, Any]:
    return {"pk": {"B": prefix + name}, "sk": {"B": b"\x80" + name}}


def test_the_table_has_binary_keys(binary_keys: LocalCloud) -> None:
    # Given the synthesized deployment, every region's table is keyed by binary attributes
    for region in (SOURCE, FILTERED, FULL):
        table = binary_keys.client(region).describe_table(TableName=TABLE)["Table"]
        assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
            ("pk", "B"),
            ("sk", "B"),
        }


def test_every_type_with_binary_keys_reaches_the_replicas_bytes_exact(
    binary_keys: LocalCloud, key_prefix: bytes
) -> None:
    # Given plain writes in the source (one-way writers do not stamp): an item of every type that the
    # filtered pair matches, one it does not match, then an update of binary values of the first
    source = binary_keys.client(SOURCE)
    gold = {**key(key_prefix, b"gold"), **every_type(), "tier": {"S": "gold"}}
    silver = {**key(key_prefix, b"silver"), **every_type(), "tier": {"S": "silver"}}
    source.put_item(TableName=TABLE, Item=gold)
    source.put_item(TableName=TABLE, Item=silver)
    source.update_item(
        TableName=TABLE,
        Key=key(key_prefix, b"gold"),
        UpdateExpression="SET #blob = :b ADD blobs :more",
        ExpressionAttributeNames={"#blob": "blob"},
        ExpressionAttributeValues={":b": {"B": b"\xc0\xc1"}, ":more": {"BS": [b"\xf5"]}},
    )
    gold_updated = {**gold, "blob": {"B": b"\xc0\xc1"}, "blobs": {"BS": [*gold["blobs"]["BS"], b"\xf5"]}}

    # When the replicator drains
    assert_drained(binary_keys, DRAIN_TIMEOUT)
    # Then the source is left exactly as written (never written by replication)
    in_source = raw_item(binary_keys, SOURCE, key(key_prefix, b"gold"))
    assert in_source is not None and set(in_source) == set(gold_updated)
    assert user_view(in_source) == user_view(gold_updated)
    # and the unfiltered replica holds both items, keys and values, with the written bytes
    assert user_view(raw_item(binary_keys, FULL, key(key_prefix, b"gold"))) == user_view(gold_updated)
    assert user_view(raw_item(binary_keys, FULL, key(key_prefix, b"silver"))) == user_view(silver)


def test_the_filtered_replica_holds_the_matching_binary_item_bytes_exact(
    binary_keys: LocalCloud, key_prefix: bytes
) -> None:
    # Given an item of every type that the pair's filter matches and one it does not, in the source
    source = binary_keys.client(SOURCE)
    gold = {**key(key_prefix, b"gold"), **every_type(), "tier": {"S": "gold"}}
    silver = {**key(key_prefix, b"silver"), **every_type(), "tier": {"S": "silver"}}
    source.put_item(TableName=TABLE, Item=gold)
    source.put_item(TableName=TABLE, Item=silver)

    # When the replicator drains
    assert_drained(binary_keys, DRAIN_TIMEOUT)
    # Then the filtered replica holds the matching item bytes-exact, binary keys included
    assert user_view(raw_item(binary_keys, FILTERED, key(key_prefix, b"gold"))) == user_view(gold)
    # and for the other one only a tombstone (its key's bytes, no content)
    excluded = raw_item(binary_keys, FILTERED, key(key_prefix, b"silver"))
    assert excluded is not None and is_tombstone(excluded, NAMES)
    assert user_view(excluded) == key(key_prefix, b"silver")
