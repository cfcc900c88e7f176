"""Helpers of the chaos tests: a fault timeline, workload ledgers, the streams as a record of every
version created, and the invariants' checks (convergence as verify sees it, last writer wins).

Everything here is bounded: every loop has a deadline or a page limit, every thread stops by itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import signal
import sys
import threading
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddbrep.local import streams
from ddbrep.local.cloud import LocalCloud, LocalFunction
from ddbrep.local.mapping import StreamPoller
from ddbrep.tools.aws import Connection
from ddbrep.tools.conflicts import list_conflicts
from ddbrep.tools.redrive import Redrive, settings_from_environment
from replicator.adapters import AwsPorts
from replicator.core import metrics_names as m
from replicator.core.compare import compare
from replicator.core.conflicts import version_from_json
from replicator.core.metadata import (
    LOWEST,
    AttributeNames,
    Version,
    is_tombstone,
    pad_sequence,
    user_attributes,
    version_of,
)
from replicator.core.pattern import matches
from tests.local.conftest import MESH_REGIONS
from tests.local.support import TABLE, scan_prefix, wait_for

NAMES = AttributeNames.with_prefix("rep_")
DRAIN_TIMEOUT = 120.0
REGIONS: tuple[str, ...] = MESH_REGIONS

Stamp = tuple[int, str]  # (rep_ts, rep_region): what orders versions across regions


def key(pk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "0"}}


def stamp_of(version: Version) -> Stamp:
    return version.ts, version.region


# --- faults -------------------------------------------------------------------------------------------


def throttle_link(cloud: LocalCloud, source: str, target: str, rate: float, seconds: float) -> None:
    """Throttle one direction of one region pair only (FaultPlan.throttle hits every link into a region)."""
    link = cloud.faults.link(source, target)
    link.throttle_rate, link.throttle_until = rate, time.time() + seconds


def cut_link(cloud: LocalCloud, source: str, target: str, seconds: float) -> None:
    """Make one direction of one region pair unreachable (FaultPlan.isolate cuts a whole region)."""
    cloud.faults.link(source, target).unreachable_until = time.time() + seconds


def heal_all(cloud: LocalCloud) -> None:
    """Clear every fault and put every link back to the run's latency."""
    cloud.faults.heal()
    for (source, target), link in cloud.faults.links.items():
        link.throttle_rate = 0.0
        link.latency_ms = cloud.options.latency_ms if source != target else 0.0


