"""Verify and repair against simulated regions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ddbrep.tools.aws import Connection, ToolError
from ddbrep.tools.verify import Side, Verify, plan_repair
from replicator.core.compare import Kind, compare
from replicator.core.metadata import AttributeNames, Version
from tests.tools.conftest import MakeTable, put_items, scan_all, stamped

pytestmark = pytest.mark.local

A, B = "us-east-1", "eu-west-1"
NAMES = AttributeNames()


def tombstone(pk: str, ts: int, region: str) -> dict[str, Any]:
    return stamped(pk, ts, region) | {"rep_deleted": {"BOOL": True}, "rep_expires": {"N": "1"}}


@pytest.fixture
def diverged(conn: Connection, make_table: MakeTable) -> tuple[str, str]:
    """Two regions that agree on 20 keys and differ on five, one of each kind and two subtler ones."""
    ta, tb = make_table(A), make_table(B)
    same = [stamped(f"same{i}", 100 + i, A, body="x") for i in range(20)]
    put_items(conn, A, ta, [*same, tombstone("deleted-both", 5, A)])
    put_items(conn, B, tb, [*same, tombstone("deleted-both", 6, B)])
    put_items(conn, A, ta, [stamped("only-a", 10, A, body="a")])  # missing in B
    put_items(conn, B, tb, [stamped("only-b", 10, B, body="b")])  # extra in B
    put_items(conn, A, ta, [stamped("newer-a", 30, A, body="new")])  # different: A newer
    put_items(conn, B, tb, [stamped("newer-a", 20, B, body="old")])
    put_items(conn, A, ta, [tombstone("deleted-a", 40, A)])  # deleted in A after B's write: extra in B
    put_items(conn, B, tb, [stamped("deleted-a", 35, B, body="stale")])
    put_items(conn, A, ta, [stamped("resurrected", 50, A, body="back")])  # A's write after B's delete
    put_items(conn, B, tb, [tombstone("resurrected", 45, B)])
    return ta, tb


def test_verify_reports_each_kind_of_difference(conn: Connection, diverged: tuple[str, str]):
    ta, tb = diverged
    report = Verify(conn, Side(A, ta), Side(B, tb), segments=3, page_size=4).run()

    assert report.counts == {"missing": 2, "extra": 2, "different": 1}
    assert report.matching == 21  # 20 equal items and one key deleted on both sides
    assert not report.ok
    doc = json.loads(json.dumps(report.to_json()))
    assert doc["match"] is False
    assert {s["key"]["pk"]["S"] for s in doc["samples"]["missing"]} == {"only-a", "resurrected"}
    assert {s["key"]["pk"]["S"] for s in doc["samples"]["extra"]} == {"only-b", "deleted-a"}
    [different] = doc["samples"]["different"]
    assert different["key"] == {"pk": {"S": "newer-a"}}
    assert different["changed"] == ["body", "(rep_ts, rep_region)"]


def test_repair_writes_the_winner_and_the_regions_then_match(conn: Connection, diverged: tuple[str, str]):
    ta, tb = diverged

    report = Verify(conn, Side(A, ta), Side(B, tb), segments=2, repair=True).run()

    assert report.ok
    assert report.repairs == {"applied": 5, f"applied:{B}": 4, f"applied:{A}": 1}
    again = Verify(conn, Side(A, ta), Side(B, tb), segments=2).run()
    assert again.ok and again.differences == 0
    b_items = scan_all(conn, B, tb)
    assert b_items["newer-a"]["body"] == {"S": "new"}
    assert b_items["deleted-a"]["rep_deleted"] == {"BOOL": True}
    assert scan_all(conn, A, ta)["only-b"]["body"] == {"S": "b"}


def test_tables_that_match_exit_clean(conn: Connection, make_table: MakeTable):
    ta, tb = make_table(A), make_table(B)
    items = [stamped(f"k{i}", i, A, tags="t") for i in range(10)]
    put_items(conn, A, ta, items)
    put_items(conn, B, tb, [i | {"rep_seq": {"S": "0" * 39 + "1"}} for i in items])  # targets carry rep_seq
    report = Verify(conn, Side(A, ta), Side(B, tb)).run()
    assert report.ok and report.matching == 10


def test_one_way_compares_user_attributes_and_repairs_only_the_replica(
    conn: Connection, make_table: MakeTable
):
    # Given an unstamped source and a replica whose copies carry stream versions
    source, replica = make_table(A), make_table(B)
    put_items(
        conn, A, source, [{"pk": {"S": "same"}, "v": {"S": "1"}}, {"pk": {"S": "changed"}, "v": {"S": "2"}}]
    )
    put_items(conn, A, source, [{"pk": {"S": "lost"}, "v": {"S": "3"}}])
    stream_version = {"rep_ts": {"N": "1000000"}, "rep_region": {"S": A}, "rep_seq": {"S": "0" * 40}}
    put_items(conn, B, replica, [{"pk": {"S": "same"}, "v": {"S": "1"}} | stream_version])
    put_items(conn, B, replica, [{"pk": {"S": "changed"}, "v": {"S": "old"}} | stream_version])
    put_items(conn, B, replica, [{"pk": {"S": "deleted"}, "v": {"S": "4"}} | stream_version])

    report = Verify(conn, Side(A, source), Side(B, replica), ignore_metadata=True, repair=True).run()

    assert report.counts == {"missing": 1, "extra": 1, "different": 1}
    assert report.repairs == {"applied": 3, f"applied:{B}": 3}
    replica_items = scan_all(conn, B, replica)
    assert replica_items["changed"]["v"] == {"S": "2"}
    assert replica_items["lost"]["v"] == {"S": "3"}
    assert replica_items["deleted"]["rep_deleted"] == {"BOOL": True}
    assert set(scan_all(conn, A, source)) == {"same", "changed", "lost"}  # the source is never written
    assert Verify(conn, Side(A, source), Side(B, replica), ignore_metadata=True).run().ok


def test_a_partial_replica_is_compared_with_the_matching_items_only(conn: Connection, make_table: MakeTable):
    source, replica = make_table(A), make_table(B)
    put_items(conn, A, source, [stamped("eu1", 1, A, tenant="eu"), stamped("us1", 1, A, tenant="us")])
    put_items(conn, B, replica, [stamped("eu1", 1, A, tenant="eu")])
    report = Verify(conn, Side(A, source), Side(B, replica), item_filter={"tenant": {"S": ["eu"]}}).run()
    assert report.ok


def test_missing_table_and_key_schema_mismatch_are_named(conn: Connection, make_table: MakeTable):
    ta = make_table(A)
    with pytest.raises(ToolError, match="table absent not found in eu-west-1"):
        Verify(conn, Side(A, ta), Side(B, "absent")).run()
    tb = make_table(B, keys=(("id", "S"),))
    with pytest.raises(ToolError, match="key schema differs"):
        Verify(conn, Side(A, ta), Side(B, tb)).run()


def test_copies_with_the_same_version_but_other_content_are_not_repaired_blindly():
    a = stamped("k", 5, A, body="one")
    b = stamped("k", 5, A, body="two")
    assert compare(a, b, NAMES) is Kind.DIFFERENT
    assert isinstance(plan_repair(a, b, {"pk": {"S": "k"}}, NAMES), str)


def test_one_way_repair_version_loses_to_any_later_stream_change():
    repair = Version(2_000_000, A)
    later_in_same_second = Version(2_000_000, A, "0" * 39 + "7")
    assert later_in_same_second > repair
    plan = plan_repair({"pk": {"S": "k"}, "v": {"S": "1"}}, None, {"pk": {"S": "k"}}, NAMES, repair)
    assert not isinstance(plan, str) and plan.side == "b" and plan.version == repair


# --- what the command prints --------------------------------------------------------------------------


def _flags(endpoints: dict[str, str]) -> list[str]:
    return [arg for region, url in endpoints.items() for arg in ("--endpoint", f"{region}={url}")]


def test_with_a_filter_matching_counts_only_the_items_the_partial_replica_holds(
    conn: Connection, make_table: MakeTable, endpoints: dict[str, str], capsys
):
    from ddbrep.cli import main

    # Given three source items, one of which the partial replica (tenant eu-*) holds
    source, target = make_table(A), make_table(B)
    put_items(
        conn, A, source, [stamped(f"k{i}", 10, A, tenant=t) for i, t in enumerate(["eu-1", "us", "us"])]
    )
    put_items(conn, B, target, [stamped("k0", 10, A, tenant="eu-1")])
    # When the pair is verified with the replica's filter
    code = main(
        [
            "verify",
            "--table",
            source,
            "--source",
            A,
            "--target",
            f"{B}={target}",
            "--filter",
            '{"tenant": {"S": [{"prefix": "eu-"}]}}',
            "--json",
            *_flags(endpoints),
        ]
    )
    # Then it matches, and "matching" is the one item both hold; the other two are left out by the filter
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (report["matching"], report["filtered_out"]) == (1, 2)


def test_samples_show_whole_versions_and_which_side_is_newer(
    conn: Connection, make_table: MakeTable, endpoints: dict[str, str], capsys, monkeypatch
):
    from ddbrep.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    # Given a key whose target copy is older
    source, target = make_table(A), make_table(B)
    put_items(conn, A, source, [stamped("k", 200, A, body="new")])
    put_items(conn, B, target, [stamped("k", 100, B, body="old")])
    # When the pair is verified
    code = main(["verify", "--table", source, "--source", A, "--target", f"{B}={target}", *_flags(endpoints)])
    # Then the sample row names both versions in full and the newer side
    out = capsys.readouterr().out
    assert code == 1
    row = next(line for line in out.splitlines() if '"k"' in line)
    assert "rep_ts 200, rep_region us-east-1" in row
    assert "rep_ts 100, rep_region eu-west-1" in row
    assert row.split("│")[5].strip() == A  # the "newer" column


def test_an_unrepairable_key_is_printed_with_its_key_and_the_fix(
    conn: Connection, make_table: MakeTable, endpoints: dict[str, str], capsys
):
    from ddbrep.cli import main

    # Given two copies with the same version and different content
    source, target = make_table(A), make_table(B)
    put_items(conn, A, source, [stamped("tie", 100, A, body="one")])
    put_items(conn, B, target, [stamped("tie", 100, A, body="two")])
    # When the pair is verified and repaired
    argv = ["verify", "--table", source, "--source", A, "--target", f"{B}={target}", "--repair"]
    code = main([*argv, *_flags(endpoints)])
    # Then a whole line names the key, why, and what to do
    assert code == 1
    assert (
        'unrepairable: key {"pk": {"S": "tie"}}: both copies carry the same version (or none): no order '
        "between them; rewrite the item through the client helper (it stamps a new version) and it "
        "replicates; then run verify again\n"
    ) in capsys.readouterr().out
