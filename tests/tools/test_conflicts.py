"""The conflict log tool against a moto S3 server: objects as the replicator writes them."""

from __future__ import annotations

import json
import uuid
from typing import Any

from ddbrep.tools.aws import Connection
from ddbrep.tools.conflicts import list_conflicts
from replicator.adapters import conflict_log_key

REGION = "us-east-1"
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


def _entry(pk: str, at: float) -> dict[str, Any]:
    return {
        "keys": {"pk": {"S": pk}},
        "losing": {"ts": int(at * 1e6) - 5, "region": "eu-west-1", "seq": ""},
        "winning": {"ts": int(at * 1e6), "region": REGION, "seq": "7"},
        "at": at,
        "source_region": REGION,
        "target_region": "eu-west-1",
    }


def _log(
    conn: Connection, bucket: str, at: float, entries: list[dict[str, Any]], table: str | None = None
) -> None:
    body = {"v": 1, "source_region": REGION, "logged_at": at, "entries": entries}
    key = conflict_log_key(REGION, at, uuid.uuid4().hex[:8], table)
    conn.client("s3", REGION).put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode())


def test_lists_a_time_range_filtered_by_key_prefix_oldest_first(conn: Connection) -> None:
    # Given a region's bucket with conflict log objects over three hours
    bucket = f"dl-{uuid.uuid4().hex[:10]}"
    conn.client("s3", REGION).create_bucket(Bucket=bucket)
    _log(conn, bucket, T0, [_entry("order-1", T0), _entry("user-1", T0)])
    _log(conn, bucket, T0 + 3600, [_entry("order-2", T0 + 3600)])
    _log(conn, bucket, T0 + 7200, [_entry("order-3", T0 + 7200)])
    # When the operator lists the first two hours for keys starting with "order-"
    records = list_conflicts(conn, REGION, bucket, T0 - 1, T0 + 3601, key_prefix="order-")
    # Then exactly the two matching entries in the range, oldest first, with loser and winner
    assert [(r.key_text(), r.at, r.lost_in, r.losing["region"], r.winning["region"]) for r in records] == [
        ("pk=order-1", T0, "eu-west-1", "eu-west-1", REGION),
        ("pk=order-2", T0 + 3600, "eu-west-1", "eu-west-1", REGION),
    ]
    assert records[0].to_json() == {
        "at": T0,
        "keys": {"pk": {"S": "order-1"}},
        "lost_in": "eu-west-1",
        "losing": {"ts": int(T0 * 1e6) - 5, "region": "eu-west-1", "seq": ""},
        "winning": {"ts": int(T0 * 1e6), "region": REGION, "seq": "7"},
        "logged_by": REGION,
    }


def test_each_table_of_a_shared_bucket_lists_its_own_conflicts(conn: Connection) -> None:
    # Given the first table's and a second table's conflict logs in one region's bucket
    bucket = f"dl-{uuid.uuid4().hex[:10]}"
    conn.client("s3", REGION).create_bucket(Bucket=bucket)
    _log(conn, bucket, T0, [_entry("order-1", T0)])
    _log(conn, bucket, T0, [_entry("customer-1", T0)], table="customers")
    # Then each listing finds its own table's entries only
    first = list_conflicts(conn, REGION, bucket, T0 - 1, T0 + 1)
    second = list_conflicts(conn, REGION, bucket, T0 - 1, T0 + 1, table="customers")
    assert [r.key_text() for r in first] == ["pk=order-1"]
    assert [r.key_text() for r in second] == ["pk=customer-1"]
