"""Model-based property tests of the protocol (DESIGN.md section 3, invariants 1-3).

Any interleaving of writes and deletes (helper, hard, unstamped) to a few keys from 3 regions, any
delivery schedule with duplicates and redeliveries, applied through the real core and engine to
in-memory tables that honour the real condition expressions, converges: every region holds the same
live items, each equal to the greatest version written for its key.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.sim import Mesh

REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
KEYS = ["a", "b", "c"]

region = st.sampled_from(REGIONS)
key = st.sampled_from(KEYS)
op = st.one_of(
    st.tuples(st.just("put"), region, key, st.integers(0, 3)),
    st.tuples(st.just("delete"), region, key),
    st.tuples(st.just("hard_delete"), region, key),
    st.tuples(st.just("unstamped_put"), region, key, st.integers(0, 3)),
    st.tuples(st.just("deliver"), region, st.integers(1, 5)),
    st.tuples(st.just("redeliver"), region, st.integers(0, 30), st.integers(1, 5)),
    st.tuples(st.just("outage"), region),
    st.tuples(st.just("recover"), region),
)
skews = st.lists(st.integers(-2_000, 2_000), min_size=3, max_size=3)


def run(mesh: Mesh, ops: list[tuple[Any, ...]], skew: list[int]) -> None:
    clocks = {r: [1_700_000_000_000_000 + s] for r, s in zip(REGIONS, skew, strict=True)}
    apps = {r: mesh.app(r, clocks[r]) for r in REGIONS}
    for step in ops:
        kind, where = step[0], step[1]
        table = mesh.tables[where]
        if kind == "put":
            apps[where].put_item({"pk": {"S": step[2]}, "v": {"N": str(step[3])}}, keys=("pk",))
        elif kind == "delete":
            apps[where].delete_item({"pk": {"S": step[2]}})
        elif kind == "hard_delete":
            table.delete_item({"pk": {"S": step[2]}})
        elif kind == "unstamped_put":
            table.put_item(Item={"pk": {"S": step[2]}, "v": {"N": str(step[3])}, "raw": {"BOOL": True}})
        elif kind == "deliver":
            mesh.deliver(where, step[2])
        elif kind == "redeliver":
            mesh.redeliver(where, step[2], step[3])
        elif kind == "outage":  # every other region's writes to `where` fail and are handed off
            for ports in mesh.ports.values():
                ports.down.add(where)
        elif kind == "recover":
            for ports in mesh.ports.values():
                ports.down.discard(where)
    mesh.drain()
    mesh.recover_and_replay_handoffs()


@settings(
    max_examples=int(os.environ.get("MODEL_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=40), skew=skews)
def test_mesh_converges_to_the_greatest_version_per_key(ops: list[tuple[Any, ...]], skew: list[int]) -> None:
    # Given three regions in mesh, When any writes/deletes happen anywhere and every replicator drains
    mesh = Mesh(REGIONS)
    run(mesh, ops, skew)
    # Then every region holds the same live items, each the greatest version written for its key
    states = [mesh.live_state(r) for r in REGIONS]
    assert states[0] == states[1] == states[2]
    expected = {k: v for k, v in mesh.winners().items() if v is not None}
    assert states[0] == expected


@settings(
    max_examples=int(os.environ.get("MODEL_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=40), skew=skews)
def test_no_replicated_write_causes_another_replication(ops: list[tuple[Any, ...]], skew: list[int]) -> None:
    # Given a mesh that has drained
    mesh = Mesh(REGIONS)
    run(mesh, ops, skew)
    # Then every target write the replicators made is seen by the target's replicator as an echo:
    # the number of replicated writes equals the number of echo skips (nothing bounced back)
    replicated = sum(1 for r in REGIONS for rec in mesh.tables[r].stream if _written_by_other_region(rec, r))
    echoes = _count_echoes(mesh)
    assert echoes == replicated


def _written_by_other_region(record: dict[str, Any], region: str) -> bool:
    image = record["dynamodb"].get("NewImage") or {}
    return "rep_region" in image and image["rep_region"]["S"] != region


def _count_echoes(mesh: Mesh) -> int:
    # Re-run classification over each region's stream exactly once (the drained replicators may
    # have seen records several times through redeliveries).
    from replicator.core.classify import Skip, SkipReason, classify
    from replicator.core.records import parse_record

    total = 0
    for r, replicator in mesh.replicators.items():
        for raw in mesh.tables[r].stream:
            decision = classify(parse_record(raw), replicator.context)
            total += isinstance(decision, Skip) and decision.reason is SkipReason.ECHO
    return total


@settings(
    max_examples=int(os.environ.get("MODEL_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ops=st.lists(op, max_size=30), skew=skews, batch=st.integers(1, 7))
def test_coalescing_never_changes_the_outcome(
    ops: list[tuple[Any, ...]], skew: list[int], batch: int
) -> None:
    # Given the same history, replicated once in big batches (coalesced per key) and once record by record
    apps_ops = [o for o in ops if o[0] not in ("deliver", "redeliver")]
    big, small = Mesh(REGIONS), Mesh(REGIONS)
    run(big, apps_ops, skew)  # drain() delivers 100 records at a time: coalescing at work
    run_small = Mesh(REGIONS)
    clocks = {r: [1_700_000_000_000_000 + s] for r, s in zip(REGIONS, skew, strict=True)}
    apps = {r: run_small.app(r, clocks[r]) for r in REGIONS}
    del small
    for step in apps_ops:
        kind, where = step[0], step[1]
        if kind == "put":
            apps[where].put_item({"pk": {"S": step[2]}, "v": {"N": str(step[3])}}, keys=("pk",))
        elif kind == "delete":
            apps[where].delete_item({"pk": {"S": step[2]}})
        elif kind == "hard_delete":
            run_small.tables[where].delete_item({"pk": {"S": step[2]}})
        elif kind == "unstamped_put":
            run_small.tables[where].put_item(
                Item={"pk": {"S": step[2]}, "v": {"N": str(step[3])}, "raw": {"BOOL": True}}
            )
    for _ in range(500):
        pending = [r for r in REGIONS if run_small.cursor[r] < len(run_small.tables[r].stream)]
        if not pending:
            break
        for r in pending:
            run_small.deliver(r, batch)
    # Then both end in the same state in every region
    for r in REGIONS:
        assert big.live_state(r) == run_small.live_state(r)
