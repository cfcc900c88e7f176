"""A local stand-in for Lambda's event source mapping on a DynamoDB stream.

It reads the mapping's settings from the synthesized template (templates.StreamMappingSpec) and
behaves as Lambda documents it:

- polls every shard about every 250 ms (again at once while records keep coming), with a fresh
  AFTER_SEQUENCE_NUMBER iterator each time (moto orphans held iterators after a cancelled transaction);
- applies the filter criteria (patterns OR-ed) before batching; records filtered out are
  checkpointed past, never delivered;
- batches up to BatchSize records (and 6 MB), waiting up to MaximumBatchingWindowInSeconds;
- on success checkpoints past the batch; with ReportBatchItemFailures, checkpoints before the LOWEST
  reported sequence number and retries the rest of the batch; an empty or null list is success; an
  identifier that is empty, null or not in the batch fails the whole batch;
- on a function error (exception, timeout, crash) retries the batch, or with
  BisectBatchOnFunctionError splits it in two and processes the halves in order (a split does not
  count as a retry);
- after MaximumRetryAttempts retries, or for records older than MaximumRecordAgeInSeconds, sends the
  batch's description to the on-failure destination and moves on.

Whatever fails in the stand-in itself never stops it (resilience.run_forever): an engine error or an
unexpected exception is logged, counted and backed off; a record it cannot turn into Lambda's event
is logged, counted and skipped, so the records after it are still delivered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from ddbrep.local import streams
from ddbrep.local.limits import MAX_SYNC_PAYLOAD_BYTES
from ddbrep.local.resilience import ErrorListener, LoopStats, run_forever
from ddbrep.local.templates import INFINITE, StreamMappingSpec
from ddbrep.local.worker import FunctionWorker, Invocation

LOG = logging.getLogger("ddbrep.local.mapping")
_ENGINE_ERRORS = (ClientError, BotoCoreError, OSError)
POLL_INTERVAL_SECONDS = 0.25
# The batch's JSON is {"Records": [r1, r2, ...]}: the envelope, and ", " between records.
_EVENT_ENVELOPE_BYTES = len('{"Records": []}')
_SEPARATOR_BYTES = len(", ")
GET_RECORDS_LIMIT = 1000
RETRY_BACKOFF_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _load_matcher() -> Callable[[Any, Any], bool]:
    from replicator.core.pattern import matches  # the product's event-pattern matcher (documented subset)

    return matches


class FailureDestination(Protocol):
    def send(self, document: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        """Deliver the invocation record of a discarded batch (``event``: what the function was sent)."""


class BatchObserver(Protocol):
    def on_batch(
        self, poller: StreamPoller, batch: Sequence[streams.Record], invocation: Invocation
    ) -> None: ...


class TtlRegistry(Protocol):
    def identity_for(self, table: str, raw: Mapping[str, Any]) -> Mapping[str, str] | None: ...


@dataclass
class StreamSource:
    """Where a mapping reads: the table's stream in its region's engine."""

    region: str
    table: str
    stream_arn: str
    client: Any  # boto3 dynamodbstreams client of the region's engine


@dataclass
class PollerStats(LoopStats):
    polls: int = 0
    records_read: int = 0
    records_filtered_out: int = 0
    engine_artifacts_dropped: int = 0
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    bisections: int = 0
    records_delivered: int = 0
    records_discarded: int = 0
    records_unreadable: int = 0  # engine records the stand-in could not turn into Lambda's event: skipped
    engine_errors: int = 0


@dataclass
class _Batch:
    """Bookkeeping of the batch being worked on: bisected segments and retries of the head segment."""

    segments: list[int] = field(default_factory=list)  # lengths of pending bisected parts
    retries: int = 0


def parse_batch_item_failures(payload: Any, sequence_numbers: Sequence[str]) -> int | str | None:
    """Where a batch failed, from the function's answer (ReportBatchItemFailures semantics).

    Returns None for complete success, the index of the lowest failed record, or "invalid" when the
    answer makes Lambda treat the whole batch as failed.
    """
    if not payload or not isinstance(payload, Mapping):
        return None
    failures = payload.get("batchItemFailures")
    if not failures:
        return None
    if not isinstance(failures, list):
        return "invalid"
    positions = {seq: i for i, seq in enumerate(sequence_numbers)}
    indexes = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not identifier or identifier not in positions:
            return "invalid"
        indexes.append(positions[identifier])
    return min(indexes)


class StreamPoller:
    """Polls one table's stream and invokes one function, like one Lambda event source mapping."""

    def __init__(
        self,
        spec: StreamMappingSpec,
        source: StreamSource,
        function: FunctionWorker,
        *,
        destination: FailureDestination | None = None,
        observer: BatchObserver | None = None,
        ttl: TtlRegistry | None = None,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        max_retry_backoff: float | None = None,
        whole_second_timestamps: bool = True,
        clock: Callable[[], float] = time.time,
        on_error: ErrorListener | None = None,
        mapping_id: str | None = None,
    ) -> None:
        """``max_retry_backoff``: the longest wait between retries of a failing batch (None: as
        RETRY_BACKOFF_SECONDS; a cap is local time compression)."""
        self.spec = spec
        self.source = source
        self.function = function
        self.destination = destination
        self.observer = observer
        self.ttl = ttl
        self.poll_interval = poll_interval
        self.max_retry_backoff = max_retry_backoff
        self.whole_second_timestamps = whole_second_timestamps
        self.clock = clock
        self.on_error = on_error
        # the mapping's EventSourceMappingUUID (its metrics' dimension); None: its name stands in
        self.mapping_id = mapping_id
        self.stats = PollerStats()
        self._matches = _load_matcher() if spec.filters else None
        self._positions: dict[str, str | None] = {}  # shard -> last consumed sequence number
        self._exhausted: set[str] = set()
        self._buffer: list[streams.Record] = []
        self._buffer_since: float | None = None
        self._batch = _Batch()
        self._stop = threading.Event()
        # Set: the mapping is disabled (records wait in the stream; enabling it reads on from there).
        self.paused = threading.Event()
        self._thread: threading.Thread | None = None
        self._quiet_since: float | None = None
        self._last_read = 0  # engine records the latest poll consumed
        self._holding = False
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # held for one poll iteration (read, invoke, checkpoint)

    @property
    def name(self) -> str:
        return f"{self.source.region}/{self.spec.logical_id}"

    # --- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self.spec.starting_position == "LATEST":
            self._skip_to_latest()
        self._thread = threading.Thread(target=self._run, name=f"esm:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def pause(self) -> None:
        """Disable the mapping. Returns once no poll is in flight: a record written after this
        returns is not delivered until ``resume`` (what a disabled event source mapping does)."""
        self.paused.set()
        with self._poll_lock:  # the iteration that may have read past the flag finishes first
            pass

    def resume(self) -> None:
        """Enable the mapping again: it reads on from its checkpoint."""
        self.paused.clear()

    def quiet_since(self) -> float | None:
        """When the poller last found the stream read to its end with nothing pending (None: busy)."""
        with self._lock:
            return self._quiet_since

    def busy_reason(self, recent_seconds: float = 2.0) -> str | None:
        """Why the mapping is not drained, in words (None: a poll of the last ``recent_seconds`` found
        nothing to do)."""
        now = self.clock()
        with self._lock:
            if self._quiet_since is not None and now - self._quiet_since < recent_seconds:
                return None
            reasons = []
            if self._quiet_since is not None:
                age = now - self._quiet_since
                reasons.append(f"no poll finished since one {age:.1f} s ago found it empty")
            if self.paused.is_set():
                reasons.append("disabled")
            if self._buffer:
                reasons.append(f"{len(self._buffer)} records buffered")
            if self._holding:
                reasons.append("holding a key-only INSERT")
            if self._batch.segments or self._batch.retries:
                reasons.append(f"batch retries {self._batch.retries}, segments {self._batch.segments}")
        if self._thread is not None and not self._thread.is_alive():
            reasons.append("thread dead")
        if self.stats.consecutive_errors:
            reasons.append(f"{self.stats.consecutive_errors} errors in a row, last {self.stats.last_error}")
        stats = self.stats
        reasons.append(
            f"last poll consumed {self._last_read} records; in all polls {stats.polls}, records read "
            f"{stats.records_read} (filtered out {stats.records_filtered_out}, engine artifacts "
            f"{stats.engine_artifacts_dropped}, unreadable {stats.records_unreadable}), invocations "
            f"{stats.invocations}, positions {self._positions}"
        )
        return "; ".join(reasons)

    def _run(self) -> None:
        run_forever(
            f"stream mapping {self.name}",
            self._poll_counting_engine_errors,
            self._stop,
            interval=self.poll_interval,
            stats=self.stats,
            on_error=self.on_error,
            expected=_ENGINE_ERRORS,
        )

    def _poll_counting_engine_errors(self) -> bool:
        try:
            return self.poll_once()
        except _ENGINE_ERRORS:
            # moto answers 500 to a bad iterator or an out-of-range sequence number: read again later
            self.stats.engine_errors += 1
            raise

    # --- one iteration --------------------------------------------------------------------------------

    def poll_once(self) -> bool:
        """Read new records, invoke if a batch is ready. True when there may be more work right away."""
        with self._poll_lock:
            return self._poll_once()

    def _poll_once(self) -> bool:
        poll_started = self.clock()
        if self.paused.is_set():
            with self._lock:
                self._quiet_since = None  # not drained: records may be waiting in the stream
            return False
        read = self._read() if len(self._buffer) < 2 * self.spec.batch_size else 0
        self._last_read = read
        invoked = False
        if self._buffer and self._batch_ready():
            self._process_batch()
            invoked = True
        with self._lock:
            quiet = read == 0 and not self._buffer and not invoked and not self._holding
            self._quiet_since = poll_started if quiet else None
        return invoked or read > 0

    def _batch_ready(self) -> bool:
        if self._batch.segments or self._batch.retries:
            return True
        if len(self._buffer) >= self.spec.batch_size or self.spec.batching_window_seconds <= 0:
            return True
        since = self._buffer_since or self.clock()
        return self.clock() - since >= self.spec.batching_window_seconds

    def _shards(self) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StreamArn": self.source.stream_arn}
        for _page in range(100):
            description = self.source.client.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            kwargs["ExclusiveStartShardId"] = last
        return shards

    def _read(self) -> int:
        """Read each open shard once (parents before children); buffer what passes the filters.

        Returns how many engine records were consumed (delivered, filtered out or dropped).
        """
        self.stats.polls += 1
        self._holding = False
        consumed = 0
        for shard in self._shards():
            shard_id = shard["ShardId"]
            parent = shard.get("ParentShardId")
            if shard_id in self._exhausted or (
                parent and parent in self._positions and parent not in self._exhausted
            ):
                continue
            consumed += self._read_shard(shard_id, shard)
        return consumed

    def _iterator(self, shard_id: str) -> str:
        position = self._positions.get(shard_id)
        kwargs: dict[str, Any] = {"StreamArn": self.source.stream_arn, "ShardId": shard_id}
        if position is None:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            kwargs["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
            kwargs["SequenceNumber"] = position
        return str(self.source.client.get_shard_iterator(**kwargs)["ShardIterator"])

    def _read_shard(self, shard_id: str, shard: Mapping[str, Any]) -> int:
        self._positions.setdefault(shard_id, None)
        response = self.source.client.get_records(
            ShardIterator=self._iterator(shard_id), Limit=GET_RECORDS_LIMIT
        )
        raws = response.get("Records", [])
        if not raws:
            if response.get("NextShardIterator") is None and "EndingSequenceNumber" in shard.get(
                "SequenceNumberRange", {}
            ):
                self._exhausted.add(shard_id)
            return 0
        self.stats.records_read += len(raws)
        cleaned = streams.drop_engine_artifacts(raws, now=self.clock())
        self.stats.engine_artifacts_dropped += cleaned.dropped
        if cleaned.last_consumed is not None:
            self._positions[shard_id] = cleaned.last_consumed
        for raw in cleaned.records:
            record = self._to_record(raw, shard_id)
            if record is None:
                continue
            if not self._passes_filters(record.event):
                self.stats.records_filtered_out += 1
                continue
            if not self._buffer:
                self._buffer_since = self.clock()
            self._buffer.append(record)
        held = cleaned.last_consumed != raws[-1]["dynamodb"]["SequenceNumber"]
        self._holding = self._holding or held
        return len(raws) - (1 if held else 0)

    def _to_record(self, raw: Mapping[str, Any], shard_id: str) -> streams.Record | None:
        """Lambda's event for one engine record; None (logged, counted, skipped) if there is none."""
        try:
            identity = self.ttl.identity_for(self.source.table, raw) if self.ttl else None
            return streams.to_lambda_record(
                raw,
                region=self.source.region,
                stream_arn=self.source.stream_arn,
                shard_id=shard_id,
                whole_seconds=self.whole_second_timestamps,
                user_identity=identity,
            )
        except Exception as error:
            self.stats.records_unreadable += 1
            self.stats.record_error(error, self.clock())
            sequence = (raw.get("dynamodb") or {}).get("SequenceNumber")
            LOG.error(
                "stream mapping %s skips record %s: it cannot be delivered as Lambda would (%s)",
                self.name,
                sequence,
                error,
                exc_info=True,
            )
            if self.on_error is not None:
                self.on_error(f"stream mapping {self.name}", self.stats)
            return None

    def _passes_filters(self, event: Mapping[str, Any]) -> bool:
        if self._matches is None:
            return True
        return any(self._matches(pattern, event) for pattern in self.spec.filters)

    def _skip_to_latest(self) -> None:
        """StartingPosition LATEST: begin after whatever the stream holds when the mapping starts."""
        for shard in self._shards():
            shard_id = shard["ShardId"]
            self._positions[shard_id] = None
            for _page in range(10_000):
                response = self.source.client.get_records(
                    ShardIterator=self._iterator(shard_id), Limit=GET_RECORDS_LIMIT
                )
                raws = response.get("Records", [])
                if not raws:
                    break
                self._positions[shard_id] = raws[-1]["dynamodb"]["SequenceNumber"]

    # --- invoking -------------------------------------------------------------------------------------

    def _next_batch(self) -> list[streams.Record]:
        limit = self._batch.segments[0] if self._batch.segments else self.spec.batch_size
        batch: list[streams.Record] = []
        size = _EVENT_ENVELOPE_BYTES
        shard = self._buffer[0].shard_id if self._buffer else ""
        for record in self._buffer[:limit]:
            record_size = record.payload_bytes + (_SEPARATOR_BYTES if batch else 0)
            if batch and size + record_size > MAX_SYNC_PAYLOAD_BYTES:
                break
            if record.shard_id != shard:
                break  # a batch holds records of one shard, as Lambda's do
            batch.append(record)
            size += record_size
        return batch

    def _advance(self, count: int, *, keep_retries: bool = False) -> None:
        """Checkpoint past the first ``count`` buffered records."""
        del self._buffer[:count]
        if self._batch.segments:
            self._batch.segments[0] -= count
            if self._batch.segments[0] <= 0:
                self._batch.segments.pop(0)
        if not keep_retries:
            self._batch.retries = 0
        self._buffer_since = self.clock() if self._buffer else None

    def _process_batch(self) -> None:
        if self._discard_expired():
            return
        batch = self._next_batch()
        if not batch:
            return
        invocation = self.function.invoke({"Records": [record.event for record in batch]})
        self.stats.invocations += 1
        if self.observer is not None:
            self.observer.on_batch(self, batch, invocation)
        failed_at: int | str | None = "invalid"
        if invocation.ok:
            failed_at = None
            if self.spec.report_batch_item_failures:
                failed_at = parse_batch_item_failures(invocation.payload, [r.sequence_number for r in batch])
        if failed_at is None:
            self.stats.records_delivered += len(batch)
            self._advance(len(batch))
            return
        if isinstance(failed_at, int):
            # Checkpoint before the lowest failure; retry only the rest of this batch.
            self.stats.partial_failures += 1
            self.stats.records_delivered += failed_at
            self._advance(failed_at, keep_retries=True)
            if not self._batch.segments:
                self._batch.segments = [len(batch) - failed_at]
            self._retry_or_discard(batch[failed_at:], invocation)
            return
        self.stats.function_errors += 1
        rest = self._batch.segments[1:]
        if self.spec.bisect_on_error and len(batch) > 1:
            self.stats.bisections += 1  # a split is not a retry
            half = (len(batch) + 1) // 2
            self._batch.segments = [half, len(batch) - half, *rest]
            return
        self._batch.segments = [len(batch), *rest]
        self._retry_or_discard(batch, invocation)

    def _retry_or_discard(self, batch: Sequence[streams.Record], invocation: Invocation) -> None:
        maximum = self.spec.max_retry_attempts
        if maximum != INFINITE and self._batch.retries >= maximum:
            self._discard(batch, "RetryAttemptsExhausted", invocation)
            return
        delay = RETRY_BACKOFF_SECONDS[min(self._batch.retries, len(RETRY_BACKOFF_SECONDS) - 1)]
        if self.max_retry_backoff is not None:
            delay = min(delay, self.max_retry_backoff)
        self._batch.retries += 1
        self._stop.wait(delay)

    def _discard_expired(self) -> bool:
        """MaximumRecordAgeInSeconds: records at the head older than that go to the destination."""
        maximum = self.spec.max_record_age_seconds
        if maximum == INFINITE:
            return False
        now = self.clock()
        expired = 0
        for record in self._buffer:
            if now - record.created_at <= maximum:
                break
            expired += 1
        if not expired:
            return False
        self._discard(self._buffer[:expired], "EventAgeExceeded", None)
        return True

    def _discard(
        self, batch: Sequence[streams.Record], condition: str, invocation: Invocation | None
    ) -> None:
        """Give up on ``batch``: describe it to the on-failure destination and checkpoint past it."""
        self.stats.records_discarded += len(batch)
        if self.destination is not None:
            event = {"Records": [record.event for record in batch]}
            self.destination.send(self.failure_document(batch, condition, invocation), event)
        on_discard = getattr(self.observer, "on_discard", None)
        if on_discard is not None:  # Lambda's OnFailureDestinationDeliveredEventCount / DroppedEventCount
            on_discard(self, len(batch), delivered=self.destination is not None)
        self._advance(len(batch))

    def failure_document(
        self, batch: Sequence[streams.Record], condition: str, invocation: Invocation | None
    ) -> dict[str, Any]:
        """The invocation record Lambda sends to an on-failure destination for a stream batch.

        As the Lambda Developer Guide's example for DynamoDB shows it: ``timestamp`` with milliseconds,
        the arrival times in whole seconds (DynamoDB's ApproximateCreationDateTime), the batch's own
        shard, sequence numbers as strings.
        """
        first, last = batch[0], batch[-1]
        return {
            "requestContext": {
                "requestId": invocation.request_id if invocation else str(uuid.uuid4()),
                "functionArn": self.function.config.arn,
                "condition": condition,
                "approximateInvokeCount": self._batch.retries + 1,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "" if invocation is None or invocation.ok else "Unhandled",
            },
            "version": "1.0",
            "timestamp": _iso_milliseconds(self.clock()),
            "DDBStreamBatchInfo": {
                "shardId": first.shard_id,
                "startSequenceNumber": first.sequence_number,
                "endSequenceNumber": last.sequence_number,
                "approximateArrivalOfFirstRecord": _iso_seconds(first.created_at),
                "approximateArrivalOfLastRecord": _iso_seconds(last.created_at),
                "batchSize": len(batch),
                "streamArn": self.source.stream_arn,
            },
        }


def mapping_uuid(region: str, account: str, logical_id: str) -> str:
    """A stable identifier for a local mapping, where AWS would name the mapping by its UUID."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ddbrep-local:{account}:{region}:{logical_id}"))


def _iso_seconds(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _iso_milliseconds(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


def s3_failure_key(mapping_id: str, shard_id: str, at: float) -> str:
    """Lambda's key for an invocation record in an S3 on-failure destination:
    ``aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<random UUID>``."""
    moment = time.gmtime(at)
    return (
        f"aws/lambda/{mapping_id}/{shard_id}/{time.strftime('%Y/%m/%d', moment)}/"
        f"{time.strftime('%Y-%m-%dT%H.%M.%S', moment)}-{uuid.uuid4()}"
    )


class SqsDestination:
    """On-failure destination: a local SQS queue (the invocation record only, not the records)."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self.client, self.queue_url = client, queue_url

    def send(self, document: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(document))


class S3Destination:
    """On-failure destination: a local S3 bucket. Lambda writes one object per discarded batch: the
    invocation record plus the batch it invoked the function with (``payload``)."""

    def __init__(
        self, client: Any, bucket: str, mapping_id: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.client, self.bucket, self.mapping_id, self.clock = client, bucket, mapping_id, clock

    def send(self, document: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        key = s3_failure_key(self.mapping_id, document["DDBStreamBatchInfo"]["shardId"], self.clock())
        body = json.dumps({**document, "payload": event}).encode()
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)  # a failure: the poller retries
