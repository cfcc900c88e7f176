"""`python -m ddbrep bench cost`: what one source write costs the product, measured on the local runtime.

Each scenario synthesizes the app for its topology, starts a LocalCloud (one moto server per region, the
unmodified functions in sandboxes, the stream stand-ins) and writes through the client helper:
- low traffic: one write per region at a time, slower than the stream is polled (one record per
  invocation);
- high traffic: a burst with a batching window, so that invocations carry full batches.
Recorded per source write: replicator invocations, log bytes (the captured function logs), handler
duration, target writes applied and stale, adoption writes, coalesced records, bytes over the
inter-region links. ``--write`` stores the figures in ddbrep/bench/cost_figures.json, which
``ddbrep cost`` reads. Durations include the injected cross-region latency (``--latency-ms``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ddbrep  # noqa: F401  (puts lambda/ on the import path)
from replicator.core import metrics_names as m
from replicator.core.wire import item_size_bytes

FIGURES_PATH = Path(__file__).with_name("cost_figures.json")
REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")
TABLE = {
    "name": "orders",
    "partition_key": {"name": "pk", "type": "S"},
    "sort_key": {"name": "sk", "type": "S"},
}
FILTER = {"tier": {"S": ["gold"]}}


@dataclass(frozen=True)
class Scenario:
    name: str
    regions: tuple[str, ...]
    topology: str = "mesh"
    batching_window_seconds: int = 0
    writes_per_region: int = 20
    interval_seconds: float = 0.6  # between two writes of one region; 0: a burst
    hot_share: float = 0.0  # share of writes to two keys every region writes
    unstamped_share: float = 0.0  # share written without the helper (adopted by the replicator)
    filter_pass_share: float | None = None  # None: no item filter; else share of items it lets through
    item_bytes: int = 500

    @property
    def sources(self) -> tuple[str, ...]:
        return self.regions if self.topology == "mesh" else self.regions[:1]

    @property
    def targets_per_source(self) -> int:
        return len(self.regions) - 1


@dataclass
class Measurement:
    scenario: Scenario
    source_writes: int
    invocations: int
    records_delivered: int
    log_bytes: int
    emf_documents: int
    log_lines_not_emf: int
    durations_ms: list[float] = field(repr=False)
    counts: dict[str, float]
    link_requests: int
    link_bytes: int
    metadata_bytes: int
    peak_rss_kb: int
    metric_streams: int
    seconds: float
    system_log_level: str = "INFO"  # the replicator's LoggingConfig, as the local runtime applied it

    def per_write(self, value: float) -> float:
        return value / self.source_writes if self.source_writes else 0.0

    def summary(self) -> dict[str, Any]:
        s = self.scenario
        target_writes = self.counts[m.RECORDS_REPLICATED] + self.counts[m.STALE_SKIPPED]
        return {
            "scenario": s.name,
            "regions": len(s.regions),
            "topology": s.topology,
            "targets_per_source": s.targets_per_source,
            "batching_window_seconds": s.batching_window_seconds,
            "item_bytes": s.item_bytes,
            "hot_share": s.hot_share,
            "unstamped_share": s.unstamped_share,
            "filter_pass_share": s.filter_pass_share,
            "source_writes": self.source_writes,
            "invocations_per_write": self.per_write(self.invocations),
            "records_per_invocation": self.records_delivered / self.invocations if self.invocations else 0.0,
            "log_bytes_per_invocation": self.log_bytes / self.invocations if self.invocations else 0.0,
            "emf_documents_per_invocation": self.emf_documents / self.invocations
            if self.invocations
            else 0.0,
            "non_emf_log_lines_per_invocation": (
                self.log_lines_not_emf / self.invocations if self.invocations else 0.0
            ),
            "duration_ms_per_invocation": statistics.fmean(self.durations_ms) if self.durations_ms else 0.0,
            "duration_ms_p50": statistics.median(self.durations_ms) if self.durations_ms else 0.0,
            "target_writes_per_write": self.per_write(target_writes),
            "applied_per_write": self.per_write(self.counts[m.RECORDS_REPLICATED]),
            "stale_per_write": self.per_write(self.counts[m.STALE_SKIPPED]),
            "coalesced_per_write": self.per_write(self.counts[m.RECORDS_COALESCED]),
            "adoptions_per_write": self.per_write(self.counts[m.RECORDS_ADOPTED]),
            "filtered_out_per_write": self.per_write(self.counts[m.FILTERED_OUT]),
            "handed_off_per_write": self.per_write(self.counts[m.HANDED_OFF]),
            "dead_lettered_per_write": self.per_write(self.counts[m.DEAD_LETTERED]),
            "transfer_bytes_per_target_write": self.link_bytes / target_writes if target_writes else 0.0,
            "cross_region_requests_per_target_write": self.link_requests / target_writes
            if target_writes
            else 0.0,
            "metadata_bytes": self.metadata_bytes,
            "peak_rss_mb": round(self.peak_rss_kb / 1024, 1),
            "metric_streams": self.metric_streams,
            "system_log_level": self.system_log_level,
            "seconds": round(self.seconds, 1),
        }


def default_scenarios(quick: bool = False) -> list[Scenario]:
    two, three = REGIONS[:2], REGIONS
    burst = {"batching_window_seconds": 3, "writes_per_region": 200, "interval_seconds": 0.0}
    scenarios = [
        Scenario("mesh-2 low", two),
        Scenario("mesh-3 low", three),
        Scenario("mesh-2 high", two, **burst),  # type: ignore[arg-type]
        Scenario("mesh-3 high", three, **burst),  # type: ignore[arg-type]
    ]
    if not quick:
        scenarios += [
            Scenario("one-way-3 high", three, topology="one-way", **burst),  # type: ignore[arg-type]
            Scenario("mesh-3 high, partial 10 %", three, filter_pass_share=0.1, **burst),  # type: ignore[arg-type]
            Scenario("mesh-3 high, hot keys 50 %", three, hot_share=0.5, **burst),  # type: ignore[arg-type]
            Scenario("mesh-3 low, unstamped 50 %", three, unstamped_share=0.5),
        ]
    return scenarios


def replication_block(scenario: Scenario) -> dict[str, Any]:
    block: dict[str, Any] = {
        "account": "111111111111",
        "topology": scenario.topology,
        "table": TABLE,
        "stream": {"batching_window_seconds": scenario.batching_window_seconds},
    }
    if scenario.topology == "mesh":
        block["regions"] = list(scenario.regions)
    else:
        block["source"], block["replicas"] = scenario.regions[0], list(scenario.regions[1:])
    if scenario.filter_pass_share is not None:
        block["pairs"] = {
            f"{s}->{t}": {"item_filter": FILTER} for s in scenario.sources for t in scenario.regions if s != t
        }
    return block


def _chosen(n: int, share: float) -> bool:
    """Deterministic: exactly ``share`` of the first writes, spread evenly."""
    return int((n + 1) * share) > int(n * share)


def _item(region: str, n: int, scenario: Scenario) -> dict[str, Any]:
    hot = _chosen(n, scenario.hot_share)
    key = f"hot-{n % 2}" if hot else f"{region}-{n:06d}"
    tier = (
        "gold" if scenario.filter_pass_share is not None and _chosen(n, scenario.filter_pass_share) else "std"
    )
    item = {"pk": {"S": key}, "sk": {"S": "0"}, "tier": {"S": tier}, "n": {"N": str(n)}}
    pad = max(0, scenario.item_bytes - item_size_bytes(item) - len("data"))
    item["data"] = {"S": "x" * pad}
    return item


def _peak_rss_kb(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return 0
    return 0


def run_scenario(scenario: Scenario, latency_ms: float, poll_interval: float) -> Measurement:
    from ddbrep.client import ConflictLost, FutureVersion, ReplicatedTable
    from ddbrep.local.cloud import LocalCloud, RuntimeOptions
    from ddbrep.local.synth import synthesize
    from ddbrep.local.templates import load_assembly

    assembly = load_assembly(synthesize(replication_block(scenario)))
    table_name = assembly.stacks[0].tables[0].name
    invocations: list[tuple[int, float, tuple[str, ...]]] = []
    lock = threading.Lock()

    class MeteredCloud(LocalCloud):
        def on_batch(self, poller: Any, batch: Sequence[Any], invocation: Any) -> None:
            super().on_batch(poller, batch, invocation)
            with lock:
                invocations.append((len(batch), invocation.duration_ms, tuple(invocation.output)))

    with tempfile.TemporaryDirectory(prefix="bench-cost-") as log_dir:
        options = RuntimeOptions(
            latency_ms=latency_ms,
            poll_interval=poll_interval,
            max_visibility_timeout=2,
            log_dir=Path(log_dir),
        )
        started = time.monotonic()
        with MeteredCloud(assembly, options) as cloud:
            written = {region: 0 for region in scenario.sources}

            def writer(region: str) -> None:
                client = cloud.client(region)
                helper = ReplicatedTable(client, table_name, region)
                for n in range(scenario.writes_per_region):
                    item = _item(region, n, scenario)
                    try:
                        if _chosen(n, scenario.unstamped_share):
                            client.put_item(TableName=table_name, Item=item)
                        else:
                            helper.put_item(item)
                        written[region] += 1
                    except (ConflictLost, FutureVersion):
                        pass  # a hot key already holds a newer version: not a source write
                    if scenario.interval_seconds:
                        time.sleep(scenario.interval_seconds)

            with ThreadPoolExecutor(max_workers=len(scenario.sources)) as pool:
                list(pool.map(writer, scenario.sources))
            cloud.wait_drained(120)
            counts = {
                name: cloud.metrics.total(name)
                for name in (
                    m.STALE_SKIPPED,
                    m.RECORDS_COALESCED,
                    m.RECORDS_ADOPTED,
                    m.FILTERED_OUT,
                    m.HANDED_OFF,
                    m.DEAD_LETTERED,
                    m.RECORDS_RECEIVED,
                )
            }
            counts[m.RECORDS_REPLICATED] = float(cloud.metrics.records_replicated())
            links = [link for (s, t), link in cloud.faults.links.items() if s != t]
            replicators = [f for f in cloud.functions.values() if "replicator" in f.spec.name]
            peak = max((_peak_rss_kb(f.worker.pid) for f in replicators), default=0)
            log_levels = {f.worker.config.system_log_level for f in replicators}
            target = scenario.regions[1]
            stored = cloud.client(target).get_item(
                TableName=table_name, Key={"pk": {"S": f"{scenario.regions[0]}-000001"}, "sk": {"S": "0"}}
            )
            original = _item(scenario.regions[0], 1, scenario)
            metadata = item_size_bytes(stored["Item"]) - item_size_bytes(original) if "Item" in stored else 0
            streams = {
                (s.name, s.dimensions)
                for s in cloud.metrics.samples
                if s.dimension(m.SOURCE_REGION) is not None and s.name not in ("IteratorAge", "Invocations")
            }
            seconds = time.monotonic() - started
        log_bytes = sum(
            p.stat().st_size for p in (Path(log_dir) / "functions").glob("*.log") if "replicator" in p.name
        )
    lines = [line for _, _, output in invocations for line in output]
    emf_lines = sum(1 for line in lines if line.lstrip().startswith("{") and '"_aws"' in line)
    return Measurement(
        scenario=scenario,
        source_writes=sum(written.values()),
        invocations=len(invocations),
        records_delivered=sum(n for n, _, _ in invocations),
        log_bytes=log_bytes,
        emf_documents=emf_lines,
        log_lines_not_emf=len(lines) - emf_lines,
        durations_ms=[d for _, d, _ in invocations],
        counts=counts,
        link_requests=sum(link.requests for link in links),
        link_bytes=sum(link.bytes_sent + link.bytes_received for link in links),
        metadata_bytes=metadata,
        peak_rss_kb=peak,
        metric_streams=len(streams),
        seconds=seconds,
        system_log_level="/".join(sorted(log_levels)),
    )


# --------------------------------------------------------------------------------- figures for `cost`


def _fit(points: Mapping[int, float]) -> dict[str, float]:
    """value = base + per_target x targets through the measured points (2 and 3 regions)."""
    (t1, v1), (t2, v2) = sorted(points.items())[:2]
    per_target = (v2 - v1) / (t2 - t1)
    return {"base": v1 - per_target * t1, "per_target": per_target}


def figures(measurements: Sequence[Measurement], latency_ms: float) -> dict[str, Any]:
    """The product-dependent inputs of the cost model, from the scenarios' summaries."""
    by_name = {x.scenario.name: x.summary() for x in measurements}
    levels = {}
    for level in ("low", "high"):
        mesh = {
            by_name[f"mesh-{n} {level}"]["targets_per_source"]: by_name[f"mesh-{n} {level}"] for n in (2, 3)
        }
        levels[level] = {
            "records_per_invocation": mesh[2]["records_per_invocation"],
            "log_bytes_per_invocation": _fit({t: s["log_bytes_per_invocation"] for t, s in mesh.items()}),
            "duration_ms_per_invocation": _fit({t: s["duration_ms_per_invocation"] for t, s in mesh.items()}),
            "emf_documents_per_invocation": _fit(
                {t: s["emf_documents_per_invocation"] for t, s in mesh.items()}
            ),
        }
    three = by_name["mesh-3 high"]
    document: dict[str, Any] = {
        "generated_by": "python -m ddbrep bench cost --write",
        "date": time.strftime("%Y-%m-%d"),
        "injected_cross_region_latency_ms": latency_ms,
        # the platform lines Lambda adds to the measured log bytes depend on it (ddbrep/tools/cost.py)
        "system_log_level": three["system_log_level"],
        "levels": levels,
        "metadata_bytes": three["metadata_bytes"],
        # request + response around the stamped item (its own bytes and the metadata are added by `cost`)
        "transfer_overhead_bytes_per_target_write": (
            three["transfer_bytes_per_target_write"] - three["item_bytes"] - three["metadata_bytes"]
        ),
        "peak_rss_mb": max(s["peak_rss_mb"] for s in by_name.values()),
        "scenarios": list(by_name.values()),
    }
    hot = by_name.get("mesh-3 high, hot keys 50 %")
    if hot:
        targets = hot["targets_per_source"]
        document["hot_keys"] = {
            "measured_at_share": hot["hot_share"],
            "stale_per_target_write_per_hot_share": (
                hot["stale_per_write"] / max(hot["target_writes_per_write"], 1e-9) / hot["hot_share"]
            ),
            "coalesced_per_write_per_hot_share": hot["coalesced_per_write"] / hot["hot_share"],
            "targets": targets,
        }
    unstamped = by_name.get("mesh-3 low, unstamped 50 %")
    if unstamped:
        share = unstamped["unstamped_share"]
        base = by_name["mesh-3 low"]["invocations_per_write"]
        document["unstamped"] = {
            "adoptions_per_unstamped_write": unstamped["adoptions_per_write"] / share,
            "extra_invocations_per_unstamped_write": (unstamped["invocations_per_write"] - base) / share,
        }
    partial = by_name.get("mesh-3 high, partial 10 %")
    if partial:
        share = partial["filter_pass_share"]
        full = three["transfer_bytes_per_target_write"]
        document["partial"] = {
            "measured_at_pass_share": share,
            "transfer_bytes_per_target_write": partial["transfer_bytes_per_target_write"],
            # what a write the filter turned into a tombstone sends, from the mix and the full writes
            "tombstone_transfer_bytes": (partial["transfer_bytes_per_target_write"] - share * full)
            / (1 - share),
        }
    return document


