"""Backfill and verify --repair of items of every type, binary keys included, against simulated regions.

Items are written with boto3 (binary values as ``bytes``) and read back with boto3: a tool that wrote
the base64 text of a value as its bytes, or lost a binary scan position, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ddbrep.cli import main
from ddbrep.tools.aws import Connection, ToolError
from ddbrep.tools.backfill import BackfillRun
from replicator.settings import Target
from tests.local.support import every_type, user_view
from tests.tools.conftest import CountingClients, MakeTable, put_items

pytestmark = pytest.mark.local

SOURCE, TARGET, OTHER = "us-east-1", "eu-west-1", "ap-south-1"
# A binary sort key: moto cannot scan a table with a binary partition key in parallel (see the last test)
BINARY_KEYS = (("id", "S"), ("part", "B"))


def item(n: int, ts: int | None = None, **extra: Any) -> dict[str, Any]:
    """An item of every type with a binary sort key that is not valid UTF-8; stamped when ``ts`` is given."""
    written: dict[str, Any] = {"id": {"S": f"k{n}"}, "part": {"B": b"\xff\x00" + bytes([n])}, **every_type()}
    if ts is not None:
        written.update({"rep_ts": {"N": str(ts)}, "rep_region": {"S": SOURCE}})
    return {**written, **extra}


def by_key(conn: Connection, region: str, table: str) -> dict[bytes, dict[str, Any]]:
    """Every item of the table (a single page: these tables are small), by its sort key's bytes."""
    page = conn.dynamodb(region).scan(TableName=table)
    assert "LastEvaluatedKey" not in page
    return {i["part"]["B"]: i for i in page["Items"]}


def flags(endpoints: dict[str, str]) -> list[str]:
    return [arg for region, url in endpoints.items() for arg in ("--endpoint", f"{region}={url}")]


def test_a_resumed_backfill_copies_every_type_and_a_binary_sort_key_bytes_exact(
    conn: Connection, make_table: MakeTable, tmp_path: Path
):
    # Given a source of items of every type with a binary sort key, stamped and unstamped, and a backfill
    # that dies after its first page (its checkpoint holds a binary scan position)
    source, target = make_table(SOURCE, keys=BINARY_KEYS), make_table(TARGET, keys=BINARY_KEYS)
    items = [item(0, ts=100), item(1, ts=200), item(2)]
    put_items(conn, SOURCE, source, items)
    checkpoint = tmp_path / "cp.json"
    dies = CountingClients(conn, crash_when=lambda scan: "ExclusiveStartKey" in scan)
    run = BackfillRun(
        dies, SOURCE, source, [Target(TARGET, target)], segments=1, page_size=1, checkpoint_path=checkpoint
    )
    with pytest.raises(ToolError, match="resume with the same command"):
        run.run()
    assert dies.puts == {TARGET: 1}

    # When the same backfill runs again
    again = CountingClients(conn)
    report = BackfillRun(
        again, SOURCE, source, [Target(TARGET, target)], segments=1, page_size=1, checkpoint_path=checkpoint
    ).run()

    # Then it resumed after the first item and the target holds every item with the source's bytes
    assert report.done and again.puts == {TARGET: 2}
    copied, written = by_key(conn, TARGET, target), by_key(conn, SOURCE, source)
    assert set(copied) == {b"\xff\x00\x00", b"\xff\x00\x01", b"\xff\x00\x02"}
    for id_bytes, original in written.items():
        assert user_view(copied[id_bytes]) == user_view(original)
        assert user_view(original) == user_view(items[id_bytes[-1]])
    # with the stamps carried over (the unstamped item marked with its origin only)
    assert copied[b"\xff\x00\x01"]["rep_ts"] == {"N": "200"}
    assert copied[b"\xff\x00\x02"]["rep_region"] == {"S": SOURCE} and "rep_ts" not in copied[b"\xff\x00\x02"]


