"""Helpers of the chaos tests: a fault timeline, workload ledgers, the streams as a record of every
version created, and the invariants' checks (convergence as verify sees it, last writer wins).

Everything here is bounded: every loop has a deadline or a page limit, every thread stops by itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddbrep.local.cloud import LocalCloud, LocalFunction
from ddbrep.local.mapping import StreamPoller
from ddbrep.tools.aws import Connection
from ddbrep.tools.redrive import Redrive, settings_from_environment
from replicator.adapters import AwsPorts
from replicator.core import metrics_names as m
from replicator.core.compare import compare
from replicator.core.metadata import AttributeNames, Version, is_tombstone, user_attributes, version_of
from tests.local.conftest import MESH_REGIONS
from tests.local.support import TABLE, scan_prefix

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
    assert cloud.wait_drained(timeout), f"the replicators did not drain within {timeout:.0f} s"


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
    """(pk, NewImage or None for a REMOVE) of every record of ``region``'s table stream under ``prefix``.

    A fresh AFTER_SEQUENCE_NUMBER iterator per read (docs/LOCAL.md: held iterators can be
    orphaned by the engine).
    """
    client = cloud.client(region, "dynamodbstreams")
    arn = cloud.regions[region].tables[TABLE]
    found: list[tuple[str, dict[str, Any] | None]] = []
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
            for record in records:
                pk = record["dynamodb"]["Keys"]["pk"]["S"]
                if pk.startswith(prefix):
                    found.append((pk, record["dynamodb"].get("NewImage")))
            position = records[-1]["dynamodb"]["SequenceNumber"]
    return found


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
    m.RECORDS_REPLICATED,
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
    return {name: cloud.metrics.total(name) for name in COUNTED}


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
