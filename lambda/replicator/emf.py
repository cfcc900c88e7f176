"""CloudWatch Embedded Metric Format for the per-region-pair metrics.

Powertools' ``add_metric`` formats the metric's whole value list into a debug message on every call,
which made one latency value per replicated write cost half the handler's CPU. The pair metrics are
therefore serialized here, in the same format Powertools prints (and the local runtime parses):
one JSON line per blob, at most 100 values per metric per blob (the EMF limit).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence

MAX_VALUES_PER_METRIC = 100


def pair_blobs(
    namespace: str,
    dimensions: Mapping[str, str],
    counts: Mapping[str, float],
    samples: Mapping[str, tuple[str, Sequence[float]]],
    timestamp_ms: int | None = None,
) -> Iterator[dict[str, object]]:
    """EMF blobs: ``counts`` (unit Count) once, ``samples`` (name -> (unit, values)) 100 values at a time."""
    timestamp_ms = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    chunks = max([1] + [-(-len(values) // MAX_VALUES_PER_METRIC) for _, values in samples.values()])
    for chunk in range(chunks):
        metrics: list[dict[str, str]] = []
        blob: dict[str, object] = dict(dimensions)
        if chunk == 0:
            for name, value in counts.items():
                metrics.append({"Name": name, "Unit": "Count"})
                blob[name] = float(value)
        for name, (unit, values) in samples.items():
            part = values[chunk * MAX_VALUES_PER_METRIC : (chunk + 1) * MAX_VALUES_PER_METRIC]
            if part:
                metrics.append({"Name": name, "Unit": unit})
                blob[name] = [float(v) for v in part]
        if not metrics:
            continue
        yield {
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [
                    {"Namespace": namespace, "Dimensions": [list(dimensions)], "Metrics": metrics}
                ],
            },
            **blob,
        }


def print_pair_metrics(
    namespace: str,
    dimensions: Mapping[str, str],
    counts: Mapping[str, float],
    samples: Mapping[str, tuple[str, Sequence[float]]],
) -> None:
    for blob in pair_blobs(namespace, dimensions, counts, samples):
        print(json.dumps(blob, separators=(",", ":")))
