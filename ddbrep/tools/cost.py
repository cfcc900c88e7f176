"""`ddbrep cost`: the monthly cost of a deployment for a stated workload, line by line, next to global tables.

The deployment comes from cdk.json (topology, regions, pairs and their item filters, batching window,
batch size, function memory; the architecture is the app's default unless ``--architecture``). The
workload is what the user states: writes per second per source region, item size, and the shares of
writes to hot keys, of unstamped writes and of items a partial filter lets through. What the product
itself does per write (invocations, log bytes, duration, stale and adoption writes, bytes sent) is not
guessed: it is read from the figures ``bench cost`` measured (ddbrep/bench/cost_figures.json).

``estimate`` is pure (no files, no clock); ``run`` reads the inputs and prints.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ddbrep.tools.prices import Prices
from replicator.core import metrics_names as m
from replicator.emf import MAX_VALUES_PER_METRIC

REPO_ROOT = Path(__file__).resolve().parents[2]
FIGURES_PATH = REPO_ROOT / "ddbrep" / "bench" / "cost_figures.json"
SECONDS_PER_MONTH = 730 * 3600  # AWS prices a month as 730 hours
GIB = 1024**3
WRITE_UNIT_BYTES = 1024
# Lambda polls a DynamoDB stream shard about four times a second: with no batching window, records that
# arrive within one poll interval share an invocation.
STREAM_POLL_SECONDS = 0.25
# Lambda's own START, END and REPORT lines per invocation in its text log format, at the default system
# log level INFO: about this many bytes (request id, durations, memory), estimated from the format. Only
# figures measured before the functions set the system log level WARN (stacks/runtime.py) add them:
# "By default, Lambda sets the system log level to INFO. With this setting, Lambda automatically sends
# "start" and "report" log messages to CloudWatch", and at WARN it sends only the platform's warnings
# (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html). With WARN the
# measured log bytes are the whole of it: the local runtime drops the platform lines as Lambda does.
TEXT_PLATFORM_LOG_BYTES = 260
# A handoff queue is long-polled by its SQS event source mapping while idle. Assumed: 5 receives of
# 20 s in flight per queue (Lambda's initial SQS pollers); not measured locally.
IDLE_RECEIVES_PER_QUEUE_MONTH = 5 * SECONDS_PER_MONTH / 20


class CostInputError(ValueError):
    """A workload share out of range, a missing figures file, an unknown architecture."""


# --------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Workload:
    """What the user states about the traffic (the same for every source region)."""

    writes_per_second: float  # per source region
    item_bytes: int = 500
    hot_share: float = 0.0  # share of writes that update a key other regions update at the same time
    unstamped_share: float = 0.0  # share written without the client helper (adopted by the replicator)
    filter_pass_share: float = 1.0  # share of items a target's partial filter lets through

    def check(self) -> None:
        if self.writes_per_second <= 0:
            raise CostInputError(f"writes per second = {self.writes_per_second}: must be more than 0")
        if self.item_bytes < 1 or self.item_bytes > 400 * 1024:
            raise CostInputError(f"item size = {self.item_bytes} bytes: DynamoDB items are 1 byte to 400 KB")
        for name in ("hot_share", "unstamped_share", "filter_pass_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise CostInputError(f"{name} = {value}: a share is from 0 to 1 (0.1 for 10 %)")


@dataclass(frozen=True)
class Source:
    region: str
    targets: tuple[str, ...]
    filtered_targets: tuple[str, ...]  # targets with an item filter (partial replication)
    batch_size: int
    batching_window_seconds: int


@dataclass(frozen=True)
class Deployment:
    regions: tuple[str, ...]
    sources: tuple[Source, ...]
    memory_mb: int
    architecture: str
    metrics_flush_seconds: int = 0  # function.metrics_flush_seconds (replicator/emf.py MetricsBuffer)

    @property
    def pairs(self) -> int:
        return sum(len(s.targets) for s in self.sources)


def deployment_from_config(config: Any, architecture: str) -> Deployment:
    """The parts of a validated ``stacks.config.ReplicationConfig`` that cost money."""
    sources = tuple(
        Source(
            region=plan.region,
            targets=tuple(t.region for t in plan.targets),
            filtered_targets=tuple(t.region for t in plan.targets if t.item_filter is not None),
            batch_size=plan.stream.batch_size,
            batching_window_seconds=plan.stream.batching_window_seconds,
        )
        for plan in config.regions
        if plan.is_source
    )
    return Deployment(
        config.region_names,
        sources,
        config.function.memory_mb,
        architecture,
        config.function.metrics_flush_seconds,
    )


@dataclass(frozen=True)
class Linear:
    """A per-invocation figure as measured on 2 and 3 regions: base + per_target x targets."""

    base: float
    per_target: float

    def at(self, targets: int) -> float:
        return max(0.0, self.base + self.per_target * targets)


@dataclass(frozen=True)
class Level:
    records_per_invocation: float
    log_bytes_per_invocation: Linear
    duration_ms_per_invocation: Linear


@dataclass(frozen=True)
class Figures:
    """What ``bench cost`` measured (ddbrep/bench/cost_figures.json)."""

    low: Level
    high: Level
    metadata_bytes: int
    transfer_overhead_bytes: float  # per target write, on top of the item
    tombstone_transfer_bytes: float  # per target write a filter turned into a tombstone
    stale_per_hot_share: float  # stale target writes per target write, per unit of hot share
    coalesced_per_hot_share: float  # records coalesced per source write (full batches), per unit of hot share
    adoptions_per_unstamped: float
    extra_invocations_per_unstamped: float
    date: str = ""
    latency_ms: float = 0.0
    # The replicator's system log level when measured. Figures files from before it was recorded were
    # measured at INFO, with the local runtime's short START / END / REPORT lines in the log bytes.
    system_log_level: str = "INFO"

    @property
    def platform_log_bytes(self) -> float:
        """Lambda's platform lines per invocation on top of the measured log bytes (see above)."""
        return 0.0 if self.system_log_level == "WARN" else float(TEXT_PLATFORM_LOG_BYTES)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Figures:
        def level(raw: Mapping[str, Any]) -> Level:
            return Level(
                float(raw["records_per_invocation"]),
                Linear(**raw["log_bytes_per_invocation"]),
                Linear(**raw["duration_ms_per_invocation"]),
            )

        hot = doc.get("hot_keys") or {}
        unstamped = doc.get("unstamped") or {}
        partial = doc.get("partial") or {}
        overhead = float(doc["transfer_overhead_bytes_per_target_write"])
        return cls(
            low=level(doc["levels"]["low"]),
            high=level(doc["levels"]["high"]),
            metadata_bytes=int(doc["metadata_bytes"]),
            transfer_overhead_bytes=overhead,
            tombstone_transfer_bytes=float(partial.get("tombstone_transfer_bytes", overhead)),
            stale_per_hot_share=float(hot.get("stale_per_target_write_per_hot_share", 0.0)),
            coalesced_per_hot_share=float(hot.get("coalesced_per_write_per_hot_share", 0.0)),
            adoptions_per_unstamped=float(unstamped.get("adoptions_per_unstamped_write", 1.0)),
            extra_invocations_per_unstamped=float(
                unstamped.get("extra_invocations_per_unstamped_write", 0.0)
            ),
            date=str(doc.get("date", "")),
            latency_ms=float(doc.get("injected_cross_region_latency_ms", 0.0)),
            system_log_level=str(doc.get("system_log_level", "INFO")).upper(),
        )


