"""The backfill run on one machine: segments in threads, a checkpoint file, a shared write budget.

The segment worker itself is the Lambda asset's (``replicator.backfill_segments``), so the deployed job and
this command copy items in exactly the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ddbrep  # noqa: F401  (puts the Lambda asset on the import path)
from ddbrep.tools.aws import Clients, ToolError, check_same_keys, describe_table, explain
from ddbrep.tools.run_file import read_run_file, write_run_file
from replicator.adapters import DynamoPorts
from replicator.backfill_segments import (
    BackfillError,
    SegmentState,
    SegmentWorker,
    WriteBudget,
    first_segments,
)
from replicator.core.metadata import AttributeNames
from replicator.settings import Target

CHECKPOINT_VERSION = 1
DEFAULT_CHECKPOINT_DIR = Path(".ddbrep")


def default_checkpoint_path(source_region: str, table: str, targets: Sequence[Target]) -> Path:
    to = "+".join(f"{t.region}.{t.table}" for t in targets)
    return DEFAULT_CHECKPOINT_DIR / f"backfill-{source_region}.{table}-to-{to}.json"


class Checkpoint:
    """One JSON file per run: the run's identity and one entry per segment; rewritten atomically."""

    def __init__(self, path: Path, identity: Mapping[str, Any]) -> None:
        self.path = path
        self.identity = dict(identity)
        self._states: dict[int, SegmentState] = {}
        self._lock = threading.Lock()

    def load_or_start(self, total_segments: int, restart: bool = False) -> list[SegmentState]:
        """The segments' positions: from the file when it is this run's, else from the start."""
        doc = (
            None
            if restart
            else read_run_file(
                self.path,
                self.identity,
                "checkpoint",
                "pass --restart to start this one from scratch, or --checkpoint PATH to keep both",
            )
        )
        if doc is not None:
            states = [SegmentState.from_json(s) for s in doc["segments"]]
        else:
            states = first_segments(total_segments)
        self._states = {s.segment: s for s in states}
        self._write()
        return states

    def save(self, state: SegmentState) -> None:
        with self._lock:
            self._states[state.segment] = state
            self._write()

    def _write(self) -> None:
        doc = {
            "version": CHECKPOINT_VERSION,
            "identity": self.identity,
            "updated_at": time.time(),
            "segments": [self._states[i].to_json() for i in sorted(self._states)],
        }
        write_run_file(self.path, doc)


@dataclass
class BackfillReport:
    segments: list[SegmentState]
    elapsed_seconds: float
    skipped_segments: list[int] = field(default_factory=list)  # done before this run started
    budget_wait_seconds: float = 0.0
    scanned_before: int = 0  # items a resumed run's checkpoint had already scanned

    @property
    def scanned_this_run(self) -> int:
        return self.total("scanned") - self.scanned_before

    def rate(self) -> float | None:
        """Items scanned per second by this run; None when too little ran to say (a finished resume)."""
        if self.elapsed_seconds < 1.0 or self.scanned_this_run <= 0:
            return None
        return self.scanned_this_run / self.elapsed_seconds

    def total(self, name: str) -> int:
        return sum(int(getattr(s, name)) for s in self.segments)

    @property
    def done(self) -> bool:
        return all(s.done for s in self.segments)

    def to_json(self) -> dict[str, Any]:
        names = ("scanned", "written", "stale", "unchanged", "filtered", "failed", "overwrote")
        totals = {n: self.total(n) for n in names}
        return {
            "done": self.done,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
            "totals": totals,
            "scanned_this_run": self.scanned_this_run,
            "skipped_segments": self.skipped_segments,
            "budget_wait_seconds": round(self.budget_wait_seconds, 3),
            "segments": [s.to_json() for s in self.segments],
        }


