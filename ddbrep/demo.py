"""`make demo`: synthesize, start a three-region mesh locally, run a mixed workload, verify, report.

The deployment is cdk.json's; when it replicates one table, the demo adds a second, ``customers``
(a partition key of its own and a global secondary index, ``by-tier``), to show a deployment of many
tables (``--as-shipped`` runs cdk.json exactly). The workload goes through the client helper
(ddbrep.client.ReplicatedTable) from one thread per region and table at once: conflicting puts,
updates and deletes of shared keys, plus writes by applications that do not stamp (plain PutItem of
new keys, plain DeleteItem). When every replicator has drained, every table must hold identical live
items in every region, and each region's index must list exactly the live items that carry its key
(tombstones are never indexed); the command exits 1 otherwise.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ddbrep.local import dashboard
from ddbrep.local.cloud import LocalCloud, RuntimeOptions
from ddbrep.local.synth import app_context, synthesize
from ddbrep.local.templates import Assembly, TableSpec, load_assembly
from replicator.core.compare import differences
from replicator.core.metadata import AttributeNames, is_tombstone
from replicator.core.records import key_id
from replicator.core.wire import from_sdk

DEFAULT_OUT = Path("out")
DEMO_TABLE = "customers"
DEMO_INDEX = "by-tier"
TIERS = ("gold", "silver", "bronze")


def demo_replication(replication: Mapping[str, Any]) -> dict[str, Any]:
    """cdk.json's deployment with the demo's second table when it has one table; else as it is."""
    block = dict(replication)
    if "tables" in block or "table" not in block:
        return block
    customers = {
        "name": DEMO_TABLE,
        "partition_key": {"name": "id", "type": "S"},
        "global_secondary_indexes": [
            {"name": DEMO_INDEX, "partition_key": {"name": "tier", "type": "S"}, "projection": "KEYS_ONLY"}
        ],
    }
    block["tables"] = [block.pop("table"), customers]
    return block


class Writer(Protocol):
    """What the workload needs from a region's table (the client helper satisfies it)."""

    def put_item(self, item: dict[str, Any]) -> Any: ...
    def update_item(self, key: dict[str, Any], update_expression: str, **kwargs: Any) -> Any: ...
    def delete_item(self, key: dict[str, Any]) -> Any: ...


def helper_writer(cloud: LocalCloud, region: str, table: str) -> Writer:
    from ddbrep.client import ReplicatedTable

    return ReplicatedTable(cloud.client(region), table, region)  # type: ignore[return-value]