def test_a_filtered_backfill_copies_the_matching_binary_items_bytes_exact(
    conn: Connection, make_table: MakeTable, tmp_path: Path
):
    # Given items of every type of two tiers, and a target whose filter keeps tier gold only
    source, target = make_table(SOURCE, keys=BINARY_KEYS), make_table(OTHER, keys=BINARY_KEYS)
    put_items(conn, SOURCE, source, [item(0, ts=1, tier={"S": "gold"}), item(1, ts=1, tier={"S": "silver"})])
    gold_only = Target(OTHER, target, item_filter={"tier": {"S": ["gold"]}})

    # When the backfill runs
    report = BackfillRun(conn, SOURCE, source, [gold_only], checkpoint_path=tmp_path / "cp.json").run()

    # Then the target holds the matching item only, bytes-exact
    assert (report.total("written"), report.total("filtered")) == (1, 1)
    copied = by_key(conn, OTHER, target)
    assert list(copied) == [b"\xff\x00\x00"]
    assert user_view(copied[b"\xff\x00\x00"]) == user_view(item(0, tier={"S": "gold"}))


def test_verify_repair_restores_the_sources_bytes_and_then_reports_matching(
    conn: Connection, make_table: MakeTable, endpoints: dict[str, str], capsys
):
    # Given a replica of a table with a binary sort key that agrees on one item, holds an older copy of
    # another with different binary values, and lacks a third
    name = make_table(SOURCE, keys=BINARY_KEYS)
    make_table(TARGET, name=name, keys=BINARY_KEYS)
    put_items(conn, SOURCE, name, [item(0, ts=100), item(1, ts=300), item(2, ts=100)])
    older = item(1, ts=200, blob={"B": b"other"}, blobs={"BS": [b"\x00"]})
    older["doc"] = {"M": {"inner": {"B": b"\x01"}}}
    put_items(conn, TARGET, name, [item(0, ts=100), older])
    command = ["verify", "--table", name, "--source", SOURCE, "--target", TARGET, "--json", *flags(endpoints)]

    # When verify runs with --repair
    assert main([*command, "--repair"]) == 0
    doc = json.loads(capsys.readouterr().out)

    # Then it found one different and one missing item, repaired both in the replica
    assert doc["counts"] == {"missing": 1, "extra": 0, "different": 1}
    assert doc["repairs"] == {"applied": 2, f"applied:{TARGET}": 2}
    # and the replica holds the source's bytes again
    repaired = by_key(conn, TARGET, name)
    for n in range(3):
        assert user_view(repaired[b"\xff\x00" + bytes([n])]) == user_view(item(n))
    # And a second verify reports the tables matching
    assert main(command) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["match"] is True and again["matching"] == 3


@pytest.mark.xfail(
    strict=True,
    reason="moto 5.2.5 answers HTTP 500 to every parallel Scan (Segment/TotalSegments) of a table whose "
    "partition key is binary (moto/dynamodb/models/dynamo_type.py Item.is_within_segment calls "
    "hash_key.value.encode('utf8') on bytes); backfill and verify always scan in segments, and the "
    "local runtime does not absorb it",
)
def test_a_backfill_copies_a_binary_partition_key_bytes_exact(
    conn: Connection, make_table: MakeTable, tmp_path: Path
):
    # Given a source keyed by a binary partition key only
    keys = (("id", "B"),)
    source, target = make_table(SOURCE, keys=keys), make_table(TARGET, keys=keys)
    written = {"id": {"B": b"\xff\x00"}, "rep_ts": {"N": "1"}, "rep_region": {"S": SOURCE}, **every_type()}
    put_items(conn, SOURCE, source, [written])

    # When the backfill runs
    report = BackfillRun(conn, SOURCE, source, [Target(TARGET, target)], checkpoint_path=tmp_path / "c").run()

    # Then the target holds the item bytes-exact
    assert report.total("written") == 1
    [copied] = conn.dynamodb(TARGET).scan(TableName=target)["Items"]
    assert user_view(copied) == user_view(written)
