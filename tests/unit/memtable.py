"""An in-memory DynamoDB table that honours the protocol's condition expressions and emits a stream.

Test support for the model-based property tests: fast enough for thousands of hypothesis examples.
The expression evaluator covers the grammar the core produces (attribute_exists / attribute_not_exists,
``<`` and ``=`` comparisons, AND, OR, parentheses); test_conditions_agree_with_moto checks that it
agrees with a real engine on those expressions, so it cannot drift from DynamoDB's behaviour.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from replicator.core.wire import from_sdk

_TOKEN = re.compile(r"\s*(attribute_not_exists|attribute_exists|AND|OR|\(|\)|<|=|[#:][A-Za-z0-9_]+)")


def _tokens(expression: str) -> list[str]:
    pos, out = 0, []
    expression = expression.strip()
    while pos < len(expression):
        match = _TOKEN.match(expression, pos)
        if not match:
            raise ValueError(f"unsupported expression at {expression[pos:]!r}")
        out.append(match.group(1))
        pos = match.end()
        while pos < len(expression) and expression[pos].isspace():
            pos += 1
    return out


def _value(wire: Mapping[str, Any] | None) -> Any:
    if wire is None:
        return None
    ((kind, raw),) = wire.items()
    return int(raw) if kind == "N" else raw


def evaluate(expression: str, item: Mapping[str, Any] | None, names: Mapping, values: Mapping) -> bool:
    tokens = _tokens(expression)
    item = item or {}
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def operand() -> Any:
        token = take()
        if token.startswith("#"):
            return _value(item.get(names[token]))
        return _value(values[token])

    def primary() -> bool:
        token = peek()
        if token == "(":
            take()
            result = disjunction()
            assert take() == ")"
            return result
        if token in ("attribute_exists", "attribute_not_exists"):
            take()
            assert take() == "("
            present = names[take()] in item
            assert take() == ")"
            return present if token == "attribute_exists" else not present
        left = operand()
        op = take()
        right = operand()
        if left is None or right is None or type(left) is not type(right):
            return False
        return bool(left < right) if op == "<" else bool(left == right)

    def conjunction() -> bool:
        result = primary()
        while peek() == "AND":
            take()
            right = primary()
            result = result and right
        return result

    def disjunction() -> bool:
        result = conjunction()
        while peek() == "OR":
            take()
            right = conjunction()
            result = result or right
        return result

    result = disjunction()
    assert pos == len(tokens), f"trailing tokens in {expression!r}"
    return result


def _conditional_failed() -> ClientError:
    return ClientError(
        {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}},
        "PutItem",
    )


def key_of(item: Mapping[str, Any], key_names: tuple[str, ...]) -> str:
    return json.dumps({k: item[k] for k in key_names}, sort_keys=True)


@dataclass
class MemTable:
    """One region's table and its stream (NEW_AND_OLD_IMAGES)."""

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

    def _check(self, current: dict | None, request: Mapping[str, Any]) -> None:
        condition = request.get("ConditionExpression")
        if condition and not evaluate(
            condition,
            current,
            request.get("ExpressionAttributeNames", {}),
            request.get("ExpressionAttributeValues", {}),
        ):
            raise _conditional_failed()

    # The low-level client surface the engine uses.
    def put_item(self, **request: Any) -> dict:
        item = copy.deepcopy(dict(request["Item"]))
        with self._lock:
            key = key_of(item, self.key_names)
            current = self.items.get(key)
            self._check(current, request)
            self.items[key] = item
            self._emit(current, item, {k: item[k] for k in self.key_names})
        if request.get("ReturnValues") == "ALL_OLD" and current is not None:
            return {"Attributes": copy.deepcopy(current)}
        return {}

    def get_item(self, **request: Any) -> dict:
        with self._lock:
            item = self.items.get(key_of(request["Key"], self.key_names))
            return {"Item": copy.deepcopy(item)} if item is not None else {}

    def update_item(self, **request: Any) -> dict:
        keys = dict(request["Key"])
        with self._lock:
            key = key_of(keys, self.key_names)
            current = self.items.get(key)
            self._check(current, request)
            new = copy.deepcopy(current) if current else copy.deepcopy(keys)
            expression = request["UpdateExpression"]
            names = request.get("ExpressionAttributeNames", {})
            values = request.get("ExpressionAttributeValues", {})
            set_part, _, remove_part = expression.partition(" REMOVE ")
            for assignment in set_part.removeprefix("SET ").split(","):
                if assignment.strip():
                    name, value = (s.strip() for s in assignment.split("="))
                    new[names.get(name, name)] = copy.deepcopy(values[value])
            for name in remove_part.split(","):
                if name.strip():
                    new.pop(names.get(name.strip(), name.strip()), None)
            self.items[key] = new
            self._emit(current, new, keys)
        return {}

    def delete_item(self, keys: Mapping[str, Any], ttl: bool = False) -> None:
        with self._lock:
            key = key_of(keys, self.key_names)
            current = self.items.pop(key, None)
            identity = {"type": "Service", "principalId": "dynamodb.amazonaws.com"} if ttl else None
            self._emit(current, None, dict(keys), identity)
