"""Live replication for the tools' tests: the unmodified Replicator on each region's stream, and writers.

A small stand-in for Lambda's stream polling (the product's full one is ddbrep/local, which builds a
fixed set of regions from a synthesized app): one thread per region reads its table's stream with a
fresh AFTER_SEQUENCE_NUMBER iterator on every poll (docs/LOCAL.md) and calls
``Replicator.process_batch`` with Lambda-shaped records. A batch with failures is retried from its
start. ``set_targets`` is what a deployment that adds a region changes: the replicator's targets.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ddbrep.client import ReplicatedTable
from ddbrep.tools.aws import Connection
from replicator.adapters import AwsPorts
from replicator.core.metadata import AttributeNames
from replicator.engine import Replicator
from replicator.settings import Settings, Target


def lambda_record(raw: Mapping[str, Any], region: str) -> dict[str, Any]:
    dynamodb = dict(raw["dynamodb"])
    created = dynamodb["ApproximateCreationDateTime"]
    dynamodb["ApproximateCreationDateTime"] = (
        created.timestamp() if hasattr(created, "timestamp") else created
    )
    return {
        "eventName": raw["eventName"],
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
    }


class RegionReplicator:
    """The replicator of one region's table, polling its stream in a thread."""

    def __init__(self, conn: Connection, region: str, table: str, targets: Sequence[Target]) -> None:
        self.conn, self.region, self.table = conn, region, table
        self.streams = conn.client("dynamodbstreams", region)
        self.stream_arn = conn.dynamodb(region).describe_table(TableName=table)["Table"]["LatestStreamArn"]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last: str | None = None
        self.idle_polls = 0
        # When the latest poll that found the stream empty started (None: the latest poll found records,
        # or failed): a poll that started before a write may still be reading when it is looked at.
        self.quiet_since: float | None = None
        self.batches = 0
        self.errors: list[str] = []  # what the poll loop survived (it never dies of them)
        self._thread = threading.Thread(target=self._run, name=f"replicator-{region}", daemon=True)
        self._replicator = self._build(targets)

    def _build(self, targets: Sequence[Target]) -> Replicator:
        settings = Settings(
            local_region=self.region,
            topology="mesh",
            source_table=self.table,
            targets=tuple(targets),
            names=AttributeNames(),
            endpoint_urls=dict(self.conn.endpoints),
            max_workers=4,
        )
        return Replicator(settings, AwsPorts(settings, session=self.conn.session()))

    def set_targets(self, targets: Sequence[Target]) -> None:
        """A deployment: the next batch goes to the new targets (the batch in flight finishes first)."""
        replicator = self._build(targets)
        with self._lock:
            old, self._replicator = self._replicator, replicator
        old.close()

    def skip_existing(self) -> RegionReplicator:
        """Replication starts now: what the stream already holds is not replayed."""
        while True:
            records = self._read()
            if not records:
                return self
            self._last = records[-1]["dynamodb"]["SequenceNumber"]

    def start(self) -> RegionReplicator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._replicator.close()

    def _read(self) -> list[dict[str, Any]]:
        shard = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"][0]
        if self._last is None:
            position: dict[str, Any] = {"ShardIteratorType": "TRIM_HORIZON"}
        else:
            position = {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": self._last}
        iterator = self.streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard["ShardId"], **position
        )
        return list(self.streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=100)["Records"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._poll()
            except Exception as err:  # an engine error under load: read again, as Lambda's poller does
                self.errors.append(f"{type(err).__name__}: {err}")
                self.idle_polls = 0
                self.quiet_since = None
                self._stop.wait(0.2)

    def _poll(self) -> None:
        started = time.monotonic()
        records = self._read()
        if not records:
            self.idle_polls += 1
            self.quiet_since = started
            time.sleep(0.05)
            return
        self.idle_polls = 0
        self.quiet_since = None
        with self._lock:
            outcome = self._replicator.process_batch([lambda_record(r, self.region) for r in records])
            self.batches += 1
        if not outcome.failed_sequence_numbers:
            self._last = records[-1]["dynamodb"]["SequenceNumber"]


def wait_drained(replicators: Sequence[RegionReplicator], timeout: float = 60.0) -> None:
    """Until every replicator, in two rounds, made a poll that started after the round began and found
    its stream empty (a poll already reading when a round begins does not count: under load a read
    can take longer than any fixed pause)."""
    deadline = time.monotonic() + timeout

    def quiet_after(mark: float) -> bool:
        while time.monotonic() < deadline:
            quiet = [r.quiet_since for r in replicators]
            if all(q is not None and q >= mark for q in quiet):
                return True
            time.sleep(0.05)
        return False

    # the second round: what the first round's last batches wrote shows up in the other streams
    if quiet_after(time.monotonic()) and quiet_after(time.monotonic()):
        return
    state = [(r.region, r.idle_polls, r.errors[-3:]) for r in replicators]
    raise AssertionError(f"not drained after {timeout}s (region, idle polls, last errors): {state}")


class Writers:
    """Application writes through the client helper: puts and deletes on a shared key space, per region."""

    def __init__(self, conn: Connection, tables: Mapping[str, str], keys: int, seed: int = 1) -> None:
        self.conn, self.keys = conn, keys
        self.tables = dict(tables)
        self.writes = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def start(self, region: str) -> None:
        table = ReplicatedTable(self.conn.dynamodb(region), self.tables[region], region)
        rng = random.Random(self._random.random())
        thread = threading.Thread(target=self._write, args=(table, rng), name=f"writer-{region}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _write(self, table: ReplicatedTable, rng: random.Random) -> None:
        while not self._stop.is_set():
            key = {"pk": {"S": f"k{rng.randrange(self.keys):04d}"}}
            if rng.random() < 0.15:
                table.delete_item(key)
            else:
                table.put_item({**key, "body": {"S": f"{table.region}-{rng.random():.6f}"}})
            with self._lock:
                self.writes += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
