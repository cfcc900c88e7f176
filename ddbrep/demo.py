"""`make demo`: synthesize, start a three-region mesh locally, run a mixed workload, verify, report.

The workload goes through the client helper (ddbrep.client.ReplicatedTable) from one thread per
region at once: conflicting puts, updates and deletes of shared keys, plus writes by applications
that do not stamp (plain PutItem of new keys, plain DeleteItem). When every replicator has drained,
the regions must hold identical live items; the command exits 1 if any region diverges.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
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
from ddbrep.local.synth import synthesize
from ddbrep.local.templates import Assembly, load_assembly
from replicator.core.compare import differences
from replicator.core.metadata import AttributeNames
from replicator.core.records import key_id
from replicator.core.wire import from_sdk

DEFAULT_OUT = Path("out")


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


@dataclass
class DemoResult:
    regions: tuple[str, ...]
    items: dict[str, int]
    differences: list[str]
    rows: list[dashboard.PairSummary]
    counts: WorkloadCounts
    seconds: dict[str, float] = field(default_factory=dict)
    png: Path | None = None
    html: Path | None = None

    @property
    def identical(self) -> bool:
        return not self.differences


def run_workload(
    cloud: LocalCloud,
    table: str,
    *,
    keys: int,
    operations_per_region: int,
    seed: int,
    writer: Callable[[LocalCloud, str, str], Writer] = helper_writer,
    advance: Callable[[int], None] = lambda _n: None,
) -> WorkloadCounts:
    """Concurrent mixed writes from every region to shared keys; returns what was done."""
    counts = WorkloadCounts()

    def region_worker(region: str) -> WorkloadCounts:
        rng = random.Random(f"{seed}-{region}")
        helper = writer(cloud, region, table)
        raw = cloud.client(region)
        mine = WorkloadCounts()
        unstamped: list[dict[str, Any]] = []
        for n in range(operations_per_region):
            key = {"pk": {"S": f"demo-{rng.randrange(keys):04d}"}, "sk": {"S": "0"}}
            draw = rng.random()
            if draw < 0.5:
                helper.put_item({**key, "region": {"S": region}, "n": {"N": str(n)}, "body": {"S": "x" * 64}})
                mine.puts += 1
            elif draw < 0.7:
                helper.update_item(
                    key,
                    "SET qty = :q, touched_by = :r",
                    expression_attribute_values={":q": {"N": str(n)}, ":r": {"S": region}},
                )
                mine.updates += 1
            elif draw < 0.82:
                helper.delete_item(key)
                mine.deletes += 1
            elif draw < 0.95 or not unstamped:
                own = {"pk": {"S": f"plain-{region}-{n:05d}"}, "sk": {"S": "0"}}
                raw.put_item(TableName=table, Item={**own, "legacy": {"S": "unstamped"}})
                unstamped.append(own)
                mine.unstamped_puts += 1
            else:
                raw.delete_item(TableName=table, Key=unstamped.pop(rng.randrange(len(unstamped))))
                mine.hard_deletes += 1
            advance(1)
        return mine

    with ThreadPoolExecutor(max_workers=len(cloud.region_names)) as pool:
        for result in pool.map(region_worker, cloud.region_names):
            for name in ("puts", "updates", "deletes", "unstamped_puts", "hard_deletes"):
                setattr(counts, name, getattr(counts, name) + getattr(result, name))
    return counts


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
    drain_timeout: float = 90.0,
) -> DemoResult:
    console = console or Console()
    seconds: dict[str, float] = {}
    started = time.monotonic()
    with console.status("Synthesizing the CDK app (cached after the first run)..."):
        assembly = assembly or load_assembly(synthesize())
    seconds["synth"] = time.monotonic() - started
    stack = assembly.stacks[0]
    table_name = stack.tables[0].name
    env = stack.functions[0].environment
    names = AttributeNames.with_prefix(
        str(env.get("REP_ATTRIBUTE_PREFIX", "rep_")), ttl=str(env.get("REP_TTL_ATTRIBUTE") or "") or None
    )
    options = RuntimeOptions(
        latency_ms=latency_ms, max_visibility_timeout=2, log_dir=out_dir / "logs", seed=seed
    )
    cloud = LocalCloud(assembly, options)
    try:
        with console.status("Starting regions, functions and event source mappings...") as status:
            cloud.start(step=lambda message: status.update(message[:1].upper() + message[1:] + "..."))
        seconds["start"] = time.monotonic() - started - seconds["synth"]
        for region in cloud.region_names:
            console.print(f"  [bold]{region}[/bold]: {cloud.region(region).endpoint_url}")
        total = operations_per_region * len(cloud.region_names)
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
            counts = run_workload(
                cloud,
                table_name,
                keys=keys,
                operations_per_region=operations_per_region,
                seed=seed,
                advance=lambda n: progress.advance(task, n),
            )
        seconds["workload"] = time.monotonic() - mark
        mark = time.monotonic()
        with console.status("Waiting until every replicator has drained..."):
            drained = cloud.wait_drained(drain_timeout)
        seconds["drain"] = time.monotonic() - mark
        if not drained:
            console.print(f"[red]Replication did not drain within {drain_timeout:.0f} s[/red]")
        snapshots = snapshot(cloud, table_name, names)
        found = differences(snapshots, names)
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
        regions=tuple(snapshots),
        items={region: len(items) for region, items in snapshots.items()},
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
    console.print("Live items per region: " + ", ".join(f"{r} {n}" for r, n in result.items.items()))
    console.print(f"Dashboard: {result.png} and {result.html}")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    console.print(f"Time: {timing}")
    if result.identical:
        console.print("[bold green]All regions are identical.[/bold green]")
        return 0
    console.print(f"[bold red]Regions diverge ({len(result.differences)} differences shown):[/bold red]")
    for line in result.differences:
        console.print(f"  {line}")
    return 1
