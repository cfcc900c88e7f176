"""The conflict rule (core/conflicts.py) and the engine's bounded conflict log, on in-memory tables."""

from __future__ import annotations

from typing import Any

import pytest

from replicator.core import metrics_names as m
from replicator.core.conflicts import lost_conflict
from replicator.core.metadata import LOWEST, Version
from replicator.engine import Replicator
from tests.unit.sim import FakePorts, MemTable, assert_accounted, settings_for

US, EU, AP = "us-east-1", "eu-west-1", "ap-southeast-2"
W = Version(100, US)  # the target region's own write, about to be replaced


@pytest.mark.parametrize(
    ("write", "base", "replaced", "target", "lost"),
    [
        # another region's write made over an older state: it did not see W -> W lost
        (Version(200, EU), Version(50, AP), W, US, True),
        (Version(200, EU), LOWEST, W, US, True),  # made over nothing (or an unversioned state)
        (Version(200, EU), None, W, US, True),  # base unknown (old handoff message): concurrent
        (Version(200, EU, "9"), Version(100, US, ""), Version(100, US, "5"), US, True),  # seq orders
        # made over W itself, or over something newer: an update, not a conflict
        (Version(200, EU), W, W, US, False),
        (Version(200, EU), Version(150, AP), W, US, False),
        # the target held another region's copy: that copy's conflict is found in its own region
        (Version(200, EU), LOWEST, Version(100, AP), US, False),
        # the target's own later write replacing its earlier one (a replay): never a conflict
        (Version(200, US), LOWEST, W, US, False),
        # nothing, or an unstamped item, was replaced
        (Version(200, EU), LOWEST, None, US, False),
        (Version(200, EU), LOWEST, LOWEST, US, False),
    ],
)
def test_the_rule(
    write: Version, base: Version | None, replaced: Version | None, target: str, lost: bool
) -> None:
    # Given an applied write, its writer's previous state and what it replaced; Then the rule decides
    assert lost_conflict(write, base, replaced, target) is lost


def _record(seq: int, region: str, pk: str, ts: int) -> dict[str, Any]:
    """An INSERT stream record of a helper write in ``region`` (made over nothing)."""
    image = {"pk": {"S": pk}, "v": {"N": str(ts)}, "rep_ts": {"N": str(ts)}, "rep_region": {"S": region}}
    return {
        "eventID": str(seq),
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": {
            "Keys": {"pk": {"S": pk}},
            "NewImage": image,
            "SequenceNumber": str(1000 + seq),
            "ApproximateCreationDateTime": 1_700_000_000,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "SizeBytes": 100,
        },
    }


def _us_holds_its_own_writes(us: MemTable, keys: int) -> None:
    for i in range(keys):
        us.put_item(
            Item={"pk": {"S": f"k{i}"}, "v": {"N": "1"}, "rep_ts": {"N": "10"}, "rep_region": {"S": US}}
        )


def _eu_replicator(tables: dict[str, MemTable], ports: FakePorts, **overrides: Any) -> Replicator:
    settings = settings_for(EU, [US, EU], **overrides)
    return Replicator(settings, ports, clock=lambda: 1_700_000_000.0)


def test_a_storm_of_conflicts_logs_the_first_n_in_one_object_and_counts_the_rest() -> None:
    # Given us-east-1 holds its own writes of 12 keys, and a log bounded to 10 entries per invocation
    tables = {US: MemTable(region=US), EU: MemTable(region=EU)}
    _us_holds_its_own_writes(tables[US], 12)
    ports = FakePorts(tables, EU)
    replicator = _eu_replicator(tables, ports, conflict_log_max_records=10)
    # When one batch of eu-west-1's concurrent writes (made over nothing) replaces all 12
    outcome = replicator.process_batch([_record(i, EU, f"k{i}", 20) for i in range(12)])
    replicator.close()
    # Then 12 conflicts are counted on eu-west-1 -> us-east-1, 10 logged in one object, 2 only counted
    assert_accounted(outcome, replicator.settings)
    counts = outcome.pair_counts[US]
    assert (counts[m.RECORDS_REPLICATED], counts[m.CONFLICTS_LOST], counts[m.CONFLICTS_NOT_LOGGED]) == (
        12,
        12,
        2,
    )
    assert [len(log) for log in ports.conflict_logs] == [10]
    first = ports.conflict_logs[0][0]
    assert first == {
        "keys": {"pk": {"S": "k0"}},
        "losing": {"ts": 10, "region": US, "seq": ""},
        "winning": {"ts": 20, "region": EU, "seq": first["winning"]["seq"]},
        "at": 1_700_000_000.0,
        "source_region": EU,
        "target_region": US,
    }


def test_the_losing_image_is_logged_only_when_configured() -> None:
    # Given a replicator configured to keep losing images
    tables = {US: MemTable(region=US), EU: MemTable(region=EU)}
    _us_holds_its_own_writes(tables[US], 1)
    ports = FakePorts(tables, EU)
    replicator = _eu_replicator(tables, ports, conflict_log_images=True)
    # When a concurrent write replaces us-east-1's own write
    replicator.process_batch([_record(0, EU, "k0", 20)])
    replicator.close()
    # Then the entry carries the losing item as it was (event form)
    ((entry,),) = ports.conflict_logs
    assert entry["losing_image"] == {
        "pk": {"S": "k0"},
        "v": {"N": "1"},
        "rep_ts": {"N": "10"},
        "rep_region": {"S": US},
    }


class _LogDown(FakePorts):
    def log_conflicts(self, entries: Any) -> str:
        raise ConnectionError("s3 unreachable")


def test_a_conflict_log_that_cannot_be_written_loses_only_the_entries() -> None:
    # Given a conflict log store that fails
    tables = {US: MemTable(region=US), EU: MemTable(region=EU)}
    _us_holds_its_own_writes(tables[US], 2)
    ports = _LogDown(tables, EU)
    replicator = _eu_replicator(tables, ports)
    # When a batch settles two conflicts
    outcome = replicator.process_batch([_record(i, EU, f"k{i}", 20) for i in range(2)])
    replicator.close()
    # Then the writes stand, no record is reported failed, and both conflicts are counted as not logged
    assert_accounted(outcome, replicator.settings)
    assert outcome.failed_sequence_numbers == set()
    counts = outcome.pair_counts[US]
    assert (counts[m.RECORDS_REPLICATED], counts[m.CONFLICTS_LOST], counts[m.CONFLICTS_NOT_LOGGED]) == (
        2,
        2,
        2,
    )