# -------------------------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Line:
    name: str
    quantity: float  # per month, in ``unit``
    unit: str
    usd: float  # per month


@dataclass(frozen=True)
class Estimate:
    source_writes_per_month: float
    records_per_invocation: float
    product: tuple[Line, ...]
    global_tables: tuple[Line, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def product_usd(self) -> float:
        return sum(line.usd for line in self.product)

    @property
    def global_tables_usd(self) -> float:
        return sum(line.usd for line in self.global_tables)

    def per_million(self, usd: float) -> float:
        return usd / (self.source_writes_per_month / 1e6)

    @property
    def ratio(self) -> float:
        """This product's cost over global tables' for the same regions and workload."""
        return self.product_usd / self.global_tables_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_writes_per_month": self.source_writes_per_month,
            "records_per_invocation": self.records_per_invocation,
            "product": [
                {**asdict(line), "usd_per_million_writes": self.per_million(line.usd)}
                for line in self.product
            ],
            "global_tables": [
                {**asdict(line), "usd_per_million_writes": self.per_million(line.usd)}
                for line in self.global_tables
            ],
            "product_usd_per_month": self.product_usd,
            "global_tables_usd_per_month": self.global_tables_usd,
            "product_usd_per_million_writes": self.per_million(self.product_usd),
            "global_tables_usd_per_million_writes": self.per_million(self.global_tables_usd),
            "ratio_to_global_tables": self.ratio,
            "notes": list(self.notes),
        }


