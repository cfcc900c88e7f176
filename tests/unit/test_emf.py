"""The invocation's EMF documents: as few as EMF allows, in the format CloudWatch and the local parser read
(ddbrep/local/metric_store.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ddbrep.local.metric_store import MetricsStore, parse_emf
from replicator.emf import MetricsBuffer, MetricSet, documents, pair_blobs

SOURCE = {"SourceRegion": "us-east-1"}
EU = {"SourceRegion": "us-east-1", "TargetRegion": "eu-west-1"}
AP = {"SourceRegion": "us-east-1", "TargetRegion": "ap-southeast-2"}
LATENCY = "ReplicationLatency"


def directives(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["_aws"]["CloudWatchMetrics"]  # type: ignore[no-any-return]


def samples(docs: list[dict[str, Any]]) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    """What the local runtime's parser (and CloudWatch) extracts from the printed lines."""
    return sorted(
        (s.name, s.dimensions, s.value)
        for doc in docs
        for s in parse_emf(json.dumps(doc, separators=(",", ":")))
    )


def test_counts_and_samples_in_one_blob_with_the_pair_dimensions() -> None:
    (blob,) = pair_blobs("NS", EU, {"RecordsReplicated": 3}, {LATENCY: ("Milliseconds", [1, 2])}, 7)
    assert blob["_aws"] == {
        "Timestamp": 7,
        "CloudWatchMetrics": [
            {
                "Namespace": "NS",
                "Dimensions": [["SourceRegion", "TargetRegion"]],
                "Metrics": [
                    {"Name": "RecordsReplicated", "Unit": "Count"},
                    {"Name": LATENCY, "Unit": "Milliseconds"},
                ],
            }
        ],
    }
    assert blob["SourceRegion"] == "us-east-1" and blob["TargetRegion"] == "eu-west-1"
    assert blob["RecordsReplicated"] == 3.0 and blob[LATENCY] == [1.0, 2.0]


def test_the_source_metrics_ride_in_the_first_pair_document_under_their_own_dimension_set() -> None:
    # Given an invocation that replicated to two targets and counted records of its own
    sets = [
        MetricSet(EU, {"RecordsReplicated": 2}, {LATENCY: ("Milliseconds", [5, 6])}),
        MetricSet(AP, {"RecordsReplicated": 2}, {LATENCY: ("Milliseconds", [7, 8])}),
        MetricSet(SOURCE, {"RecordsReceived": 3, "EchoSkipped": 1}),
    ]
    # When serialized
    docs = documents("NS", sets, 7)
    # Then one document per target region (a root member holds one TargetRegion), none for the source
    assert [doc["TargetRegion"] for doc in docs] == ["eu-west-1", "ap-southeast-2"]
    assert [d["Dimensions"] for d in directives(docs[0])] == [
        [["SourceRegion", "TargetRegion"]],
        [["SourceRegion"]],
    ]
    assert [m["Name"] for m in directives(docs[0])[1]["Metrics"]] == ["RecordsReceived", "EchoSkipped"]
    # And CloudWatch's reading (the local parser's) gives every sample its own dimensions, nothing else
    assert samples(docs) == sorted(
        [
            ("RecordsReplicated", tuple(sorted(EU.items())), 2.0),
            (LATENCY, tuple(sorted(EU.items())), 5.0),
            (LATENCY, tuple(sorted(EU.items())), 6.0),
            ("RecordsReplicated", tuple(sorted(AP.items())), 2.0),
            (LATENCY, tuple(sorted(AP.items())), 7.0),
            (LATENCY, tuple(sorted(AP.items())), 8.0),
            ("RecordsReceived", (("SourceRegion", "us-east-1"),), 3.0),
            ("EchoSkipped", (("SourceRegion", "us-east-1"),), 1.0),
        ]
    )


def test_a_metric_reported_per_source_and_per_pair_gets_a_document_of_its_own() -> None:
    # Given DeadLettered counted for a target write and for a record of the source's own
    sets = [MetricSet(EU, {"DeadLettered": 1}), MetricSet(SOURCE, {"DeadLettered": 2, "RecordsReceived": 4})]
    docs = documents("NS", sets, 7)
    # Then they do not share a root member (one value each), and both values are read back
    assert len(docs) == 2
    assert samples(docs) == sorted(
        [
            ("DeadLettered", tuple(sorted(EU.items())), 1.0),
            ("DeadLettered", (("SourceRegion", "us-east-1"),), 2.0),
            ("RecordsReceived", (("SourceRegion", "us-east-1"),), 4.0),
        ]
    )


def test_more_than_100_values_are_split_and_counts_are_not_repeated() -> None:
    blobs = list(pair_blobs("NS", EU, {"StaleSkipped": 1}, {LATENCY: ("Milliseconds", range(250))}))
    assert [len(b[LATENCY]) for b in blobs] == [100, 100, 50]  # type: ignore[arg-type]
    assert sum("StaleSkipped" in b for b in blobs) == 1
    assert [v for b in blobs for v in b[LATENCY]] == [float(v) for v in range(250)]  # type: ignore[attr-defined]


