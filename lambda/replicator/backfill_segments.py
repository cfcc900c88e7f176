"""Backfill: copy what a table already holds to its targets (docs/DESIGN.md, Existing data).

Streams carry only changes made after replication starts. A backfill scans one segment of the
source (a parallel scan) page by page and writes every item to every target through the protocol's
conditional last-writer-wins put, so it is safe while live replication runs: whichever of the two
brings the newer version wins, and an item without metadata carries the lowest version, so any live
write beats it.

One segment's work is a :class:`SegmentState` (its position and counts): the CLI checkpoints it to a
file after every page, the deployed job hands it from one Lambda invocation to the next. A crash
resumes from the last finished page; a page done twice only yields stale writes.

No Lambda specifics: the CLI and the deployed job run this same code, each with its own ports.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from replicator.adapters import with_retries
from replicator.core import defaults
from replicator.core.compare import compare
from replicator.core.conflicts import overwrote_own_write
from replicator.core.errors import ErrorKind, ReadFailed
from replicator.core.metadata import (
    AttributeNames,
    Version,
    WireItem,
    is_tombstone,
    mark_origin,
    version_of,
)
from replicator.core.plan import TargetWrite, matches_filter
from replicator.core.wire import from_sdk, item_size_bytes, to_sdk
from replicator.ports import TableWrites
from replicator.settings import Settings, SettingsError, Target, _int, _json, _required, _target

DEFAULT_PAGE_SIZE = 100
MAX_FAILURE_SAMPLES = 10


class BackfillError(RuntimeError):
    """The backfill cannot go on (missing table, access denied, a target down past its retries)."""


# --- positions ---------------------------------------------------------------------------------------


def encode_key(key: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A scan position (boto3's LastEvaluatedKey, binary values as bytes) as JSON: event form."""
    return None if key is None else from_sdk(key)


