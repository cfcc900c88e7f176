"""The soak (``make chaos``): thousands of conflicting operations in three regions while faults come and go
on a seeded timeline, then every invariant checked against the streams' record of every version.

The workload (SOAK_OPERATIONS operations at SOAK_RATE per second, SOAK_SEED, SOAK_KEYS shared keys, a
fifth of the operations on a few hot keys so that regions conflict): client-helper puts, updates and
deletes (tombstones), unstamped puts and hard deletes, and items written with their TTL in the past,
which the TTL sweeper expires. Each TTL item has a key of its own: an expiry leaves no tombstone, so an
older version that reaches a region after its expiry there would bring the key back in that region
(the reason tombstones are kept for days); this soak checks the replicator, not that property of TTL.

The faults, alone and together (offsets are fractions of the write phase):

- a region isolated (both ways) for a while, three times, once while another target is down;
- throttling of a region's inbound DynamoDB requests, and of one link;
- latency spikes on a link;
- the replicator's sandbox killed mid-batch (the mapping bisects and redelivers partly applied batches);
- duplicate, out-of-order redelivery: two earlier slices of a stream delivered again, the later first;
- a concurrent backfill (us-east-1 to the others) through the faulted links, resumed until done;
- a dead-letter redrive: a drifted index in eu-west-1 rejects some writes, they are parked, the drift is
  fixed and the store redriven while traffic goes on (and every store and discarded batch at the end);
- expiring cross-account credentials: the us-east-1 -> eu-west-1 pair assumes a role whose sessions
  last 20 s (tests/soak/conftest.py), renewed over and over;
- a target down for minutes: every link into ap-southeast-2 cut, writes to it handed off; meanwhile
  us-east-1 and eu-west-1 replicate to each other as usual (a probe write each way must arrive).

After heal and drain: divergent keys, last-writer-wins violations against the recorded history, lost
writes, echo invocations must all be 0, and the conflicts logged (ConflictsLost, conflict-log entries)
must be exactly the conflicts the streams show.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ddbrep.client import ConflictLost, ReplicatedTable
from ddbrep.local.cloud import LocalCloud
from ddbrep.tools.aws import ToolError
from ddbrep.tools.backfill import BackfillRun
from ddbrep.tools.redrive import DEAD_LETTER_PREFIX
from replicator.core import metrics_names as m
from replicator.core.metadata import is_tombstone, version_of
from replicator.settings import Target
from tests.chaos.support import (
    NAMES,
    REGIONS,
    TABLE,
    Conflict,
    Ledger,
    conflicts_in_history,
    dead_letter_bucket,
    divergences,
    drain,
    heal_all,
    key,
    kill_replicator_mid_invocation,
    last_writer_violations,
    logged_conflicts,
    operator_connection,
    redeliver_old_batches,
    redrive,
    snapshot,
    stamp_of,
    stream_records,
    throttle_link,
    versions_created,
)
from tests.chaos.test_dead_letters import INDEX, entries_for
from tests.local.support import index_rejecting_empty, raw_item, wait_for
from tests.soak.conftest import ROLE_PAIR, SoakSettings

pytestmark = pytest.mark.soak

US, EU, AP = REGIONS
KILLED = US  # only the stream mapping invokes this replicator (a kill needs to see an invocation in flight)
REDELIVERED = (EU, AP)
DOWN = AP  # the target down for minutes
DEAD_LETTER_KEYS = 6
DRAIN_SECONDS = 900.0  # a ceiling, not an expectation: the drain returns as soon as all is quiet
# the longest any fault action may take (the backfill and dead-letter deadlines)
ACTOR_SECONDS = float(os.environ.get("SOAK_ACTOR_SECONDS", "300"))
OPERATIONS = ("put", "update", "delete", "raw_put", "raw_delete", "ttl")
WEIGHTS = (0.32, 0.2, 0.13, 0.13, 0.12, 0.1)
FAULT_KINDS = (
    "isolate",
    "throttle",
    "latency",
    "kill",
    "redelivery",
    "backfill",
    "dead-letter redrive",
    "credentials expired",
    "target down",
)


# --- the workload ----------------------------------------------------------------------------------------


@dataclass
class Workload:
    prefix: str
    ledger: Ledger = field(default_factory=Ledger)
    ttl_keys: set[str] = field(default_factory=set)
    done: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, operation: str, pk: str | None = None) -> None:
        with self._lock:
            self.done[operation] += 1
            if pk is not None:
                self.ttl_keys.add(pk)


def plan(settings: SoakSettings, region_index: int) -> list[tuple[str, int]]:
    """This region's share of the operations: (operation, key number); a fifth on the hot keys."""
    rng = random.Random(settings.seed * 10 + region_index)
    share = settings.operations // len(REGIONS) + (region_index < settings.operations % len(REGIONS))
    hot = max(2, settings.keys // 20)
    return [
        (
            rng.choices(OPERATIONS, WEIGHTS)[0],
            rng.randrange(hot) if rng.random() < 0.2 else rng.randrange(settings.keys),
        )
        for _ in range(share)
    ]


def writer(
    cloud: LocalCloud, region: str, operations: list[tuple[str, int]], work: Workload, interval: float
) -> None:
    """Run ``operations`` in ``region``, about one per ``interval`` seconds (as fast as it can if behind)."""
    client = cloud.region(region).new_client("dynamodb", engine=False)
    table = ReplicatedTable(client, TABLE, region)
    rng = random.Random(f"{region}-pace")
    next_at = time.monotonic()
    for n, (operation, number) in enumerate(operations):
        next_at += interval * rng.uniform(0.5, 1.5)
        time.sleep(max(0.0, next_at - time.monotonic()))
        pk = f"{work.prefix}{number}"
        try:
            if operation == "put":
                version = table.put_item({**key(pk), "writer": {"S": region}, "n": {"N": str(n)}})
            elif operation == "update":
                version = table.update_item(
                    key(pk),
                    "SET updated_by = :w, n = :n",
                    expression_attribute_values={":w": {"S": region}, ":n": {"N": str(n)}},
                )
            elif operation == "delete":
                version = table.delete_item(key(pk))
            elif operation == "ttl":  # a key of its own, expired from the start
                pk = f"{work.prefix}ttl-{region}-{n}"
                expired = {"N": str(int(time.time()) - 60)}
                version = table.put_item({**key(pk), NAMES.expires: expired, "n": {"N": str(n)}})
                work.count("ttl", pk)
                work.ledger.wrote(pk, version)
                continue
            elif operation == "raw_put":
                client.put_item(TableName=TABLE, Item={**key(pk), "raw": {"S": region}, "n": {"N": str(n)}})
                work.count(operation)
                continue
            else:
                client.delete_item(TableName=TABLE, Key=key(pk))
                work.count(operation)
                continue
        except ConflictLost:  # newer versions kept arriving: the write lost, which is allowed
            work.ledger.lost()
            work.count("conflict_lost_at_write")
            continue
        work.ledger.wrote(pk, version)
        work.count(operation)


# --- the faults ---------------------------------------------------------------------------------------------


@dataclass
class Faults:
    """Faults injected (per kind), what they reported, and any error a fault action raised."""

    injected: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    # writes of the target region's own that the backfill's copies replaced (its "overwrote" total)
    backfill_overwrote: int = 0
    # when each backfill ran (epoch seconds) and to which regions, and when each kill happened
    backfill_windows: list[tuple[float, float, tuple[str, ...]]] = field(default_factory=list)
    kill_times: list[float] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note(self, kind: str, text: str, count: int = 1) -> None:
        with self._lock:
            self.injected[kind] += count
            self.notes.append(f"t+{time.monotonic() - STARTED[0]:.0f}s {kind}: {text}")


STARTED = [time.monotonic()]


def drifted_index(cloud: LocalCloud) -> contextlib.AbstractContextManager[None]:
    """eu-west-1 rejects an empty ``ref`` (the shared schema-drift helper, which restates the key
    definitions that moto's UpdateTable would otherwise drop)."""
    return index_rejecting_empty(cloud, EU, INDEX)


def isolate(cloud: LocalCloud, region: str, seconds: float) -> None:
    """FaultPlan.isolate that never shortens a longer cut already on one of the region's links."""
    until = time.time() + seconds
    for (source, target), link in cloud.faults.links.items():
        if source != target and region in (source, target):
            link.unreachable_until = max(link.unreachable_until, until)


def run_actions(steps: list[tuple[float, Callable[[], None]]], faults: Faults) -> list[threading.Thread]:
    """Start each action in a thread of its own at its offset (seconds from now); errors are kept."""

    def later(at: float, action: Callable[[], None]) -> None:
        time.sleep(max(0.0, STARTED[0] + at - time.monotonic()))
        try:
            action()
        except BaseException as err:
            faults.errors.append(err)
        faults.notes.append(f"t+{time.monotonic() - STARTED[0]:.0f}s {action.__name__} finished")

    threads = [threading.Thread(target=later, args=step, daemon=True) for step in steps]
    for thread in threads:
        thread.start()
    return threads


def backfill_until_done(
    cloud: LocalCloud, targets: list[str], checkpoint: Path, deadline: float
) -> tuple[str, int]:
    """Run the backfill from us-east-1; when a fault stops it, run it again (it resumes), until done.
    What it did, and how many writes made in a target it replaced (possible conflicts)."""
    resumes, last_error = 0, ""
    while time.monotonic() < deadline:
        try:
            report = BackfillRun(
                operator_connection(cloud, US),
                US,
                TABLE,
                [Target(region, TABLE) for region in targets],
                segments=2,
                page_size=25,
                checkpoint_path=checkpoint,
                write_attempts=2,
            ).run()
            totals = report.to_json()["totals"]
            return f"to {'+'.join(targets)} done after {resumes} resumes: {totals}", totals["overwrote"]
        except ToolError as err:
            resumes, last_error = resumes + 1, str(err)
            time.sleep(1.0)
    raise AssertionError(f"the backfill to {targets} did not complete ({resumes} resumes): {last_error}")


def replacement_times(history: dict[str, list[dict[str, Any]]]) -> dict[Conflict, float]:
    """When each conflict of the history happened: the time (epoch seconds, whole seconds as streams
    give them) of the record in the loser's region that replaced the loser by the winner."""
    times: dict[Conflict, float] = {}
    for records in history.values():
        for record in records:
            old, new = record["dynamodb"].get("OldImage"), record["dynamodb"].get("NewImage")
            if old is None or new is None:
                continue
            at = record["dynamodb"]["ApproximateCreationDateTime"]
            when = at.timestamp() if hasattr(at, "timestamp") else float(at)
            pk = record["dynamodb"]["Keys"]["pk"]["S"]
            times.setdefault((pk, version_of(old, NAMES), version_of(new, NAMES)), when)
    return times


def restored_versions(history: dict[str, list[dict[str, Any]]]) -> set[tuple[str, int, str]]:
    """(key, rep_ts, rep_region) of every version its own region's stream shows created more than once:
    a copy written back there after the item was deleted."""
    created: Counter[tuple[str, int, str]] = Counter()
    for region, records in history.items():
        for record in records:
            new = record["dynamodb"].get("NewImage")
            if new is not None and new.get(NAMES.region, {}).get("S") == region and NAMES.ts in new:
                created[(record["dynamodb"]["Keys"]["pk"]["S"], int(new[NAMES.ts]["N"]), region)] += 1
    return {version for version, count in created.items() if count > 1}


@dataclass
class Probe:
    """A write made in one region during the long outage, and whether it reached the other live region."""

    source: str
    target: str
    arrived: bool = False


def probe(cloud: LocalCloud, work: Workload, source: str, target: str) -> Probe:
    pk = f"{work.prefix}probe-{source}"
    version = ReplicatedTable(cloud.client(source), TABLE, source).put_item(
        {**key(pk), "probe": {"S": source}}
    )
    work.ledger.wrote(pk, version)
    arrived = wait_for(
        lambda: stamp_of_item(raw_item(cloud, target, key(pk))) >= (version.ts, version.region), timeout=60
    )
    return Probe(source, target, bool(arrived))


def stamp_of_item(item: dict[str, Any] | None) -> tuple[int, str]:
    return stamp_of(version_of(item, NAMES))


def fault_steps(
    cloud: LocalCloud,
    settings: SoakSettings,
    work: Workload,
    faults: Faults,
    probes: list[Probe],
    checkpoints: Path,
) -> list[tuple[float, Callable[[], None]]]:
    write_seconds = settings.operations / settings.rate
    outage = min(180.0, max(30.0, 0.6 * write_seconds))
    rng = random.Random(settings.seed)

    def at(fraction: float) -> float:
        return fraction * write_seconds

    def isolated(region: str, seconds: float) -> Callable[[], None]:
        def act() -> None:
            isolate(cloud, region, seconds)
            faults.note("isolate", f"{region} cut off both ways for {seconds:.0f} s")

        return act

    def throttled(region: str, rate: float, seconds: float) -> Callable[[], None]:
        def act() -> None:
            cloud.faults.throttle(region, rate, seconds)
            faults.note("throttle", f"{rate:.0%} of requests into {region} throttled for {seconds:.0f} s")

        return act

    def link_throttled(source: str, target: str, rate: float, seconds: float) -> Callable[[], None]:
        def act() -> None:
            throttle_link(cloud, source, target, rate, seconds)
            faults.note("throttle", f"{rate:.0%} of {source}->{target} throttled for {seconds:.0f} s")

        return act

    def slowed(a: str, b: str, ms: float, seconds: float) -> Callable[[], None]:
        def act() -> None:
            cloud.faults.set_latency(a, b, ms)
            faults.note("latency", f"{a}<->{b} at {ms:.0f} ms for {seconds:.0f} s")
            time.sleep(seconds)
            cloud.faults.set_latency(a, b, cloud.options.latency_ms)

        return act

    def killed() -> None:
        pid = kill_replicator_mid_invocation(cloud, KILLED, random.Random(rng.random()))
        if pid is not None:
            with faults._lock:
                faults.kill_times.append(time.time())
            faults.note("kill", f"{KILLED} replicator sandbox {pid} killed mid-batch")

    def redelivered(region: str) -> Callable[[], None]:
        seed = rng.random()

        def act() -> None:
            done = redeliver_old_batches(cloud, region, random.Random(seed), ttl_prefix=f"{work.prefix}ttl-")
            if done.batches:
                faults.note(
                    "redelivery",
                    f"{done.batches} old batches ({done.records} records) to {region} again, later first, "
                    f"{done.function_errors} function errors",
                    done.batches,
                )

        return act

    def backfilled(targets: list[str], name: str) -> Callable[[], None]:
        def act() -> None:
            deadline = time.monotonic() + ACTOR_SECONDS
            started = time.time()
            text, overwrote = backfill_until_done(cloud, targets, checkpoints / f"{name}.json", deadline)
            faults.note("backfill", text)
            with faults._lock:
                faults.backfill_overwrote += overwrote
                faults.backfill_windows.append((started, time.time(), tuple(targets)))

        return act

    def long_outage() -> None:
        for source in REGIONS:
            if source != DOWN:
                cloud.faults.link(source, DOWN).unreachable_until = time.time() + outage
        faults.note("target down", f"every link into {DOWN} cut for {outage:.0f} s")

    def probed() -> None:
        for source, target in ((US, EU), (EU, US)):
            result = probe(cloud, work, source, target)
            probes.append(result)
            faults.notes.append(f"probe {source}->{target} during the outage: arrived={result.arrived}")

    def dead_lettered() -> None:
        dl_keys = [f"{work.prefix}dl-{i}" for i in range(DEAD_LETTER_KEYS)]
        helper = ReplicatedTable(cloud.client(US), TABLE, US)
        with drifted_index(cloud):  # eu-west-1 now rejects an empty ``ref``
            for pk in dl_keys:
                work.ledger.wrote(pk, helper.put_item({**key(pk), "ref": {"S": ""}, "note": {"S": "drift"}}))
            parked = wait_for(lambda: set(dl_keys) <= set(entries_for(cloud, work.prefix)), timeout=240)
            assert parked, f"the writes of {dl_keys} that {EU} rejects were not dead-lettered in 240 s"
        report = redrive(cloud, US).dead_letters()
        faults.note("dead-letter redrive", f"drift fixed, {US}'s store redriven: {report.counts}")

    steps: list[tuple[float, Callable[[], None]]] = [
        (at(0.04), isolated(EU, 0.05 * write_seconds)),
        (at(0.08), dead_lettered),
        (at(0.1), throttled(US, 0.5, 0.06 * write_seconds)),
        (at(0.12), long_outage),
        (at(0.25), link_throttled(EU, US, 0.7, 0.05 * write_seconds)),
        (at(0.3), isolated(US, 0.03 * write_seconds)),
        (at(0.35), slowed(EU, US, 400, 0.05 * write_seconds)),
        (at(0.4), backfilled([EU], "to-eu")),
        (at(0.45), probed),
        (at(0.55), isolated(EU, 0.04 * write_seconds)),
        (at(0.6), slowed(US, AP, 600, 0.04 * write_seconds)),
        (at(0.8), backfilled([EU, AP], "to-all")),
        (at(0.85), throttled(AP, 0.4, 0.05 * write_seconds)),
    ]
    steps += [(at(f), killed) for f in (0.2, 0.33, 0.5, 0.65, 0.78, 0.92)]
    steps += [(at(f), redelivered(EU)) for f in (0.18, 0.5, 0.7, 0.95)]
    steps += [(at(f), redelivered(AP)) for f in (0.3, 0.6, 0.88)]
    return steps


# --- the soak -------------------------------------------------------------------------------------------


def count_dead_letters(cloud: LocalCloud) -> int:
    total = 0
    for region in REGIONS:
        listing = cloud.client(region, "s3").list_objects_v2(
            Bucket=dead_letter_bucket(cloud, region), Prefix=DEAD_LETTER_PREFIX
        )
        total += int(listing.get("KeyCount", 0))
    return total


def test_soak(soak_cloud: LocalCloud, soak_settings: SoakSettings, tmp_path: Path) -> None:
    cloud, settings = soak_cloud, soak_settings
    print(
        f"\nsoak: SOAK_SEED={settings.seed} SOAK_OPERATIONS={settings.operations} SOAK_KEYS={settings.keys} "
        f"SOAK_RATE={settings.rate}/s (about {settings.operations / settings.rate:.0f} s of writes)"
    )
    work = Workload(prefix=f"s{settings.seed}-")
    faults, probes = Faults(), []
    drain(cloud)
    wall_start = time.time()
    STARTED[0] = time.monotonic()

    # Given writers in every region on a small key space, and faults on a seeded timeline
    interval = len(REGIONS) / settings.rate
    writers = [
        threading.Thread(
            target=guarded(writer, faults), args=(cloud, region, plan(settings, i), work, interval)
        )
        for i, region in enumerate(REGIONS)
    ]
    actions = run_actions(fault_steps(cloud, settings, work, faults, probes, tmp_path), faults)
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 3 * settings.operations / settings.rate + ACTOR_SECONDS
    for thread in [*writers, *actions]:
        thread.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in [*writers, *actions]), "writers or fault actions still running"
    writes_done = time.monotonic() - STARTED[0]

    # When every fault is healed, everything drains, and every dead-letter store and discarded batch is
    # redriven (then drained again), and the TTL sweepers have expired what they must
    heal_all(cloud)
    print(f"t+{writes_done:.0f}s writes and fault actions done; draining")
    drain(cloud, DRAIN_SECONDS)
    print(f"t+{time.monotonic() - STARTED[0]:.0f}s drained; redriving every store")
    for region in REGIONS:
        operator = redrive(cloud, region)
        reports = (operator.dead_letters(), operator.discarded_batches())
        faults.notes.append(f"final redrive {region}: {[r.counts for r in reports]}")
    drain(cloud, DRAIN_SECONDS)
    ttl_keys = set(work.ttl_keys)
    wait_for(lambda: not ttl_survivors(cloud, work.prefix, ttl_keys), timeout=60)  # checked below
    drain(cloud, DRAIN_SECONDS)
    elapsed = time.monotonic() - STARTED[0]

    # Then: the figures, from the final state and the streams
    regions = snapshot(cloud, work.prefix)
    history = {region: stream_records(cloud, region, work.prefix) for region in REGIONS}
    created = versions_created(history)
    divergent = divergences(regions)
    live = {pk: v for pk, v in created.items() if pk not in ttl_keys}
    violations = last_writer_violations(
        {r: {pk: i for pk, i in items.items() if pk not in ttl_keys} for r, items in regions.items()},
        live,
        work.ledger,
    )
    lost = lost_writes(work.ledger, created, regions, ttl_keys)
    ttl_left = ttl_survivors(cloud, work.prefix, ttl_keys)
    ttl_live = sorted(
        {
            line.split(" in ")[0]
            for line in ttl_left
            if not is_tombstone(regions[line.split(" in ")[1]][line.split(" in ")[0]], NAMES)
        }
    )
    ttl_tombstoned = sorted({line.split(" in ")[0] for line in ttl_left} - set(ttl_live))
    echo_invocations = cloud.metrics.total("EchoInvocations")
    echo_skipped = cloud.metrics.total(m.ECHO_SKIPPED)
    conflicts_metric = cloud.metrics.total(m.CONFLICTS_LOST)
    not_logged = cloud.metrics.total(m.CONFLICTS_NOT_LOGGED)
    logged = logged_conflicts(cloud, wall_start - 60, time.time() + 60, work.prefix)
    expected = conflicts_in_history(history)
    # A conflict a backfill copy settled is not logged: the copy replaced the loser before the winner's
    # replicator delivered it (then stale), and the scan does not know the winner's base, so it cannot
    # tell a conflict from an update (docs/DESIGN.md). The backfill counts them as "overwrote".
    logged_set, expected_set = set(logged), set(expected)
    unlogged = [c for c in expected if c not in logged_set]
    replaced_at = replacement_times(history)
    # The loser was replaced in a backfill's target while that backfill ran: the backfill copies what
    # us-east-1 holds, its own writes and its copies of the others' (a copy is the same write as the
    # replicator's, so the streams cannot say which of the two wrote it)
    settled_by_backfill = [
        c
        for c in unlogged
        if any(
            c[1].region in targets and start - 2 <= replaced_at[c] <= end + 2
            for start, end, targets in faults.backfill_windows
        )
    ]
    # a us-east-1 winner replaced the loser shortly before the soak killed a us-east-1 invocation: the
    # entry may have been lost with it (the log is written at the end of an invocation: at most once,
    # docs/DESIGN.md)
    settled_or_killed = [
        c
        for c in unlogged
        if c not in settled_by_backfill
        and c[2].region == KILLED
        and any(kill - 60 <= replaced_at[c] <= kill + 2 for kill in faults.kill_times)
    ]
    # Logged, not in the history: a winner copied back into its own region where the item was missing
    # (a backfill racing a hard delete there) replicates again as a new write without a base, so it
    # counts as concurrent (docs/DESIGN.md); the history judges it by its first creation.
    restored = restored_versions(history)
    logged_over_a_restore = [
        c for c in logged if c not in expected_set and (c[0], c[2].ts, c[2].region) in restored
    ]
    dead_letters_left = count_dead_letters(cloud)
    credentials = cloud.credentials[ROLE_PAIR[1]]
    faults.injected["credentials expired"] = max(0, len(credentials.expirations) - 1)
    handed_off_to_down = cloud.metrics.total(m.HANDED_OFF, **{m.TARGET_REGION: DOWN})
    records = sum(len(r) for r in history.values())
    if os.environ.get("SOAK_DUMP"):  # the streams and both conflict lists, for a look after the run
        with open(os.environ["SOAK_DUMP"], "w") as dump:
            json.dump({"history": history, "logged": logged, "expected": expected}, dump, default=str)

    print("\n".join(["faults:", *faults.notes]))
    print(f"operations done: {dict(work.done)}; writes took {writes_done:.0f} s; stream records {records}")
    print(
        f"credentials: {len(credentials.expirations)} sessions, {credentials.rejected} requests refused; "
        f"handed off to {DOWN}: {handed_off_to_down:.0f}; probes: {probes}"
    )
    for name, found in (("divergent", divergent), ("last-writer-wins", violations), ("lost", lost)):
        for line in found[:20]:
            print(f"{name}: {line}")
    for line in ttl_left[:20]:
        print(f"ttl item not expired: {line}: {regions[line.split(' in ')[1]].get(line.split(' in ')[0])}")
    for line in sorted(set(expected) ^ set(logged))[:40]:
        print(
            f"conflict {'in history, not logged' if line in expected else 'logged, not in history'}: {line}"
        )
    print(
        f"SOAK seed={settings.seed} operations={sum(work.done.values())} "
        f"faults={dict(sorted(faults.injected.items()))} elapsed={elapsed:.0f}s "
        f"divergent_keys={len(divergent)} lww_violations={len(violations)} lost_writes={len(lost)} "
        f"echo_invocations={echo_invocations:.0f} conflicts_lost_metric={conflicts_metric:.0f} "
        f"conflicts_logged={len(logged)} conflicts_in_history={len(expected)} "
        f"conflicts_settled_by_backfill={len(settled_by_backfill)} "
        f"conflicts_settled_by_backfill_or_lost_with_a_killed_invocation={len(settled_or_killed)} "
        f"conflicts_logged_over_a_restored_copy={len(logged_over_a_restore)} "
        f"backfill_overwrote={faults.backfill_overwrote} "
        f"ttl_expired={len(ttl_keys) - len(ttl_live) - len(ttl_tombstoned)}/{len(ttl_keys)} "
        f"ttl_live={len(ttl_live)} ttl_tombstoned={len(ttl_tombstoned)} dead_letters_left={dead_letters_left}"
    )

    assert faults.errors == [], f"a writer or a fault action failed: {faults.errors[0]!r}"
    assert sum(work.done.values()) == settings.operations
    assert divergent == []
    assert violations == []
    assert lost == []
    # an expired item still live anywhere would be a replicator bug; one tombstoned everywhere means an
    # expiry reached a replicator without the TTL identity (see ttl_survivors)
    assert (ttl_live, ttl_tombstoned) == ([], [])
    assert (echo_invocations, echo_skipped) == (0, 0)
    # every conflict of the history is logged, except those a backfill copy settled or a killed
    # invocation lost (the backfill's "overwrote" count is printed beside them; a lower bound: a page
    # that failed part-way is copied again and its count lost); every conflict logged is in the
    # history, except those whose winner was copied back into its own region after a delete there
    assert [c for c in unlogged if c not in settled_by_backfill and c not in settled_or_killed] == []
    assert [c for c in logged if c not in expected_set and c not in logged_over_a_restore] == []
    assert len(logged) == len(logged_set)  # each once
    assert conflicts_metric == len(logged) and not_logged == 0
    assert dead_letters_left == 0
    # and every kind of fault was injected, the outage did not stop the other regions
    assert [kind for kind in FAULT_KINDS if not faults.injected[kind]] == []
    assert probes and all(p.arrived for p in probes), probes
    assert handed_off_to_down > 0


