"""The backfill job's handler, run locally against simulated regions the way its state machine runs it."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

import pytest

from ddbrep.tools.aws import Connection
from tests.tools.conftest import MakeTable, put_items, scan_all, stamped

pytestmark = pytest.mark.local

SOURCE, TARGET = "us-east-1", "eu-west-1"


class LambdaContext:
    """Enough time for ``pages`` pages per invocation, then the function must hand over."""

    def __init__(self, pages: int) -> None:
        self.calls = 0
        self.pages = pages

    def get_remaining_time_in_millis(self) -> int:
        self.calls += 1
        return 900_000 if self.calls <= self.pages else 1_000


def test_the_job_copies_every_segment_across_hand_overs(
    conn: Connection, make_table: MakeTable, endpoints: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    # Given a source of 90 items and the job's function environment as the construct writes it
    source, target = make_table(SOURCE), make_table(TARGET)
    put_items(conn, SOURCE, source, [stamped(f"k{i:03d}", i, SOURCE, body="x") for i in range(90)])
    env = {
        "REP_LOCAL_REGION": SOURCE,
        "REP_SOURCE_TABLE": source,
        "REP_TARGETS": json.dumps(
            [{"region": TARGET, "table": target, "role_arn": None, "item_filter": None}]
        ),
        "REP_ATTRIBUTE_PREFIX": "rep_",
        "BACKFILL_PAGE_SIZE": "10",
        "BACKFILL_ITEMS_PER_SECOND": "0",
        "BACKFILL_STOP_MARGIN_MS": "60000",
        "REP_ENDPOINT_URLS": json.dumps(endpoints),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("replicator.backfill_job", None)
    handler = importlib.import_module("replicator.backfill_job")

    # When each of 3 segments is driven like the state machine does: invoke, and again with the
    # returned position until done, each invocation having time for 2 pages only
    invocations = {0: 0, 1: 0, 2: 0}
    results: list[dict[str, Any]] = []
    for segment in invocations:
        event: dict[str, Any] = {"segment": segment, "total_segments": 3}
        while True:
            event = handler.lambda_handler(json.loads(json.dumps(event)), LambdaContext(pages=2))
            invocations[segment] += 1
            if event["done"]:
                results.append(event)
                break

    # Then every item is in the target, the segments handed over, and the counts add up
    assert len(scan_all(conn, TARGET, target)) == 90
    assert sum(invocations.values()) > 3
    assert sum(r["position"]["written"] for r in results) == 90
    assert all(r["position"]["pages"] <= 2 * invocations[r["segment"]] for r in results)
