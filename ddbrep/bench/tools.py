"""``bench tools``: backfill and verify throughput (items/s) with 1 and with N segments, on simulated regions.

Two moto servers (one per region) are started on loopback and stopped by PID. moto takes about
250-300 conditional puts/s per server, so the default workload is small; the numbers compare
segment counts on this machine, they do not predict AWS (where each segment scales on its own).
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ddbrep.local.regions import start_region, stop_region
from ddbrep.tools.aws import Connection
from ddbrep.tools.backfill import BackfillRun
from ddbrep.tools.verify import Side, Verify
from replicator.settings import Target

SOURCE, TARGET = "us-east-1", "eu-west-1"


def _create(conn: Connection, region: str, name: str) -> None:
    conn.dynamodb(region).create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _seed(conn: Connection, table: str, items: int) -> None:
    client = conn.dynamodb(SOURCE)
    now = int(time.time() * 1_000_000)
    batch: list[dict[str, Any]] = []
    for i in range(items):
        item = {
            "pk": {"S": f"item-{i:07d}"},
            "body": {"S": "x" * 200},
            "n": {"N": str(i)},
            "rep_ts": {"N": str(now + i)},
            "rep_region": {"S": SOURCE},
        }
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25 or i == items - 1:
            client.batch_write_item(RequestItems={table: batch})
            batch = []


def run_bench(
    items: int = 2000, segment_counts: Sequence[int] = (1, 8), page_size: int = 100
) -> dict[str, Any]:
    """Backfill ``items`` into a fresh target per segment count, then verify it; items/s of each."""
    regions = {}
    try:
        for name in (SOURCE, TARGET):
            regions[name] = start_region(name)
        conn = Connection(endpoints={name: r.engine_url for name, r in regions.items()})
        source = f"bench-{uuid.uuid4().hex[:6]}"
        _create(conn, SOURCE, source)
        _seed(conn, source, items)
        results: dict[str, Any] = {"items": items, "page_size": page_size, "backfill": {}, "verify": {}}
        with TemporaryDirectory() as tmp:
            for segments in segment_counts:
                target = f"{source}-copy{segments}"
                _create(conn, TARGET, target)
                run = BackfillRun(
                    conn,
                    SOURCE,
                    source,
                    [Target(TARGET, target)],
                    segments=segments,
                    page_size=page_size,
                    checkpoint_path=Path(tmp) / f"cp{segments}.json",
                )
                report = run.run()
                assert report.total("written") == items, report.to_json()["totals"]
                results["backfill"][segments] = round(items / report.elapsed_seconds, 1)
                verify = Verify(
                    conn, Side(SOURCE, source), Side(TARGET, target), segments=segments, page_size=500
                )
                started = time.monotonic()
                verified = verify.run()
                elapsed = time.monotonic() - started
                assert verified.ok, verified.to_json()["counts"]
                results["verify"][segments] = round(items / elapsed, 1)
        low, high = min(segment_counts), max(segment_counts)
        results["ratio"] = {
            kind: round(results[kind][high] / results[kind][low], 2) for kind in ("backfill", "verify")
        }
        return results
    finally:
        for region in regions.values():
            stop_region(region)


def register_bench(bench_subparsers: Any) -> None:
    """Adds ``python -m ddbrep bench tools``."""
    parser = bench_subparsers.add_parser(
        "tools",
        help="backfill and verify throughput with 1 and 8 segments on simulated regions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--items", type=int, default=2000, help="items in the source table (default 2000)")
    parser.add_argument(
        "--segments", type=int, nargs="+", default=[1, 8], help="segment counts to compare (default 1 8)"
    )
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = run_bench(args.items, args.segments, args.page_size)
    if args.json:
        print(json.dumps(results, indent=2, default=str))
        return 0
    print(f"{results['items']} items, page size {results['page_size']}, moto servers on loopback")
    for kind in ("backfill", "verify"):
        cells = ", ".join(f"{s} segment(s): {v} items/s" for s, v in results[kind].items())
        print(f"{kind:9} {cells}; ratio {results['ratio'][kind]}x")
    return 0
