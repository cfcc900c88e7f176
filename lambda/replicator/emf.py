"""CloudWatch Embedded Metric Format: every metric of an invocation in as few documents as EMF allows.

Each log byte is billed (CloudWatch Logs ingestion), so an invocation prints one JSON line per target
region, not one per region pair plus one per source: the source's own metrics (dimension set
``[SourceRegion]``) ride in the first pair's document as a second metric directive, since a document
may hold several directives over its root members. What EMF does not allow decides the rest:
- a root member has one value, so two target regions (``TargetRegion``) need two documents, and a
  metric reported both per source and per pair (DeadLettered) cannot share one;
- at most 100 metrics per document, 100 values per metric, 30 dimensions per dimension set;
- no metric without a value: zero counts and empty sample lists are left out.
Numbers are written as short as they are exact enough: a sample to 0.1 of its unit (a latency to 0.1 ms,
not the clock's 15 digits: a value is about 17 bytes otherwise, 6 this way), and a whole number without
its ".0". At full batches the values are most of a document's bytes.
Powertools' ``add_metric`` is not used here: it formats its whole value list on every call, which
made one latency value per write cost half the handler's CPU, and it prints one dimension set per
document. The format is the one the local runtime parses (ddbrep/local/metric_store.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

MAX_VALUES_PER_METRIC = 100
MAX_METRICS_PER_DOCUMENT = 100
MAX_DIMENSIONS_PER_SET = 30
SAMPLE_DECIMALS = 1  # 0.1 ms for a latency: far below what the alarms and percentiles resolve


def _number(value: float) -> float:
    """The value as JSON writes it shortest: 3 rather than 3.0."""
    return int(value) if float(value).is_integer() else float(value)


@dataclass(frozen=True)
class MetricSet:
    """Metrics sharing one set of dimensions: counts (unit Count) and samples (name -> (unit, values))."""

    dimensions: Mapping[str, str]
    counts: Mapping[str, float] = field(default_factory=dict)
    samples: Mapping[str, tuple[str, Sequence[float]]] = field(default_factory=dict)


@dataclass
class _Part:
    dimensions: Mapping[str, str]
    metrics: dict[str, tuple[str, float | list[float]]]  # name -> (unit, value or values)


def _parts(metric_set: MetricSet) -> Iterator[_Part]:
    """The set's metrics, at most 100 values of a metric per part; counts in the first part only."""
    if len(metric_set.dimensions) > MAX_DIMENSIONS_PER_SET:
        raise ValueError(f"{len(metric_set.dimensions)} dimensions: EMF allows {MAX_DIMENSIONS_PER_SET}")
    samples = {name: (unit, list(values)) for name, (unit, values) in metric_set.samples.items() if values}
    chunks = max([1] + [-(-len(values) // MAX_VALUES_PER_METRIC) for _, values in samples.values()])
    for chunk in range(chunks):
        metrics: dict[str, tuple[str, float | list[float]]] = {}
        if chunk == 0:
            metrics.update({name: ("Count", _number(v)) for name, v in metric_set.counts.items() if v})
        for name, (unit, values) in samples.items():
            part = values[chunk * MAX_VALUES_PER_METRIC : (chunk + 1) * MAX_VALUES_PER_METRIC]
            if part:
                metrics[name] = (unit, [_number(round(float(v), SAMPLE_DECIMALS)) for v in part])
        names = list(metrics)
        for start in range(0, len(names), MAX_METRICS_PER_DOCUMENT):
            yield _Part(
                metric_set.dimensions,
                {n: metrics[n] for n in names[start : start + MAX_METRICS_PER_DOCUMENT]},
            )


class _Document:
    def __init__(self) -> None:
        self.root: dict[str, object] = {}
        self.parts: list[_Part] = []
        self.metric_count = 0

    def accepts(self, part: _Part) -> bool:
        if self.metric_count + len(part.metrics) > MAX_METRICS_PER_DOCUMENT:
            return False
        if any(name in self.root for name in part.metrics):
            return False  # one root member, one value: the same name twice cannot share a document
        return all(
            self.root.get(d, v) == v and d not in self._metric_names() for d, v in part.dimensions.items()
        )

    def _metric_names(self) -> set[str]:
        return {name for p in self.parts for name in p.metrics}

    def add(self, part: _Part) -> None:
        self.parts.append(part)
        self.metric_count += len(part.metrics)
        self.root.update(part.dimensions)
        self.root.update({name: value for name, (_, value) in part.metrics.items()})

    def render(self, namespace: str, timestamp_ms: int) -> dict[str, object]:
        directives = [
            {
                "Namespace": namespace,
                "Dimensions": [list(part.dimensions)],
                "Metrics": [{"Name": name, "Unit": unit} for name, (unit, _) in part.metrics.items()],
            }
            for part in self.parts
        ]
        return {"_aws": {"Timestamp": timestamp_ms, "CloudWatchMetrics": directives}, **self.root}


def documents(
    namespace: str, metric_sets: Sequence[MetricSet], timestamp_ms: int | None = None
) -> list[dict[str, object]]:
    """EMF documents carrying every metric of ``metric_sets``, as few as the format allows."""
    timestamp_ms = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    docs: list[_Document] = []
    for metric_set in metric_sets:
        for part in _parts(metric_set):
            if not part.metrics:
                continue
            home = next((doc for doc in docs if doc.accepts(part)), None)
            if home is None:
                home = _Document()
                docs.append(home)
            home.add(part)
    return [doc.render(namespace, timestamp_ms) for doc in docs]


def pair_blobs(
    namespace: str,
    dimensions: Mapping[str, str],
    counts: Mapping[str, float],
    samples: Mapping[str, tuple[str, Sequence[float]]],
    timestamp_ms: int | None = None,
) -> Iterator[dict[str, object]]:
    """The documents of one metric set (one region pair)."""
    yield from documents(namespace, [MetricSet(dimensions, counts, samples)], timestamp_ms)


def print_documents(namespace: str, metric_sets: Sequence[MetricSet]) -> int:
    """Print the documents, one JSON line each (CloudWatch Logs extracts the metrics); how many."""
    docs = documents(namespace, metric_sets)
    for doc in docs:
        print(json.dumps(doc, separators=(",", ":")))
    return len(docs)


class MetricsBuffer:
    """An execution environment's metrics, printed at most every ``flush_seconds`` (0: every invocation).

    Lambda reuses a warm environment for the next invocations, so one document can carry several
    invocations' metrics: counts are summed, samples appended, per dimension set. Each invocation
    flushes first what waited ``flush_seconds`` or more (stamped with the time of the last invocation
    it holds), and everything at once when any of ``urgent`` is non-zero in this invocation (the
    failures and conflicts the alarms watch) or a metric holds a full document's values (100). The
    trade-off: the last interval's metrics wait for the next invocation, and are lost if Lambda
    reclaims the environment before one comes.
    """

    def __init__(
        self,
        namespace: str,
        flush_seconds: float = 0.0,
        urgent: Collection[str] = (),
        clock: Callable[[], float] = time.time,
        printer: Callable[[str], None] = print,
    ) -> None:
        self.namespace = namespace
        self.flush_seconds = flush_seconds
        self.urgent = frozenset(urgent)
        self.clock = clock
        self.printer = printer
        self._counts: dict[tuple[tuple[str, str], ...], dict[str, float]] = {}
        self._samples: dict[tuple[tuple[str, str], ...], dict[str, tuple[str, list[float]]]] = {}
        self._first = 0.0
        self._last = 0.0

    def publish(self, metric_sets: Sequence[MetricSet]) -> int:
        """Buffer one invocation's metrics; print what is due. How many documents were printed."""
        now = self.clock()
        if self.flush_seconds <= 0:
            return self._print(documents(self.namespace, metric_sets, int(now * 1000)))
        printed = 0
        if self._counts and now - self._first >= self.flush_seconds:
            printed += self.flush()
        for metric_set in metric_sets:
            key = tuple(metric_set.dimensions.items())
            counts = self._counts.setdefault(key, {})
            for name, value in metric_set.counts.items():
                counts[name] = counts.get(name, 0.0) + value
            samples = self._samples.setdefault(key, {})
            for name, (unit, values) in metric_set.samples.items():
                samples.setdefault(name, (unit, []))[1].extend(values)
        if not self._first:
            self._first = now
        self._last = now
        urgent = any(v for s in metric_sets for n, v in s.counts.items() if n in self.urgent)
        full = any(len(v) >= MAX_VALUES_PER_METRIC for s in self._samples.values() for _, v in s.values())
        if urgent or full:
            printed += self.flush()
        return printed

    def flush(self) -> int:
        """Print everything buffered, stamped with the last invocation's time."""
        sets = [MetricSet(dict(key), self._counts[key], self._samples.get(key, {})) for key in self._counts]
        stamp = int(self._last * 1000)
        self._counts, self._samples, self._first = {}, {}, 0.0
        return self._print(documents(self.namespace, sets, stamp))

    def _print(self, docs: Sequence[Mapping[str, object]]) -> int:
        for doc in docs:
            self.printer(json.dumps(doc, separators=(",", ":")))
        return len(docs)
