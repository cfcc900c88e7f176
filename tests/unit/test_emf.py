"""The per-pair EMF blobs: CloudWatch's format, at most 100 values per metric per blob."""

from __future__ import annotations

from replicator.emf import pair_blobs

DIMS = {"SourceRegion": "us-east-1", "TargetRegion": "eu-west-1"}


def test_counts_and_samples_in_one_blob_with_the_pair_dimensions() -> None:
    (blob,) = pair_blobs(
        "NS", DIMS, {"RecordsReplicated": 3}, {"ReplicationLatency": ("Milliseconds", [1, 2])}, 7
    )
    assert blob["_aws"] == {
        "Timestamp": 7,
        "CloudWatchMetrics": [
            {
                "Namespace": "NS",
                "Dimensions": [["SourceRegion", "TargetRegion"]],
                "Metrics": [
                    {"Name": "RecordsReplicated", "Unit": "Count"},
                    {"Name": "ReplicationLatency", "Unit": "Milliseconds"},
                ],
            }
        ],
    }
    assert blob["SourceRegion"] == "us-east-1" and blob["TargetRegion"] == "eu-west-1"
    assert blob["RecordsReplicated"] == 3.0 and blob["ReplicationLatency"] == [1.0, 2.0]


def test_more_than_100_values_are_split_and_counts_are_not_repeated() -> None:
    blobs = list(
        pair_blobs("NS", DIMS, {"StaleSkipped": 1}, {"ReplicationLatency": ("Milliseconds", range(250))})
    )
    assert [len(b["ReplicationLatency"]) for b in blobs] == [100, 100, 50]  # type: ignore[arg-type]
    assert sum("StaleSkipped" in b for b in blobs) == 1
    assert [v for b in blobs for v in b["ReplicationLatency"]] == [float(v) for v in range(250)]  # type: ignore[attr-defined]


def test_nothing_to_report_prints_nothing() -> None:
    assert list(pair_blobs("NS", DIMS, {}, {"ReplicationLatency": ("Milliseconds", [])})) == []
