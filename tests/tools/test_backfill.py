"""Backfill against simulated regions: copies everything, resumes, respects its budget, filters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ddbrep.cli.backfill_cmd import summary
from ddbrep.tools.aws import Connection, ToolError
from ddbrep.tools.backfill import BackfillRun
from replicator.backfill_segments import SegmentState, TokenBucket, WriteBudget
from replicator.settings import Target
from tests.tools.conftest import CountingClients, MakeTable, put_items, scan_all, stamped

pytestmark = pytest.mark.local

SOURCE, TARGET, OTHER = "us-east-1", "eu-west-1", "ap-south-1"


def seed(conn: Connection, table: str, n: int, region: str = SOURCE) -> list[dict[str, Any]]:
    items = [stamped(f"k{i:04d}", 1_000 + i, region, body=f"v{i}") for i in range(n)]
    put_items(conn, region, table, items)
    return items


def test_backfill_copies_every_item_to_every_target(conn: Connection, make_table: MakeTable, tmp_path: Path):
    # Given a source with stamped items, unstamped items and a tombstone, and two empty targets
    source, target, other = make_table(SOURCE), make_table(TARGET), make_table(OTHER)
    seed(conn, source, 60)
    put_items(conn, SOURCE, source, [{"pk": {"S": "legacy"}, "body": {"S": "unstamped"}}])
    tomb = stamped("gone", 5, SOURCE) | {"rep_deleted": {"BOOL": True}, "rep_expires": {"N": "99"}}
    put_items(conn, SOURCE, source, [tomb])

    # When a backfill with 4 segments runs
    report = BackfillRun(
        conn,
        SOURCE,
        source,
        [Target(TARGET, target), Target(OTHER, other)],
        segments=4,
        page_size=7,
        checkpoint_path=tmp_path / "cp.json",
    ).run()

    # Then both targets hold exactly the source's items, and the counts say so; the item without
    # metadata keeps no version but is marked with its origin, so the target does not adopt it
    expected = scan_all(conn, SOURCE, source)
    expected["legacy"] = expected["legacy"] | {"rep_region": {"S": SOURCE}}
    assert "rep_ts" not in expected["legacy"]
    assert scan_all(conn, TARGET, target) == expected
    assert scan_all(conn, OTHER, other) == expected
    assert report.done
    assert report.total("scanned") == 62
    assert report.total("written") == 124
    assert report.total("stale") == 0


def test_backfill_never_overwrites_a_newer_version(conn: Connection, make_table: MakeTable, tmp_path: Path):
    # Given a target that already holds a newer version of one key and an unstamped copy of another
    source, target = make_table(SOURCE), make_table(TARGET)
    put_items(
        conn, SOURCE, source, [stamped("a", 100, SOURCE, body="old"), stamped("b", 100, SOURCE, body="new")]
    )
    put_items(conn, SOURCE, source, [{"pk": {"S": "c"}, "body": {"S": "legacy"}}])
    put_items(
        conn,
        TARGET,
        target,
        [stamped("a", 200, TARGET, body="newer"), {"pk": {"S": "b"}, "body": {"S": "x"}}],
    )
    put_items(conn, TARGET, target, [stamped("c", 1, TARGET, body="live write")])

    # When the backfill runs
    report = BackfillRun(conn, SOURCE, source, [Target(TARGET, target)], checkpoint_path=tmp_path / "c").run()

    # Then the newer version stays, the unstamped target copy is replaced by the stamped one, and an
    # unstamped source item (the lowest version) loses to any live write
    items = scan_all(conn, TARGET, target)
    assert items["a"]["body"] == {"S": "newer"}
    assert items["b"]["body"] == {"S": "new"}
    assert items["c"]["body"] == {"S": "live write"}
    assert (report.total("written"), report.total("stale")) == (1, 2)


def test_a_copy_that_replaces_a_write_made_in_the_target_is_reported_as_a_possible_conflict(
    conn: Connection, make_table: MakeTable, tmp_path: Path
):
    # Given a target holding a write of its own ("a", older than the source's) and a copy of another
    # region's write ("b"), and a source whose versions of both are newer
    source, target = make_table(SOURCE), make_table(TARGET)
    put_items(
        conn, SOURCE, source, [stamped("a", 300, SOURCE, body="s"), stamped("b", 300, SOURCE, body="s")]
    )
    put_items(conn, TARGET, target, [stamped("a", 200, TARGET, body="t"), stamped("b", 200, OTHER, body="o")])

    # When the backfill runs
    report = BackfillRun(conn, SOURCE, source, [Target(TARGET, target)], checkpoint_path=tmp_path / "c").run()

    # Then both copies apply (last writer wins), and only the one that replaced the target's own write
    # is reported, with both versions: the scan cannot know whether its writer had seen that write
    assert (report.total("written"), report.total("overwrote")) == (2, 1)
    (sample,) = [o for s in report.segments for o in s.overwrites]
    assert sample == {
        "target": TARGET,
        "key": {"pk": {"S": "a"}},
        "replaced": {"ts": 200, "region": TARGET, "seq": ""},
        "by": {"ts": 300, "region": SOURCE, "seq": ""},
    }
    assert "1 replaced a write made in the target region itself" in summary(report)


def test_backfill_copies_only_matching_items_to_a_filtered_target(
    conn: Connection, make_table: MakeTable, tmp_path: Path
):
    # Given items of two tenants, and a target whose filter keeps tenant eu only
    source, target, full = make_table(SOURCE), make_table(TARGET), make_table(OTHER)
    items = [stamped(f"k{i}", 10 + i, SOURCE, tenant="eu" if i % 3 == 0 else "us") for i in range(30)]
    put_items(conn, SOURCE, source, items)
    eu_only = Target(TARGET, target, item_filter={"tenant": {"S": ["eu"]}})

    # When the backfill runs to the filtered target and an unfiltered one
    report = BackfillRun(
        conn, SOURCE, source, [eu_only, Target(OTHER, full)], segments=2, checkpoint_path=tmp_path / "c"
    ).run()

    # Then the filtered target holds exactly the matching items, the other one everything
    assert set(scan_all(conn, TARGET, target)) == {f"k{i}" for i in range(30) if i % 3 == 0}
    assert len(scan_all(conn, OTHER, full)) == 30
    assert report.total("filtered") == 20


def test_backfill_resumes_after_a_crash_without_copying_finished_work_again(
    conn: Connection, make_table: MakeTable, tmp_path: Path
):
    # Given a backfill whose machine dies while segments 2 and 3 read their second page
    source, target = make_table(SOURCE), make_table(TARGET)
    seed(conn, source, 200)
    checkpoint = tmp_path / "cp.json"
    dies = CountingClients(conn, crash_when=lambda scan: scan["Segment"] >= 2 and "ExclusiveStartKey" in scan)
    run = BackfillRun(
        dies, SOURCE, source, [Target(TARGET, target)], segments=4, page_size=10, checkpoint_path=checkpoint
    )
    with pytest.raises(ToolError, match="resume with the same command"):
        run.run()
    saved = [SegmentState.from_json(s) for s in json.loads(checkpoint.read_text())["segments"]]
    assert [s.done for s in saved] == [True, True, False, False]
    copied_before = sum(s.scanned for s in saved)
    assert dies.puts[TARGET] == copied_before

    # When the same backfill starts again
    again = CountingClients(conn)
    report = BackfillRun(
        again, SOURCE, source, [Target(TARGET, target)], segments=4, page_size=10, checkpoint_path=checkpoint
    ).run()

    # Then it skips the finished segments, writes only what was not copied yet, and the copy is complete
    assert report.skipped_segments == [0, 1]
    assert again.puts[TARGET] == 200 - copied_before
    assert report.total("stale") == 0
    assert len(scan_all(conn, TARGET, target)) == 200


def test_a_checkpoint_of_another_run_is_refused(conn: Connection, make_table: MakeTable, tmp_path: Path):
    source, target = make_table(SOURCE), make_table(TARGET)
    checkpoint = tmp_path / "cp.json"
    BackfillRun(conn, SOURCE, source, [Target(TARGET, target)], segments=2, checkpoint_path=checkpoint).run()
    with pytest.raises(ToolError, match="another run"):
        BackfillRun(
            conn, SOURCE, source, [Target(TARGET, target)], segments=3, checkpoint_path=checkpoint
        ).run()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_budget_paces_writes_to_its_rate(conn: Connection, make_table: MakeTable, tmp_path: Path):
    # Given 50 items and a budget of 10 items per second per target (a burst of 10)
    source, target = make_table(SOURCE), make_table(TARGET)
    seed(conn, source, 50)
    clock = FakeClock()
    budget = WriteBudget(items_per_second=10, clock=clock, sleep=clock.sleep)

    # When the backfill runs
    BackfillRun(
        conn,
        SOURCE,
        source,
        [Target(TARGET, target)],
        segments=1,
        budget=budget,
        checkpoint_path=tmp_path / "c",
    ).run()

    # Then the 40 writes beyond the burst took 4 seconds of the budget's clock: 10 per second
    assert clock.now == pytest.approx(4.0)
    assert budget.waited_seconds == pytest.approx(4.0)


def test_a_capacity_budget_charges_large_items_more():
    clock = FakeClock()
    budget = WriteBudget(units_per_second=10, clock=clock, sleep=clock.sleep)
    large = {"pk": {"S": "k"}, "body": {"S": "x" * 3000}}  # 3 write units
    for _ in range(10):
        budget.acquire("r", large)
    assert clock.now == pytest.approx((30 - 10) / 10)


def test_token_bucket_allows_its_burst_then_its_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        bucket.acquire()
    assert clock.now == 0
    for _ in range(10):
        bucket.acquire()
    assert clock.now == pytest.approx(2.0)


def test_missing_table_is_named(conn: Connection, make_table: MakeTable, tmp_path: Path):
    source = make_table(SOURCE)
    with pytest.raises(ToolError, match=r"table nope not found in eu-west-1"):
        BackfillRun(conn, SOURCE, source, [Target(TARGET, "nope")], checkpoint_path=tmp_path / "c").run()


def test_key_schema_mismatch_is_named(conn: Connection, make_table: MakeTable, tmp_path: Path):
    source = make_table(SOURCE)
    target = make_table(TARGET, keys=(("pk", "S"), ("sk", "N")))
    with pytest.raises(ToolError, match=r"key schema differs: .*pk HASH S\].*pk HASH S, sk RANGE N"):
        BackfillRun(conn, SOURCE, source, [Target(TARGET, target)], checkpoint_path=tmp_path / "c").run()


def test_a_rerun_reports_copies_already_in_the_target_as_unchanged_and_read_first_spends_no_puts(
    conn: Connection, make_table: MakeTable, tmp_path: Path
):
    # Given a backfill that already copied 20 items, and one target copy made newer since
    source, target = make_table(SOURCE), make_table(TARGET)
    seed(conn, source, 20)

    runs = iter(range(10))

    def run(read_first: bool, clients: Any = conn) -> Any:
        return BackfillRun(
            clients,
            SOURCE,
            source,
            [Target(TARGET, target)],
            segments=2,
            page_size=5,
            checkpoint_path=tmp_path / f"cp-{next(runs)}.json",  # a new run each time, not a resume
            read_first=read_first,
        ).run()

    assert run(False).total("written") == 20
    put_items(conn, TARGET, target, [stamped("k0000", 99_999, TARGET, body="newer")])
    # When it runs again (a new run, not a resume)
    again = run(False)
    # Then the 19 copies already there are unchanged, the newer one is stale, nothing is written
    assert (again.total("written"), again.total("unchanged"), again.total("stale")) == (0, 19, 1)
    # And with --read-first the same re-run makes no put at all for the copies already there
    counting = CountingClients(conn)
    read_first = run(True, counting)
    assert (read_first.total("unchanged"), read_first.total("stale")) == (19, 1)
    assert counting.puts.get(TARGET, 0) == 1  # only the key whose target copy differs is tried
