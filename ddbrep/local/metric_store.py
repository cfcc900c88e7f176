"""Capture of the functions' Embedded Metric Format output, aggregated as CloudWatch would.

Every line a function prints is offered here; EMF documents (JSON with ``_aws.CloudWatchMetrics``)
become samples ``(time, metric, dimensions, value)``, with the directive's namespace and the
function's region (the alarms of ddbrep/local/alarms.py query both, as CloudWatch is regional).
Other lines are logs, appended to a per-function log file when a log directory is given. The runtime
adds the metric Lambda itself publishes for stream mappings, ``IteratorAge``, and the other AWS/Lambda
and AWS/SQS metrics the stacks' alarms watch (ddbrep/local/cloud.py).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replicator.core import metrics_names as m

ITERATOR_AGE = "IteratorAge"
INVOCATIONS = "Invocations"
ECHO_INVOCATIONS = "EchoInvocations"
FUNCTION_NAME = "FunctionName"
ERRORS = "Errors"
LAMBDA_NAMESPACE = "AWS/Lambda"
SQS_NAMESPACE = "AWS/SQS"
# Dimension the runtime adds to its own Lambda samples (CloudWatch has none: it is the sample's region).
REGION_DIMENSION = "Region"


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    name: str
    dimensions: tuple[tuple[str, str], ...]
    value: float
    namespace: str = ""
    region: str = ""  # the region whose CloudWatch receives it ("" when unknown)

    def dimension(self, name: str) -> str | None:
        return dict(self.dimensions).get(name)


def parse_emf(line: str, region: str = "") -> list[Sample]:
    """The samples of one EMF document (printed by a function of ``region``); [] for any other line."""
    text = line.strip()
    if not text.startswith("{") or '"_aws"' not in text:
        return []
    try:
        doc = json.loads(text)
    except ValueError:
        return []
    meta = doc.get("_aws")
    if not isinstance(meta, Mapping):
        return []
    at = float(meta.get("Timestamp", time.time() * 1000)) / 1000.0
    samples = []
    for directive in meta.get("CloudWatchMetrics", ()):
        dimension_sets = directive.get("Dimensions") or [[]]
        namespace = str(directive.get("Namespace", ""))
        for definition in directive.get("Metrics", ()):
            name = definition.get("Name")
            values = doc.get(name)
            if name is None or values is None:
                continue
            for dimension_names in dimension_sets:
                dimensions = tuple(sorted((d, str(doc.get(d, ""))) for d in dimension_names))
                for value in values if isinstance(values, list) else [values]:
                    samples.append(Sample(at, name, dimensions, float(value), namespace, region))
    return samples


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (what CloudWatch's pNN statistics approximate)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


SINCE_SLACK_SECONDS = 60.0
SINCE_STOP_RUN = 256


class MetricsStore:
    """All samples of a local run, plus each function's log lines (thread-safe)."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self._lock = threading.Lock()
        self.samples: list[Sample] = []
        self.log_dir = log_dir
        if log_dir is not None:
            (log_dir / "functions").mkdir(parents=True, exist_ok=True)

    def on_output(self, function: Any, lines: Sequence[str]) -> None:
        """FunctionWorker output hook: metrics to the store, everything to the function's log file."""
        region = str(getattr(function, "region", ""))
        samples = [sample for line in lines for sample in parse_emf(line, region)]
        with self._lock:
            self.samples.extend(samples)
            if self.log_dir is not None:
                with open(self.log_dir / "functions" / f"{function.region}-{function.name}.log", "a") as log:
                    log.writelines(line + "\n" for line in lines)

    def add(
        self,
        name: str,
        value: float,
        at: float | None = None,
        *,
        namespace: str = "",
        region: str = "",
        **dimensions: str,
    ) -> None:
        sample = Sample(
            at if at is not None else time.time(),
            name,
            tuple(sorted(dimensions.items())),
            value,
            namespace,
            region,
        )
        with self._lock:
            self.samples.append(sample)

    def snapshot(self) -> list[Sample]:
        """Every sample so far (a copy)."""
        with self._lock:
            return list(self.samples)

    def since(self, at: float, slack: float = SINCE_SLACK_SECONDS, run: int = SINCE_STOP_RUN) -> list[Sample]:
        """The samples stamped at or after ``at``, read from the newest back. Samples arrive nearly in
        time order (an EMF document carries its function's clock, and a long invocation flushes late),
        so the scan stops after ``run`` samples in a row more than ``slack`` seconds older than ``at``:
        it costs the window, not the whole run."""
        found: list[Sample] = []
        old = 0
        with self._lock:
            for sample in reversed(self.samples):
                if sample.at >= at:
                    found.append(sample)
                    old = 0
                elif sample.at < at - slack:
                    old += 1
                    if old >= run:
                        break
        found.reverse()
        return found

    def select(self, name: str, **dimensions: str) -> list[Sample]:
        with self._lock:
            samples = list(self.samples)
        return [
            s for s in samples if s.name == name and all(s.dimension(k) == v for k, v in dimensions.items())
        ]

    def total(self, name: str, **dimensions: str) -> float:
        return sum(s.value for s in self.select(name, **dimensions))

    def values(self, name: str, **dimensions: str) -> list[float]:
        return [s.value for s in self.select(name, **dimensions)]

    def sample_count(self, name: str, **dimensions: str) -> int:
        """CloudWatch's SampleCount over the whole run: how many values were reported."""
        return len(self.select(name, **dimensions))

    def applied(self, **dimensions: str) -> int:
        """Writes applied to targets (replicator and drain): ReplicationLatency's SampleCount, one value
        per applied write (RecordsReplicated is not emitted: replicator/core/metrics_names.py)."""
        return self.sample_count(m.REPLICATION_LATENCY, **dimensions)

    def records_replicated(self, **dimensions: str) -> int:
        """The replicator's applied writes (the engine's RecordsReplicated): applied less HandoffReplayed."""
        return self.applied(**dimensions) - int(self.total(m.HANDOFF_REPLAYED, **dimensions))

    def pairs(self) -> list[tuple[str, str]]:
        """Every (source, target) region pair some metric was reported for."""
        with self._lock:
            samples = list(self.samples)
        found = {
            (s.dimension(m.SOURCE_REGION), s.dimension(m.TARGET_REGION))
            for s in samples
            if s.dimension(m.SOURCE_REGION) and s.dimension(m.TARGET_REGION)
        }
        return sorted((str(a), str(b)) for a, b in found)

    def series(
        self, name: str, bucket_seconds: float, statistic: str = "sum", **dimensions: str
    ) -> tuple[list[float], list[float]]:
        """(bucket start times, statistic per bucket) like a CloudWatch graph with that period."""
        buckets: dict[int, list[float]] = defaultdict(list)
        for sample in self.select(name, **dimensions):
            buckets[int(sample.at // bucket_seconds)].append(sample.value)
        keys = sorted(buckets)
        return [k * bucket_seconds for k in keys], [_statistic(buckets[k], statistic) for k in keys]


def _statistic(values: Iterable[float], statistic: str) -> float:
    data = list(values)
    if statistic == "sum":
        return sum(data)
    if statistic == "max":
        return max(data)
    if statistic == "avg":
        return sum(data) / len(data)
    if statistic == "count":
        return float(len(data))
    if statistic.startswith("p"):
        return percentile(data, float(statistic[1:]))
    raise ValueError(f"unknown statistic {statistic!r}")