# ------------------------------------------------------------------------------------------ command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--latency-ms", type=float, default=70.0, help="added to every cross-region request")
    parser.add_argument(
        "--poll-interval", type=float, default=0.25, help="stream poll interval (Lambda: ~4/s)"
    )
    parser.add_argument("--quick", action="store_true", help="only the four mesh scenarios (2, 3 regions)")
    parser.add_argument("--only", action="append", default=[], help="run only scenarios whose name has this")
    parser.add_argument("--write", action="store_true", help=f"store the figures in {FIGURES_PATH.name}")
    parser.add_argument("--out", type=Path, default=None, help="store the figures here instead")
    parser.add_argument("--json", action="store_true", help="print the summaries as JSON")


def register_bench(bench_subparsers: Any) -> None:
    """``python -m ddbrep bench cost``."""
    parser = bench_subparsers.add_parser(
        "cost",
        help="per source write: invocations, log bytes, duration, target/stale/adoption writes, bytes sent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def _one_line(s: Mapping[str, Any]) -> str:
    return (
        f"{s['scenario']:28s} writes {s['source_writes']:4d}  inv/write {s['invocations_per_write']:.3f}  "
        f"rec/inv {s['records_per_invocation']:5.1f}  log B/inv {s['log_bytes_per_invocation']:7.0f}  "
        f"EMF docs/inv {s['emf_documents_per_invocation']:.2f}  "
        f"dur ms/inv {s['duration_ms_per_invocation']:6.1f}  "
        f"target writes/write {s['target_writes_per_write']:.2f} (stale {s['stale_per_write']:.2f})  "
        f"adopt/write {s['adoptions_per_write']:.2f}  "
        f"xfer B/target write {s['transfer_bytes_per_target_write']:.0f}  ({s['seconds']:.0f} s)"
    )


# --- the cost table (BENCHMARKS.md): USD per million source writes, against global tables ------------

COST_REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2", "us-west-2", "eu-central-1")
TRAFFIC = {"low": (1.0, 0), "high": (1000.0, 1)}  # writes/s per source region, batching window (s)


def table_deployment(regions: int, window: int, *, one_way: bool = False, partial: bool = False) -> Any:
    """A deployment of the table's rows with the app's defaults (batch size, memory, architecture)."""
    from ddbrep.tools.cost import Deployment, Source
    from stacks import defaults

    names = COST_REGIONS[:regions]
    sources = names[:1] if one_way else names
    return Deployment(
        regions=names,
        sources=tuple(
            Source(
                region=source,
                targets=(targets := tuple(r for r in names if r != source)),
                filtered_targets=targets if partial else (),
                batch_size=defaults.BATCH_SIZE,
                batching_window_seconds=window,
            )
            for source in sources
        ),
        memory_mb=defaults.FUNCTION_MEMORY_MB,
        architecture=defaults.FUNCTION_ARCHITECTURE,
    )


def cost_table(
    figures: Any, prices: Any, *, hot_keys: bool = True, partial: bool = True
) -> list[dict[str, Any]]:
    """One row per traffic level and deployment: global tables' and the product's USD per million
    source writes, priced by ``ddbrep cost``'s model (ddbrep/tools/cost.py) from measured ``figures``.
    ``hot_keys`` / ``partial``: False leaves out the rows whose scenario was not measured."""
    from ddbrep.tools.cost import Workload, estimate

    rows = []
    for traffic, (rate, window) in TRAFFIC.items():
        cases: list[tuple[str, Any, Workload]] = [
            (f"mesh {n}", table_deployment(n, window), Workload(rate)) for n in (2, 3, 5)
        ]
        cases.append(("one-way 1 -> 2", table_deployment(3, window, one_way=True), Workload(rate)))
        if partial:
            cases.append(
                (
                    "mesh 3, partial 10 %",
                    table_deployment(3, window, partial=True),
                    Workload(rate, filter_pass_share=0.1),
                )
            )
        if hot_keys:
            cases.append(
                ("mesh 3, hot keys 50 %", table_deployment(3, window), Workload(rate, hot_share=0.5))
            )
        for name, deployment, workload in cases:
            est = estimate(deployment, workload, figures, prices)
            rows.append(
                {
                    "traffic": traffic,
                    "deployment": name,
                    "global_tables_usd_per_million": est.per_million(est.global_tables_usd),
                    "product_usd_per_million": est.per_million(est.product_usd),
                    "ratio": est.ratio,
                }
            )
    return rows


def format_cost_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{'traffic':<8} {'deployment':<24} {'global tables':>14} {'ddb-replicator':>15} {'ratio':>6}"]
    lines += [
        f"{r['traffic']:<8} {r['deployment']:<24} {r['global_tables_usd_per_million']:>14.3f} "
        f"{r['product_usd_per_million']:>15.3f} {r['ratio']:>6.2f}"
        for r in rows
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    scenarios = [
        s for s in default_scenarios(args.quick) if not args.only or any(o in s.name for o in args.only)
    ]
    measurements = []
    for scenario in scenarios:
        measurement = run_scenario(scenario, args.latency_ms, args.poll_interval)
        measurements.append(measurement)
        summary = measurement.summary()
        if not args.json:
            print(_one_line(summary), flush=True)
    if args.json:
        print(json.dumps([x.summary() for x in measurements], indent=2))
    measured = {x.scenario.name for x in measurements}
    # the figures need the 2- and 3-region mesh scenarios at both levels (--only may leave some out)
    document = (
        figures(measurements, args.latency_ms)
        if {f"mesh-{n} {level}" for n in (2, 3) for level in TRAFFIC} <= measured
        else None
    )
    if document is not None:
        from ddbrep.tools.cost import Figures
        from ddbrep.tools.prices import DEFAULT_PRICES

        rows = cost_table(
            Figures.from_document(document),
            DEFAULT_PRICES,
            hot_keys="hot_keys" in document,
            partial="partial" in document,
        )
        print(
            "USD per million source writes, from these figures and the list prices (ddbrep/tools/prices.py):"
        )
        print(format_cost_table(rows), flush=True)
    if args.write or args.out:
        document = document or figures(measurements, args.latency_ms)
        path = args.out or FIGURES_PATH
        path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
        print(f"figures written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["FIGURES_PATH", "Measurement", "Scenario", "asdict", "figures", "register_bench", "run"]
