"""Replay of one handoff message (I/O through ports; no Lambda specifics, so redrive reuses it).

A handoff queue is a boundary: the drain trusts a message no more than a stream record. It writes only
to its own target's configured table, follows only pointers into its own bucket under its own
``handoff/<target>/`` prefix, and replays only a well-formed write; anything else is dead-lettered
with the reason and the raw message (never retried for ever, never written elsewhere).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from replicator.core import metrics_names as m
from replicator.core.backoff import HANDOFF_BACKOFF, Backoff
from replicator.core.conflicts import LostConflict
from replicator.core.errors import ErrorKind
from replicator.core.metadata import MetadataError, version_of
from replicator.core.plan import TargetWrite
from replicator.core.wire import WireFormatError, validate_item
from replicator.engine import conflict_entry, conflict_of
from replicator.ports import TableWrites
from replicator.settings import Settings, Target


class DrainPorts(TableWrites, Protocol):
    def log_conflicts(self, entries: Sequence[Mapping[str, Any]]) -> str: ...
    def load_handoff(self, message: Mapping[str, Any]) -> Mapping[str, Any]: ...
    def dead_letter(self, entry: Mapping[str, Any]) -> str: ...


class HandoffQueue(Protocol):
    def postpone_handoff(self, target: Target, receipt_handle: str, seconds: int) -> bool: ...


logger = logging.getLogger(__name__)


class DrainFailed(Exception):
    """The target still does not take the write: the message stays in the queue."""


class RejectedHandoff(ValueError):
    """A message this drain must not act on; it goes to the dead-letter store with this reason."""


@dataclass(frozen=True)
class ReplayResult:
    metric: str  # HandoffReplayed, StaleSkipped or DeadLettered
    latency_ms: float | None = None
    conflict: LostConflict | None = None  # the replayed write overwrote a concurrent one


class Drainer:
    def __init__(
        self,
        settings: Settings,
        target: Target,
        ports: DrainPorts,
        clock: Callable[[], float] = time.time,
        backoff: Backoff = HANDOFF_BACKOFF,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.settings, self.target, self.ports, self.clock = settings, target, ports, clock
        self.backoff, self.draw = backoff, draw

    def replay_message(
        self, body: str, *, message_id: str, receipt_handle: str, receive_count: int, queue: HandoffQueue
    ) -> ReplayResult:
        """Replay one received message; if it fails, hide it for the backoff of its receive count.

        The queue's own visibility timeout would retry every few minutes and exhaust maxReceiveCount
        in days; the per-message backoff keeps a write replaying for the queue's whole retention.
        """
        try:
            return self.replay(body, message_id=message_id)
        except DrainFailed:
            seconds = self.backoff.delay(receive_count, self.draw())
            if not queue.postpone_handoff(self.target, receipt_handle, seconds):
                logger.warning("could not postpone %s by %d s (queue timeout applies)", message_id, seconds)
            raise

    def replay(self, body: str, message_id: str = "") -> ReplayResult:
        try:
            doc = self.ports.load_handoff(self.checked_message(body))
            write = self.checked_write(doc)
        except RejectedHandoff as err:
            self.ports.dead_letter(
                {
                    "reason": "handoff_rejected",
                    "error": str(err),
                    "body": body,
                    "message_id": message_id,
                    "source_region": self.settings.local_region,
                    "target_region": self.target.region,
                    "dead_lettered_at": self.clock(),
                }
            )
            return ReplayResult(m.DEAD_LETTERED)
        return self.apply(write, doc, message_id)

    def checked_message(self, body: str) -> Mapping[str, Any]:
        """The message as a JSON object; an S3 pointer may only name this region's bucket, under this
        target's handoff prefix."""
        try:
            doc = json.loads(body)
        except (TypeError, ValueError) as err:
            raise RejectedHandoff(f"the message body is not JSON: {err}") from None
        if not isinstance(doc, dict):
            raise RejectedHandoff("the message body is not a JSON object")
        pointer = doc.get("s3")
        if pointer is None:
            return doc
        prefix = f"{self.settings.handoff_prefix()}{self.target.region}/"
        bucket = pointer.get("bucket") if isinstance(pointer, dict) else None
        key = pointer.get("key") if isinstance(pointer, dict) else None
        if (
            bucket != self.settings.dead_letter_bucket
            or not isinstance(key, str)
            or not key.startswith(prefix)
        ):
            raise RejectedHandoff(
                f"the message points at s3://{bucket}/{key}; this drain follows only pointers into "
                f"s3://{self.settings.dead_letter_bucket}/{prefix}"
            )
        if ".." in key.split("/"):
            raise RejectedHandoff(f"the pointer key {key!r} climbs out of {prefix}")
        return doc

    def checked_write(self, doc: Any) -> TargetWrite:
        """The write the message carries, if it is for this target's table and well-formed."""
        try:
            write = TargetWrite.from_json(doc["write"])
        except (KeyError, TypeError, ValueError) as err:
            raise RejectedHandoff(
                f"the message holds no well-formed write ({type(err).__name__}: {err})"
            ) from None
        if write.region != self.target.region or write.table != self.target.table:
            raise RejectedHandoff(
                f"the write is for table {write.table!r} in {write.region}; this drain writes only "
                f"{self.target.table!r} in {self.target.region}"
            )
        try:
            validate_item(write.item, "write.item")
            validate_item(write.keys, "write.keys")
        except WireFormatError as err:
            raise RejectedHandoff(str(err)) from None
        if not write.keys or any(write.item.get(k) != v for k, v in write.keys.items()):
            raise RejectedHandoff("write.item does not carry write.keys: it would write another item")
        try:
            stamped = version_of(write.item, self.settings.names)
        except MetadataError as err:
            raise RejectedHandoff(str(err)) from None
        if stamped != write.version:
            raise RejectedHandoff(
                f"the write's guard version {tuple(write.version)} is not the version its item carries "
                f"{tuple(stamped)}"
            )
        return write

    def apply(self, write: TargetWrite, doc: Mapping[str, Any], message_id: str = "") -> ReplayResult:
        result = self.ports.put_guarded(
            self.target, write.table, write.item, write.version, return_replaced=True
        )
        if result.kind is None:
            now = self.clock()
            conflict = conflict_of(write, result, self.settings.names, now, self.settings.conflict_log_images)
            return ReplayResult(m.HANDOFF_REPLAYED, max(0.0, now * 1000 - write.version.ts / 1000), conflict)
        if result.kind is ErrorKind.STALE:
            return ReplayResult(m.STALE_SKIPPED)
        if result.kind is ErrorKind.PERMANENT:
            self.ports.dead_letter(
                {
                    "reason": "target_write_rejected",
                    "error": result.error,
                    "write": write.to_json(),
                    "handoff": dict(doc),
                    "message_id": message_id,
                    "source_region": self.settings.local_region,
                    "target_region": self.target.region,
                    "dead_lettered_at": self.clock(),
                }
            )
            return ReplayResult(m.DEAD_LETTERED)
        raise DrainFailed(f"{self.target.region}: {result.error}")


def log_replayed_conflicts(
    ports: DrainPorts, settings: Settings, target: Target, conflicts: Sequence[LostConflict]
) -> tuple[int, int]:
    """Log one invocation's replayed conflicts in one object, bounded; (logged, not logged)."""
    entries = [
        conflict_entry(c, settings.local_region, target.region)
        for c in conflicts[: settings.conflict_log_max_records]
    ]
    if not entries:
        return 0, len(conflicts)
    try:
        ports.log_conflicts(entries)
    except Exception:
        logger.warning("conflict log not written", exc_info=True)
        return 0, len(conflicts)
    return len(entries), len(conflicts) - len(entries)
