"""Simulated regions for the operator tools' tests: one moto server per region, started once per session.

Each test creates its own uniquely named tables, so tests share the servers without sharing data.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from ddbrep.local.regions import Region, start_region, stop_region
from ddbrep.tools.aws import Connection

REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")


@pytest.fixture(scope="session")
def regions() -> Iterator[dict[str, Region]]:
    started: dict[str, Region] = {}
    try:
        for name in REGIONS:
            started[name] = start_region(name)
        yield started
    finally:
        for region in started.values():
            stop_region(region)


@pytest.fixture(scope="session")
def endpoints(regions: Mapping[str, Region]) -> dict[str, str]:
    return {name: region.engine_url for name, region in regions.items()}


@pytest.fixture
def conn(endpoints: Mapping[str, str]) -> Connection:
    return Connection(endpoints=endpoints)


MakeTable = Callable[..., str]


@pytest.fixture
def make_table(conn: Connection) -> MakeTable:
    """Create a table: ``make_table("us-east-1", name=None, keys=(("pk", "S"),), stream=False)``."""

    def make(
        region: str,
        name: str | None = None,
        keys: Sequence[tuple[str, str]] = (("pk", "S"),),
        stream: bool = False,
    ) -> str:
        name = name or f"t-{uuid.uuid4().hex[:10]}"
        kinds = ("HASH", "RANGE")
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": [{"AttributeName": k, "KeyType": kinds[i]} for i, (k, _t) in enumerate(keys)],
            "AttributeDefinitions": [{"AttributeName": k, "AttributeType": t} for k, t in keys],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if stream:
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        conn.dynamodb(region).create_table(**request)
        return name

    return make


def put_items(conn: Connection, region: str, table: str, items: Sequence[Mapping[str, Any]]) -> None:
    client = conn.dynamodb(region)
    for item in items:
        client.put_item(TableName=table, Item=dict(item))


def scan_all(conn: Connection, region: str, table: str) -> dict[str, dict[str, Any]]:
    """The table's items by their ``pk`` value."""
    client = conn.dynamodb(region)
    items: dict[str, dict[str, Any]] = {}
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            items[item["pk"]["S"]] = item
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stamped(pk: str, ts: int, region: str, **attrs: str) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}, "rep_ts": {"N": str(ts)}, "rep_region": {"S": region}}
    item.update({k: {"S": v} for k, v in attrs.items()})
    return item


class CountingClients:
    """Wraps a connection: counts PutItem calls per region; ``crash_when(scan request)`` kills a scan."""

    def __init__(
        self, conn: Connection, crash_when: Callable[[Mapping[str, Any]], bool] | None = None
    ) -> None:
        self.conn = conn
        self.puts: dict[str, int] = {}
        self.crash_when = crash_when
        self._lock = threading.Lock()

    def dynamodb(self, region: str, role_arn: str | None = None) -> Any:
        return _CountingClient(self, region, self.conn.dynamodb(region, role_arn))


class SimulatedCrash(Exception):
    pass


class _CountingClient:
    def __init__(self, owner: CountingClients, region: str, client: Any) -> None:
        self._owner, self._region, self._client = owner, region, client

    def put_item(self, **kwargs: Any) -> Any:
        with self._owner._lock:
            self._owner.puts[self._region] = self._owner.puts.get(self._region, 0) + 1
        return self._client.put_item(**kwargs)

    def scan(self, **kwargs: Any) -> Any:
        if self._owner.crash_when is not None and self._owner.crash_when(kwargs):
            raise SimulatedCrash("the machine died")
        return self._client.scan(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)
