"""The TTL sweeper: what DynamoDB's Time to Live does and the local engine does not.

Every few seconds, each table with TTL enabled is scanned for items whose TTL attribute (a Number,
epoch seconds) is in the past, and not more than five years in the past (AWS ignores those), and
each is deleted with a condition on the TTL value seen, so a concurrent write that extends it wins.
The stream records of these deletions carry the TTL service's identity, like in AWS: the sweeper
registers each key before deleting it, and the stream poller stamps
``userIdentity {"type": "Service", "principalId": "dynamodb.amazonaws.com"}`` on the REMOVE record.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ddbrep.local.resilience import ErrorListener, LoopStats, run_forever
from ddbrep.local.streams import TTL_IDENTITY, record_keys
from replicator.core import wire
from replicator.core.records import key_id

FIVE_YEARS_SECONDS = 5 * 365 * 24 * 3600
DEFAULT_SWEEP_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class TtlTable:
    name: str
    attribute: str
    key_names: tuple[str, ...]


def _key_id(keys: Mapping[str, Any]) -> str:
    """A key as text; keys come from boto3 (binary key values are bytes), hence the event form."""
    return key_id(wire.from_sdk(keys))


def is_expired(item: Mapping[str, Any], attribute: str, now: float) -> bool:
    raw = (item.get(attribute) or {}).get("N")
    if raw is None:
        return False
    try:
        expires = float(raw)
    except ValueError:
        return False
    return now - FIVE_YEARS_SECONDS <= expires < now


class TtlSweeper:
    """Expires items of one region's TTL tables and remembers which REMOVE records are its own."""

    def __init__(
        self,
        client: Any,
        tables: list[TtlTable],
        interval: float = DEFAULT_SWEEP_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.time,
        *,
        name: str = "TTL sweeper",
        on_error: ErrorListener | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.on_error = on_error
        self.stats = LoopStats()
        self.tables = tables
        self.interval = interval
        self.clock = clock
        self.expired = 0
        # (table, key id) -> TTL value -> deletions made and not yet seen on the stream. A count, not one
        # value: a key re-created and expired again before the mapping read the first REMOVE has two.
        self._pending: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def identity_for(self, table: str, raw: Mapping[str, Any]) -> Mapping[str, str] | None:
        """TTL_IDENTITY when ``raw`` is the REMOVE record of a deletion this sweeper made."""
        if raw.get("eventName") != "REMOVE":
            return None
        dynamodb = raw.get("dynamodb", {})
        attribute = next((t.attribute for t in self.tables if t.name == table), "")
        seen = ((dynamodb.get("OldImage") or {}).get(attribute) or {}).get("N")
        # The stream stand-in's own reading of a record's keys (moto encodes binary Keys twice).
        pending_key = (table, key_id(record_keys(dynamodb)))
        with self._lock:
            pending = self._pending.get(pending_key)
            if not pending or seen is None or pending[seen] <= 0:
                return None
            pending[seen] -= 1
            if not +pending:
                del self._pending[pending_key]
        return TTL_IDENTITY

    def sweep(self) -> int:
        """One pass over every TTL table; returns how many items expired."""
        count = 0
        for table in self.tables:
            count += self._sweep_table(table)
        self.expired += count
        return count

    def _sweep_table(self, table: TtlTable) -> int:
        now = self.clock()
        names = {"#ttl": table.attribute, **{f"#k{i}": k for i, k in enumerate(table.key_names)}}
        projection = ", ".join(["#ttl", *(f"#k{i}" for i in range(len(table.key_names)))])
        kwargs: dict[str, Any] = {
            "TableName": table.name,
            "ProjectionExpression": projection,
            "FilterExpression": "#ttl < :now",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": {":now": {"N": str(int(now))}},
        }
        count = 0
        for _page in range(10_000):
            page = self.client.scan(**kwargs)
            for item in page.get("Items", []):
                if is_expired(item, table.attribute, now) and self._expire(table, item):
                    count += 1
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return count

    def _expire(self, table: TtlTable, item: Mapping[str, Any]) -> bool:
        keys = {k: item[k] for k in table.key_names}
        value = item[table.attribute]["N"]
        pending_key = (table.name, _key_id(keys))
        with self._lock:
            self._pending[pending_key][value] += 1
        try:
            self.client.delete_item(
                TableName=table.name,
                Key=keys,
                ConditionExpression="#ttl = :seen",
                ExpressionAttributeNames={"#ttl": table.attribute},
                ExpressionAttributeValues={":seen": {"N": value}},
            )
            return True
        except ClientError:
            # This attempt deleted nothing (the item changed): withdraw it alone, not earlier deletes
            # of the same key whose REMOVE records the mapping has not read yet.
            with self._lock:
                self._pending[pending_key][value] -= 1
                if not +self._pending[pending_key]:
                    del self._pending[pending_key]
            return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ttl-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        def sweep_then_wait() -> bool:
            self.sweep()
            return False

        if self._stop.wait(self.interval):
            return
        run_forever(
            self.name,
            sweep_then_wait,
            self._stop,
            interval=self.interval,
            stats=self.stats,
            on_error=self.on_error,
            expected=(ClientError, BotoCoreError, OSError),
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
