"""The replication dashboard, locally: the same graphs as the CloudWatch dashboard, as a PNG and HTML.

Panels (per region pair unless said): replication latency p50 and p99 over time, records replicated,
stale writes skipped, writes handed off, dead-lettered records, and the stream mapping's iterator
age (per function, max).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ddbrep.local import metric_store as emf
from replicator.core import metrics_names as m


@dataclass(frozen=True)
class PairSummary:
    source: str
    target: str
    records: int
    p50_ms: float
    p99_ms: float
    stale: int
    handed_off: int
    dead_lettered: int
    tombstones: int
    echo_invocations: int


def summarize(store: emf.MetricsStore, pairs: Sequence[tuple[str, str]] | None = None) -> list[PairSummary]:
    rows = []
    for source, target in pairs or store.pairs():
        dims = {m.SOURCE_REGION: source, m.TARGET_REGION: target}
        latencies = store.values(m.REPLICATION_LATENCY, **dims)
        rows.append(
            PairSummary(
                source=source,
                target=target,
                records=store.applied(**dims),  # replicator and drain: ReplicationLatency's SampleCount
                p50_ms=emf.percentile(latencies, 50),
                p99_ms=emf.percentile(latencies, 99),
                stale=int(store.total(m.STALE_SKIPPED, **dims)),
                handed_off=int(store.total(m.HANDED_OFF, **dims)),
                dead_lettered=int(store.total(m.DEAD_LETTERED, **dims)),
                tombstones=int(store.total(m.TOMBSTONES_WRITTEN, **dims)),
                echo_invocations=int(store.total(emf.ECHO_INVOCATIONS, Region=source)),
            )
        )
    return rows


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def render_png(store: emf.MetricsStore, path: Path, bucket_seconds: float = 2.0, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = store.pairs()
    fig, axes = plt.subplots(3, 2, figsize=(14, 11), constrained_layout=True)
    fig.suptitle(title or "DynamoDB replication (local run)")
    start = min((s.at for s in store.samples), default=0.0) // bucket_seconds * bucket_seconds

    def plot(ax: object, name: str, statistic: str, label_for: str, **dims: str) -> None:
        xs, ys = store.series(name, bucket_seconds, statistic, **dims)
        if xs:
            ax.plot([x - start for x in xs], ys, marker=".", label=label_for)  # type: ignore[attr-defined]

    panels = [
        (axes[0][0], "Replication latency p50 / p99 (ms)"),
        (axes[0][1], f"Records replicated per {bucket_seconds:g} s"),
        (axes[1][0], "Stale writes skipped"),
        (axes[1][1], "Handed off / dead-lettered"),
        (axes[2][0], "Iterator age, max (ms)"),
        (axes[2][1], "Invocations (all functions)"),
    ]
    for source, target in pairs:
        dims = {m.SOURCE_REGION: source, m.TARGET_REGION: target}
        pair = f"{source}→{target}"
        plot(axes[0][0], m.REPLICATION_LATENCY, "p50", f"{pair} p50", **dims)
        plot(axes[0][0], m.REPLICATION_LATENCY, "p99", f"{pair} p99", **dims)
        plot(axes[0][1], m.REPLICATION_LATENCY, "count", pair, **dims)  # one value per applied write
        plot(axes[1][0], m.STALE_SKIPPED, "sum", pair, **dims)
        plot(axes[1][1], m.HANDED_OFF, "sum", f"{pair} handed off", **dims)
        plot(axes[1][1], m.DEAD_LETTERED, "sum", f"{pair} dead-lettered", **dims)
    functions = sorted({s.dimension(emf.FUNCTION_NAME) or "" for s in store.select(emf.ITERATOR_AGE)})
    regions = sorted({s.dimension("Region") or "" for s in store.select(emf.ITERATOR_AGE)})
    for region in regions:
        for function in functions:
            plot(
                axes[2][0],
                emf.ITERATOR_AGE,
                "max",
                f"{region} {function}",
                Region=region,
                FunctionName=function,
            )
        plot(axes[2][1], emf.INVOCATIONS, "sum", region, Region=region)
    for ax, label in panels:
        ax.set_title(label)
        ax.set_xlabel("seconds since start")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def render_html(rows: Sequence[PairSummary], png: Path, path: Path, title: str = "") -> Path:
    image = base64.b64encode(png.read_bytes()).decode()
    header = "".join(
        f"<th>{h}</th>"
        for h in (
            "source",
            "target",
            "records",
            "p50 ms",
            "p99 ms",
            "stale",
            "handed off",
            "dead-lettered",
            "tombstones",
            "echo invocations",
        )
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(v))}</td>"
            for v in (
                r.source,
                r.target,
                r.records,
                _fmt(r.p50_ms),
                _fmt(r.p99_ms),
                r.stale,
                r.handed_off,
                r.dead_lettered,
                r.tombstones,
                r.echo_invocations,
            )
        )
        + "</tr>"
        for r in rows
    )
    heading = html.escape(title or "DynamoDB replication (local run)")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{heading}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head>
<body><h1>{heading}</h1><table><tr>{header}</tr>{body}</table>
<p><img alt="dashboard" src="data:image/png;base64,{image}" style="max-width:100%"></p></body></html>
"""
    path.write_text(page)
    return path