class FaultTimeline:
    """Faults injected at fixed offsets from ``start()`` in a thread; ``stop()`` heals everything."""

    def __init__(self, cloud: LocalCloud, steps: Sequence[tuple[float, str, Callable[[], None]]]) -> None:
        self.cloud = cloud
        self.steps = sorted(steps, key=lambda step: step[0])
        self.done: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-faults", daemon=True)

    def start(self) -> FaultTimeline:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        for at, description, action in self.steps:
            if self._stop.wait(max(0.0, started + at - time.monotonic())):
                return
            action()
            self.done.append(f"t+{at:.1f}s {description}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        heal_all(self.cloud)
        print("faults injected:", "; ".join(self.done) or "none")


def drain(cloud: LocalCloud, timeout: float = DRAIN_TIMEOUT) -> None:
    """Clear the faults and wait until every stream and handoff queue has been processed."""
    heal_all(cloud)
    drained = cloud.wait_drained(timeout)
    if not drained:
        print_thread_stacks()
    assert drained, f"the replicators did not drain within {timeout:.0f} s: {drained}"


def print_thread_stacks() -> None:
    """Where every thread of this process is (the stand-in's pollers, proxies and sweepers run here)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sys._current_frames().items():
        print(f"--- thread {names.get(ident, ident)}")
        print("".join(traceback.format_stack(frame, limit=8)))


# --- what the writers were told -------------------------------------------------------------------------


@dataclass
class Ledger:
    """Every version the client helper returned, per pk (thread-safe), and what raw writers did."""

    versions: dict[str, list[Version]] = field(default_factory=lambda: defaultdict(list))
    raw_writes: int = 0
    conflicts_lost: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wrote(self, pk: str, version: Version) -> None:
        with self._lock:
            self.versions[pk].append(version)

    def wrote_raw(self) -> None:
        with self._lock:
            self.raw_writes += 1

    def lost(self) -> None:
        with self._lock:
            self.conflicts_lost += 1

    @property
    def helper_writes(self) -> int:
        return sum(len(v) for v in self.versions.values())


def run_threads(workers: Sequence[Callable[[], None]], timeout: float = 120.0) -> None:
    """Run ``workers`` concurrently; re-raise the first error (a writer bug must fail the test)."""
    errors: list[BaseException] = []

    def guard(work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=guard, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), f"writers still running after {timeout:.0f} s"
    if errors:
        raise errors[0]


# --- the streams: every version ever created -----------------------------------------------------------


def stream_images(cloud: LocalCloud, region: str, prefix: str) -> list[tuple[str, dict[str, Any] | None]]:
    """(pk, NewImage or None for a REMOVE) of every record of ``region``'s table stream under ``prefix``."""
    return [
        (record["dynamodb"]["Keys"]["pk"]["S"], record["dynamodb"].get("NewImage"))
        for record in stream_records(cloud, region, prefix)
    ]


def created_versions(cloud: LocalCloud, prefix: str) -> dict[str, dict[Stamp, list[dict[str, Any]]]]:
    """Per pk, every stamped image any region's stream shows, by (rep_ts, rep_region).

    Every version is created in one region's table (a helper write, an adoption, a local tombstone)
    and therefore appears in that region's stream; replicated copies appear again in the targets'.
    """
    versions: dict[str, dict[Stamp, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for region in REGIONS:
        for pk, image in stream_images(cloud, region, prefix):
            if image is not None and NAMES.ts in image and NAMES.region in image:
                versions[pk][stamp_of(version_of(image, NAMES))].append(image)
    return versions


# --- the invariants --------------------------------------------------------------------------------------


def items_by_pk(cloud: LocalCloud, region: str, prefix: str) -> dict[str, dict[str, Any]]:
    return {item["pk"]["S"]: item for item in scan_prefix(cloud, region, prefix).values()}


def snapshot(cloud: LocalCloud, prefix: str) -> dict[str, dict[str, dict[str, Any]]]:
    return {region: items_by_pk(cloud, region, prefix) for region in REGIONS}


def divergences(
    regions: Mapping[str, Mapping[str, Mapping[str, Any]]], exclude: Sequence[str] = ()
) -> list[str]:
    """Keys on which two regions disagree, as the verify tool compares them (a tombstone equals an
    absent item; live copies must have the same user attributes and (rep_ts, rep_region))."""
    names = list(regions)
    found = []
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = regions[first], regions[second]
            for pk in sorted((set(a) | set(b)) - set(exclude)):
                kind = compare(a.get(pk), b.get(pk), NAMES)
                if kind is not None:
                    found.append(f"{pk}: {kind} between {first} ({a.get(pk)}) and {second} ({b.get(pk)})")
    return found


def assert_no_divergence(
    regions: Mapping[str, Mapping[str, Mapping[str, Any]]], exclude: Sequence[str] = ()
) -> None:
    """Fail with every divergent key and both copies in full (a diff of two lists hides them)."""
    found = divergences(regions, exclude)
    assert not found, f"{len(found)} divergent keys:\n" + "\n".join(found)


def live_view(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What an application sees: None for a tombstone or an absent item, else the user attributes."""
    if item is None or is_tombstone(item, NAMES):
        return None
    return user_attributes(item, NAMES)


def last_writer_violations(
    regions: Mapping[str, Mapping[str, Mapping[str, Any]]],
    created: Mapping[str, Mapping[Stamp, list[dict[str, Any]]]],
    ledger: Ledger | None = None,
) -> list[str]:
    """Keys whose surviving state is not the greatest version created (in any region).

    The survivor must carry the greatest (rep_ts, rep_region) among every version the streams show,
    with the content of that version; it must also be at least every version a helper was told.
    """
    found = []
    for pk, versions in sorted(created.items()):
        greatest = max(versions)
        expected_views = [live_view(image) for image in versions[greatest]]
        for region, items in regions.items():
            item = items.get(pk)
            survivor = stamp_of(version_of(item, NAMES))
            if survivor != greatest:
                found.append(f"{pk} in {region}: version {survivor}, greatest created {greatest}")
            elif live_view(item) not in expected_views:
                found.append(f"{pk} in {region}: content {live_view(item)} is not version {greatest}'s")
            for told in ledger.versions.get(pk, []) if ledger else []:
                if stamp_of(told) > survivor:
                    found.append(f"{pk} in {region}: {survivor} survived a newer helper write {told}")
    return found


# --- metrics -----------------------------------------------------------------------------------------------

COUNTED = (
    m.HANDOFF_REPLAYED,
    m.HANDED_OFF,
    m.STALE_SKIPPED,
    m.TARGET_WRITE_RETRIES,
    m.RECORDS_ADOPTED,
    m.LOCAL_TOMBSTONES_WRITTEN,
    m.LOCAL_WRITE_SUPERSEDED,
    m.ECHO_SKIPPED,
    m.DEAD_LETTERED,
    m.MALFORMED_RECORDS,
    "EchoInvocations",
)


def metric_totals(cloud: LocalCloud) -> dict[str, float]:
    totals = {name: cloud.metrics.total(name) for name in COUNTED}
    # not emitted: the SampleCount of ReplicationLatency less HandoffReplayed (core/metrics_names.py)
    totals[m.RECORDS_REPLICATED] = float(cloud.metrics.records_replicated())
    return totals


def metric_deltas(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


# --- the runtime, operated the way an operator would -------------------------------------------------


def replicator_function(cloud: LocalCloud, region: str) -> LocalFunction:
    [function] = [
        f for f in cloud.functions_in(region) if f.spec.handler == "replicator.handler.lambda_handler"
    ]
    return function


def stream_poller(cloud: LocalCloud, region: str) -> StreamPoller:
    [poller] = [p for p in cloud.stream_pollers if p.source.region == region]
    return poller


@contextlib.contextmanager
def mapping_paused(cloud: LocalCloud, region: str, *, skip: bool = True) -> Iterator[None]:
    """No stream mapping on ``region``'s table while the block runs. Afterwards a new mapping with the
    template's settings, which

    - with ``skip``, starts at LATEST: what a table looks like when replication is deployed on a table
      that already holds data (its stream records from before are never delivered);
    - without, resumes where the paused one stopped: a mapping that was slow to poll (records written
      in the block reach the function together, in one batch).
    """
    old = stream_poller(cloud, region)
    old.stop()
    try:
        yield
    finally:
        new = StreamPoller(
            dataclasses.replace(old.spec, starting_position="LATEST" if skip else old.spec.starting_position),
            old.source,
            old.function,
            destination=old.destination,
            observer=old.observer,
            ttl=old.ttl,
            poll_interval=old.poll_interval,
            whole_second_timestamps=old.whole_second_timestamps,
            mapping_id=old.mapping_id,
        )
        if not skip:
            # the stand-in has no pause: carry the checkpoint (its stream positions) over
            assert not old._buffer, "pause a drained mapping only"
            new._positions = dict(old._positions)
        new.start()
        cloud.stream_pollers[cloud.stream_pollers.index(old)] = new


def operator_connection(cloud: LocalCloud, region: str) -> Connection:
    """Clients as a tool run in ``region`` sees the regions: its own gateway, link proxies to the others
    (so the injected faults apply to the tools too)."""
    return Connection(endpoints=cloud.endpoint_urls_from(region))


def redrive(cloud: LocalCloud, region: str) -> Redrive:
    """The redrive tool for ``region``'s replicator, configured from the function's environment."""
    endpoints = cloud.endpoint_urls_from(region)
    environment = replicator_function(cloud, region).worker.config.environment
    settings = settings_from_environment(environment, endpoints)
    return Redrive(settings, AwsPorts(settings, session=operator_connection(cloud, region).session()))


def dead_letter_bucket(cloud: LocalCloud, region: str) -> str:
    env = replicator_function(cloud, region).worker.config.environment
    return str(settings_from_environment(env, {}).dead_letter_bucket)


# --- the streams in full: what every record replaced, for the conflict rule and redeliveries ---------


def stream_records(cloud: LocalCloud, region: str, prefix: str = "") -> list[dict[str, Any]]:
    """Every raw record (GetRecords form) of ``region``'s table stream whose pk starts with ``prefix``.

    A fresh AFTER_SEQUENCE_NUMBER iterator per read (docs/LOCAL.md: held iterators can be orphaned by
    the engine), bounded in pages.
    """
    client = cloud.client(region, "dynamodbstreams")
    arn = cloud.regions[region].tables[TABLE]
    found: list[dict[str, Any]] = []
    for shard in client.describe_stream(StreamArn=arn)["StreamDescription"].get("Shards", []):
        position: str | None = None
        for _page in range(10_000):
            request: dict[str, Any] = {"StreamArn": arn, "ShardId": shard["ShardId"]}
            if position is None:
                request["ShardIteratorType"] = "TRIM_HORIZON"
            else:
                request.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=position)
            iterator = client.get_shard_iterator(**request)["ShardIterator"]
            records = client.get_records(ShardIterator=iterator, Limit=1000).get("Records", [])
            if not records:
                break
            found.extend(r for r in records if r["dynamodb"]["Keys"]["pk"]["S"].startswith(prefix))
            position = records[-1]["dynamodb"]["SequenceNumber"]
    return found


def versions_created(
    history: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, dict[Stamp, list[dict[str, Any]]]]:
    """``created_versions`` from streams already read (``history``: region -> ``stream_records``)."""
    versions: dict[str, dict[Stamp, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for records in history.values():
        for record in records:
            image = record["dynamodb"].get("NewImage")
            if image is not None and NAMES.ts in image and NAMES.region in image:
                pk = record["dynamodb"]["Keys"]["pk"]["S"]
                versions[pk][stamp_of(version_of(image, NAMES))].append(image)
    return versions


Conflict = tuple[str, Version, Version]  # (pk, losing version, winning version)


def conflicts_in_history(history: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Conflict]:
    """The conflicts the streams show, found without the engine's rule (tests/unit/sim.py's
    ``Mesh.conflicts_in_history`` on the real streams).

    Region T's own version W lost a conflict when the record that replaced it in T's stream brought
    another region R's version V whose writer had not seen W: the record that created V in R's stream
    replaced a state older than W (or an unversioned one). A replicated copy carries the sequence
    number of the record that created its original, so each creation is indexed by that too.
    """
    created_over: dict[tuple[str, Version], Version] = {}
    for region, records in history.items():
        for record in records:
            new, old = record["dynamodb"].get("NewImage"), record["dynamodb"].get("OldImage")
            if new is None or new.get(NAMES.region, {}).get("S") != region:
                continue
            pk = record["dynamodb"]["Keys"]["pk"]["S"]
            created = version_of(new, NAMES)
            base = version_of(old, NAMES) if old else LOWEST
            created_over.setdefault((pk, created), base)
            sequence = pad_sequence(record["dynamodb"]["SequenceNumber"])
            created_over.setdefault((pk, created._replace(seq=sequence)), base)
    found = []
    for region, records in history.items():
        for record in records:
            old, new = record["dynamodb"].get("OldImage"), record["dynamodb"].get("NewImage")
            if old is None or new is None or old.get(NAMES.region, {}).get("S") != region:
                continue
            if new.get(NAMES.region, {}).get("S") in (None, region):
                continue
            pk = record["dynamodb"]["Keys"]["pk"]["S"]
            lost, winner = version_of(old, NAMES), version_of(new, NAMES)
            # a winner never created anywhere is a last-writer-wins violation, reported there
            if created_over.get((pk, winner), LOWEST) < lost:
                found.append((pk, lost, winner))
    return sorted(found)


def logged_conflicts(cloud: LocalCloud, since: float, until: float, prefix: str = "") -> list[Conflict]:
    """Every entry of every region's conflict log (ddbrep.tools.conflicts, as the command reads it)."""
    found = []
    for region in REGIONS:
        records = list_conflicts(
            operator_connection(cloud, region),
            region,
            dead_letter_bucket(cloud, region),
            since,
            until,
            key_prefix=prefix,
        )
        found.extend(
            (str(r.keys["pk"]["S"]), version_from_json(r.losing), version_from_json(r.winning))
            for r in records
        )
    return sorted(found)


# --- redelivery, the way Lambda and an operator cause it ---------------------------------------------------


def kill_replicator_mid_invocation(
    cloud: LocalCloud,
    region: str,
    rng: random.Random,
    timeout: float = 10.0,
    pause: tuple[float, float] = (0.02, 0.2),
) -> int | None:
    """Kill ``region``'s replicator sandbox (by its PID) once it is in the middle of an invocation (see
    tests/chaos/test_redelivery.py); the stream mapping bisects and redelivers the batch. The PID
    killed, or None when no invocation was in flight within ``timeout``.

    Nothing else may invoke that function meanwhile: an invocation is in flight when the worker has
    counted more invocations than the mapping has seen return.
    """
    worker, poller = replicator_function(cloud, region).worker, stream_poller(cloud, region)

    def in_flight() -> bool:
        return worker.invocations > poller.stats.invocations

    if not wait_for(in_flight, timeout=timeout, interval=0.01):
        return None
    time.sleep(rng.uniform(*pause))  # some of the batch's writes are done by now
    pid = worker.pid
    if pid is None or not in_flight():
        return None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not in_flight(), timeout=30)
    return pid


@dataclass
class Redelivery:
    """What ``redeliver_old_batches`` delivered again."""

    batches: int = 0
    records: int = 0
    function_errors: int = 0


def redeliver_old_batches(
    cloud: LocalCloud,
    region: str,
    rng: random.Random,
    *,
    batch_size: int = 40,
    ttl_prefix: str | None = None,
) -> Redelivery:
    """Deliver two earlier slices of ``region``'s stream to its replicator again, the later slice first:
    duplicates that arrive out of order, long after the records were first applied.

    The records are built as the stream mapping builds them (engine artifacts dropped, Lambda's event
    form, the mapping's own filters applied, so no echo is delivered). moto keeps no identity on its
    records: a REMOVE of a key under ``ttl_prefix`` (keys only the TTL sweeper deletes) gets the TTL
    service's identity back, as the mapping delivered it the first time.
    """
    poller = stream_poller(cloud, region)
    arn = cloud.regions[region].tables[TABLE]
    description = cloud.client(region, "dynamodbstreams").describe_stream(StreamArn=arn)["StreamDescription"]
    shard_id = str(description["Shards"][0]["ShardId"])  # the engine has exactly one shard per stream
    raws = list(
        streams.drop_engine_artifacts(stream_records(cloud, region), now=time.time(), hold_seconds=0).records
    )
    done = Redelivery()
    if len(raws) < 2 * batch_size:
        return done
    starts = sorted(rng.sample(range(len(raws) - batch_size), 2), reverse=True)  # later slice first
    for start in starts:
        events = []
        for raw in raws[start : start + batch_size]:
            pk = raw["dynamodb"]["Keys"]["pk"]["S"]
            ttl_delete = ttl_prefix is not None and raw["eventName"] == "REMOVE" and pk.startswith(ttl_prefix)
            event = streams.to_lambda_record(
                raw,
                region=region,
                stream_arn=arn,
                shard_id=shard_id,
                user_identity=streams.TTL_IDENTITY if ttl_delete else None,
            ).event
            if not poller.spec.filters or any(matches(p, event) for p in poller.spec.filters):
                events.append(event)
        if not events:
            continue
        invocation = poller.function.invoke({"Records": events})
        done.batches += 1
        done.records += len(events)
        done.function_errors += int(not invocation.ok)
    return done
