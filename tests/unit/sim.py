"""A simulated multi-region deployment in memory, driven through the real engine and core.

Each region has a MemTable (applying the protocol's guarded writes by version) and a Replicator with
fake ports that write and read the regions' MemTables. Tests pick the schedule: which app
writes happen where, when each replicator reads which slice of its stream, what is redelivered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ddbrep.client import ReplicatedTable
from replicator.backfill_segments import backfill_write
from replicator.core import metrics_names as m
from replicator.core.conflicts import overwrote_own_write, version_from_json
from replicator.core.errors import ErrorKind, WriteResult
from replicator.core.metadata import (
    LOWEST,
    AttributeNames,
    Version,
    WireItem,
    is_tombstone,
    pad_sequence,
    user_attributes,
    version_of,
)
from replicator.core.plan import TargetWrite
from replicator.core.wire import from_sdk
from replicator.drain_core import Drainer
from replicator.engine import BatchOutcome, Replicator, conflict_entry
from replicator.settings import Settings, Target
from tests.unit.memtable import MemTable

NAMES = AttributeNames()
WRITE_ATTEMPTS = 2


@dataclass
class FakePorts:
    tables: dict[str, MemTable]
    local_region: str
    down: set[str] = field(default_factory=set)
    handed_off: list[tuple[str, TargetWrite, str]] = field(default_factory=list)
    dead_letters: list[Mapping[str, Any]] = field(default_factory=list)
    conflict_logs: list[list[Mapping[str, Any]]] = field(default_factory=list)  # one per invocation

    def put_guarded(
        self,
        target: Target | None,
        table: str,
        item: WireItem,
        version: Version,
        *,
        return_replaced: bool = False,
        return_stored: bool = False,
    ) -> WriteResult:
        if target is None:  # the replicator's own region always answers it
            return self.tables[self.local_region].put_guarded(item, version, return_replaced)
        if target.region in self.down:  # every attempt failed: what the adapters answer then
            return WriteResult(ErrorKind.RETRYABLE, WRITE_ATTEMPTS - 1, "NetworkError: region unreachable")
        return self.tables[target.region].put_guarded(item, version, return_replaced)

    def get_item(
        self, target: Target | None, table: str, key: WireItem, *, consistent: bool
    ) -> WireItem | None:
        return self.tables[self.local_region if target is None else target.region].get(key)

    def handoff(self, target: Target, write: TargetWrite, reason: str) -> None:
        self.handed_off.append((target.region, write, reason))

    def load_handoff(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        return dict(message)

    def dead_letter(self, entry: Mapping[str, Any]) -> str:
        self.dead_letters.append(entry)
        return f"dl-{len(self.dead_letters)}"

    def log_conflicts(self, entries: Sequence[Mapping[str, Any]]) -> str:
        self.conflict_logs.append(list(entries))
        return f"conflicts-{len(self.conflict_logs)}"


def settings_for(
    region: str,
    regions: list[str],
    topology: str = "mesh",
    filters: Mapping[str, Mapping[str, Any]] | None = None,
    **overrides: Any,
) -> Settings:
    filters = filters or {}
    targets = tuple(
        Target(region=r, table="orders", handoff_queue_url=f"q-{r}", item_filter=filters.get(r))
        for r in regions
        if r != region
    )
    values: dict[str, Any] = {
        "local_region": region,
        "topology": topology,
        "source_table": "orders",
        "targets": targets,
        "names": NAMES,
        "dead_letter_bucket": "bucket",
        "max_workers": 1,
        "write_attempts": WRITE_ATTEMPTS,
        "retry_base_delay_ms": 0,
    }
    values.update(overrides)
    return Settings(**values)


def assert_accounted(outcome: BatchOutcome, settings: Settings) -> None:
    """Invariant 4: every record of the batch ended in exactly one named, counted outcome."""
    src = outcome.source_counts
    per_record = (
        m.MALFORMED_RECORDS,
        m.ECHO_SKIPPED,
        m.TTL_SKIPPED,
        m.TOMBSTONE_EXPIRY_SKIPPED,
        m.NO_CHANGE_SKIPPED,
        m.RECORDS_ADOPTED,
        m.LOCAL_TOMBSTONES_WRITTEN,
        m.LOCAL_WRITE_SUPERSEDED,
        m.LOCAL_WRITE_REJECTED,
        m.LOCAL_WRITE_FAILED,
        m.RECORDS_COALESCED,
        m.FUTURE_VERSIONS_REJECTED,
    )
    assert src[m.RECORDS_RECEIVED] == sum(src[name] for name in per_record) + outcome.keys_fanned_out
    per_write = (
        m.RECORDS_REPLICATED,
        m.STALE_SKIPPED,
        m.HANDED_OFF,
        m.DEAD_LETTERED,
        m.HANDOFF_FAILED,
    )
    for target in settings.targets:
        counts = outcome.pair_counts[target.region]
        assert sum(counts[name] for name in per_write) == outcome.keys_fanned_out, target.region
        # A lost conflict is one of the applied writes, not an outcome of its own; each is logged or
        # counted as not logged, never both.
        assert counts[m.CONFLICTS_LOST] <= counts[m.RECORDS_REPLICATED], target.region
        logged = [e for e in outcome.conflicts if e["target_region"] == target.region]
        assert len(logged) + counts[m.CONFLICTS_NOT_LOGGED] == counts[m.CONFLICTS_LOST], target.region


class Mesh:
    """N regions, each with its table, its app client (the helper) and its replicator."""

    def __init__(
        self,
        regions: list[str],
        topology: str = "mesh",
        filters: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.regions = regions
        clock = [1_700_000_000.0]  # one simulated wall clock shared by the streams and the replicators
        self.clock = clock
        self.tables = {r: MemTable(region=r, clock=clock) for r in regions}
        self.ports = {r: FakePorts(self.tables, r) for r in regions}
        sources = regions if topology == "mesh" else regions[:1]
        self.replicators = {
            r: Replicator(
                settings_for(r, regions, topology, filters),
                self.ports[r],
                clock=lambda: clock[0],
            )
            for r in sources
        }
        self.cursor = dict.fromkeys(regions, 0)
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.conflicts_lost = 0  # ConflictsLost of every batch and replay, all pairs
        # (key, replaced, copy): every backfill copy that replaced a write made in its target region
        self.backfill_overwrites: list[tuple[str, Version, Version]] = []

    def __enter__(self) -> Mesh:
        return self

    def __exit__(self, *_: object) -> None:
        for replicator in self.replicators.values():
            replicator.close()

    def app(self, region: str, clock_us: list[int]) -> ReplicatedTable:
        def tick() -> int:
            clock_us[0] += 1
            return clock_us[0]

        return ReplicatedTable(self.tables[region], "orders", region, clock=tick)

    def deliver(self, region: str, count: int) -> None:
        """The replicator of ``region`` reads the next ``count`` records of its stream."""
        stream = self.tables[region].stream
        start = self.cursor[region]
        batch = stream[start : start + count]
        if batch:
            outcome = self.replicators[region].process_batch(batch)
            assert_accounted(outcome, self.replicators[region].settings)
            self._count_conflicts(outcome)
            failed = sorted(outcome.failed_sequence_numbers, key=int)
            if failed:  # Lambda resumes from the lowest reported failure
                first = next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] == failed[0])
                self.cursor[region] = start + first
            else:
                self.cursor[region] = start + len(batch)

    def redeliver(self, region: str, start: int, count: int) -> None:
        """Lambda delivers an earlier slice again (a retry or a duplicate)."""
        stream = self.tables[region].stream
        batch = stream[start : start + count]
        if batch:
            outcome = self.replicators[region].process_batch(batch)
            assert_accounted(outcome, self.replicators[region].settings)
            self._count_conflicts(outcome)

    def backfill_copy(self, source: str, target: str, key: WireItem) -> None:
        """A backfill from ``source`` copies ``key``'s item to ``target``: the segment worker's write
        (``backfill_write``, the guarded put) and its overwrite report (``overwrote_own_write``)."""
        item = self.tables[source].get(key)
        if item is None:
            return
        write = backfill_write(item, Target(region=target, table="orders"), ("pk",), NAMES, source)
        if write is None:
            return
        result = self.tables[target].put_guarded(write.item, write.version, True)
        replaced = version_of(result.replaced, NAMES) if result.replaced else None
        if result.kind is None and overwrote_own_write(write.version, replaced, target):
            assert replaced is not None
            self.backfill_overwrites.append((json.dumps(dict(key), sort_keys=True), replaced, write.version))

    def _count_conflicts(self, outcome: BatchOutcome) -> None:
        self.conflicts_lost += sum(c[m.CONFLICTS_LOST] for c in outcome.pair_counts.values())

    def drain(self, batch: int = 100, max_rounds: int = 300) -> None:
        for _ in range(max_rounds):
            progressed = False
            for region in self.replicators:
                if self.cursor[region] < len(self.tables[region].stream):
                    self.deliver(region, batch)
                    progressed = True
            if not progressed:
                return
        raise AssertionError("replication did not quiesce")

    def recover_and_replay_handoffs(self) -> None:
        """Every region answers again; each drain function replays its target's handoff queue."""
        for region, ports in self.ports.items():
            ports.down.clear()
            settings = self.replicators[region].settings if region in self.replicators else None
            while ports.handed_off and settings is not None:
                target_region, write, _ = ports.handed_off.pop(0)
                drainer = Drainer(settings, settings.target(target_region), ports)
                result = drainer.apply(write, {})
                if result.conflict is not None:
                    self.conflicts_lost += 1
                    ports.log_conflicts([conflict_entry(result.conflict, region, target_region)])
        self.drain()

    def live_state(self, region: str) -> dict[str, tuple[Version, str]]:
        """Per key: (version, user attributes) of the live items; tombstones count as absent."""
        out = {}
        for key, item in self.tables[region].items.items():
            if not is_tombstone(item, NAMES):
                v = version_of(item, NAMES)
                user = from_sdk(user_attributes(item, NAMES))  # binary values as base64 text: comparable JSON
                out[key] = (Version(v.ts, v.region), json.dumps(user, sort_keys=True))
        return out

    def user_items(self, region: str) -> dict[str, str]:
        """Per key, the live item's user attributes only (one-way replicas carry their own versions)."""
        return {
            key: json.dumps(from_sdk(user_attributes(item, NAMES)), sort_keys=True)
            for key, item in self.tables[region].items.items()
            if not is_tombstone(item, NAMES)
        }

    def winners(self) -> dict[str, tuple[Version, str] | None]:
        """Per key, the greatest version ever created (None when it is a tombstone).

        Each version is taken where it was created (a region's own stream, images it stamped with its
        own name), with its full order: a local adoption or tombstone carries the sequence number that
        orders it against another version made in the same microsecond.
        """
        best: dict[str, tuple[Version, dict[str, Any]]] = {}
        for region, table in self.tables.items():
            for record in table.stream:
                image = record["dynamodb"].get("NewImage")
                if image is None or image.get(NAMES.region, {}).get("S") != region:
                    continue
                key = json.dumps(record["dynamodb"]["Keys"], sort_keys=True)
                v = version_of(image, NAMES)
                if key not in best or v > best[key][0]:
                    best[key] = (v, image)
        return {
            k: None
            if is_tombstone(img, NAMES)
            else (Version(v.ts, v.region), json.dumps(user_attributes(img, NAMES), sort_keys=True))
            for k, (v, img) in best.items()
        }

    def logged_conflicts(self) -> list[tuple[str, Version, Version]]:
        """(key, losing version, winning version) of every conflict log entry, in any region."""
        return sorted(
            (
                json.dumps(entry["keys"], sort_keys=True),
                version_from_json(entry["losing"]),
                version_from_json(entry["winning"]),
            )
            for ports in self.ports.values()
            for log in ports.conflict_logs
            for entry in log
        )

    def conflicts_in_history(self) -> list[tuple[str, Version, Version]]:
        """The conflicts the streams show, found without the engine's rule or plumbing.

        A region's own write W lost a conflict when the record that replaced it in its region's stream
        brought another region's version V, and V's writer had not seen W: the record that created V
        in its own region's stream replaced a state older than W (or an unversioned one).
        """
        # A replicated copy carries the sequence number of the record that created its original in its
        # own version: index each creation by that too.
        created_over: dict[tuple[str, Version], Version] = {}
        for region, table in self.tables.items():
            for record in table.stream:
                new = record["dynamodb"].get("NewImage")
                if new is None or new.get(NAMES.region, {}).get("S") != region:
                    continue
                key = json.dumps(record["dynamodb"]["Keys"], sort_keys=True)
                old = record["dynamodb"].get("OldImage")
                created = version_of(new, NAMES)
                base = version_of(old, NAMES) if old else LOWEST
                created_over.setdefault((key, created), base)
                sequence = pad_sequence(record["dynamodb"]["SequenceNumber"])
                created_over.setdefault((key, created._replace(seq=sequence)), base)
        found = []
        for region, table in self.tables.items():
            for record in table.stream:
                old, new = record["dynamodb"].get("OldImage"), record["dynamodb"].get("NewImage")
                if old is None or new is None or old.get(NAMES.region, {}).get("S") != region:
                    continue
                if new.get(NAMES.region, {}).get("S") in (None, region):
                    continue
                key = json.dumps(record["dynamodb"]["Keys"], sort_keys=True)
                lost, winner = version_of(old, NAMES), version_of(new, NAMES)
                if created_over[(key, winner)] < lost:
                    found.append((key, lost, winner))
        return sorted(found)
