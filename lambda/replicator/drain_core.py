"""Replay of one handoff message (I/O through ports; no Lambda specifics, so redrive reuses it)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from replicator.core import metrics_names as m
from replicator.core.backoff import HANDOFF_BACKOFF, Backoff
from replicator.core.conditions import guarded_put
from replicator.core.errors import ErrorKind
from replicator.core.plan import TargetWrite
from replicator.engine import write_with_retries
from replicator.settings import Settings, Target


class DrainPorts(Protocol):
    def target_dynamodb(self, target: Target) -> Any: ...
    def load_handoff(self, body: str) -> Mapping[str, Any]: ...
    def dead_letter(self, entry: Mapping[str, Any]) -> str: ...


class HandoffQueue(Protocol):
    def postpone_handoff(self, target: Target, receipt_handle: str, seconds: int) -> bool: ...


logger = logging.getLogger(__name__)


class DrainFailed(Exception):
    """The target still does not take the write: the message stays in the queue."""


@dataclass(frozen=True)
class ReplayResult:
    metric: str  # HandoffReplayed, StaleSkipped or DeadLettered
    latency_ms: float | None = None


class Drainer:
    def __init__(
        self,
        settings: Settings,
        target: Target,
        ports: DrainPorts,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        backoff: Backoff = HANDOFF_BACKOFF,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.settings, self.target, self.ports, self.clock, self.sleep = settings, target, ports, clock, sleep
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
        doc = self.ports.load_handoff(body)
        write = TargetWrite.from_json(doc["write"])
        if write.region != self.target.region:
            raise DrainFailed(f"message for {write.region} in the queue of {self.target.region}")
        return self.apply(write, doc, message_id)

    def apply(self, write: TargetWrite, doc: Mapping[str, Any], message_id: str = "") -> ReplayResult:
        client = self.ports.target_dynamodb(self.target)
        request = guarded_put(write.table, write.item, write.version, self.settings.names)
        result = write_with_retries(
            lambda: client.put_item(**request),
            self.settings.write_attempts,
            self.settings.retry_base_delay_ms,
            self.sleep,
        )
        if result.kind is None:
            return ReplayResult(m.HANDOFF_REPLAYED, max(0.0, self.clock() * 1000 - write.version.ts / 1000))
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