def guarded(work: Callable[..., None], faults: Faults) -> Callable[..., None]:
    def run(*args: Any) -> None:
        try:
            work(*args)
        except BaseException as err:
            faults.errors.append(err)

    return run


def ttl_survivors(cloud: LocalCloud, prefix: str, ttl_keys: set[str]) -> list[str]:
    """TTL keys still present in some region (their TTL is in the past: every region must expire them)."""
    regions = snapshot(cloud, prefix)
    return sorted(f"{pk} in {r}" for r, items in regions.items() for pk in items if pk in ttl_keys)


def lost_writes(
    ledger: Ledger,
    created: dict[str, Any],
    regions: dict[str, dict[str, dict[str, Any]]],
    ttl_keys: set[str],
) -> list[str]:
    """Acknowledged (helper) writes neither surviving nor superseded by a greater version in the history.

    A write is kept when the streams show its version and every region's survivor is at least it (a TTL
    item instead is expired: absent everywhere, checked apart).
    """
    found = []
    for pk, versions in sorted(ledger.versions.items()):
        for told in versions:
            if stamp_of(told) not in created.get(pk, {}):
                found.append(f"{pk}: {told} acknowledged, never in any stream")
                continue
            if pk in ttl_keys:
                continue
            for region, items in regions.items():
                survivor = stamp_of_item(items.get(pk))
                if survivor < stamp_of(told):
                    found.append(f"{pk} in {region}: {told} acknowledged, {survivor} survives")
    return found
