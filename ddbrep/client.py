"""The client helper: what applications use instead of raw PutItem / UpdateItem / DeleteItem (mesh).

It keeps the write contract (README, "The write contract") so the event filter can tell local writes
from replicated ones and last-writer-wins has a version to compare:

- every write stamps ``rep_region`` (this region) and ``rep_ts`` (now, microseconds, never going
  backwards within the process);
- a delete writes a tombstone (keys + stamps + ``rep_deleted`` + the TTL attribute), never DeleteItem:
  without tombstones a delete racing an older write elsewhere would resurrect the item in one region;
- reads hide tombstones.

Writes are conditional on the stored version being older, so a local write never overwrites a newer
version that replication already brought in. When the stored version is newer (a clock behind
another region's), the write is re-stamped just above it and retried: a write made after another
one in this region always wins here, as a plain PutItem would. ``on_conflict="raise"`` gives the
strict last-writer-wins answer instead.

Items are in DynamoDB's wire format (``{"S": "..."}``), as the low-level boto3 client takes and returns
them (binary values as ``bytes``); the helper hands them to the protocol's core through ``core.wire``.
:class:`ReplicatedResourceTable` is the same helper for boto3's resource API (Python types).

The helper never writes a version further ahead of its own clock than the maximum clock skew (the
bound every replicator enforces): re-stamping above a stored version from the future would only spread
the poison, so it raises :class:`FutureVersion` instead.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from replicator.core import defaults
from replicator.core.conditions import guarded_put, version_guard
from replicator.core.metadata import (
    AttributeNames,
    Version,
    is_tombstone,
    stamp,
    tombstone_for,
    version_of,
)
from replicator.core.wire import from_sdk

DEFAULT_RETENTION_SECONDS = defaults.TOMBSTONE_RETENTION_SECONDS  # one definition: core/defaults


class ConflictLost(Exception):
    """A newer version of the item exists (only with ``on_conflict="raise"``)."""

    def __init__(self, stored: Version) -> None:
        super().__init__(f"a newer version exists: {stored}")
        self.stored = stored


class FutureVersion(Exception):
    """The stored version is further ahead of this clock than the maximum skew: no write goes above it."""

    def __init__(self, stored: Version, limit_us: int) -> None:
        super().__init__(
            f"the stored version {stored} is more than the maximum clock skew ahead of this clock "
            f"(limit {limit_us} us): a writer's clock runs ahead; fix that host's time, then repair the key"
        )
        self.stored = stored


class MonotonicClock:
    """Microseconds since the epoch, strictly increasing within the process (thread-safe)."""

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        self._now = now
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._last = max(int(self._now() * 1_000_000), self._last + 1)
            return self._last


_CLOCK = MonotonicClock()
_SET = re.compile(r"\bSET\b", re.IGNORECASE)
_REMOVE = re.compile(r"\bREMOVE\b", re.IGNORECASE)


def _is_conditional_failure(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ReplicatedTable:
    """One replicated table in one region, seen through the write contract."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        region: str,
        *,
        prefix: str = "rep_",
        ttl_attribute: str | None = None,
        tombstone_retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        clock: Callable[[], int] = _CLOCK,
        on_conflict: str = "win",
        max_attempts: int = 5,
        max_clock_skew_seconds: int = defaults.MAX_CLOCK_SKEW_SECONDS,
    ) -> None:
        if on_conflict not in ("win", "raise"):
            raise ValueError("on_conflict must be 'win' or 'raise'")
        self.client = client
        self.table_name = table_name
        self.region = region
        self.names = AttributeNames.with_prefix(prefix, ttl=ttl_attribute)
        self.retention = tombstone_retention_seconds
        self.clock = clock
        self.on_conflict = on_conflict
        self.max_attempts = max_attempts
        self.max_skew_us = max_clock_skew_seconds * 1_000_000
        self._key_schema: tuple[str, ...] | None = None  # read once from DescribeTable when needed

    # --- writes --------------------------------------------------------------------------------------

    def put_item(self, item: Mapping[str, Any], keys: tuple[str, ...] | None = None) -> Version:
        """Write ``item`` (wire format) stamped with a new version; returns the version written."""
        event_item = from_sdk(item)
        return self._guarded(lambda version: stamp(event_item, version, self.names), self._keys(item, keys))

    def delete_item(self, key: Mapping[str, Any]) -> Version:
        """Delete by writing a tombstone (replicated like any write, expired by TTL after retention)."""
        event_key = from_sdk(key)
        return self._guarded(
            lambda version: tombstone_for(event_key, version, self.retention, self.names), key
        )

    def update_item(
        self,
        key: Mapping[str, Any],
        update_expression: str,
        expression_attribute_names: Mapping[str, str] | None = None,
        expression_attribute_values: Mapping[str, Any] | None = None,
    ) -> Version:
        """UpdateItem with the stamps added to ``update_expression`` (SET / REMOVE clauses merged).

        Updating a tombstoned key brings the item back with only the updated attributes, as an update
        of a deleted item does in DynamoDB.
        """
        names = self.names
        ours_set = "#__rts = :__rts, #__rreg = :__rreg"
        ours_remove = "#__rdel, #__rseq"
        expression = (
            _SET.sub(f"SET {ours_set},", update_expression, count=1)
            if _SET.search(update_expression)
            else f"SET {ours_set} {update_expression}"
        )
        expression = (
            _REMOVE.sub(f"REMOVE {ours_remove},", expression, count=1)
            if _REMOVE.search(expression)
            else f"{expression} REMOVE {ours_remove}"
        )

        def request(version: Version) -> dict[str, Any]:
            guard, guard_names, guard_values = version_guard(version, names, tag="__r")
            return {
                "TableName": self.table_name,
                "Key": dict(key),
                "UpdateExpression": expression,
                "ConditionExpression": guard,
                "ExpressionAttributeNames": {
                    **(expression_attribute_names or {}),
                    **guard_names,
                    "#__rdel": names.deleted,
                    "#__rseq": names.seq,
                },
                "ExpressionAttributeValues": {**(expression_attribute_values or {}), **guard_values},
            }

        return self._write(self.client.update_item, request, key)

    def _guarded(self, build: Callable[[Version], dict[str, Any]], key: Mapping[str, Any]) -> Version:
        return self._write(
            self.client.put_item,
            lambda version: guarded_put(self.table_name, build(version), version, self.names),
            key,
        )

    def _write(
        self,
        call: Callable[..., Any],
        request: Callable[[Version], dict[str, Any]],
        key: Mapping[str, Any],
    ) -> Version:
        floor = 0
        for _ in range(self.max_attempts):
            now = self.clock()
            if floor > now + self.max_skew_us:
                raise FutureVersion(self._stored_version(key), now + self.max_skew_us)
            version = Version(max(now, floor), self.region)
            try:
                call(**request(version))
                return version
            except ClientError as err:
                if not _is_conditional_failure(err):
                    raise
            stored = self._stored_version(key)
            if self.on_conflict == "raise":
                raise ConflictLost(stored)
            # Our clock is behind the stored version's writer: stamp just above it and try again.
            floor = stored.ts + 1
        raise ConflictLost(self._stored_version(key))

    def _stored_version(self, key: Mapping[str, Any]) -> Version:
        response = self.client.get_item(TableName=self.table_name, Key=dict(key), ConsistentRead=True)
        return version_of(response.get("Item"), self.names)

    def _keys(self, item: Mapping[str, Any], keys: tuple[str, ...] | None) -> dict[str, Any]:
        if keys is None:
            keys = self._key_names()
        return {k: item[k] for k in keys}

    def _key_names(self) -> tuple[str, ...]:
        if self._key_schema is None:
            schema = self.client.describe_table(TableName=self.table_name)["Table"]["KeySchema"]
            self._key_schema = tuple(k["AttributeName"] for k in schema)
        return self._key_schema

    # --- reads (tombstones hidden) -------------------------------------------------------------------
    #
    # Query and Scan hide tombstones in DynamoDB itself, with a filter on the deleted flag joined to the
    # application's own FilterExpression: Count, ScannedCount, Select="COUNT", ProjectionExpression
    # (a filter sees the whole item, a projection only shapes the answer) and pagination all stay true.

    def get_item(self, key: Mapping[str, Any], **kwargs: Any) -> dict[str, Any] | None:
        request = self._projecting_the_flag(dict(kwargs))
        item = self.client.get_item(TableName=self.table_name, Key=dict(key), **request).get("Item")
        return None if item is None or is_tombstone(item, self.names) else item

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return dict(self.client.query(**self.hiding_tombstones(kwargs)))

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        return dict(self.client.scan(**self.hiding_tombstones(kwargs)))

    def paginate(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The pages of ``query`` or ``scan`` (boto3's paginator), tombstones hidden."""
        if operation not in ("query", "scan"):
            raise ValueError("paginate takes 'query' or 'scan'")
        yield from self.client.get_paginator(operation).paginate(**self.hiding_tombstones(kwargs))

    def hiding_tombstones(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A Query or Scan request for this table whose answer leaves tombstones out."""
        request = {"TableName": self.table_name, **request}
        for legacy in ("ScanFilter", "QueryFilter", "AttributesToGet"):
            if legacy in request:
                raise ValueError(
                    f"{legacy} cannot be combined with the tombstone filter; use FilterExpression / "
                    "ProjectionExpression instead"
                )
        hide = "(attribute_not_exists(#__rdel) OR #__rdel <> :__rtrue)"  # what is_tombstone says
        user_filter = request.get("FilterExpression")
        request["FilterExpression"] = f"({user_filter}) AND {hide}" if user_filter else hide
        request["ExpressionAttributeNames"] = {
            **request.get("ExpressionAttributeNames", {}),
            "#__rdel": self.names.deleted,
        }
        request["ExpressionAttributeValues"] = {
            **request.get("ExpressionAttributeValues", {}),
            ":__rtrue": {"BOOL": True},
        }
        return request

    def _projecting_the_flag(self, request: dict[str, Any]) -> dict[str, Any]:
        """GetItem has no filter: a projection must include the deleted flag to tell a tombstone."""
        projection = request.get("ProjectionExpression")
        if projection:
            request["ProjectionExpression"] = f"{projection}, #__rdel"
            request["ExpressionAttributeNames"] = {
                **request.get("ExpressionAttributeNames", {}),
                "#__rdel": self.names.deleted,
            }
        return request


class ReplicatedResourceTable:
    """The helper for boto3's resource API: ``boto3.resource("dynamodb").Table(name)`` seen through the
    write contract, with Python types in and out (numbers as ``Decimal``, binary as ``Binary``), as the
    resource API takes and returns them.

    Writes are the low-level helper's (stamps, tombstone deletes, last-writer-wins retries) on the
    table's own client; reads hide tombstones the same way (in DynamoDB, so counts, projections and
    pages stay true). ``KeyConditionExpression`` and ``FilterExpression`` may be strings or conditions
    from ``boto3.dynamodb.conditions`` (``Key("pk").eq("a")``), as with the resource API.
    """

    def __init__(self, table: Any, region: str, **options: Any) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self.table = table
        self._serialize, self._deserialize = TypeSerializer().serialize, TypeDeserializer().deserialize
        self.low = ReplicatedTable(_WireClient(table.meta.client, self), table.name, region, **options)

    def _to_wire(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self._serialize(value) for name, value in item.items()}

    def _from_wire(self, item: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self._deserialize(value) for name, value in item.items()}

    # --- writes (the resource API's keyword names: Item, Key, ...) --------------------------------------

    def put_item(self, Item: Mapping[str, Any]) -> Version:
        return self.low.put_item(self._to_wire(Item))

    def delete_item(self, Key: Mapping[str, Any]) -> Version:
        return self.low.delete_item(self._to_wire(Key))

    def update_item(
        self,
        Key: Mapping[str, Any],
        UpdateExpression: str,
        ExpressionAttributeNames: Mapping[str, str] | None = None,
        ExpressionAttributeValues: Mapping[str, Any] | None = None,
    ) -> Version:
        return self.low.update_item(
            self._to_wire(Key),
            UpdateExpression,
            ExpressionAttributeNames,
            self._to_wire(ExpressionAttributeValues or {}) or None,
        )

    # --- reads (tombstones hidden) -------------------------------------------------------------------

    def get_item(self, Key: Mapping[str, Any], **kwargs: Any) -> dict[str, Any] | None:
        item = self.low.get_item(self._to_wire(Key), **kwargs)
        return None if item is None else self._from_wire(item)

    def query(self, **kwargs: Any) -> dict[str, Any]:
        return self._page(self.low.query(**self._request(kwargs)))

    def scan(self, **kwargs: Any) -> dict[str, Any]:
        return self._page(self.low.scan(**self._request(kwargs)))

    def paginate(self, operation: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The pages of ``query`` or ``scan``, tombstones hidden, items in Python types."""
        for page in self.low.paginate(operation, **self._request(kwargs)):
            yield self._page(page)

    def _request(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """A low-level request: conditions built into expressions, every value in DynamoDB JSON."""
        from boto3.dynamodb.conditions import ConditionBase, ConditionExpressionBuilder

        request = dict(kwargs)
        names = dict(request.pop("ExpressionAttributeNames", {}))
        values = self._to_wire(request.pop("ExpressionAttributeValues", {}))
        builder = ConditionExpressionBuilder()  # one for both: its placeholders never collide
        for field, is_key in (("KeyConditionExpression", True), ("FilterExpression", False)):
            condition = request.get(field)
            if isinstance(condition, ConditionBase):
                built = builder.build_expression(condition, is_key_condition=is_key)
                request[field] = built.condition_expression
                names.update(built.attribute_name_placeholders)
                values.update(self._to_wire(built.attribute_value_placeholders))
        if "ExclusiveStartKey" in request:
            request["ExclusiveStartKey"] = self._to_wire(request["ExclusiveStartKey"])
        if names:
            request["ExpressionAttributeNames"] = names
        if values:
            request["ExpressionAttributeValues"] = values
        return request

    def _page(self, response: Mapping[str, Any]) -> dict[str, Any]:
        page = dict(response)
        if "Items" in page:
            page["Items"] = [self._from_wire(item) for item in page["Items"]]
        if "LastEvaluatedKey" in page:
            page["LastEvaluatedKey"] = self._from_wire(page["LastEvaluatedKey"])
        return page


class _WireClient:
    """The resource's own client as the low-level helper needs it: DynamoDB JSON in and out.

    The resource API's client converts Python values to DynamoDB JSON itself (boto3 registers that on its
    events), so DynamoDB JSON handed to it would be converted twice; this turns the helper's requests
    into Python values for it, and its answers back into DynamoDB JSON.
    """

    _ITEM_FIELDS = ("Item", "Key", "ExclusiveStartKey", "ExpressionAttributeValues")
    _ANSWER_FIELDS = ("Item", "Attributes", "LastEvaluatedKey")

    def __init__(self, client: Any, codec: ReplicatedResourceTable) -> None:
        self.client, self.codec = client, codec

    def _python(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: self.codec._from_wire(value) if name in self._ITEM_FIELDS else value
            for name, value in request.items()
        }

    def _wire(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: self.codec._to_wire(value) if name in self._ANSWER_FIELDS else value
            for name, value in answer.items()
        }
        if "Items" in out:
            out["Items"] = [self.codec._to_wire(item) for item in out["Items"]]
        return out

    def _call(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
        return self._wire(getattr(self.client, operation)(**self._python(request)))

    def put_item(self, **request: Any) -> dict[str, Any]:
        return self._call("put_item", request)

    def update_item(self, **request: Any) -> dict[str, Any]:
        return self._call("update_item", request)

    def get_item(self, **request: Any) -> dict[str, Any]:
        return self._call("get_item", request)

    def query(self, **request: Any) -> dict[str, Any]:
        return self._call("query", request)

    def scan(self, **request: Any) -> dict[str, Any]:
        return self._call("scan", request)

    def describe_table(self, **request: Any) -> Any:
        return self.client.describe_table(**request)

    def get_paginator(self, operation: str) -> Any:
        wire = self

        class Pages:
            def paginate(self, **request: Any) -> Iterator[dict[str, Any]]:
                for page in wire.client.get_paginator(operation).paginate(**wire._python(request)):
                    yield wire._wire(page)

        return Pages()
