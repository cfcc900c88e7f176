"""The protocol's I/O as the domain speaks it: a conditional put and a read of one item.

The engine, the drain and the backfill declare what else they need on top (handoff queues, the
dead-letter store, the conflict log); ``adapters.DynamoPorts`` implements this on boto3 (retried and
classified, core/errors.py), the unit tests with versions compared in Python. ``target`` None is this
region's own table; items go in and come out in event form (core/wire.py).
"""

from __future__ import annotations

from typing import Protocol

from replicator.core.errors import WriteResult
from replicator.core.metadata import Version, WireItem
from replicator.settings import Target


class TableWrites(Protocol):
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
        """Put ``item`` only over an older version; ``return_replaced``: the item it replaced (applied),
        ``return_stored``: the newer item that refused it (stale)."""
        ...

    def get_item(
        self, target: Target | None, table: str, key: WireItem, *, consistent: bool
    ) -> WireItem | None: ...
