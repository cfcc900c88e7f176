"""Benchmarks of the replicator function itself (numbers for BENCHMARKS.md, never assertions).

1. Handler CPU per record with a null target: the whole Lambda handler (partial batch response,
   parse, classify, coalesce, plan, the ports' conditional writes, EMF metrics) against targets whose
   writes return at once; next to the CPU cost of only ``json.loads`` of the same event.
2. Batch apply time for 100 records x 2 targets (and x 9: a 10-region mesh) with an injected
   per-request latency, fanned out on the bounded pool, next to the same writes made one request at a
   time and to the floor ceil(writes / concurrency) x latency.

Run: ``make bench`` or ``.venv/bin/python -m ddbrep.bench.replicator``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

import ddbrep  # noqa: F401  (puts lambda/ on the import path)
from ddbrep.local.streams import record_of_images
from ddbrep.local.worker import LambdaContext
from replicator.adapters import DynamoPorts
from replicator.core.metadata import AttributeNames
from replicator.core.plan import TargetWrite
from replicator.engine import Replicator
from replicator.settings import Settings, Target

LOCAL = "us-east-1"
TARGET_REGIONS = ("eu-west-1", "ap-southeast-2")
# A 10-region mesh: each region replicates to 9 others (the fan-out goal: within 1.05x of its floor).
WIDE_TARGET_REGIONS = (
    *TARGET_REGIONS,
    "us-west-2",
    "eu-central-1",
    "ap-northeast-1",
    "sa-east-1",
    "ca-central-1",
    "ap-south-1",
    "eu-north-1",
)
ENV = {
    "REP_LOCAL_REGION": LOCAL,
    "REP_TOPOLOGY": "mesh",
    "REP_SOURCE_TABLE": "orders",
    "REP_TARGETS": json.dumps(
        [{"region": r, "table": "orders", "handoff_queue_url": "q"} for r in TARGET_REGIONS]
    ),
    "REP_DEAD_LETTER_BUCKET": "bucket",
    "AWS_DEFAULT_REGION": LOCAL,
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "Bench",
}


class NullTable:
    """A target whose conditional writes return after ``latency`` seconds (0: at once)."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.writes = 0

    def put_item(self, **_: Any) -> dict[str, Any]:
        if self.latency:
            time.sleep(self.latency)
        self.writes += 1
        return {}


class NullPorts(DynamoPorts):
    """The function's DynamoDB ports (requests built, answers classified) on null tables."""

    def __init__(self, latency: float = 0.0) -> None:
        self.tables = {r: NullTable(latency) for r in (LOCAL, *WIDE_TARGET_REGIONS)}
        super().__init__(lambda region, _role: self.tables[region], LOCAL, AttributeNames())

    def handoff(self, target: Target, write: TargetWrite, reason: str) -> None:
        raise AssertionError(f"unexpected handoff: {reason}")

    def dead_letter(self, entry: Mapping[str, Any]) -> str:
        raise AssertionError(f"unexpected dead letter: {entry}")

    def log_conflicts(self, entries: Sequence[Mapping[str, Any]]) -> str:
        raise AssertionError(f"unexpected conflicts: {entries}")


def make_event(records: int, keys: int | None = None) -> dict[str, Any]:
    """Local stamped writes with 10 attributes each, ``keys`` distinct keys (default: all distinct)."""
    keys = keys or records
    base_us = int(time.time() * 1_000_000)
    out = []
    for i in range(records):
        image: dict[str, Any] = {"pk": {"S": f"order-{i % keys:06d}"}, "sk": {"S": "v0"}}
        for a in range(8):
            image[f"attr{a}"] = {"S": f"value-{i}-{a}"} if a % 2 else {"N": str(i * a)}
        image["rep_region"] = {"S": LOCAL}
        image["rep_ts"] = {"N": str(base_us + i)}
        out.append(
            record_of_images(
                "INSERT",
                image,
                None,
                sequence_number=str(10**20 + i),
                created=base_us / 1_000_000,
                key_names=("pk", "sk"),
                region=LOCAL,
                stream_arn=f"arn:aws:dynamodb:{LOCAL}:111111111111:table/orders/stream/2026-01-01",
            )
        )
    return {"Records": out}


