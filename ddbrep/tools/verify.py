"""Verify (and repair) two regions of a replicated table: compare every key, report what differs.

A tombstone equals an absent item. In a mesh, two live copies agree when their user attributes and
their version ``(rep_ts, rep_region)`` agree (``rep_seq`` is not compared: only targets carry it). For a
one-way replica, whose version comes from the stream record, only user attributes are compared
(``ignore_metadata``).

Repair writes the winning side over the losing one with the protocol's conditional put, so it is safe
while replication runs (a newer live write makes the repair stale, never the other way round):

- mesh: the copy with the greater version wins; a key present on one side only is copied to the
  other (a copy without metadata is the lowest version, so copying it conditionally is safe);
- one-way (``ignore_metadata``): the first region is the source of truth and only the second is
  written, with the version "start of this verify run" so that any change made since wins.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import ddbrep  # noqa: F401  (puts the Lambda asset on the import path)
from ddbrep.tools.aws import Clients, ToolError, check_same_keys, describe_table, explain
from replicator.adapters import DynamoPorts
from replicator.core import defaults
from replicator.core.compare import Kind, changed_attributes, compare, is_live, stamp_of
from replicator.core.errors import ErrorKind
from replicator.core.metadata import (
    AttributeNames,
    Version,
    WireItem,
    mark_origin,
    stamp,
    tombstone_for,
    version_of,
)
from replicator.core.plan import matches_filter
from replicator.core.records import key_id
from replicator.core.wire import from_sdk

DEFAULT_SAMPLES = 10
DEFAULT_RETENTION_SECONDS = defaults.TOMBSTONE_RETENTION_SECONDS  # one definition: core/defaults


class RepairOutcome(StrEnum):
    APPLIED = "applied"
    STALE = "stale"  # the side written to changed meanwhile and now holds a newer version
    FAILED = "failed"
    UNREPAIRABLE = "unrepairable"  # no version orders the two copies


# --- pure decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairWrite:
    side: str  # "a" or "b": the side written to
    item: WireItem
    version: Version


def plan_repair(
    a: WireItem | None,
    b: WireItem | None,
    key: WireItem,
    names: AttributeNames,
    one_way_version: Version | None = None,
    retention_seconds: int = DEFAULT_RETENTION_SECONDS,
) -> RepairWrite | str:
    """The write that repairs one differing key, or why none can.

    ``one_way_version`` set: one-way repair (the first side is the truth, only the second is written).
    """
    if one_way_version is not None:
        if is_live(a, names):
            assert a is not None
            return RepairWrite("b", stamp(a, one_way_version, names), one_way_version)
        return RepairWrite(
            "b", tombstone_for(key, one_way_version, retention_seconds, names), one_way_version
        )
    if b is None and a is not None:
        return RepairWrite("b", a, version_of(a, names))
    if a is None and b is not None:
        return RepairWrite("a", b, version_of(b, names))
    va, vb = version_of(a, names), version_of(b, names)
    if va[:2] > vb[:2]:
        assert a is not None
        return RepairWrite("b", a, va)
    if vb[:2] > va[:2]:
        assert b is not None
        return RepairWrite("a", b, vb)
    return (
        "both copies carry the same version (or none): no order between them; rewrite the item "
        "through the client helper (it stamps a new version) and it replicates"
    )


# --- the report ----------------------------------------------------------------------------------------


@dataclass
class Side:
    region: str
    table: str
    scanned: int = 0


@dataclass
class VerifyReport:
    a: Side
    b: Side
    ignore_metadata: bool
    sample_size: int = DEFAULT_SAMPLES
    matching: int = 0
    filtered_out: int = 0  # --filter: source items the partial replica does not hold (and does not)
    counts: dict[str, int] = field(default_factory=lambda: {k.value: 0 for k in Kind})
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k.value: [] for k in Kind})
    repaired: bool = False
    repairs: dict[str, int] = field(default_factory=dict)
    repair_samples: list[dict[str, Any]] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def differences(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """The tables match (or, after --repair, every difference was repaired)."""
        if not self.repaired:
            return self.differences == 0
        return self.repairs.get(RepairOutcome.APPLIED.value, 0) == self.differences

    def note(
        self, kind: Kind, key: WireItem, a: WireItem | None, b: WireItem | None, names: AttributeNames
    ) -> None:
        with self._lock:
            self.counts[kind.value] += 1
            if len(self.samples[kind.value]) < self.sample_size:
                self.samples[kind.value].append(
                    {
                        "key": dict(key),
                        "a_version": list(stamp_of(a, names)) if a is not None else None,
                        "b_version": list(stamp_of(b, names)) if b is not None else None,
                        "changed": changed_attributes(a, b, names) if kind is Kind.DIFFERENT else [],
                    }
                )

    def note_repair(self, key: WireItem, region: str, outcome: RepairOutcome, detail: str = "") -> None:
        with self._lock:
            name = f"{outcome.value}:{region}" if outcome is RepairOutcome.APPLIED else outcome.value
            self.repairs[name] = self.repairs.get(name, 0) + 1
            if outcome is RepairOutcome.APPLIED:
                self.repairs[RepairOutcome.APPLIED.value] = (
                    self.repairs.get(RepairOutcome.APPLIED.value, 0) + 1
                )
            if len(self.repair_samples) < self.sample_size:
                self.repair_samples.append(
                    {"key": dict(key), "written_to": region, "outcome": outcome.value, "detail": detail}
                )

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "match": self.differences == 0,
            "ok": self.ok,
            "a": {"region": self.a.region, "table": self.a.table, "scanned": self.a.scanned},
            "b": {"region": self.b.region, "table": self.b.table, "scanned": self.b.scanned},
            "compared": "user attributes"
            if self.ignore_metadata
            else "user attributes and (rep_ts, rep_region)",
            "matching": self.matching,
            "filtered_out": self.filtered_out,
            "counts": dict(self.counts),
            "samples": self.samples,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }
        if self.repaired:
            doc["repairs"] = dict(self.repairs)
            doc["repair_samples"] = self.repair_samples
        return doc

    def render(self) -> Any:
        """A rich renderable (a table per section) for people."""
        from rich.console import Group
        from rich.table import Table

        summary = Table(title=f"verify {self.a.region}/{self.a.table} against {self.b.region}/{self.b.table}")
        summary.add_column("")
        summary.add_column("items", justify="right")
        summary.add_row(f"scanned in {self.a.region}", str(self.a.scanned))
        summary.add_row(f"scanned in {self.b.region}", str(self.b.scanned))
        summary.add_row("matching", str(self.matching))
        if self.filtered_out:
            summary.add_row(f"left out by --filter (absent in {self.b.region})", str(self.filtered_out))
        summary.add_row(f"missing in {self.b.region}", str(self.counts[Kind.MISSING]))
        summary.add_row(f"extra in {self.b.region}", str(self.counts[Kind.EXTRA]))
        summary.add_row("different", str(self.counts[Kind.DIFFERENT]))
        parts: list[Any] = [summary]
        if any(self.samples.values()):
            samples = Table(title="samples")
            for column in (
                "kind",
                "key",
                f"version in {self.a.region}",
                f"version in {self.b.region}",
                "newer",
                "changed",
            ):
                samples.add_column(column)
            for kind, rows in self.samples.items():
                for row in rows:
                    samples.add_row(
                        kind,
                        json.dumps(row["key"]),
                        _version_text(row["a_version"]),
                        _version_text(row["b_version"]),
                        self._newer(row),
                        ", ".join(row["changed"]),
                    )
            parts.append(samples)
        if self.repaired:
            repairs = Table(title="repair")
            repairs.add_column("outcome")
            repairs.add_column("writes", justify="right")
            for name, count in sorted(self.repairs.items()):
                if name != RepairOutcome.APPLIED.value:
                    repairs.add_row(name.replace("applied:", "written to "), str(count))
            parts.append(repairs)
        return Group(*parts)

    def _newer(self, row: Mapping[str, Any]) -> str:
        a, b = row["a_version"], row["b_version"]
        if a is None or b is None:
            return self.a.region if b is None else self.b.region
        if a == b:
            return "same version"
        return self.a.region if tuple(a) > tuple(b) else self.b.region

    def unrepairable_lines(self) -> list[str]:
        """One line per unrepairable key: the key, why, and the fix (printed whole, never wrapped)."""
        return [
            f"unrepairable: key {json.dumps(sample['key'], sort_keys=True)}: {sample['detail']}; then run "
            "verify again"
            for sample in self.repair_samples
            if sample["outcome"] == RepairOutcome.UNREPAIRABLE.value
        ]


def _version_text(version: Sequence[Any] | None) -> str:
    """A whole version, (rep_ts, rep_region), or why there is none."""
    if version is None:
        return "absent"
    ts, region = version
    return "unstamped" if ts < 0 else f"rep_ts {ts}, rep_region {region}"


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Verify:
    clients: Clients
    a: Side
    b: Side
    segments: int = 4
    page_size: int = 500
    names: AttributeNames = field(default_factory=AttributeNames)
    ignore_metadata: bool = False
    item_filter: Mapping[str, Any] | None = None  # a partial replica: items of A not matching count as absent
    repair: bool = False
    sample_size: int = DEFAULT_SAMPLES
    retention_seconds: int = DEFAULT_RETENTION_SECONDS
    consistent_read: bool = False
    clock: Callable[[], float] = time.time
    on_segment: Callable[[int, int, int], None] = lambda _segment, _a, _b: None
    _count_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(self) -> VerifyReport:
        if self.segments < 1 or self.page_size < 1:
            raise ToolError("--segments and --page-size must be at least 1")
        info_a = describe_table(self.clients, self.a.region, self.a.table)
        info_b = describe_table(self.clients, self.b.region, self.b.table)
        check_same_keys([info_a, info_b])
        key_names = info_a.key_names
        report = VerifyReport(self.a, self.b, self.ignore_metadata, self.sample_size, repaired=self.repair)
        # One-way repairs carry the run's start (whole seconds): a change made since then has a stream
        # version at least this large plus a sequence number, so it always wins over the repair.
        one_way = Version(int(self.clock()) * 1_000_000, self.a.region) if self.ignore_metadata else None
        left_a: dict[str, WireItem] = {}
        left_b: dict[str, WireItem] = {}
        lock = threading.Lock()
        started = time.monotonic()

        def segment(i: int) -> None:
            # The two regions are scanned at the same time (they are different endpoints).
            loading_b = side_pool.submit(self._load, self.b, i, key_names)
            items_a = self._load(self.a, i, key_names)
            items_b = loading_b.result()
            for kid in list(items_a):
                if kid in items_b:
                    self._settle(report, items_a.pop(kid), items_b.pop(kid), key_names, one_way)
            # Keys seen on one side only in this segment: matched across segments at the end (two
            # tables need not split their keys into segments the same way).
            with lock:
                left_a.update(items_a)
                left_b.update(items_b)
            self.on_segment(i, report.a.scanned, report.b.scanned)

        with (
            ThreadPoolExecutor(max_workers=self.segments, thread_name_prefix="verify") as pool,
            ThreadPoolExecutor(max_workers=self.segments, thread_name_prefix="verify-b") as side_pool,
        ):
            for future in [pool.submit(segment, i) for i in range(self.segments)]:
                future.result()
        for kid in set(left_a) | set(left_b):
            self._settle(report, left_a.get(kid), left_b.get(kid), key_names, one_way)
        report.elapsed_seconds = time.monotonic() - started
        return report

    def _load(self, side: Side, segment: int, key_names: Sequence[str]) -> dict[str, WireItem]:
        items: dict[str, WireItem] = {}
        for page in self._pages(side, segment):
            for item in page:
                items[key_id({k: item[k] for k in key_names})] = item
            with self._count_lock:
                side.scanned += len(page)
        return items

    def _pages(self, side: Side, segment: int) -> Iterator[list[WireItem]]:
        client = self.clients.dynamodb(side.region)
        request: dict[str, Any] = {
            "TableName": side.table,
            "Segment": segment,
            "TotalSegments": self.segments,
            "Limit": self.page_size,
            "ConsistentRead": self.consistent_read,
        }
        while True:
            try:
                page = client.scan(**request)
            except Exception as err:
                raise explain(err, "dynamodb:Scan", side.region, side.table) from None
            yield [from_sdk(item) for item in page.get("Items", [])]  # a boto3 read: event form, once
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _settle(
        self,
        report: VerifyReport,
        a: WireItem | None,
        b: WireItem | None,
        key_names: Sequence[str],
        one_way: Version | None,
    ) -> None:
        names = self.names
        present = a if a is not None else b
        assert present is not None
        key = {k: present[k] for k in key_names}
        if (
            a is not None
            and self.item_filter is not None
            and is_live(a, names)
            and not matches_filter(self.item_filter, a)
        ):
            a = None  # not replicated to this partial replica: as if absent
            if b is None or not is_live(b, names):
                with report._lock:
                    report.filtered_out += 1  # absent on both sides by design: not "matching"
                return
        kind = compare(a, b, names, self.ignore_metadata)
        if kind is None:
            with report._lock:
                report.matching += 1
            return
        report.note(kind, key, a, b, names)
        if self.repair:
            self._repair(report, a, b, key, one_way)

    def _repair(
        self,
        report: VerifyReport,
        a: WireItem | None,
        b: WireItem | None,
        key: WireItem,
        one_way: Version | None,
    ) -> None:
        plan = plan_repair(a, b, key, self.names, one_way, self.retention_seconds)
        if isinstance(plan, str):
            report.note_repair(key, "", RepairOutcome.UNREPAIRABLE, plan)
            return
        side, origin = (self.a, self.b) if plan.side == "a" else (self.b, self.a)
        item = mark_origin(plan.item, origin.region, self.names)
        result = DynamoPorts(self.clients.dynamodb, side.region, self.names).put_guarded(
            None, side.table, item, plan.version
        )
        if result.kind is None:
            report.note_repair(key, side.region, RepairOutcome.APPLIED)
        elif result.kind is ErrorKind.STALE:
            report.note_repair(key, side.region, RepairOutcome.STALE, "a newer version arrived meanwhile")
        else:
            report.note_repair(key, side.region, RepairOutcome.FAILED, result.error)
