"""Backfill while live replication runs, and adding a region to a live mesh (docs/OPERATIONS.md).

Live replication here is the unmodified Replicator driven by tests/tools/live.py on each region's
stream; writes go through the client helper the whole time.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ddbrep.client import ReplicatedTable
from ddbrep.tools.aws import Connection
from ddbrep.tools.backfill import BackfillRun
from ddbrep.tools.verify import Side, Verify
from replicator.settings import Target
from tests.tools.conftest import MakeTable
from tests.tools.live import RegionReplicator, Writers, wait_drained

pytestmark = pytest.mark.local

A, B, C = "us-east-1", "eu-west-1", "ap-south-1"
KEYS = 150


def assert_converged(conn: Connection, tables: dict[str, str]) -> None:
    regions = sorted(tables)
    for i, first in enumerate(regions):
        for second in regions[i + 1 :]:
            report = Verify(conn, Side(first, tables[first]), Side(second, tables[second]), segments=4).run()
            assert report.ok, (first, second, json.dumps(report.to_json(), indent=1, default=str))


def test_backfill_while_live_replication_runs_converges(
    conn: Connection, make_table: MakeTable, tmp_path: Path
):
    # Given a source with data, replicating live to an empty replica while the application writes
    tables = {A: make_table(A, stream=True), B: make_table(B, stream=True)}
    seed = ReplicatedTable(conn.dynamodb(A), tables[A], A)
    for i in range(KEYS):
        seed.put_item({"pk": {"S": f"k{i:04d}"}, "body": {"S": "seed"}})
    live = [
        RegionReplicator(conn, A, tables[A], [Target(B, tables[B])]).skip_existing().start(),
        RegionReplicator(conn, B, tables[B], [Target(A, tables[A])]).skip_existing().start(),
    ]
    writers = Writers(conn, tables, keys=KEYS)
    writers.start(A)
    writers.start(B)
    try:
        # When the backfill copies the source to the replica at the same time
        time.sleep(0.5)
        report = BackfillRun(
            conn,
            A,
            tables[A],
            [Target(B, tables[B])],
            segments=4,
            page_size=20,
            checkpoint_path=tmp_path / "cp.json",
        ).run()
        time.sleep(0.5)
    finally:
        writers.stop()
    try:
        wait_drained(live)
    finally:
        for replicator in live:
            replicator.stop()

    # Then the two regions hold the same items, and both the backfill and live writes did work
    assert report.done and report.total("written") > 0
    assert writers.writes > 20
    assert_converged(conn, tables)


def test_adding_a_region_to_a_live_mesh_with_data(conn: Connection, make_table: MakeTable, tmp_path: Path):
    # Given a two-region mesh holding data, replicating live, with writes in both regions
    tables = {A: make_table(A, stream=True), B: make_table(B, stream=True)}
    seed = ReplicatedTable(conn.dynamodb(A), tables[A], A)
    for i in range(KEYS):
        version = seed.put_item({"pk": {"S": f"k{i:04d}"}, "body": {"S": "seed"}})
        assert version.region == A
    BackfillRun(conn, A, tables[A], [Target(B, tables[B])], checkpoint_path=tmp_path / "initial.json").run()
    replicators = {
        A: RegionReplicator(conn, A, tables[A], [Target(B, tables[B])]).skip_existing().start(),
        B: RegionReplicator(conn, B, tables[B], [Target(A, tables[A])]).skip_existing().start(),
    }
    writers = Writers(conn, {**tables}, keys=KEYS)
    writers.start(A)
    writers.start(B)
    try:
        time.sleep(0.5)
        # When region C is added: its table and replicator are deployed, the existing replicators get it
        # as a target (the deploy), C accepts writes at once, and C is backfilled from A
        tables[C] = make_table(C, stream=True)
        writers.tables[C] = tables[C]
        replicators[C] = RegionReplicator(
            conn, C, tables[C], [Target(A, tables[A]), Target(B, tables[B])]
        ).start()
        replicators[A].set_targets([Target(B, tables[B]), Target(C, tables[C])])
        replicators[B].set_targets([Target(A, tables[A]), Target(C, tables[C])])
        writers.start(C)
        # The runbook's step 3: a batch the old replicators had read before the update goes to A and B
        # only (a write or a delete); it must have reached A before A is scanned
        time.sleep(1.0)
        report = BackfillRun(
            conn,
            A,
            tables[A],
            [Target(C, tables[C])],
            segments=4,
            page_size=25,
            checkpoint_path=tmp_path / "add-c.json",
        ).run()
        time.sleep(0.5)
    finally:
        writers.stop()
    try:
        wait_drained(list(replicators.values()))
    finally:
        for replicator in replicators.values():
            replicator.stop()

    # Then the three regions converge: every pair verifies equal
    assert report.done and report.total("scanned") >= KEYS
    assert all(r.batches > 0 for r in replicators.values())
    assert_converged(conn, tables)