@dataclass
class WorkloadCounts:
    puts: int = 0
    updates: int = 0
    deletes: int = 0
    unstamped_puts: int = 0
    hard_deletes: int = 0

    @property
    def total(self) -> int:
        return self.puts + self.updates + self.deletes + self.unstamped_puts + self.hard_deletes

    def add(self, other: WorkloadCounts) -> None:
        for name in ("puts", "updates", "deletes", "unstamped_puts", "hard_deletes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class DemoResult:
    regions: tuple[str, ...]
    items: dict[str, dict[str, int]]  # table -> region -> live items
    differences: list[str]
    rows: list[dashboard.PairSummary]
    counts: WorkloadCounts
    seconds: dict[str, float] = field(default_factory=dict)
    png: Path | None = None
    html: Path | None = None

    @property
    def identical(self) -> bool:
        return not self.differences


def key_of(table: TableSpec, value: str) -> dict[str, Any]:
    """A key of ``table``: ``value`` as its partition key, "0" as its sort key (strings or bytes)."""
    types = {d["AttributeName"]: d["AttributeType"] for d in table.attribute_definitions}
    key: dict[str, Any] = {}
    for element in table.key_schema:
        name, kind = element["AttributeName"], types[element["AttributeName"]]
        text = value if element["KeyType"] == "HASH" else "0"
        if kind == "N":
            raise ValueError(f"the demo writes string or binary keys; {table.name}'s key {name} is a number")
        key[name] = {kind: text if kind == "S" else text.encode()}
    return key


def run_workload(
    cloud: LocalCloud,
    table: TableSpec,
    *,
    keys: int,
    operations_per_region: int,
    seed: int,
    writer: Callable[[LocalCloud, str, str], Writer] = helper_writer,
    advance: Callable[[int], None] = lambda _n: None,
) -> WorkloadCounts:
    """Concurrent mixed writes from every region to shared keys of ``table``; returns what was done."""
    counts = WorkloadCounts()

    def region_worker(region: str) -> WorkloadCounts:
        rng = random.Random(f"{seed}-{region}-{table.name}")
        helper = writer(cloud, region, table.name)
        raw = cloud.client(region)
        mine = WorkloadCounts()
        unstamped: list[dict[str, Any]] = []
        for n in range(operations_per_region):
            key = key_of(table, f"demo-{rng.randrange(keys):04d}")
            tier = {"S": rng.choice(TIERS)}
            draw = rng.random()
            if draw < 0.5:
                item = {**key, "region": {"S": region}, "n": {"N": str(n)}, "body": {"S": "x" * 64}}
                helper.put_item({**item, "tier": tier})
                mine.puts += 1
            elif draw < 0.7:
                helper.update_item(
                    key,
                    "SET qty = :q, touched_by = :r, tier = :t",
                    expression_attribute_values={":q": {"N": str(n)}, ":r": {"S": region}, ":t": tier},
                )
                mine.updates += 1
            elif draw < 0.82:
                helper.delete_item(key)
                mine.deletes += 1
            elif draw < 0.95 or not unstamped:
                own = key_of(table, f"plain-{region}-{n:05d}")
                raw.put_item(TableName=table.name, Item={**own, "legacy": {"S": "unstamped"}, "tier": tier})
                unstamped.append(own)
                mine.unstamped_puts += 1
            else:
                raw.delete_item(TableName=table.name, Key=unstamped.pop(rng.randrange(len(unstamped))))
                mine.hard_deletes += 1
            advance(1)
        return mine

    with ThreadPoolExecutor(max_workers=len(cloud.region_names)) as pool:
        for result in pool.map(region_worker, cloud.region_names):
            counts.add(result)
    return counts


def index_differences(
    cloud: LocalCloud,
    table: TableSpec,
    snapshots: Mapping[str, Mapping[str, dict[str, Any]]],
    names: AttributeNames,
) -> list[str]:
    """Each region's global secondary indexes against its live items: an index lists exactly the live
    items that carry its partition key (a tombstone never; sparse otherwise)."""
    found = []
    for index in table.global_secondary_indexes:
        name = index["IndexName"]
        index_key = next(e["AttributeName"] for e in index["KeySchema"] if e["KeyType"] == "HASH")
        for region, items in snapshots.items():
            client = cloud.region(region).client("dynamodb")
            listed = 0
            for page in client.get_paginator("scan").paginate(
                TableName=table.name, IndexName=name, Select="COUNT"
            ):
                listed += int(page["Count"])
            expected = sum(
                1 for item in items.values() if index_key in item and not is_tombstone(item, names)
            )
            if listed != expected:
                found.append(
                    f"{table.name} index {name} in {region}: lists {listed} items, "
                    f"{expected} live items carry {index_key}"
                )
    return found


def snapshot(cloud: LocalCloud, table: str, names: AttributeNames) -> dict[str, dict[str, dict[str, Any]]]:
    snapshots = {}
    for region in cloud.region_names:
        client = cloud.region(region).client("dynamodb")
        key_names = [k["AttributeName"] for k in client.describe_table(TableName=table)["Table"]["KeySchema"]]
        items: dict[str, dict[str, Any]] = {}
        for page in client.get_paginator("scan").paginate(TableName=table):
            for item in page.get("Items", []):
                event_form = from_sdk(item)
                items[key_id({k: event_form[k] for k in key_names})] = event_form
        snapshots[region] = items
    return snapshots


def pair_table(rows: Sequence[dashboard.PairSummary]) -> Table:
    table = Table(title="Replication per region pair")
    for column in (
        "source → target",
        "records",
        "p50 ms",
        "p99 ms",
        "stale",
        "echo invocations",
        "tombstones",
        "handed off",
    ):
        table.add_column(column, justify="right" if column != "source → target" else "left")
    for row in rows:
        table.add_row(
            f"{row.source} → {row.target}",
            str(row.records),
            dashboard._fmt(row.p50_ms),
            dashboard._fmt(row.p99_ms),
            str(row.stale),
            str(row.echo_invocations),
            str(row.tombstones),
            str(row.handed_off),
        )
    return table


def run_demo(
    *,
    console: Console | None = None,
    keys: int = 40,
    operations_per_region: int = 150,
    latency_ms: float = 70.0,
    out_dir: Path = DEFAULT_OUT,
    seed: int = 42,
    assembly: Assembly | None = None,
    as_shipped: bool = False,
    drain_timeout: float = 90.0,
) -> DemoResult:
    """``operations_per_region`` writes per region, shared among the deployment's tables."""
    console = console or Console()
    seconds: dict[str, float] = {}
    started = time.monotonic()
    with console.status("Synthesizing the CDK app (cached after the first run)..."):
        if assembly is None:
            shipped = app_context()["replication"]
            assembly = load_assembly(synthesize(shipped if as_shipped else demo_replication(shipped)))
    seconds["synth"] = time.monotonic() - started
    stack = assembly.stacks[0]
    tables = stack.tables
    env = stack.functions[0].environment
    names = AttributeNames.with_prefix(
        str(env.get("REP_ATTRIBUTE_PREFIX", "rep_")), ttl=str(env.get("REP_TTL_ATTRIBUTE") or "") or None
    )
    described = ", ".join(
        table.name + "".join(f" (index {i['IndexName']})" for i in table.global_secondary_indexes)
        for table in tables
    )
    console.print(f"Tables: {described}")
    options = RuntimeOptions(
        latency_ms=latency_ms, max_visibility_timeout=2, log_dir=out_dir / "logs", seed=seed
    )
    cloud = LocalCloud(assembly, options)
    counts = WorkloadCounts()
    try:
        with console.status("Starting regions, functions and event source mappings...") as status:
            cloud.start(step=lambda message: status.update(message[:1].upper() + message[1:] + "..."))
        seconds["start"] = time.monotonic() - started - seconds["synth"]
        for region in cloud.region_names:
            console.print(f"  [bold]{region}[/bold]: {cloud.region(region).endpoint_url}")
        per_table = max(1, operations_per_region // len(tables))
        total = per_table * len(cloud.region_names) * len(tables)
        mark = time.monotonic()
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            task = progress.add_task("Mixed workload from every region", total=total)

            def workload(table: TableSpec) -> WorkloadCounts:
                return run_workload(
                    cloud,
                    table,
                    keys=keys,
                    operations_per_region=per_table,
                    seed=seed,
                    advance=lambda n: progress.advance(task, n),
                )

            with ThreadPoolExecutor(max_workers=len(tables)) as pool:
                for done in pool.map(workload, tables):
                    counts.add(done)
        seconds["workload"] = time.monotonic() - mark
        mark = time.monotonic()
        with console.status("Waiting until every replicator has drained..."):
            drained = cloud.wait_drained(drain_timeout)
        seconds["drain"] = time.monotonic() - mark
        if not drained:
            console.print(f"[red]Replication did not drain within {drain_timeout:.0f} s: {drained}[/red]")
        found: list[str] = []
        items: dict[str, dict[str, int]] = {}
        for table in tables:
            snapshots = snapshot(cloud, table.name, names)
            found += [f"{table.name}: {line}" for line in differences(snapshots, names)]
            found += index_differences(cloud, table, snapshots, names)
            items[table.name] = {
                region: sum(1 for item in held.values() if not is_tombstone(item, names))
                for region, held in snapshots.items()
            }
        if not drained and not found:
            found = ["replication did not drain"]
        rows = dashboard.summarize(cloud.metrics)
        with console.status("Rendering the dashboard..."):
            png = dashboard.render_png(
                cloud.metrics, out_dir / "dashboard.png", title="make demo: 3-region mesh"
            )
            page = dashboard.render_html(
                rows, png, out_dir / "dashboard.html", title="make demo: 3-region mesh"
            )
    finally:
        with console.status("Stopping regions..."):
            cloud.stop()
    seconds["total"] = time.monotonic() - started
    return DemoResult(
        regions=tuple(cloud.region_names),
        items=items,
        differences=found,
        rows=rows,
        counts=counts,
        seconds=seconds,
        png=png,
        html=page,
    )


def report(result: DemoResult, console: Console) -> int:
    counts = result.counts
    console.print(
        f"Workload: {counts.total} writes ({counts.puts} puts, {counts.updates} updates, "
        f"{counts.deletes} deletes through the helper; {counts.unstamped_puts} unstamped puts, "
        f"{counts.hard_deletes} hard deletes)"
    )
    console.print(pair_table(result.rows))
    console.print(
        f"Latency here is this machine's: its {os.cpu_count() or 1} cores run every region's engine and "
        f"the replicators of {len(result.items)} table(s) while the workload writes as fast as it can. "
        "`python -m ddbrep bench latency` measures it at a steady rate (BENCHMARKS.md)."
    )
    for table, held in result.items.items():
        console.print(f"Live items of {table} per region: " + ", ".join(f"{r} {n}" for r, n in held.items()))
    console.print(f"Dashboard: {result.png} and {result.html}")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    console.print(f"Time: {timing}")
    if result.identical:
        console.print("[bold green]All regions are identical (every table and index).[/bold green]")
        return 0
    console.print(f"[bold red]Regions diverge ({len(result.differences)} differences shown):[/bold red]")
    for line in result.differences:
        console.print(f"  {line}")
    return 1
