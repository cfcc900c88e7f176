"""Every DynamoDB attribute type replicated bytes-exact by the deployed mesh, end to end.

Items are written with boto3 (the SDK's form: binary values are ``bytes``) through a region's gateway
and read back with boto3 from the other regions. Between the two, the values travel as Lambda delivers
them (base64 text in the stream events, the handoff messages and the dead letters); a replica that
stored the base64 text as its bytes (``b"aGVsbG8="`` for ``b"hello"``) fails every test here.

The mesh's keys are strings (cdk.json): binary values are tested in non-key attributes here, binary
keys in test_types_binary_keys.py.
"""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

from ddbrep.client import ReplicatedTable
from ddbrep.local.cloud import LocalCloud
from ddbrep.tools.redrive import DEAD_LETTER_PREFIX
from replicator.core import metrics_names as m
from tests.chaos.support import dead_letter_bucket, redrive
from tests.local.conftest import MESH_REGIONS, ONE_WAY_REPLICAS, ONE_WAY_SOURCE
from tests.local.support import (
    TABLE,
    assert_drained,
    every_type,
    index_rejecting_empty,
    raw_item,
    user_view,
    wait_for,
)

DRAIN_TIMEOUT = 60.0


def key(prefix: str, name: str) -> dict[str, Any]:
    return {"pk": {"S": f"{prefix}{name}"}, "sk": {"S": "0"}}


def helper(cloud: LocalCloud, region: str) -> ReplicatedTable:
    return ReplicatedTable(cloud.client(region), TABLE, region)


def stored(cloud: LocalCloud, region: str, item_key: dict[str, Any]) -> dict[str, Any] | None:
    return user_view(raw_item(cloud, region, item_key))


def unreadable_records(cloud: LocalCloud) -> int:
    return sum(poller.stats.records_unreadable for poller in cloud.stream_pollers)


def test_a_helper_write_of_every_type_reaches_every_region_bytes_exact(mesh: LocalCloud, prefix: str) -> None:
    # Given, in every region, an item of every type written through the client helper, and after it a
    # plain item (the stream mappings must keep delivering past a binary-bearing record)
    unreadable = unreadable_records(mesh)
    for region in MESH_REGIONS:
        helper(mesh, region).put_item({**key(prefix, region), **every_type()})
        helper(mesh, region).put_item({**key(prefix, f"{region}-after"), "v": {"S": "plain"}})

    # When the replicators drain
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then every region holds every item exactly as written: the same bytes, not their base64 text
    for written_in in MESH_REGIONS:
        for region in MESH_REGIONS:
            assert stored(mesh, region, key(prefix, written_in)) == user_view(
                {**key(prefix, written_in), **every_type()}
            )
            assert stored(mesh, region, key(prefix, f"{written_in}-after")) == {
                **key(prefix, f"{written_in}-after"),
                "v": {"S": "plain"},
            }
    # and no record was skipped as unreadable on the way
    assert unreadable_records(mesh) == unreadable


def test_an_unstamped_put_of_every_type_is_adopted_and_replicated_bytes_exact(
    mesh: LocalCloud, prefix: str
) -> None:
    # Given an application writing an item of every type without the helper
    source = "eu-west-1"
    item = {**key(prefix, "raw"), **every_type()}
    mesh.client(source).put_item(TableName=TABLE, Item=item)

    # When the replicators drain (the local replicator adopts the item: writes it back stamped)
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then the source item was adopted and still holds exactly the bytes written
    adopted = raw_item(mesh, source, key(prefix, "raw"))
    assert adopted is not None and adopted["rep_region"] == {"S": source}
    assert user_view(adopted) == user_view(item)
    # and every other region holds the same
    for region in MESH_REGIONS:
        assert stored(mesh, region, key(prefix, "raw")) == user_view(item)


def test_an_update_with_binary_values_replicates_bytes_exact(mesh: LocalCloud, prefix: str) -> None:
    # Given an item of every type replicated everywhere
    item = {**key(prefix, "upd"), **every_type()}
    helper(mesh, "us-east-1").put_item(item)
    assert_drained(mesh, DRAIN_TIMEOUT)
    # When another region updates binary values through the helper: a top-level B, a B inside a map,
    # a new BS, and members added to an existing BS
    helper(mesh, "ap-southeast-2").update_item(
        key(prefix, "upd"),
        "SET #blob = :b, #doc.#inner = :i, added = :bs ADD blobs :more",
        expression_attribute_names={"#blob": "blob", "#doc": "doc", "#inner": "inner"},
        expression_attribute_values={
            ":b": {"B": b"\x00updated\xff"},
            ":i": {"B": b""},
            ":bs": {"BS": [b"\x80", b"\x81"]},
            ":more": {"BS": [b"\x00\x00", b"\xfe"]},
        },
    )
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then every region holds the updated bytes
    expected = dict(item)
    expected["blob"] = {"B": b"\x00updated\xff"}
    expected["doc"] = {"M": {**item["doc"]["M"], "inner": {"B": b""}}}
    expected["added"] = {"BS": [b"\x80", b"\x81"]}
    expected["blobs"] = {"BS": [*item["blobs"]["BS"], b"\x00\x00", b"\xfe"]}
    for region in MESH_REGIONS:
        assert stored(mesh, region, key(prefix, "upd")) == user_view(expected)


