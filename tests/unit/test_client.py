"""The client helper keeps the write contract: stamps, tombstones, hidden reads, LWW-safe writes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ddbrep.client import ConflictLost, FutureVersion, MonotonicClock, ReplicatedTable
from replicator.core.metadata import AttributeNames, Version, stamp

NAMES = AttributeNames()


@pytest.fixture
def client() -> Iterator[Any]:
    with mock_aws():
        c = boto3.client(
            "dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        c.create_table(
            TableName="orders",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield c


def fixed_clock(start: int = 1_700_000_000_000_000) -> Any:
    now = [start]

    def tick() -> int:
        now[0] += 1
        return now[0]

    return tick


KEY = {"pk": {"S": "a"}, "sk": {"S": "1"}}


def raw(client: Any) -> dict[str, Any] | None:
    return client.get_item(TableName="orders", Key=KEY).get("Item")


def test_put_stamps_region_and_microsecond_time(client: Any) -> None:
    table = ReplicatedTable(client, "orders", "eu-west-1", clock=fixed_clock())
    version = table.put_item({**KEY, "total": {"N": "5"}})
    stored = raw(client)
    assert stored is not None
    assert stored["rep_region"] == {"S": "eu-west-1"}
    assert stored["rep_ts"] == {"N": str(version.ts)}
    assert stored["total"] == {"N": "5"}


def test_delete_writes_a_tombstone_that_reads_hide(client: Any) -> None:
    table = ReplicatedTable(
        client, "orders", "eu-west-1", clock=fixed_clock(), tombstone_retention_seconds=3600
    )
    table.put_item({**KEY, "total": {"N": "5"}})
    version = table.delete_item(KEY)
    stored = raw(client)
    assert stored is not None and stored["rep_deleted"] == {"BOOL": True}
    assert stored["rep_expires"] == {"N": str(version.ts // 1_000_000 + 3600)}
    assert "total" not in stored
    assert table.get_item(KEY) is None
    assert (
        table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "a"}})["Items"]
        == []
    )
    assert table.scan()["Count"] == 0


def test_reads_hide_tombstones_in_counts_projections_filters_and_pages(client: Any) -> None:
    # Given three live items and two tombstones under one partition key
    table = ReplicatedTable(client, "orders", "eu-west-1", clock=fixed_clock())
    for sk in "12345":
        table.put_item({"pk": {"S": "a"}, "sk": {"S": sk}, "total": {"N": sk}})
    for sk in "24":
        table.delete_item({"pk": {"S": "a"}, "sk": {"S": sk}})
    by_pk = {"KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "a"}}}

    # Then counting, projecting, filtering and paging see only the live items
    assert table.query(Select="COUNT", **by_pk)["Count"] == 3
    assert table.scan(Select="COUNT")["Count"] == 3
    projected = table.query(ProjectionExpression="sk", **by_pk)["Items"]
    assert projected == [{"sk": {"S": "1"}}, {"sk": {"S": "3"}}, {"sk": {"S": "5"}}]
    filtered = table.query(
        FilterExpression="#t > :low",
        ExpressionAttributeNames={"#t": "total"},
        **{**by_pk, "ExpressionAttributeValues": {":p": {"S": "a"}, ":low": {"N": "1"}}},
    )
    assert [i["sk"]["S"] for i in filtered["Items"]] == ["3", "5"]
    pages = list(table.paginate("scan", Limit=2))
    assert len(pages) >= 3 and sorted(i["sk"]["S"] for p in pages for i in p["Items"]) == ["1", "3", "5"]
    # And a get with a projection that leaves the deleted flag out still hides a tombstone
    total = {"ProjectionExpression": "#t", "ExpressionAttributeNames": {"#t": "total"}}
    assert table.get_item({"pk": {"S": "a"}, "sk": {"S": "2"}}, **total) is None
    assert table.get_item({"pk": {"S": "a"}, "sk": {"S": "3"}}, **total) == {"total": {"N": "3"}}
    with pytest.raises(ValueError, match="ScanFilter cannot be combined"):
        table.scan(ScanFilter={})


def test_update_merges_the_stamps_into_the_application_expression(client: Any) -> None:
    table = ReplicatedTable(client, "orders", "eu-west-1", clock=fixed_clock())
    table.put_item({**KEY, "total": {"N": "5"}, "note": {"S": "x"}})
    version = table.update_item(KEY, "SET #t = :t REMOVE note", {"#t": "total"}, {":t": {"N": "6"}})
    stored = raw(client)
    assert stored is not None
    assert stored["total"] == {"N": "6"} and "note" not in stored
    assert stored["rep_ts"] == {"N": str(version.ts)}


def test_update_of_a_deleted_item_brings_it_back_without_the_tombstone_flag(client: Any) -> None:
    table = ReplicatedTable(client, "orders", "eu-west-1", clock=fixed_clock())
    table.put_item({**KEY, "total": {"N": "5"}})
    table.delete_item(KEY)
    table.update_item(KEY, "SET #t = :t", {"#t": "total"}, {":t": {"N": "9"}})
    item = table.get_item(KEY)
    assert item is not None and item["total"] == {"N": "9"} and "rep_deleted" not in item


def test_a_write_behind_a_newer_replicated_version_is_restamped_above_it(client: Any) -> None:
    # Given eu-west-1 holds a version from ap-southeast-2 stamped 200 s in our future (within the skew)
    future = Version(1_700_000_200_000_000, "ap-southeast-2")
    client.put_item(TableName="orders", Item=stamp({**KEY, "total": {"N": "1"}}, future, NAMES))
    table = ReplicatedTable(client, "orders", "eu-west-1", clock=fixed_clock())
    # When the application writes
    version = table.put_item({**KEY, "total": {"N": "2"}})
    # Then its write wins locally with a version just above the stored one
    assert version == Version(future.ts + 1, "eu-west-1")
    assert raw(client)["total"] == {"N": "2"}  # type: ignore[index]


def test_a_version_beyond_the_clock_skew_is_never_written_above(client: Any) -> None:
    # Given a stored version a year ahead of this clock (a writer whose clock runs ahead)
    poison = Version(1_731_536_000_000_000, "ap-southeast-2")
    client.put_item(TableName="orders", Item=stamp({**KEY, "total": {"N": "1"}}, poison, NAMES))
    table = ReplicatedTable(client, "orders", "eu-west-1", clock=fixed_clock(), max_clock_skew_seconds=300)
    # When the application writes, Then the helper refuses to go above it and says why
    with pytest.raises(FutureVersion, match="maximum clock skew"):
        table.put_item({**KEY, "total": {"N": "2"}})
    assert raw(client)["total"] == {"N": "1"}  # type: ignore[index]


def test_binary_values_and_keys_are_written_bytes_exact(client: Any) -> None:
    # Given a table keyed by a binary attribute, and an item with binaries at every depth
    client.create_table(
        TableName="blobs",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "B"}],
        BillingMode="PAY_PER_REQUEST",
    )
    table = ReplicatedTable(client, "blobs", "eu-west-1", clock=fixed_clock())
    key = {"id": {"B": b"\x00\xffkey"}}
    body = {"B": b"hello"}, {"BS": [b"a", b"\x01"]}, {"M": {"l": {"L": [{"B": b"deep"}]}}}
    # When the helper writes and deletes through the low-level client's SDK form (bytes)
    table.put_item({**key, "b": body[0], "bs": body[1], "m": body[2]})
    stored = client.get_item(TableName="blobs", Key=key)["Item"]
    # Then DynamoDB holds the writer's bytes, not their base64 text
    assert stored["b"] == {"B": b"hello"} and stored["id"] == {"B": b"\x00\xffkey"}
    assert sorted(stored["bs"]["BS"]) == [b"\x01", b"a"]
    assert stored["m"] == {"M": {"l": {"L": [{"B": b"deep"}]}}}
    table.delete_item(key)
    assert client.get_item(TableName="blobs", Key=key)["Item"]["id"] == {"B": b"\x00\xffkey"}
    assert table.get_item(key) is None


def test_strict_mode_reports_the_lost_conflict(client: Any) -> None:
    future = Version(1_700_000_200_000_000, "ap-southeast-2")
    client.put_item(TableName="orders", Item=stamp({**KEY, "total": {"N": "1"}}, future, NAMES))
    table = ReplicatedTable(client, "orders", "eu-west-1", clock=fixed_clock(), on_conflict="raise")
    with pytest.raises(ConflictLost) as lost:
        table.put_item({**KEY, "total": {"N": "2"}})
    assert lost.value.stored.region == "ap-southeast-2"
    assert raw(client)["total"] == {"N": "1"}  # type: ignore[index]


def test_the_clock_never_goes_backwards() -> None:
    readings = iter([5.0, 4.0, 4.0, 6.0])
    clock = MonotonicClock(now=lambda: next(readings))
    values = [clock() for _ in range(4)]
    assert values == sorted(values) and len(set(values)) == 4
    assert values[0] == 5_000_000 and values[3] == 6_000_000


def test_the_resource_api_helper_takes_and_returns_python_types(client: Any) -> None:
    # Given the helper around boto3's resource Table (the same moto backend as the client fixture)
    from decimal import Decimal

    from boto3.dynamodb.conditions import Attr, Key
    from boto3.dynamodb.types import Binary

    from ddbrep.client import ReplicatedResourceTable

    resource = boto3.resource(
        "dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    table = ReplicatedResourceTable(resource.Table("orders"), "eu-west-1", clock=fixed_clock())
    # When items are written with Python values, one updated and one deleted
    for sk in "123":
        table.put_item(Item={"pk": "a", "sk": sk, "total": Decimal(sk), "blob": b"\x00\xff", "tags": {"x"}})
    table.update_item(
        Key={"pk": "a", "sk": "1"},
        UpdateExpression="SET #t = :t",
        ExpressionAttributeNames={"#t": "total"},
        ExpressionAttributeValues={":t": Decimal("10")},
    )
    deleted = table.delete_item(Key={"pk": "a", "sk": "2"})

    # Then the raw items carry the write contract (stamps; a tombstone for the delete)
    tombstone = client.get_item(TableName="orders", Key={"pk": {"S": "a"}, "sk": {"S": "2"}}).get("Item")
    assert tombstone is not None and tombstone["rep_deleted"] == {"BOOL": True}
    assert tombstone["rep_ts"] == {"N": str(deleted.ts)}
    # And reads give Python types back and hide the tombstone, with condition objects too
    one = table.get_item(Key={"pk": "a", "sk": "1"})
    assert one is not None and one["total"] == Decimal("10") and one["blob"] == Binary(b"\x00\xff")
    assert one["tags"] == {"x"} and one["rep_region"] == "eu-west-1"
    assert table.get_item(Key={"pk": "a", "sk": "2"}) is None
    queried = table.query(KeyConditionExpression=Key("pk").eq("a"), FilterExpression=Attr("total").gte(4))
    assert [item["sk"] for item in queried["Items"]] == ["1"]  # total 10 after the update
    assert table.query(KeyConditionExpression=Key("pk").eq("a"), Select="COUNT")["Count"] == 2
    pages = list(table.paginate("query", KeyConditionExpression=Key("pk").eq("a"), Limit=1))
    assert sorted(item["sk"] for page in pages for item in page["Items"]) == ["1", "3"]
    assert table.scan(FilterExpression=Attr("total").lt(Decimal(5)))["Items"][0]["sk"] == "3"
