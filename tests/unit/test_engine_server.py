"""The region engine's stream numbering (ddbrep/local/engine_server.py): unique under concurrent writes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from moto.dynamodb.models import table as moto_table

from ddbrep.local.engine_server import serialize_stream_appends


class SlowRecord:
    """moto's StreamRecord, slow to build: widens the window between numbering and appending."""

    def __init__(self, _table: Any, _view: Any, _event: Any, _old: Any, _new: Any, seq: int) -> None:
        time.sleep(0.0005)
        self.seq = seq


def sequence_numbers_of_concurrent_adds(threads: int = 8, each: int = 40) -> list[int]:
    table = SimpleNamespace(
        stream_specification={"StreamViewType": "NEW_AND_OLD_IMAGES"}, lambda_event_source_mappings={}
    )
    shard = moto_table.StreamShard("123456789012", table)  # type: ignore[arg-type]

    def write() -> None:
        for _ in range(each):
            shard.add(None, None)

    workers = [threading.Thread(target=write) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [record.seq for record in shard.items]


@pytest.fixture
def slow_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_table, "StreamRecord", SlowRecord)
    monkeypatch.setattr(moto_table.StreamShard, "add", moto_table.StreamShard.add)  # restored after


def test_moto_alone_numbers_two_concurrent_writes_the_same(slow_records: None) -> None:
    # the engine deviation the server fixes: without it, concurrent writes share sequence numbers
    numbers = sequence_numbers_of_concurrent_adds()
    assert any(count > 1 for count in Counter(numbers).values())


def test_the_region_server_numbers_every_write_once_in_order(slow_records: None) -> None:
    serialize_stream_appends()
    numbers = sequence_numbers_of_concurrent_adds()
    assert len(numbers) == 320
    assert numbers == sorted(set(numbers))  # unique, increasing in stream order, none skipped
    assert numbers[-1] - numbers[0] == len(numbers) - 1