def test_a_handed_off_write_of_every_type_is_drained_bytes_exact(mesh: LocalCloud, prefix: str) -> None:
    # Given ap-southeast-2 cut off while two regions write items of every type
    isolated = "ap-southeast-2"
    handed_off, replayed = mesh.metrics.total(m.HANDED_OFF), mesh.metrics.total(m.HANDOFF_REPLAYED)
    writers = ("us-east-1", "eu-west-1")
    mesh.faults.isolate(isolated, seconds=120)
    try:
        for region in writers:
            helper(mesh, region).put_item({**key(prefix, region), **every_type()})
        # the writes it could not take were handed off (parked in the writers' handoff queues)
        assert wait_for(lambda: mesh.metrics.total(m.HANDED_OFF) >= handed_off + 2, timeout=DRAIN_TIMEOUT)
        assert all(raw_item(mesh, isolated, key(prefix, region)) is None for region in writers)
    finally:
        # When the region comes back and the drains replay the queues
        mesh.faults.heal(isolated)
    assert_drained(mesh, DRAIN_TIMEOUT * 2)
    # Then the replayed copies hold the written bytes
    assert mesh.metrics.total(m.HANDOFF_REPLAYED) >= replayed + 2
    for region in writers:
        assert stored(mesh, isolated, key(prefix, region)) == user_view(
            {**key(prefix, region), **every_type()}
        )


def test_one_way_replicas_hold_every_type_bytes_exact(one_way: LocalCloud, prefix: str) -> None:
    # Given plain writes in the one-way source (writers do not stamp): an item of every type, then an
    # update of binary values in it
    source = one_way.client(ONE_WAY_SOURCE)
    item = {**key(prefix, "one-way"), **every_type()}
    source.put_item(TableName=TABLE, Item=item)
    source.update_item(
        TableName=TABLE,
        Key=key(prefix, "one-way"),
        UpdateExpression="SET #blob = :b ADD blobs :more",
        ExpressionAttributeNames={"#blob": "blob"},
        ExpressionAttributeValues={":b": {"B": b"\xc0\xc1"}, ":more": {"BS": [b"\xf5"]}},
    )
    updated = {**item, "blob": {"B": b"\xc0\xc1"}, "blobs": {"BS": [*item["blobs"]["BS"], b"\xf5"]}}

    # When the replicator drains
    assert_drained(one_way, DRAIN_TIMEOUT)
    # Then the source holds exactly what was written (replication never writes it), and so does every
    # replica
    in_source = raw_item(one_way, ONE_WAY_SOURCE, key(prefix, "one-way"))
    assert in_source is not None and set(in_source) == set(updated)
    assert user_view(in_source) == user_view(updated)
    for replica in ONE_WAY_REPLICAS:
        assert stored(one_way, replica, key(prefix, "one-way")) == user_view(updated)


DRIFTED = "eu-west-1"
INDEX = "types_by_ref"


def rejecting_empty_refs(cloud: LocalCloud) -> contextlib.AbstractContextManager[None]:
    return index_rejecting_empty(cloud, DRIFTED, INDEX)


def dead_letters_of(cloud: LocalCloud, region: str, pk: str) -> list[dict[str, Any]]:
    """The dead-letter entries of ``region``'s replicator whose write is for ``pk``."""
    s3, bucket = cloud.client(region, "s3"), dead_letter_bucket(cloud, region)
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{DEAD_LETTER_PREFIX}{region}/")
    entries = [
        json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        for obj in listing.get("Contents", [])
    ]
    return [e for e in entries if e.get("write") and e["write"]["keys"]["pk"] == {"S": pk}]


def test_a_dead_lettered_write_of_every_type_is_redriven_bytes_exact(mesh: LocalCloud, prefix: str) -> None:
    source = "us-east-1"
    item = {**key(prefix, "dead"), **every_type(), "ref": {"S": ""}}
    with rejecting_empty_refs(mesh):
        # Given an item of every type that one target rejects for good
        helper(mesh, source).put_item(item)
        assert_drained(mesh, DRAIN_TIMEOUT)
        assert raw_item(mesh, DRIFTED, key(prefix, "dead")) is None
        assert stored(mesh, "ap-southeast-2", key(prefix, "dead")) == user_view(item)
        # parked in the source's dead-letter store, its binary values as base64 text (event form)
        [entry] = dead_letters_of(mesh, source, f"{prefix}dead")
        assert (entry["reason"], entry["target_region"]) == ("target_write_rejected", DRIFTED)
        assert entry["write"]["item"]["not_utf8"] == {
            "B": base64.b64encode(b"\xff\xfe\x00\x80\xc3\x28").decode()
        }

    # When the cause is fixed (the index dropped) and the dead-letter store is redriven
    report = redrive(mesh, source).dead_letters()
    assert_drained(mesh, DRAIN_TIMEOUT)
    # Then the target holds the written bytes, and the entry is gone from the store
    assert report.counts["applied"] >= 1
    assert stored(mesh, DRIFTED, key(prefix, "dead")) == user_view(item)
    assert dead_letters_of(mesh, source, f"{prefix}dead") == []
