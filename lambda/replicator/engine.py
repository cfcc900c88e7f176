"""One batch of stream records, end to end: decide (pure core), then write (through ports).

parse -> classify -> local actions (adopt, local tombstone) -> coalesce -> plan per target ->
parallel conditional writes with retries -> conflict rule on each applied write -> handoff /
dead-letter -> conflict log (one object per batch, bounded) -> outcome (failures + counts).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from replicator.core import metrics_names as m
from replicator.core.classify import (
    Adopt,
    Context,
    Decision,
    Reject,
    Replicate,
    Skip,
    SkipReason,
    WriteLocalTombstone,
    above_adopted_predecessor,
    classify,
    replaces_unstamped,
)
from replicator.core.coalesce import KeyChange, coalesce
from replicator.core.conflicts import LostConflict, lost_conflict
from replicator.core.errors import ErrorKind, ReadFailed, WriteResult
from replicator.core.metadata import MetadataError, version_of
from replicator.core.plan import TargetWrite, plan_writes
from replicator.core.records import MalformedRecord, StreamRecord, parse_record
from replicator.core.wire import MAX_ITEM_BYTES, WireItem, size_over_limit
from replicator.ports import TableWrites
from replicator.settings import Settings, Target

_SKIP_METRICS = {
    SkipReason.ECHO: m.ECHO_SKIPPED,
    SkipReason.TTL: m.TTL_SKIPPED,
    SkipReason.TOMBSTONE_EXPIRY: m.TOMBSTONE_EXPIRY_SKIPPED,
    SkipReason.NO_CHANGE: m.NO_CHANGE_SKIPPED,
}


class Ports(TableWrites, Protocol):
    """The I/O the engine needs (ports.py, and the stores below); AwsPorts in Lambda, fakes in tests."""

    def handoff(self, target: Target, write: TargetWrite, reason: str) -> None: ...
    def dead_letter(self, entry: Mapping[str, Any]) -> str: ...
    def log_conflicts(self, entries: Sequence[Mapping[str, Any]]) -> str: ...


def conflict_of(
    write: TargetWrite, result: WriteResult, names: Any, at: float, with_image: bool
) -> LostConflict | None:
    """The conflict an applied write settled (core/conflicts.py), or None."""
    replaced = result.replaced
    if replaced is None:
        return None
    loser = version_of(replaced, names)
    if not lost_conflict(write.version, write.base, loser, write.region):
        return None
    return LostConflict(write.keys, loser, write.version, at, replaced if with_image else None)


def conflict_entry(conflict: LostConflict, source_region: str, target_region: str) -> dict[str, Any]:
    return {**conflict.to_json(), "source_region": source_region, "target_region": target_region}


@dataclass
class BatchOutcome:
    """What a batch did: the sequence numbers to report as failures, and the counts behind the metrics."""

    failed_sequence_numbers: set[str] = field(default_factory=set)
    source_counts: Counter[str] = field(default_factory=Counter)
    pair_counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    keys_fanned_out: int = 0  # coalesced changes sent to the targets (one per key)
    conflicts: list[dict[str, Any]] = field(default_factory=list)  # conflict log entries, bounded

    def count(self, metric: str, target: str | None = None, n: int = 1) -> None:
        if target is None:
            self.source_counts[metric] += n
        else:
            self.pair_counts[target][metric] += n


class _Job(NamedTuple):
    """One planned target write; ``refusal``: the answer DynamoDB would give it for its size."""

    key_change: KeyChange
    target: Target
    write: TargetWrite
    refusal: WriteResult | None


class _Answered(NamedTuple):
    """A write the target answered (applied or stale), and when its answer came."""

    job: _Job
    result: WriteResult
    done_at: float


class Replicator:
    """Applies batches of stream records from the local table to every target."""

    def __init__(
        self,
        settings: Settings,
        ports: Ports,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.ports = ports
        self.clock = clock
        self.context = Context(
            local_region=settings.local_region,
            topology=settings.topology,
            names=settings.names,
            tombstone_retention_seconds=settings.tombstone_retention_seconds,
            max_clock_skew_seconds=settings.max_clock_skew_seconds,
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="fanout")

    # --- the batch ---------------------------------------------------------------------------------

    def process_batch(self, raw_records: Sequence[Mapping[str, Any]]) -> BatchOutcome:
        outcome = BatchOutcome()
        outcome.count(m.RECORDS_RECEIVED, n=len(raw_records))
        context = dataclasses.replace(self.context, now_us=int(self.clock() * 1_000_000))
        decided: list[tuple[StreamRecord, Decision]] = []
        for raw in raw_records:
            parsed = self._decide(raw, context, outcome)
            if parsed is not None:
                decided.append(parsed)
        replicate: list[tuple[str, Replicate]] = []
        raw_by_sequence: dict[str, Mapping[str, Any]] = {}
        for record, decision in decided:
            raw_by_sequence[record.sequence_number] = record.raw
            if isinstance(decision, Skip):
                outcome.count(_SKIP_METRICS[decision.reason])
            elif isinstance(decision, Reject):
                outcome.count(m.FUTURE_VERSIONS_REJECTED)
                self._dead_letter(
                    {"reason": decision.reason.value, "error": decision.message, "record": record.raw},
                    record.sequence_number,
                    outcome,
                    target=None,
                )
            elif isinstance(decision, Replicate):
                replicate.append((record.sequence_number, decision))
            else:
                self._apply_locally(record, decision, outcome)
        changes = coalesce(replicate)
        outcome.count(m.RECORDS_COALESCED, n=len(replicate) - len(changes))
        outcome.keys_fanned_out = len(changes)
        self._fan_out(changes, raw_by_sequence, outcome)
        self._log_conflicts(outcome)
        return outcome

    def _log_conflicts(self, outcome: BatchOutcome) -> None:
        """One object for the batch's conflicts; a failure to store it only loses the log entries."""
        if not outcome.conflicts:
            return
        try:
            self.ports.log_conflicts(outcome.conflicts)
        except Exception:
            for entry in outcome.conflicts:
                outcome.count(m.CONFLICTS_NOT_LOGGED, entry["target_region"])
            outcome.conflicts = []

    def _decide(
        self, raw: Mapping[str, Any], context: Context, outcome: BatchOutcome
    ) -> tuple[StreamRecord, Decision] | None:
        try:
            record = parse_record(raw)
            return record, classify(record, context)
        except (MalformedRecord, MetadataError) as err:
            outcome.count(m.MALFORMED_RECORDS)
            self._dead_letter(
                {"reason": "malformed_record", "error": str(err), "record": raw},
                sequence_number_of(raw),
                outcome,
                target=None,
            )
            return None

    def _dead_letter(
        self,
        entry: dict[str, Any],
        failure_sequence_number: str | None,
        outcome: BatchOutcome,
        target: str | None,
    ) -> None:
        entry = {
            **entry,
            "source_region": self.settings.local_region,
            "target_region": target,
            "sequence_number": failure_sequence_number,
            "dead_lettered_at": self.clock(),
        }
        try:
            self.ports.dead_letter(entry)
            # Per pair for a target's write; per source for a record of its own (malformed, rejected locally).
            outcome.count(m.DEAD_LETTERED, target)
        except Exception:
            if failure_sequence_number is None:
                # Lambda can only resume from a sequence number: fail the whole batch instead.
                raise
            if target is not None:  # a target write that could be neither applied nor parked
                outcome.count(m.HANDOFF_FAILED, target)
            outcome.failed_sequence_numbers.add(failure_sequence_number)

    # --- local actions (mesh): adopt unstamped writes, tombstone hard deletes ----------------------

    def _apply_locally(
        self, record: StreamRecord, decision: Adopt | WriteLocalTombstone, outcome: BatchOutcome
    ) -> None:
        table = self.settings.source_table
        if replaces_unstamped(record, self.settings.names):
            try:
                stored = self.ports.get_item(None, table, record.keys, consistent=True)
            except ReadFailed:
                outcome.count(m.LOCAL_WRITE_FAILED)
                outcome.failed_sequence_numbers.add(record.sequence_number)
                return
            decision = above_adopted_predecessor(decision, record, stored, self.context)
        result = too_large(decision.item) or self.ports.put_guarded(
            None, table, decision.item, decision.version
        )
        applied_metric = m.RECORDS_ADOPTED if isinstance(decision, Adopt) else m.LOCAL_TOMBSTONES_WRITTEN
        if result.kind is None:
            outcome.count(applied_metric)
        elif result.kind is ErrorKind.STALE:
            outcome.count(m.LOCAL_WRITE_SUPERSEDED)
        elif result.kind is ErrorKind.PERMANENT:
            outcome.count(m.LOCAL_WRITE_REJECTED)
            self._dead_letter(
                {"reason": "local_write_rejected", "error": result.error, "record": record.raw},
                record.sequence_number,
                outcome,
                target=None,
            )
        else:
            # Our own region's table is failing: let Lambda retry from this record.
            outcome.count(m.LOCAL_WRITE_FAILED)
            outcome.failed_sequence_numbers.add(record.sequence_number)

    # --- fan-out to every target ---------------------------------------------------------------------

    def _fan_out(
        self,
        changes: Mapping[str, KeyChange],
        raw_by_sequence: Mapping[str, Mapping[str, Any]],
        outcome: BatchOutcome,
    ) -> None:
        lock = threading.Lock()
        down: dict[str, str] = {}  # target region -> why: later writes of this batch go straight to handoff
        jobs: list[_Job] = []
        refusals: dict[int, WriteResult | None] = {}  # id(item) -> refused before sending for its size
        targets = self.settings.targets
        destinations = [(target.region, target.table, target.item_filter) for target in targets]
        for key_change in changes.values():
            planned = plan_writes(
                key_change, destinations, self.settings.tombstone_retention_seconds, self.settings.names
            )
            for target, (write, excluded) in zip(targets, planned, strict=True):
                if excluded:  # sent as a tombstone: counted here, and below as the write it is
                    outcome.count(m.FILTERED_OUT, target.region)
                if id(write.item) not in refusals:  # targets share the item objects: measured once
                    refusals[id(write.item)] = too_large(write.item)
                jobs.append(_Job(key_change, target, write, refusals[id(write.item)]))

        def run(job: _Job, answered: list[_Answered]) -> None:
            """One write; an answered one (applied or stale) is settled after the fan-out, on the calling
            thread and without the lock; a failed one here at once (its handoff is I/O, and its target
            must be marked down before the next write to it)."""
            region = job.target.region
            if region in down:
                result = WriteResult(ErrorKind.RETRYABLE, 0, f"skipped: {down[region]}")
            else:
                result = job.refusal or self.ports.put_guarded(
                    job.target, job.write.table, job.write.item, job.write.version, return_replaced=True
                )
            if result.kind is None or result.kind is ErrorKind.STALE:
                answered.append(_Answered(job, result, self.clock()))
            else:
                self._settle_failure(job, result, raw_by_sequence, outcome, lock, down)

        answered: list[_Answered] = []
        if self.settings.max_workers == 1 or len(jobs) == 1:
            for job in jobs:  # no pool to hand work to: run in order, on this thread
                run(job, answered)
        else:
            # A fixed set of workers drains one queue: one task per worker, not one per write; each
            # keeps its own list of answered writes, so the common path shares nothing but the queue.
            pending = deque(jobs)

            def drain() -> list[_Answered]:
                mine: list[_Answered] = []
                while True:
                    try:
                        job = pending.popleft()
                    except IndexError:
                        return mine
                    run(job, mine)

            workers = [self._pool.submit(drain) for _ in range(min(self.settings.max_workers, len(jobs)))]
            for worker in workers:
                answered.extend(worker.result())
        self._settle_answered(answered, outcome)

    def _settle_answered(self, answered: Sequence[_Answered], outcome: BatchOutcome) -> None:
        """Count the writes the targets answered (applied or stale) and apply the conflict rule.

        The counts are tallied here and recorded once per metric and region (the same totals as one
        ``outcome.count`` per write, in the same order of first occurrence).
        """
        names = self.settings.names
        tally: Counter[tuple[str, str]] = Counter()
        for job, result, done_at in answered:
            region, write = job.target.region, job.write
            tally[m.TARGET_WRITE_RETRIES, region] += result.retries
            if result.kind is ErrorKind.STALE:
                tally[m.STALE_SKIPPED, region] += 1
                continue
            tally[m.RECORDS_REPLICATED, region] += 1
            conflict = conflict_of(write, result, names, done_at, self.settings.conflict_log_images)
            if conflict is not None:
                tally[m.CONFLICTS_LOST, region] += 1
                if len(outcome.conflicts) < self.settings.conflict_log_max_records:
                    outcome.conflicts.append(conflict_entry(conflict, self.settings.local_region, region))
                else:
                    tally[m.CONFLICTS_NOT_LOGGED, region] += 1
            if write.is_tombstone(names):
                tally[m.TOMBSTONES_WRITTEN, region] += 1
            outcome.latencies_ms[region].append(max(0.0, done_at * 1000 - write.version.ts / 1000))
        for (metric, region), n in tally.items():
            outcome.count(metric, region, n)

    def _settle_failure(
        self,
        job: _Job,
        result: WriteResult,
        raw_by_sequence: Mapping[str, Mapping[str, Any]],
        outcome: BatchOutcome,
        lock: threading.Lock,
        down: dict[str, str],
    ) -> None:
        """A write the target refused for good (dead-lettered) or that still fails (handed off)."""
        key_change, target, write = job.key_change, job.target, job.write
        region, kind = target.region, result.kind
        assert kind is not None and kind is not ErrorKind.STALE  # answered: _settle_answered
        with lock:
            outcome.count(m.TARGET_WRITE_RETRIES, region, result.retries)
        if kind is ErrorKind.PERMANENT:
            raw = raw_by_sequence.get(key_change.winning_sequence_number)
            with lock:
                self._dead_letter(
                    {
                        "reason": "target_write_rejected",
                        "error": result.error,
                        "write": write.to_json(),
                        "record": raw,
                    },
                    key_change.earliest_sequence_number,
                    outcome,
                    target=region,
                )
            return
        # Retryable failures that outlived their retries, and configuration faults: hand off.
        with lock:
            down.setdefault(region, result.error)
        try:
            self.ports.handoff(target, write, f"{kind.value}: {result.error}")
            with lock:
                outcome.count(m.HANDED_OFF, region)
        except Exception:
            with lock:
                outcome.count(m.HANDOFF_FAILED, region)
                outcome.failed_sequence_numbers.add(key_change.earliest_sequence_number)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def too_large(item: WireItem) -> WriteResult | None:
    """The answer DynamoDB would give a put of ``item`` over its size limit, without sending it."""
    size = size_over_limit(item)
    if size is None:
        return None
    return WriteResult(
        ErrorKind.PERMANENT,
        0,
        f"ItemTooLarge: the item is {size} bytes with its replication metadata; DynamoDB's limit is "
        f"{MAX_ITEM_BYTES}. Fix: shrink the item at the source (the metadata needs about 100 bytes)",
    )


def sequence_number_of(raw: Any) -> str | None:
    """The record's sequence number if it has a valid one (hostile records may have none)."""
    try:
        value = raw["dynamodb"]["SequenceNumber"]
    except (KeyError, TypeError):
        return None
    return value if isinstance(value, str) and value.isdigit() else None
