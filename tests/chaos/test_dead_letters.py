"""Invariant 4 end to end: records that cannot be applied are parked in the source region's dead-letter
store with their full content and the reason, the rest of the stream converges, and a redrive after
the cause is fixed applies what now can be applied and leaves the rest with a new reason.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from ddbrep.client import ReplicatedTable
from ddbrep.local.cloud import LocalCloud
from ddbrep.tools.redrive import DEAD_LETTER_PREFIX
from replicator.core import metrics_names as m
from tests.chaos.support import (
    REGIONS,
    TABLE,
    assert_no_divergence,
    dead_letter_bucket,
    drain,
    key,
    metric_deltas,
    metric_totals,
    redrive,
    snapshot,
)
from tests.local.support import index_rejecting_empty

pytestmark = pytest.mark.chaos

SOURCE, DRIFTED = "us-east-1", "eu-west-1"
INDEX = "by_ref"
# The local engine refuses an item whose attribute names and values exceed 405,000 bytes (its stand-in
# for DynamoDB's 400 KB). An unstamped item this size fits; adopting it adds rep_region, rep_ts and
# rep_seq (about 90 bytes) and no longer does.
ENGINE_ITEM_LIMIT = 405_000


def drifted_index(cloud: LocalCloud) -> contextlib.AbstractContextManager[None]:
    return index_rejecting_empty(cloud, DRIFTED, INDEX)


def entries_for(cloud: LocalCloud, prefix: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """The source region's dead-letter entries of this test's keys: pk -> (object key, entry)."""
    s3 = cloud.client(SOURCE, "s3")
    bucket = dead_letter_bucket(cloud, SOURCE)
    found = {}
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"{DEAD_LETTER_PREFIX}{SOURCE}/")
    for obj in listing.get("Contents", []):
        entry = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
        keys = entry["write"]["keys"] if entry.get("write") else entry["record"]["dynamodb"]["Keys"]
        if keys["pk"]["S"].startswith(prefix):
            found[keys["pk"]["S"]] = (obj["Key"], entry)
    return found


def test_unappliable_records_are_parked_with_content_and_reason_then_redriven(
    chaos: LocalCloud, prefix: str
) -> None:
    cloud = chaos
    drain(cloud)
    before = metric_totals(cloud)
    helper = ReplicatedTable(cloud.client(SOURCE), TABLE, SOURCE)
    raw = cloud.client(SOURCE)
    drifted, big, bad = f"{prefix}drifted", f"{prefix}big", f"{prefix}bad"
    with drifted_index(cloud):
        # Given ordinary writes in every region, and three writes in us-east-1 that cannot all be applied:
        # an item eu-west-1's drifted table rejects, an unstamped item too large to stamp, and an item
        # stamped by a buggy writer (rep_ts a string)
        for region in REGIONS:
            table = ReplicatedTable(cloud.client(region), TABLE, region)
            for n in range(4):
                table.put_item({**key(f"{prefix}{region}-{n}"), "n": {"N": str(n)}})
        helper.put_item({**key(drifted), "ref": {"S": ""}, "note": {"S": "empty ref"}})
        filler = ENGINE_ITEM_LIMIT - 30 - sum(len(s) for s in ("pk", big, "sk", "0", "blob"))
        big_item = {**key(big), "blob": {"S": "x" * filler}}
        raw.put_item(TableName=TABLE, Item=big_item)
        bad_item = {**key(bad), "rep_region": {"S": SOURCE}, "rep_ts": {"S": "soon"}}
        raw.put_item(TableName=TABLE, Item=bad_item)

        # When the replicators drain
        drain(cloud)

        # Then everything else converged
        parked = (drifted, big, bad)
        regions = snapshot(cloud, prefix)
        assert_no_divergence(regions, exclude=parked)
        assert len(regions[DRIFTED]) == 3 * 4
        # and each of the three is in the dead-letter store with its full content and the reason
        entries = entries_for(cloud, prefix)
        assert set(entries) == set(parked)
        _, rejected = entries[drifted]
        assert (rejected["reason"], rejected["target_region"]) == ("target_write_rejected", DRIFTED)
        assert "ValidationException" in rejected["error"]
        written = {k: v for k, v in rejected["write"]["item"].items() if k != "rep_seq"}  # target's tie-break
        assert written == regions[SOURCE][drifted]
        assert rejected["record"]["dynamodb"]["NewImage"] == regions[SOURCE][drifted]
        _, too_large = entries[big]
        assert too_large["reason"] == "local_write_rejected" and "size" in too_large["error"]
        assert too_large["record"]["dynamodb"]["NewImage"] == big_item
        _, malformed = entries[bad]
        assert malformed["reason"] == "malformed_record" and "rep_ts" in malformed["error"]
        assert malformed["record"]["dynamodb"]["NewImage"] == bad_item
        metrics = metric_deltas(before, metric_totals(cloud))
        assert (metrics[m.DEAD_LETTERED], metrics[m.MALFORMED_RECORDS]) == (3, 1)
        # (the drifted item reached the third region; the other two stayed where they were written)
        assert drifted in regions["ap-southeast-2"] and drifted not in regions[DRIFTED]

    # When the drift is fixed (the index dropped) and the dead-letter store is redriven
    report = redrive(cloud, SOURCE).dead_letters()
    drain(cloud)

    # Then the rejected write is applied and removed from the store; the other two still fail and
    # stay, each with one more redrive attempt saying why
    print(f"redrive report {report.to_json()}")
    assert report.counts["applied"] >= 1 and report.counts["still_failing"] >= 2
    entries = entries_for(cloud, prefix)
    assert set(entries) == {big, bad}
    assert [a["reason"] for a in entries[big][1]["redrive_attempts"]] == ["local_write_rejected"]
    assert [a["reason"] for a in entries[bad][1]["redrive_attempts"]] == ["malformed_record"]
    # And every region now agrees on everything but the two records that cannot be replicated, which
    # are still only in the region they were written in
    regions = snapshot(cloud, prefix)
    assert_no_divergence(regions, exclude=(big, bad))
    assert regions[DRIFTED][drifted]["ref"] == {"S": ""}
    for region in REGIONS[1:]:
        assert big not in regions[region] and bad not in regions[region]