def test_at_most_100_metrics_per_document() -> None:
    counts = {f"Metric{i:03d}": 1 for i in range(150)}
    docs = documents("NS", [MetricSet(SOURCE, counts)], 7)
    assert [sum(len(d["Metrics"]) for d in directives(doc)) for doc in docs] == [100, 50]
    assert len(samples(docs)) == 150


def test_more_than_30_dimensions_are_refused() -> None:
    with pytest.raises(ValueError, match="30"):
        documents("NS", [MetricSet({f"D{i}": "x" for i in range(31)}, {"RecordsReceived": 1})])


def test_no_empty_values_and_nothing_to_report_prints_nothing() -> None:
    assert documents("NS", [MetricSet(EU, {"StaleSkipped": 0}, {LATENCY: ("Milliseconds", [])})]) == []
    (doc,) = documents("NS", [MetricSet(EU, {"StaleSkipped": 0, "RecordsReplicated": 1})], 7)
    assert [m["Name"] for m in directives(doc)[0]["Metrics"]] == ["RecordsReplicated"]
    assert "StaleSkipped" not in doc


def test_numbers_are_written_as_short_as_they_are_exact_enough() -> None:
    # Given a latency the clock measured to 15 digits, and a count
    (doc,) = documents(
        "NS",
        [MetricSet(EU, {"StaleSkipped": 2}, {LATENCY: ("Milliseconds", [152.33412109375, 87.96, 40.0])})],
        7,
    )
    text = json.dumps(doc, separators=(",", ":"))
    # Then each sample keeps 0.1 ms, and whole numbers lose their ".0" (every log byte is billed)
    assert '"ReplicationLatency":[152.3,88,40]' in text
    assert '"StaleSkipped":2,' in text or text.endswith('"StaleSkipped":2}')


def test_the_local_store_reads_the_writes_applied_as_the_latency_sample_count() -> None:
    # Given a replicator document (2 writes applied, RecordsReplicated not emitted) and a drain's (1 replayed)
    store = MetricsStore()
    replicator = documents("NS", [MetricSet(EU, {"StaleSkipped": 1}, {LATENCY: ("Milliseconds", [5, 6])})], 7)
    drain = documents("NS", [MetricSet(EU, {"HandoffReplayed": 1}, {LATENCY: ("Milliseconds", [900])})], 8)
    store.on_output(
        type("F", (), {"region": "us-east-1", "name": "f"})(), [json.dumps(d) for d in replicator + drain]
    )
    # Then applied = SampleCount (3), the replicator's share = that less HandoffReplayed (2)
    assert store.applied(**EU) == 3 and store.records_replicated(**EU) == 2
    assert store.series(LATENCY, 1.0, "count", **EU)[1] == [3.0]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def buffered(flush_seconds: float) -> tuple[MetricsBuffer, Clock, list[dict[str, Any]]]:
    clock, printed = Clock(), []
    buffer = MetricsBuffer(
        "NS", flush_seconds, {"DeadLettered"}, clock, lambda line: printed.append(json.loads(line))
    )
    return buffer, clock, printed


def invocation(latency: float, **counts: float) -> list[MetricSet]:
    return [
        MetricSet(EU, counts, {LATENCY: ("Milliseconds", [latency])}),
        MetricSet(SOURCE, {"RecordsReceived": 1}),
    ]


def test_without_a_flush_interval_every_invocation_prints_its_metrics() -> None:
    buffer, _, printed = buffered(0)
    assert buffer.publish(invocation(5.0)) == 1 and buffer.publish(invocation(6.0)) == 1
    assert [doc[LATENCY] for doc in printed] == [[5], [6]]


def test_a_warm_environment_prints_an_interval_of_invocations_in_one_document() -> None:
    # Given a 10 s flush interval and three invocations within it
    buffer, clock, printed = buffered(10)
    for at, latency in ((100.0, 5.0), (103.0, 6.0), (106.0, 7.0)):
        clock.now = at
        assert buffer.publish(invocation(latency, StaleSkipped=1)) == 0  # nothing printed yet
    # When the next invocation comes after the interval
    clock.now = 111.0
    assert buffer.publish(invocation(8.0)) == 1
    # Then one document holds the three, counts summed, stamped with the last one's time; the fourth waits
    (doc,) = printed
    assert doc[LATENCY] == [5, 6, 7] and doc["StaleSkipped"] == 3 and doc["RecordsReceived"] == 3
    assert doc["_aws"]["Timestamp"] == 106_000
    assert buffer.flush() == 1 and printed[-1][LATENCY] == [8]


def test_a_failure_prints_at_once_with_what_waited() -> None:
    # Given a buffered invocation; When the next one dead-letters a record (an alarm watches DeadLettered)
    buffer, clock, printed = buffered(60)
    buffer.publish(invocation(5.0))
    clock.now = 101.0
    assert buffer.publish(invocation(6.0, DeadLettered=1)) == 1
    # Then both are printed now, not at the end of the interval
    assert printed[0][LATENCY] == [5, 6] and printed[0]["DeadLettered"] == 1


def test_a_full_document_of_values_is_printed_at_once() -> None:
    buffer, _, printed = buffered(60)
    assert buffer.publish([MetricSet(EU, {}, {LATENCY: ("Milliseconds", [1.0] * 99)})]) == 0
    assert buffer.publish(invocation(2.0)) == 1 and len(printed[0][LATENCY]) == 100
