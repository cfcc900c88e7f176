"""One-way replication and partial replication, model-based (docs/DESIGN.md, The write contract).

The source's writers need not stamp: each change takes its version from its stream record (time,
then sequence number), so replicas converge to the source whatever the delivery schedule. A replica
with an item filter converges to exactly the source's live items that match it.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.sim import Mesh

SOURCE, R1, R2 = "us-east-1", "eu-west-1", "ap-southeast-2"
REGIONS = [SOURCE, R1, R2]
GOLD_ONLY = {"tier": {"S": ["gold"]}}
EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "1500"))

key = st.sampled_from(["a", "b"])
tier = st.sampled_from(["gold", "silver"])
op = st.one_of(
    st.tuples(st.just("put"), key, tier, st.integers(0, 3)),
    st.tuples(st.just("update"), key, tier),
    st.tuples(st.just("hard_delete"), key),
    st.tuples(st.just("ttl_delete"), key),
    st.tuples(st.just("deliver"), st.integers(1, 5)),
    st.tuples(st.just("redeliver"), st.integers(0, 30), st.integers(1, 5)),
    st.tuples(st.just("outage"), st.sampled_from([R1, R2])),
    st.tuples(st.just("recover"), st.sampled_from([R1, R2])),
)


def run(mesh: Mesh, ops: list[tuple[Any, ...]]) -> None:
    source = mesh.tables[SOURCE]
    for step in ops:
        kind = step[0]
        if kind == "put":  # plain, unstamped PutItem: one-way writers need not stamp
            source.put_item(Item={"pk": {"S": step[1]}, "tier": {"S": step[2]}, "v": {"N": str(step[3])}})
        elif kind == "update":
            source.update_item(
                Key={"pk": {"S": step[1]}},
                UpdateExpression="SET #t = :t",
                ExpressionAttributeNames={"#t": "tier"},
                ExpressionAttributeValues={":t": {"S": step[2]}},
            )
        elif kind == "hard_delete":
            source.delete_item({"pk": {"S": step[1]}})
        elif kind == "ttl_delete":  # TTL expires the source's copy; replicas expire their own
            source.delete_item({"pk": {"S": step[1]}}, ttl=True)
        elif kind == "deliver":
            mesh.deliver(SOURCE, step[1])
        elif kind == "redeliver":
            mesh.redeliver(SOURCE, step[1], step[2])
        elif kind == "outage":
            mesh.ports[SOURCE].down.add(step[1])
        elif kind == "recover":
            mesh.ports[SOURCE].down.discard(step[1])
    mesh.drain()
    mesh.recover_and_replay_handoffs()


def ttl_deleted_keys(mesh: Mesh) -> set[str]:
    """Keys whose last change at the source was a TTL expiry (replicas expire those themselves)."""
    last: dict[str, dict[str, Any]] = {}
    for rec in mesh.tables[SOURCE].stream:
        last[rec["dynamodb"]["Keys"]["pk"]["S"]] = rec
    return {
        k
        for k, rec in last.items()
        if rec["eventName"] == "REMOVE" and rec.get("userIdentity", {}).get("type")
    }


def expected_replica(mesh: Mesh) -> dict[str, str]:
    ttl = ttl_deleted_keys(mesh)
    return {k: v for k, v in mesh.user_items(SOURCE).items() if _pk(k) not in ttl}


def _pk(key: str) -> str:
    import json

    return str(json.loads(key)["pk"]["S"])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, max_size=40))
def test_replicas_converge_to_the_source(ops: list[tuple[Any, ...]]) -> None:
    # Given a one-way deployment, When any unstamped writes and deletes happen at the source
    mesh = Mesh(REGIONS, topology="one-way")
    run(mesh, ops)
    # Then every replica holds the source's live items (TTL-expired keys aside: replicas expire their own)
    expected = expected_replica(mesh)
    for replica in (R1, R2):
        got = {k: v for k, v in mesh.user_items(replica).items() if _pk(k) not in ttl_deleted_keys(mesh)}
        assert got == expected
    # And the replicator never wrote to the source
    assert all(not rec["dynamodb"].get("NewImage", {}).get("rep_ts") for rec in mesh.tables[SOURCE].stream)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(op, max_size=40))
def test_a_filtered_replica_holds_exactly_the_matching_items(ops: list[tuple[Any, ...]]) -> None:
    # Given eu-west-1 takes only gold items, ap-southeast-2 everything
    mesh = Mesh(REGIONS, topology="one-way", filters={R1: GOLD_ONLY})
    run(mesh, ops)
    expected = expected_replica(mesh)
    ttl = ttl_deleted_keys(mesh)
    gold = {k: v for k, v in expected.items() if '"tier": {"S": "gold"}' in v}
    # Then eu-west-1 has exactly the live gold items, ap-southeast-2 all live items
    assert {k: v for k, v in mesh.user_items(R1).items() if _pk(k) not in ttl} == gold
    assert {k: v for k, v in mesh.user_items(R2).items() if _pk(k) not in ttl} == expected
