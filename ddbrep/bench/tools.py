"""``bench tools``: backfill and verify throughput (items/s) with 1 and with N segments, on simulated regions.

Two moto servers (one per region) are started on loopback and stopped by PID. moto takes about
250-300 conditional puts/s per server, so without latency the numbers measure moto's CPU, not the
product. With ``--latency-ms`` (default 70, as the latency benchmark), every request to the target
region crosses a proxy that delays it like an inter-region round trip (the source is read in its own
region, undelayed): what a segment then waits on is what it waits on in AWS, so the segment ratio
is the product's scaling. From the measured items/s per segment, the bench also estimates the
deployed job on a large table: hours and list-price dollars to copy it at a given concurrency.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from ddbrep.local.faults import Link, Proxy
from ddbrep.local.regions import start_region, stop_region
from ddbrep.tools.aws import Connection
from ddbrep.tools.backfill import BackfillRun
from ddbrep.tools.prices import DEFAULT_PRICES
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


def process_cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def run_bench(
    items: int = 2000,
    segment_counts: Sequence[int] = (1, 8),
    page_size: int = 100,
    latency_ms: float = 0.0,
) -> dict[str, Any]:
    """Backfill ``items`` into a fresh target per segment count, then verify it; items/s of each."""
    regions = {}
    proxy: Proxy | None = None
    try:
        for name in (SOURCE, TARGET):
            regions[name] = start_region(name)
        endpoints = {name: r.engine_url for name, r in regions.items()}
        if latency_ms > 0:
            link = Link(source=SOURCE, target=TARGET, latency_ms=latency_ms)
            proxy = Proxy(regions[TARGET].engine_url, link).start()
            endpoints[TARGET] = proxy.url
        conn = Connection(endpoints=endpoints)
        source = f"bench-{uuid.uuid4().hex[:6]}"
        _create(conn, SOURCE, source)
        _seed(conn, source, items)
        results: dict[str, Any] = {
            "items": items,
            "page_size": page_size,
            "latency_ms": latency_ms,
            "backfill": {},
            "verify": {},
            # CPU seconds each region's engine spent serving the verify (what caps it locally)
            "verify_engine_cpu_seconds": {},
        }
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
                    conn, Side(SOURCE, source), Side(TARGET, target), segments=segments, page_size=page_size
                )
                cpu_before = {name: process_cpu_seconds(r.pid) for name, r in regions.items()}
                started, own_cpu = time.monotonic(), time.process_time()
                verified = verify.run()
                elapsed = time.monotonic() - started
                # this process: the verify and the latency proxy's threads
                results.setdefault("verify_bench_cpu_seconds", {})[segments] = round(
                    time.process_time() - own_cpu, 2
                )
                results["verify_engine_cpu_seconds"][segments] = {
                    name: round(after - before, 2)
                    for name, r in regions.items()
                    if (before := cpu_before[name]) is not None
                    and (after := process_cpu_seconds(r.pid)) is not None
                }
                results.setdefault("verify_seconds", {})[segments] = round(elapsed, 2)
                assert verified.ok, verified.to_json()["counts"]
                results["verify"][segments] = round(items / elapsed, 1)
        low, high = min(segment_counts), max(segment_counts)
        results["ratio"] = {
            kind: round(results[kind][high] / results[kind][low], 2) for kind in ("backfill", "verify")
        }
        results["one_segment_items_per_second"] = results["backfill"][low]
        return results
    finally:
        if proxy is not None:
            proxy.stop()
        for region in regions.values():
            stop_region(region)


def large_table_estimate(
    items_per_second_per_segment: float,
    table_bytes: float = 1e12,
    item_bytes: int = 1024,
    concurrency: int = 100,
    memory_mb: int = 512,
    architecture: str = "arm64",
) -> dict[str, float]:
    """Hours and list-price dollars for the deployed job to copy a table to one target.

    Each segment copies at the measured rate (one conditional put per item: a conditional write cannot
    be batched); ``concurrency`` segments run at once. Dollars: one write unit per started KB per item,
    the scan's eventually consistent read units (4 KB each, half a unit), and the job's Lambda GB-s
    for the whole time (it waits on the writes), at us-east-1 list prices (ddbrep/tools/prices.py).
    """
    prices = DEFAULT_PRICES
    items = table_bytes / item_bytes
    seconds = items / (items_per_second_per_segment * concurrency)
    write_units = items * -(-item_bytes // 1024)
    read_units = table_bytes / 4096 * 0.5
    gb_seconds = seconds * concurrency * memory_mb / 1024
    dollars = {
        "writes": write_units / 1e6 * prices.write_request_unit_per_million,
        "scan": read_units / 1e6 * prices.read_request_unit_per_million,
        "lambda": gb_seconds * prices.lambda_gb_second(architecture),
    }
    return {
        "items": items,
        "concurrency": concurrency,
        "hours": seconds / 3600,
        **{f"usd_{name}": round(value, 2) for name, value in dollars.items()},
        "usd_total": round(sum(dollars.values()), 2),
    }


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
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=70.0,
        help="delay of every request to the target region (default 70; 0: moto's speed only)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=100, help="segments at once, for the 1 TB estimate (default 100)"
    )
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results = run_bench(args.items, args.segments, args.page_size, args.latency_ms)
    estimate = large_table_estimate(results["one_segment_items_per_second"], concurrency=args.concurrency)
    if args.json:
        print(json.dumps({**results, "one_terabyte": estimate}, indent=2, default=str))
        return 0
    print(
        f"{results['items']} items, page size {results['page_size']}, moto servers on loopback, "
        f"{results['latency_ms']:g} ms per request to the target region"
    )
    for kind in ("backfill", "verify"):
        cells = ", ".join(f"{s} segment(s): {v} items/s" for s, v in results[kind].items())
        print(f"{kind:9} {cells}; ratio {results['ratio'][kind]}x")
    for segments, cpu in results["verify_engine_cpu_seconds"].items():
        engines = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in cpu.items())
        print(
            f"verify, {segments} segment(s): {results['verify_seconds'][segments]:.2f} s, of which the "
            f"engines' CPU (serializing each item they return, one process each): {engines}; this "
            f"process (verify and the latency proxy): {results['verify_bench_cpu_seconds'][segments]:.2f} s"
        )
    print(
        f"1 TB of 1 KB items to one target at {estimate['concurrency']} segments: "
        f"{estimate['hours']:.0f} h, ${estimate['usd_total']:,.0f} (writes ${estimate['usd_writes']:,.0f}, "
        f"scan ${estimate['usd_scan']:,.0f}, Lambda ${estimate['usd_lambda']:,.0f})"
    )
    return 0
