"""`python -m ddbrep bench latency`: end-to-end replication latency per region pair, against its floor.

Each region of the mesh writes fresh items through the client helper at a steady rate. The latency
is the replicator's own ReplicationLatency metric (target write done minus the writer's rep_ts), so
it covers the stream, the poll, batching, the invocation and the cross-region write. The floor is
what polling and the network alone cost on average: half the poll interval plus the injected
one-way latency; the deployed batching window comes on top of it when the stream is quiet.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from rich.console import Console
from rich.table import Table

from ddbrep.local import metric_store
from ddbrep.local.cloud import LocalCloud, RuntimeOptions
from ddbrep.local.synth import app_context, synthesize
from ddbrep.local.templates import load_assembly
from replicator.core import metrics_names as m


@dataclass(frozen=True)
class PairLatency:
    window_seconds: int
    source: str
    target: str
    samples: int
    p50_ms: float
    p99_ms: float
    floor_ms: float

    @property
    def p50_ratio(self) -> float:
        return self.p50_ms / self.floor_ms

    @property
    def p99_ratio(self) -> float:
        return self.p99_ms / self.floor_ms


@dataclass(frozen=True)
class LatencyRun:
    window_seconds: int
    filters: bool
    pairs: tuple[PairLatency, ...]
    replicated_writes: int
    echo_invocations: int
    invocations: int
    seconds: float

    @property
    def echo_invocations_per_1000(self) -> float:
        return 1000.0 * self.echo_invocations / self.replicated_writes if self.replicated_writes else 0.0


def _deployed_window() -> int:
    stream = app_context()["replication"].get("stream") or {}
    from stacks import defaults  # the CDK app's defaults: what is deployed when cdk.json sets nothing

    return int(stream.get("batching_window_seconds", defaults.BATCHING_WINDOW_SECONDS))


def _run_once(
    window: int,
    filters: bool,
    writes_per_region: int,
    rate: float,
    latency_ms: float,
    poll_interval: float,
    console: Console,
) -> LatencyRun:
    from ddbrep.client import ReplicatedTable

    replication = dict(app_context()["replication"])
    replication["stream"] = {**(replication.get("stream") or {}), "batching_window_seconds": window}
    with console.status(f"Synthesizing with a {window} s batching window..."):
        assembly = load_assembly(synthesize(replication))
    table_name = assembly.stacks[0].tables[0].name
    options = RuntimeOptions(
        latency_ms=latency_ms, poll_interval=poll_interval, max_visibility_timeout=2, apply_filters=filters
    )
    started = time.monotonic()
    with LocalCloud(assembly, options) as cloud:
        done = threading.Semaphore(0)

        def writer(region: str) -> None:
            helper = ReplicatedTable(cloud.client(region), table_name, region)
            next_at = time.monotonic()
            for n in range(writes_per_region):
                helper.put_item(
                    {"pk": {"S": f"bench-{region}-{n:06d}"}, "sk": {"S": "0"}, "n": {"N": str(n)}}
                )
                done.release()
                next_at += 1.0 / rate
                time.sleep(max(0.0, next_at - time.monotonic()))

        with ThreadPoolExecutor(max_workers=len(cloud.region_names)) as pool:
            list(pool.map(writer, cloud.region_names))
        cloud.wait_drained(120)
        floor = poll_interval * 1000 / 2 + latency_ms
        pairs = []
        for source, target in cloud.metrics.pairs():
            values = cloud.metrics.values(m.REPLICATION_LATENCY, SourceRegion=source, TargetRegion=target)
            pairs.append(
                PairLatency(
                    window,
                    source,
                    target,
                    len(values),
                    metric_store.percentile(values, 50),
                    metric_store.percentile(values, 99),
                    floor,
                )
            )
        return LatencyRun(
            window_seconds=window,
            filters=filters,
            pairs=tuple(pairs),
            replicated_writes=cloud.metrics.records_replicated(),
            echo_invocations=int(cloud.metrics.total(metric_store.ECHO_INVOCATIONS)),
            invocations=int(sum(p.stats.invocations for p in cloud.stream_pollers)),
            seconds=time.monotonic() - started,
        )


def run_latency_bench(
    *,
    writes_per_region: int = 100,
    rate_per_region: float = 10.0,
    latency_ms: float = 70.0,
    poll_interval: float = 0.25,
    windows: Sequence[int] | None = None,
    console: Console | None = None,
) -> list[LatencyRun]:
    console = console or Console()
    # As deployed, and the other side of the latency/invocations trade-off (0 s, or 1 s if 0 is deployed).
    default_windows = dict.fromkeys([_deployed_window(), 0 if _deployed_window() else 1])
    chosen = [(w, True) for w in (windows or default_windows)]
    if not windows:
        chosen.append((0, False))  # what the filters save: the same run with every record delivered
    return [
        _run_once(w, f, writes_per_region, rate_per_region, latency_ms, poll_interval, console)
        for w, f in chosen
    ]


def print_latency_report(runs: Sequence[LatencyRun], console: Console, as_json: bool = False) -> None:
    for run in runs:
        filters = "filters as deployed" if run.filters else "NO filters (every record delivered)"
        table = Table(title=f"Batching window {run.window_seconds} s, {filters}")
        for column in ("pair", "samples", "p50 ms", "p99 ms", "floor ms", "p50/floor", "p99/floor"):
            table.add_column(column, justify="left" if column == "pair" else "right")
        for pair in run.pairs:
            table.add_row(
                f"{pair.source} → {pair.target}",
                str(pair.samples),
                f"{pair.p50_ms:.0f}",
                f"{pair.p99_ms:.0f}",
                f"{pair.floor_ms:.0f}",
                f"{pair.p50_ratio:.1f}",
                f"{pair.p99_ratio:.1f}",
            )
        console.print(table)
        console.print(
            f"replicated writes {run.replicated_writes}, stream invocations {run.invocations}, "
            f"echo invocations {run.echo_invocations} "
            f"({run.echo_invocations_per_1000:.1f} per 1000 replicated writes), "
            f"{run.seconds:.0f} s"
        )
    if as_json:
        document: list[dict[str, Any]] = [
            {**asdict(run), "echo_invocations_per_1000": run.echo_invocations_per_1000} for run in runs
        ]
        console.print_json(json.dumps(document))