def handler_cpu(records: int, repeats: int) -> dict[str, float]:
    os.environ.update(ENV)
    sys.modules.pop("replicator.handler", None)
    handler = importlib.import_module("replicator.handler")
    settings = Settings.from_env()
    handler.replicator = Replicator(settings, NullPorts())  # type: ignore[attr-defined]
    event = make_event(records)
    raw = json.dumps(event)
    handler_s, loads_s = [], []
    for _ in range(repeats):
        start = time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            response = handler.lambda_handler(json.loads(raw), LambdaContext.for_function("bench"))
        handler_s.append(time.process_time() - start)
        assert response == {"batchItemFailures": []}
        start = time.process_time()
        for _ in range(10):
            json.loads(raw)
        loads_s.append((time.process_time() - start) / 10)
    h, j = statistics.median(handler_s), statistics.median(loads_s)
    return {
        "records": records,
        "handler_cpu_ms_per_batch": h * 1000,
        "handler_records_per_cpu_s": records / h,
        "json_loads_ms_per_batch": j * 1000,
        "handler_over_json_loads": h / j,
    }


def fan_out(
    records: int,
    latency_ms: float,
    workers: int,
    repeats: int,
    targets: Sequence[str] = TARGET_REGIONS,
    sequential_too: bool = True,
) -> dict[str, float]:
    env = {
        **ENV,
        "REP_MAX_WORKERS": str(workers),
        "REP_TARGETS": json.dumps(
            [{"region": r, "table": "orders", "handoff_queue_url": "q"} for r in targets]
        ),
    }
    event = make_event(records)["Records"]
    parallel: list[float] = []
    sequential: list[float] = []
    for _ in range(repeats):
        for pool, sink in ((workers, parallel), (1, sequential))[: 2 if sequential_too else 1]:
            settings = Settings.from_env({**env, "REP_MAX_WORKERS": str(pool)})
            replicator = Replicator(settings, NullPorts(latency_ms / 1000))
            start = time.perf_counter()
            outcome = replicator.process_batch(event)
            sink.append(time.perf_counter() - start)
            replicator.close()
            assert not outcome.failed_sequence_numbers
    writes = records * len(targets)
    floor = math.ceil(writes / workers) * latency_ms / 1000
    p = statistics.median(parallel)
    s = statistics.median(sequential) if sequential else math.nan
    return {
        "targets": len(targets),
        "writes": writes,
        "latency_ms": latency_ms,
        "workers": workers,
        "parallel_s": p,
        "sequential_s": s,
        "floor_s": floor,
        "sequential_over_parallel": s / p,
        "parallel_over_floor": p / floor,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--records", type=int, default=1000, help="records per batch for the CPU bench")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=70.0)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def register_bench(bench_subparsers: Any) -> None:
    """``python -m ddbrep bench replicator``."""
    parser = bench_subparsers.add_parser(
        "replicator",
        help="handler CPU per record (null targets) vs json.loads; fan-out vs one at a time vs floor",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    cpu = handler_cpu(args.records, args.repeats)
    fan = fan_out(100, args.latency_ms, args.workers, max(3, args.repeats // 2))
    wide = fan_out(
        100,
        args.latency_ms,
        args.workers,
        max(3, args.repeats // 2),
        WIDE_TARGET_REGIONS,
        sequential_too=False,
    )
    if args.json:
        print(json.dumps({"handler_cpu": cpu, "fan_out": fan, "fan_out_9_targets": wide}, indent=2))
        return 0
    print(
        f"Handler CPU, null targets, {cpu['records']} records x 2 targets per batch "
        f"(median of {args.repeats}):"
    )
    print(
        f"  handler          {cpu['handler_cpu_ms_per_batch']:8.1f} ms CPU/batch  "
        f"{cpu['handler_records_per_cpu_s']:9.0f} records/s on one core"
    )
    print(f"  json.loads only  {cpu['json_loads_ms_per_batch']:8.1f} ms CPU/batch")
    print(f"  ratio handler / json.loads: {cpu['handler_over_json_loads']:.1f}x")
    print(
        f"Fan-out, 100 records x 2 targets = {fan['writes']} writes, {fan['latency_ms']:.0f} ms per request:"
    )
    print(f"  parallel ({fan['workers']} workers) {fan['parallel_s']:6.2f} s")
    print(
        f"  one at a time        {fan['sequential_s']:6.2f} s   "
        f"({fan['sequential_over_parallel']:.1f}x slower)"
    )
    print(
        f"  floor ceil({fan['writes']}/{fan['workers']}) x latency = {fan['floor_s']:.2f} s   "
        f"(parallel is {fan['parallel_over_floor']:.2f}x the floor)"
    )
    print(
        f"Fan-out, 100 records x {wide['targets']} targets (a 10-region mesh) = {wide['writes']} writes: "
        f"{wide['parallel_s']:.2f} s, floor {wide['floor_s']:.2f} s "
        f"({wide['parallel_over_floor']:.2f}x the floor)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