@dataclass
class BackfillRun:
    """A backfill of ``source_table`` in ``source_region`` to ``targets``."""

    clients: Clients
    source_region: str
    source_table: str
    targets: Sequence[Target]
    segments: int = 4
    page_size: int = 100
    names: AttributeNames = field(default_factory=AttributeNames)
    budget: WriteBudget = field(default_factory=WriteBudget)
    checkpoint_path: Path | None = None
    restart: bool = False
    write_attempts: int = 4
    read_first: bool = False
    on_page: Callable[[SegmentState], None] = lambda _state: None
    sleep: Callable[[float], None] = time.sleep

    def checkpoint_file(self) -> Path:
        """Where each segment's position is saved after every page (the file a re-run resumes from)."""
        return self.checkpoint_path or default_checkpoint_path(
            self.source_region, self.source_table, self.targets
        )

    def preflight(self) -> tuple[list[str], int]:
        """Key names and the source's approximate item count; a clear error for what must be fixed."""
        if not self.targets:
            raise ToolError("no target: pass --target REGION[=TABLE] at least once")
        if self.segments < 1 or self.page_size < 1:
            raise ToolError("--segments and --page-size must be at least 1")
        source = describe_table(self.clients, self.source_region, self.source_table)
        tables = [source] + [
            describe_table(self.clients, t.region, t.table, t.role_arn) for t in self.targets
        ]
        check_same_keys(tables)
        return source.key_names, source.item_count

    def run(self, key_names: Sequence[str] | None = None) -> BackfillReport:
        if key_names is None:
            key_names, _count = self.preflight()
        identity = {
            "source": {"region": self.source_region, "table": self.source_table},
            "targets": [{"region": t.region, "table": t.table} for t in self.targets],
            "total_segments": self.segments,
        }
        checkpoint = Checkpoint(self.checkpoint_file(), identity)
        states = checkpoint.load_or_start(self.segments, self.restart)
        skipped = [s.segment for s in states if s.done]
        results: dict[int, SegmentState] = {s.segment: s for s in states}
        stop = threading.Event()
        worker = SegmentWorker(
            source=self.clients.dynamodb(self.source_region),
            source_table=self.source_table,
            source_region=self.source_region,
            key_names=list(key_names),
            targets=self.targets,
            target_ports=DynamoPorts(
                self.clients.dynamodb, self.source_region, self.names, self.write_attempts, sleep=self.sleep
            ),
            names=self.names,
            page_size=self.page_size,
            budget=self.budget,
            write_attempts=self.write_attempts,
            read_first=self.read_first,
            sleep=self.sleep,
        )

        def page_done(state: SegmentState) -> None:
            results[state.segment] = state
            checkpoint.save(state)
            self.on_page(state)

        def run_segment(state: SegmentState) -> SegmentState:
            return worker.run(state, keep_going=lambda: not stop.is_set(), on_page=page_done)

        started = time.monotonic()
        pending = [s for s in states if not s.done]
        errors: list[BackfillError] = []
        with ThreadPoolExecutor(max_workers=max(1, len(pending)), thread_name_prefix="backfill") as pool:
            futures = [pool.submit(run_segment, s) for s in pending]
            try:
                for future in futures:
                    try:
                        future.result()
                    except BackfillError as err:
                        stop.set()  # the others finish their page, checkpoint, and stop
                        errors.append(err)
                    except Exception as err:
                        stop.set()
                        errors.append(BackfillError(str(explain(err, "backfill", self.source_region))))
            except BaseException:  # Ctrl-C: let every segment checkpoint its page, then stop
                stop.set()
                raise
        report = BackfillReport(
            segments=[results[i] for i in sorted(results)],
            elapsed_seconds=time.monotonic() - started,
            skipped_segments=skipped,
            budget_wait_seconds=self.budget.waited_seconds,
            scanned_before=sum(s.scanned for s in states),
        )
        if errors:
            raise ToolError(f"backfill stopped (resume with the same command): {errors[0]}")
        return report


def parse_targets(values: Sequence[str], default_table: str) -> list[Target]:
    """``["eu-west-1", "ap-south-1=orders-replica"]`` -> targets (table defaults to the source's name)."""
    targets = []
    for value in values:
        region, _sep, table = value.partition("=")
        if not region:
            raise ToolError(f"--target {value!r}: expected REGION or REGION=TABLE")
        targets.append(Target(region=region.strip(), table=(table or default_table).strip()))
    return targets


def with_filter(targets: Sequence[Target], region: str, item_filter: Mapping[str, Any]) -> list[Target]:
    from dataclasses import replace

    if not any(t.region == region for t in targets):
        raise ToolError(f"--filter {region}=...: {region} is not a --target")
    return [replace(t, item_filter=item_filter) if t.region == region else t for t in targets]