def write_units(size_bytes: float) -> int:
    """On-demand write request units of one write of an item this size (1 KB each, at least one)."""
    return max(1, math.ceil(size_bytes / WRITE_UNIT_BYTES))


def records_per_invocation(source: Source, writes_per_second: float) -> float:
    """Records a stream invocation carries: those arriving within the window (or one poll), capped by the
    batch size, at least one."""
    wait = max(float(source.batching_window_seconds), STREAM_POLL_SECONDS)
    return min(float(source.batch_size), max(1.0, writes_per_second * wait))


def metrics_merged(flush_seconds: float, writes_per_second: float, rpi: float) -> float:
    """Invocations whose metrics share one flush of a warm environment (1: every invocation prints)."""
    if flush_seconds <= 0:
        return 1.0
    invocations_per_second = writes_per_second / rpi
    return max(1.0, min(invocations_per_second * flush_seconds, MAX_VALUES_PER_METRIC / rpi))


def _log_bytes(figures: Figures, targets: int, records: float) -> float:
    """One invocation's log bytes when it carries this many records: linear through the measurements."""
    span = figures.high.records_per_invocation - figures.low.records_per_invocation
    fraction = max(0.0, (records - figures.low.records_per_invocation) / span) if span > 0 else 0.0
    return _between(
        figures.low.log_bytes_per_invocation.at(targets),
        figures.high.log_bytes_per_invocation.at(targets),
        fraction,
    )


def _between(low: float, high: float, fraction: float) -> float:
    return low + (high - low) * fraction


