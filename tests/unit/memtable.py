"""An in-memory DynamoDB table that applies the protocol's guarded writes and emits a stream.

Test support for the model-based property tests: fast enough for thousands of hypothesis examples.
A write applies when the stored item's version is below the write's (``applies``: core.metadata's
Version order, no expression parsing); test_conditions checks that rule against the real condition
expression on a real engine (moto). Two surfaces: the replicator's ports (``put_guarded``, ``get``:
event form) and the low-level client calls the client helper makes (``put_item``, ``update_item``,
``get_item``: SDK form), whose only condition is the protocol's guard.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from replicator.core.conditions import version_guard
from replicator.core.errors import ErrorKind, WriteResult
from replicator.core.metadata import AttributeNames, Version, supersedes, version_of
from replicator.core.wire import from_sdk, to_sdk

NAMES = AttributeNames()


def applies(stored: Mapping[str, Any] | None, version: Version) -> bool:
    """The protocol's guard in Python: the stored item (or none) is older than ``version``."""
    return supersedes(version, version_of(stored, NAMES))


def guard_version(request: Mapping[str, Any]) -> Version | None:
    """The version a client call's condition guards, checked to be exactly the protocol's guard."""
    condition = request.get("ConditionExpression")
    if condition is None:
        return None
    tag = next(n[1:-2] for n, v in request["ExpressionAttributeNames"].items() if v == NAMES.ts)
    values = request["ExpressionAttributeValues"]
    seq = values.get(f":{tag}seq")
    version = Version(int(values[f":{tag}ts"]["N"]), values[f":{tag}reg"]["S"], seq["S"] if seq else "")
    assert condition == version_guard(version, NAMES, tag)[0], f"not the protocol's guard: {condition}"
    return version


def key_of(item: Mapping[str, Any], key_names: tuple[str, ...]) -> str:
    return json.dumps(from_sdk({k: item[k] for k in key_names}), sort_keys=True)


@dataclass
class MemTable:
    """One region's table (SDK form, as DynamoDB stores it) and its stream (NEW_AND_OLD_IMAGES)."""

    region: str
    key_names: tuple[str, ...] = ("pk",)
    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    stream: list[dict[str, Any]] = field(default_factory=list)
    clock: list[float] = field(default_factory=lambda: [1_700_000_000.0])
    # AWS stamps stream records with whole seconds: many records share one, and only the sequence
    # number orders them (moto has milliseconds).
    whole_seconds: bool = True
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: int = 0

    def _emit(self, old: dict | None, new: dict | None, keys: dict, identity: dict | None = None) -> None:
        if old is None and new is None:
            return
        self._seq += 1
        self.clock[0] += 0.01
        name = "INSERT" if old is None else ("REMOVE" if new is None else "MODIFY")
        # The table stores the SDK form (bytes); its stream speaks Lambda's event form, as AWS does.
        dynamodb: dict[str, Any] = {
            "Keys": from_sdk(copy.deepcopy(keys)),
            "SequenceNumber": str(100_000_000_000_000_000_000 + self._seq),
            "ApproximateCreationDateTime": int(self.clock[0])
            if self.whole_seconds
            else round(self.clock[0], 3),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
            "SizeBytes": 100,
        }
        if new is not None:
            dynamodb["NewImage"] = from_sdk(copy.deepcopy(new))
        if old is not None:
            dynamodb["OldImage"] = from_sdk(copy.deepcopy(old))
        record: dict[str, Any] = {
            "eventID": f"{self.region}-{self._seq}",
            "eventName": name,
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": self.region,
            "dynamodb": dynamodb,
        }
        if identity:
            record["userIdentity"] = identity
        self.stream.append(record)

    def _write(self, keys: Mapping[str, Any], version: Version | None, build: Any) -> dict | None:
        """Store ``build(current)`` if ``version`` is None or above the stored one; the replaced item.

        Raises the ConditionalCheckFailedException DynamoDB answers a failed guard with.
        """
        with self._lock:
            key = key_of(keys, self.key_names)
            current = self.items.get(key)
            if version is not None and not applies(current, version):
                raise ClientError(
                    {"Error": {"Code": "ConditionalCheckFailedException", "Message": "failed"}}, "PutItem"
                )
            self.items[key] = build(current)
            self._emit(current, self.items[key], {k: keys[k] for k in self.key_names})
            return copy.deepcopy(current)

    # The replicator's ports: event form in and out (the boundary the adapters keep, core/wire.py).
    def put_guarded(self, item: Mapping[str, Any], version: Version, return_replaced: bool) -> WriteResult:
        sdk = to_sdk(item)
        try:
            replaced = self._write(sdk, version, lambda _current: copy.deepcopy(sdk))
        except ClientError:
            return WriteResult(ErrorKind.STALE, error="ConditionalCheckFailedException: failed")
        return WriteResult(None, replaced=from_sdk(replaced) if return_replaced and replaced else None)

    def get(self, key: Mapping[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            item = self.items.get(key_of(to_sdk(key), self.key_names))
            return from_sdk(item) if item is not None else None

    # The low-level client calls the client helper makes.
    def put_item(self, **request: Any) -> dict:
        item = request["Item"]
        self._write(item, guard_version(request), lambda _current: copy.deepcopy(dict(item)))
        return {}

    def get_item(self, **request: Any) -> dict:
        with self._lock:
            item = self.items.get(key_of(request["Key"], self.key_names))
            return {"Item": copy.deepcopy(item)} if item is not None else {}

    def update_item(self, **request: Any) -> dict:
        keys = dict(request["Key"])
        names = request.get("ExpressionAttributeNames", {})
        values = request.get("ExpressionAttributeValues", {})

        def updated(current: dict | None) -> dict:
            new = copy.deepcopy(current) if current else copy.deepcopy(keys)
            set_part, _, remove_part = request["UpdateExpression"].partition(" REMOVE ")
            for assignment in set_part.removeprefix("SET ").split(","):
                if assignment.strip():
                    name, value = (s.strip() for s in assignment.split("="))
                    new[names.get(name, name)] = copy.deepcopy(values[value])
            for name in remove_part.split(","):
                if name.strip():
                    new.pop(names.get(name.strip(), name.strip()), None)
            return new

        self._write(keys, guard_version(request), updated)
        return {}

    def delete_item(self, keys: Mapping[str, Any], ttl: bool = False) -> None:
        with self._lock:
            key = key_of(keys, self.key_names)
            current = self.items.pop(key, None)
            identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"} if ttl else None
            self._emit(current, None, dict(keys), identity)