def decode_key(doc: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The scan position for boto3 again (also reads checkpoints written with the older ``B64`` tag)."""
    if doc is None:
        return None
    return to_sdk({name: {"B": value["B64"]} if "B64" in value else value for name, value in doc.items()})


@dataclass(frozen=True)
class SegmentState:
    """Where one segment of a backfill stands, and what it did so far."""

    segment: int
    total_segments: int
    start_key: Mapping[str, Any] | None = None  # the scan's ExclusiveStartKey (wire format)
    done: bool = False
    pages: int = 0
    scanned: int = 0
    written: int = 0  # target writes applied
    stale: int = 0  # target writes skipped: the target already held a newer version
    unchanged: int = 0  # target writes not needed: the target already held this very copy
    filtered: int = 0  # target writes not needed: the item does not match the target's filter
    failed: int = 0  # target writes rejected for good (see failures)
    failures: tuple[Mapping[str, Any], ...] = ()
    # of the writes applied: those that replaced a write made in the target region itself (possible
    # conflicts the backfill cannot classify, core/conflicts.overwrote_own_write), and samples of them
    overwrote: int = 0
    overwrites: tuple[Mapping[str, Any], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "total_segments": self.total_segments,
            "start_key": encode_key(self.start_key),
            "done": self.done,
            "pages": self.pages,
            "scanned": self.scanned,
            "written": self.written,
            "stale": self.stale,
            "unchanged": self.unchanged,
            "filtered": self.filtered,
            "failed": self.failed,
            "failures": [dict(f) for f in self.failures],
            "overwrote": self.overwrote,
            "overwrites": [dict(o) for o in self.overwrites],
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SegmentState:
        return cls(
            segment=int(doc["segment"]),
            total_segments=int(doc["total_segments"]),
            start_key=decode_key(doc.get("start_key")),
            done=bool(doc.get("done", False)),
            pages=int(doc.get("pages", 0)),
            scanned=int(doc.get("scanned", 0)),
            written=int(doc.get("written", 0)),
            stale=int(doc.get("stale", 0)),
            unchanged=int(doc.get("unchanged", 0)),
            filtered=int(doc.get("filtered", 0)),
            failed=int(doc.get("failed", 0)),
            failures=tuple(doc.get("failures", ())),
            overwrote=int(doc.get("overwrote", 0)),
            overwrites=tuple(doc.get("overwrites", ())),
        )


# --- the write budget --------------------------------------------------------------------------------


class TokenBucket:
    """At most ``rate`` units per second on average, bursts up to ``burst``; thread-safe.

    A caller reserves its units at once (the balance may go negative) and sleeps outside the lock
    until they are paid for, so threads sharing a bucket queue fairly.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.clock, self.sleep = clock, sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self, units: float = 1.0) -> float:
        """Take ``units``; returns the seconds slept waiting for them."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= units
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self.sleep(wait)
        return wait


def write_units(item: Mapping[str, Any]) -> int:
    """Write capacity units of one put of ``item`` (1 per started KB; a failed condition costs the same)."""
    return max(1, -(-item_size_bytes(item) // 1024))


class WriteBudget:
    """Limits the writes to each target: items per second and/or write capacity units per second.

    One bucket per target table, shared by every segment of the run: production traffic on a target
    competes with the backfill's writes to that target only.
    """

    def __init__(
        self,
        items_per_second: float | None = None,
        units_per_second: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.items_per_second, self.units_per_second = items_per_second, units_per_second
        self.clock, self.sleep = clock, sleep
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def _bucket(self, region: str, kind: str, rate: float) -> TokenBucket:
        with self._lock:
            key = (region, kind)
            if key not in self._buckets:
                self._buckets[key] = TokenBucket(rate, clock=self.clock, sleep=self.sleep)
            return self._buckets[key]

    def acquire(self, region: str, item: Mapping[str, Any]) -> None:
        waited = 0.0
        if self.items_per_second:
            waited += self._bucket(region, "items", self.items_per_second).acquire(1)
        if self.units_per_second:
            waited += self._bucket(region, "units", self.units_per_second).acquire(write_units(item))
        if waited:
            with self._lock:
                self.waited_seconds += waited


UNLIMITED = WriteBudget()


# --- one item, one target ----------------------------------------------------------------------------


def backfill_write(
    item: WireItem, target: Target, keys: Sequence[str], names: AttributeNames, source_region: str
) -> TargetWrite | None:
    """The write that copies ``item`` to ``target``, or None when the target's filter excludes it.

    The item goes with the version it carries; one without metadata keeps the lowest version and is
    marked with its source region, so the target's replicator does not adopt it (``mark_origin``).
    Tombstones are copied too: they keep a delete from being undone by an older copy elsewhere.
    A live item that does not match the target's filter is not copied (a partial replica holds only
    matching items; a tombstone for every excluded item would cost a write each for nothing).
    """
    if not is_tombstone(item, names) and not matches_filter(target.item_filter, item):
        return None
    copied = mark_origin(item, source_region, names)
    return TargetWrite(
        region=target.region,
        table=target.table,
        item=copied,
        version=version_of(copied, names),  # a half-stamped item's copy loses its rep_ts: lowest version
        keys={k: item[k] for k in keys},
    )


# --- one segment ---------------------------------------------------------------------------------------


@dataclass
class SegmentWorker:
    """Scans one segment page by page and copies each page to every target.

    ``source`` is a low-level boto3 DynamoDB client; ``target_ports`` writes and reads the targets
    (both thread-safe; one worker per thread is fine). The retry settings are the scan's.
    """

    source: Any
    source_table: str
    source_region: str
    key_names: Sequence[str]
    targets: Sequence[Target]
    target_ports: TableWrites
    names: AttributeNames = field(default_factory=AttributeNames)
    page_size: int = DEFAULT_PAGE_SIZE
    budget: WriteBudget = UNLIMITED
    write_attempts: int = defaults.WRITE_ATTEMPTS
    retry_base_delay_ms: int = defaults.RETRY_BASE_DELAY_MS
    sleep: Callable[[float], None] = time.sleep
    consistent_read: bool = False
    # Read each target's copy first and skip the put when it is already there (a re-run, a resume).
    read_first: bool = False

    def run(
        self,
        state: SegmentState,
        keep_going: Callable[[], bool] = lambda: True,
        on_page: Callable[[SegmentState], None] = lambda _state: None,
    ) -> SegmentState:
        """Process pages until the segment is done or ``keep_going()`` says stop; returns the position."""
        while not state.done and keep_going():
            state = self.process_page(state)
            on_page(state)
        return state

    def process_page(self, state: SegmentState) -> SegmentState:
        """One page: scan it, write it everywhere, return the state after it (input left unchanged).

        Raises BackfillError when a target cannot be written (the state to resume from is the input).
        """
        page = self._scan(state)
        counts = {"written": 0, "stale": 0, "unchanged": 0, "filtered": 0, "failed": 0}
        failures, overwrites, overwrote = list(state.failures), list(state.overwrites), 0
        for sdk_item in page.get("Items", []):
            item = from_sdk(sdk_item)  # a boto3 read: binary values back to event form, once
            for target in self.targets:
                outcome, error, replaced = self._copy(item, target)
                counts[outcome] += 1
                if replaced is not None:
                    overwrote += 1
                    if len(overwrites) < MAX_FAILURE_SAMPLES:
                        overwrites.append(
                            {
                                "target": target.region,
                                "key": {k: item[k] for k in self.key_names},
                                "replaced": replaced._asdict(),
                                "by": version_of(item, self.names)._asdict(),
                            }
                        )
                if outcome == "failed" and len(failures) < MAX_FAILURE_SAMPLES:
                    failures.append(
                        {
                            "target": target.region,
                            "key": {k: item[k] for k in self.key_names},
                            "error": error,
                        }
                    )
        last_key = page.get("LastEvaluatedKey")
        return replace(
            state,
            start_key=last_key,
            done=last_key is None,
            pages=state.pages + 1,
            scanned=state.scanned + len(page.get("Items", [])),
            written=state.written + counts["written"],
            stale=state.stale + counts["stale"],
            unchanged=state.unchanged + counts["unchanged"],
            filtered=state.filtered + counts["filtered"],
            failed=state.failed + counts["failed"],
            failures=tuple(failures),
            overwrote=state.overwrote + overwrote,
            overwrites=tuple(overwrites),
        )

    def _scan(self, state: SegmentState) -> Mapping[str, Any]:
        request: dict[str, Any] = {
            "TableName": self.source_table,
            "Segment": state.segment,
            "TotalSegments": state.total_segments,
            "Limit": self.page_size,
            "ConsistentRead": self.consistent_read,
        }
        if state.start_key is not None:
            request["ExclusiveStartKey"] = dict(state.start_key)
        response: dict[str, Any] = {}

        def call() -> None:
            response.update(self.source.scan(**request))

        result = with_retries(call, self.write_attempts, self.retry_base_delay_ms, self.sleep)
        if result.kind is not None:
            raise BackfillError(
                f"scan of {self.source_table} (segment {state.segment}) failed: {result.error}"
            )
        return response

    def _copy(self, item: WireItem, target: Target) -> tuple[str, str, Version | None]:
        """(outcome, error, the target's own write the copy replaced when it replaced one)."""
        write = backfill_write(item, target, self.key_names, self.names, self.source_region)
        if write is None:
            return "filtered", "", None
        if self.read_first and self._holds(target, write):
            return "unchanged", "", None  # a read (0.5 RCU) instead of a failed conditional put (1+ WCU)
        self.budget.acquire(target.region, write.item)
        result = self.target_ports.put_guarded(
            target,
            write.table,
            write.item,
            write.version,
            return_replaced=True,  # a write made in the target that this copy replaced
            return_stored=True,  # "unchanged" or "stale"
        )
        if result.kind is None:
            replaced = version_of(result.replaced, self.names) if result.replaced else None
            own = replaced if overwrote_own_write(write.version, replaced, target.region) else None
            return "written", "", own
        if result.kind is ErrorKind.STALE:
            return ("unchanged" if self._same(write, result.stored) else "stale"), "", None
        if result.kind is ErrorKind.PERMANENT:
            return "failed", result.error, None
        raise BackfillError(f"writing to {target.table} in {target.region} failed: {result.error}")

    def _holds(self, target: Target, write: TargetWrite) -> bool:
        """The target already holds this copy (an eventually consistent read: a stale answer only costs
        the conditional put it would have made anyway)."""
        try:
            stored = self.target_ports.get_item(target, write.table, write.keys, consistent=False)
        except ReadFailed:
            return False
        return self._same(write, stored)

    def _same(self, write: TargetWrite, stored: WireItem | None) -> bool:
        return stored is not None and compare(write.item, stored, self.names) is None


def first_segments(total_segments: int) -> list[SegmentState]:
    return [SegmentState(segment=i, total_segments=total_segments) for i in range(total_segments)]


def key_names_of(description: Mapping[str, Any]) -> list[str]:
    """The key attribute names of a DescribeTable ``Table`` (partition key first)."""
    schema = sorted(description["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    return [k["AttributeName"] for k in schema]


# --- the deployed job's settings ----------------------------------------------------------------------


@dataclass(frozen=True)
class BackfillJobSettings:
    """The backfill job function's environment (the stack's BackfillJob construct writes it).

    | variable | meaning | default |
    |---|---|---|
    | REP_LOCAL_REGION | region of the source table | required |
    | REP_SOURCE_TABLE | the table to copy | required |
    | REP_TARGETS | JSON list of targets, as for the replicator (region, table, role_arn, filter) | required |
    | REP_ATTRIBUTE_PREFIX / REP_TTL_ATTRIBUTE | metadata attribute names | ``rep_`` |
    | REP_WRITE_ATTEMPTS / REP_RETRY_BASE_DELAY_MS | retries of each write | 4 / 50 |
    | REP_ENDPOINT_URLS | JSON ``{region: url}``; local runs only | ``{}`` |
    | BACKFILL_PAGE_SIZE | items per scan page | 100 |
    | BACKFILL_ITEMS_PER_SECOND | write budget per target, per segment (0: none) | 0 |
    | BACKFILL_STOP_MARGIN_MS | stop taking pages when less time than this remains | 60000 |
    """

    local_region: str
    source_table: str
    targets: tuple[Target, ...]
    names: AttributeNames
    page_size: int = DEFAULT_PAGE_SIZE
    items_per_second: int = 0
    stop_margin_ms: int = 60_000
    write_attempts: int = defaults.WRITE_ATTEMPTS
    retry_base_delay_ms: int = defaults.RETRY_BASE_DELAY_MS
    endpoint_urls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BackfillJobSettings:
        env = os.environ if env is None else env
        raw_targets = _json(env, "REP_TARGETS", None)
        if not isinstance(raw_targets, list) or not raw_targets:
            raise SettingsError("REP_TARGETS must be a non-empty JSON list of targets")
        endpoints = _json(env, "REP_ENDPOINT_URLS", {})
        if not isinstance(endpoints, dict):
            raise SettingsError("REP_ENDPOINT_URLS must be a JSON object {region: url}")
        return cls(
            local_region=_required(env, "REP_LOCAL_REGION"),
            source_table=_required(env, "REP_SOURCE_TABLE"),
            targets=tuple(_target(raw, i) for i, raw in enumerate(raw_targets)),
            names=AttributeNames.with_prefix(
                env.get("REP_ATTRIBUTE_PREFIX", defaults.ATTRIBUTE_PREFIX),
                ttl=env.get("REP_TTL_ATTRIBUTE") or None,
            ),
            page_size=_int(env, "BACKFILL_PAGE_SIZE", DEFAULT_PAGE_SIZE, minimum=1),
            items_per_second=_int(env, "BACKFILL_ITEMS_PER_SECOND", 0),
            stop_margin_ms=_int(env, "BACKFILL_STOP_MARGIN_MS", 60_000),
            write_attempts=_int(env, "REP_WRITE_ATTEMPTS", 4, minimum=1),
            retry_base_delay_ms=_int(env, "REP_RETRY_BASE_DELAY_MS", 50),
            endpoint_urls={str(k): str(v) for k, v in endpoints.items()},
        )

    def ports_settings(self) -> Settings:
        """The replicator's settings shape, for AwsPorts (clients per region, endpoints, assumed roles)."""
        return Settings(
            local_region=self.local_region,
            topology="one-way",
            source_table=self.source_table,
            targets=self.targets,
            names=self.names,
            write_attempts=self.write_attempts,
            retry_base_delay_ms=self.retry_base_delay_ms,
            endpoint_urls=self.endpoint_urls,
        )


class JobPorts(TableWrites, Protocol):
    def dynamodb(self, region: str, role_arn: str | None = None) -> Any: ...


def run_job_step(
    event: Mapping[str, Any],
    remaining_ms: Callable[[], int],
    settings: BackfillJobSettings,
    ports: JobPorts,
    key_names: Sequence[str],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """One invocation of the deployed job: pages of one segment until done or near the time limit.

    ``event``: ``{"segment": i, "total_segments": n, "position": <SegmentState json> | null}``.
    Returns the same shape with the new position and ``done``, which the state machine feeds back in.
    """
    position = event.get("position")
    if position:
        state = SegmentState.from_json(position)
    else:
        state = SegmentState(segment=int(event["segment"]), total_segments=int(event["total_segments"]))
    budget = WriteBudget(items_per_second=settings.items_per_second or None, sleep=sleep)
    worker = SegmentWorker(
        source=ports.dynamodb(settings.local_region),
        source_table=settings.source_table,
        source_region=settings.local_region,
        key_names=key_names,
        targets=settings.targets,
        target_ports=ports,
        names=settings.names,
        page_size=settings.page_size,
        budget=budget,
        write_attempts=settings.write_attempts,
        retry_base_delay_ms=settings.retry_base_delay_ms,
        sleep=sleep,
    )
    slowest_page_ms = 0.0
    started = time.monotonic()

    def keep_going() -> bool:
        # Start a page only if it (and one more, for safety) fits before the margin.
        return remaining_ms() > settings.stop_margin_ms + 2 * slowest_page_ms

    def on_page(_state: SegmentState) -> None:
        nonlocal slowest_page_ms, started
        now = time.monotonic()
        slowest_page_ms = max(slowest_page_ms, (now - started) * 1000)
        started = now

    state = worker.run(state, keep_going, on_page)
    return {
        "segment": state.segment,
        "total_segments": state.total_segments,
        "position": state.to_json(),
        "done": state.done,
    }