def estimate(deployment: Deployment, workload: Workload, figures: Figures, prices: Prices) -> Estimate:
    """Monthly cost of ``deployment`` under ``workload``, line by line, and global tables' for the same."""
    workload.check()
    gb_second = prices.lambda_gb_second(deployment.architecture)
    wru = prices.write_request_unit_per_million / 1e6
    rwru = prices.replicated_write_request_unit_per_million / 1e6
    stamped_bytes = workload.item_bytes + figures.metadata_bytes
    writes = workload.writes_per_second * SECONDS_PER_MONTH  # per source region
    totals: dict[str, float] = {}
    units: dict[str, str] = {}

    def add(name: str, quantity: float, unit: str) -> None:
        totals[name] = totals.get(name, 0.0) + quantity
        units[name] = unit

    rpi_seen = []
    metric_streams = 0
    for source in deployment.sources:
        targets = len(source.targets)
        rpi = records_per_invocation(source, workload.writes_per_second)
        rpi_seen.append(rpi)
        span = figures.high.records_per_invocation - figures.low.records_per_invocation
        # linear in the records an invocation carries, through the two measured points and beyond the
        # high one (a batch larger than the bench's costs more per invocation, not the same)
        fraction = max(0.0, (rpi - figures.low.records_per_invocation) / span) if span > 0 else 0.0
        coalesced = min(1.0, workload.hot_share * figures.coalesced_per_hot_share * min(1.0, fraction))
        stale = min(1.0, workload.hot_share * figures.stale_per_hot_share)
        per_target = writes * (1.0 - coalesced)  # target writes per target (applied + stale)
        filtered = len(source.filtered_targets)
        passing = workload.filter_pass_share
        units_per_target_write = {
            "full": write_units(stamped_bytes),
            "tombstone": write_units(figures.metadata_bytes + 100),
        }
        target_units = per_target * (
            (targets - filtered) * units_per_target_write["full"]
            + filtered
            * (passing * units_per_target_write["full"] + (1 - passing) * units_per_target_write["tombstone"])
        )
        unstamped = writes * workload.unstamped_share
        add(
            "source writes",
            (writes - unstamped) * write_units(stamped_bytes) + unstamped * write_units(workload.item_bytes),
            "WRU",
        )
        add("target writes (applied)", target_units * (1.0 - stale), "WRU")
        add("stale conditional writes", target_units * stale, "WRU")
        add(
            "adoption writes", unstamped * figures.adoptions_per_unstamped * write_units(stamped_bytes), "WRU"
        )
        invocations = writes / rpi + unstamped * figures.extra_invocations_per_unstamped
        add("Lambda requests", invocations, "requests")
        duration_s = (
            _between(
                figures.low.duration_ms_per_invocation.at(targets),
                figures.high.duration_ms_per_invocation.at(targets),
                fraction,
            )
            / 1000.0
        )
        add("Lambda duration", invocations * duration_s * deployment.memory_mb / 1024, "GB-s")

        log_bytes = _log_bytes(figures, targets, rpi)
        # With metrics_flush_seconds a warm environment prints the metrics of the invocations of one
        # interval together (one environment per shard), at most a document's 100 values per metric: as
        # one invocation of that many records would, shared by them.
        merged = metrics_merged(deployment.metrics_flush_seconds, workload.writes_per_second, rpi)
        if merged > 1.0:
            log_bytes = _log_bytes(figures, targets, rpi * merged) / merged
        add("logs (EMF + platform lines)", invocations * (log_bytes + figures.platform_log_bytes) / GIB, "GB")
        full_bytes = figures.transfer_overhead_bytes + stamped_bytes
        transfer = per_target * (
            (targets - filtered) * full_bytes
            + filtered * (passing * full_bytes + (1 - passing) * figures.tombstone_transfer_bytes)
        )
        add("inter-region transfer", transfer / GIB, "GB")
        add("handoff queues (idle polling)", targets * IDLE_RECEIVES_PER_QUEUE_MONTH, "requests")
        add("S3 (dead letters, oversized handoffs)", 0.0, "PUT")
        # A custom metric is billed for the hours it receives data ("prorated by the hour and metered
        # only when you send metrics to CloudWatch": https://aws.amazon.com/cloudwatch/pricing/), and a
        # count is emitted only when it is not zero: only the always-on metrics of a healthy month and
        # those the workload keeps busy are counted, each as a whole metric-month. Per source:
        # RecordsReceived, and RecordsAdopted / RecordsCoalesced if some writes are unstamped / hot;
        # per pair: ReplicationLatency, StaleSkipped with hot keys, FilteredOut and TombstonesWritten
        # where a partial filter turns writes into tombstones.
        metric_streams += len(m.ALWAYS_ON_SOURCE_METRICS)
        metric_streams += (workload.unstamped_share > 0) + (workload.hot_share > 0)
        metric_streams += targets * (len(m.ALWAYS_ON_PAIR_METRICS) + (workload.hot_share > 0))
        metric_streams += 2 * filtered * (passing < 1)
    add("custom metrics", float(metric_streams), "metric-months")

    price = {
        "WRU": wru,
        "requests": prices.lambda_requests_per_million / 1e6,
        "GB-s": gb_second,
        "PUT": prices.s3_put_per_thousand / 1e3,
        "metric-months": prices.custom_metric_per_month,
    }
    per_unit = {
        "logs (EMF + platform lines)": prices.logs_ingestion_per_gb,
        "inter-region transfer": prices.inter_region_transfer_per_gb,
        "handoff queues (idle polling)": prices.sqs_requests_per_million / 1e6,
    }
    product = tuple(
        Line(name, quantity, units[name], quantity * per_unit.get(name, price.get(units[name], 0.0)))
        for name, quantity in totals.items()
    )

    replicas = sum(1 + len(s.targets) for s in deployment.sources)
    copies = sum(len(s.targets) for s in deployment.sources)
    gt_units = writes * replicas * write_units(workload.item_bytes)
    gt_transfer = writes * copies * workload.item_bytes / GIB
    global_tables = (
        Line("replicated writes (every region, the source included)", gt_units, "rWRU", gt_units * rwru),
        Line("inter-region transfer", gt_transfer, "GB", gt_transfer * prices.inter_region_transfer_per_gb),
    )
    merged_low = metrics_merged(deployment.metrics_flush_seconds, workload.writes_per_second, min(rpi_seen))
    notes = (
        f"records per invocation {min(rpi_seen):.1f}"
        + (f"-{max(rpi_seen):.1f}" if max(rpi_seen) != min(rpi_seen) else "")
        + f" (figures measured at {figures.low.records_per_invocation:.1f} and "
        f"{figures.high.records_per_invocation:.1f}, linear in between and beyond)",
        *(
            (
                f"metrics printed at most every {deployment.metrics_flush_seconds} s per environment: "
                f"{merged_low:.1f} invocations per document",
            )
            if deployment.metrics_flush_seconds
            else ()
        ),
        f"Lambda {deployment.architecture}, {deployment.memory_mb} MB; durations measured locally with "
        f"{figures.latency_ms:.0f} ms per cross-region request",
        f"items carry {figures.metadata_bytes} bytes of replication metadata here; global tables none",
        "Lambda's START / END / REPORT lines: none (system log level WARN)"
        if figures.platform_log_bytes == 0
        else f"Lambda's START / END / REPORT lines: {figures.platform_log_bytes:.0f} bytes per invocation "
        f"(figures measured at system log level {figures.system_log_level})",
        "storage, reads, alarms and the dashboard are the same or fixed and left out",
    )
    return Estimate(writes * len(deployment.sources), min(rpi_seen), product, global_tables, notes)


# ------------------------------------------------------------------------------------------ the command


def load_figures(path: Path) -> Figures:
    try:
        return Figures.from_document(json.loads(Path(path).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CostInputError(
            f"cannot read the measured figures {path}: {err}. Fix: run `python -m ddbrep bench cost --write`"
        ) from None


def format_estimate(est: Estimate) -> str:
    out = [f"{est.source_writes_per_month:,.0f} source writes per month"]
    for title, lines, total in (
        ("ddb-replicator", est.product, est.product_usd),
        ("DynamoDB global tables", est.global_tables, est.global_tables_usd),
    ):
        out.append("")
        out.append(f"{title:<42} {'per month':>16} {'USD/month':>11} {'USD/M writes':>13}")
        for line in lines:
            out.append(
                f"  {line.name:<40} {line.quantity:>10,.4g} {line.unit:<5} {line.usd:>11,.2f} "
                f"{est.per_million(line.usd):>13,.4f}"
            )
        out.append(f"  {'total':<40} {'':>16} {total:>11,.2f} {est.per_million(total):>13,.4f}")
    out.append("")
    out.append(f"ratio ddb-replicator / global tables: {est.ratio:.2f}")
    out.extend(f"- {note}" for note in est.notes)
    return "\n".join(out)
