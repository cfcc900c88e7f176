"""Hostile input: one batch of every malformed record kind, interleaved with good writes, through the handler.

Nothing crashes the batch, nothing is lost (each bad record is in the dead-letter store with its raw
content and a reason a person can act on), nothing poisons a key, and every good write replicates.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest

from tests.unit.factories import item, record
from tests.unit.test_handler import (
    AP,
    EU,
    LOCAL,
    Context,
    emf_lines,
    load_function,
    metric_total,
    table_items,
)

NOW_US = int(time.time() * 1_000_000)


def good(pk: str, seq: int) -> dict[str, Any]:
    return record("INSERT", new=item(pk, LOCAL, NOW_US + seq, v=seq), seq=seq, created=time.time())


class Replace:
    """A mutation's result that stands for the whole record (even None)."""

    def __init__(self, value: Any) -> None:
        self.value = value


def mutated(seq: int, mutate: Callable[[dict[str, Any]], Any]) -> Any:
    """A good INSERT changed in place by ``mutate``, or replaced when it returns a Replace."""
    raw = good(f"bad-{seq}", seq)
    out = mutate(raw)
    return out.value if isinstance(out, Replace) else raw


def set_new(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda r: r["dynamodb"]["NewImage"].__setitem__(name, value)


def set_dynamodb(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda r: r["dynamodb"].__setitem__(name, value)


# (kind, mutation of a good INSERT, text the dead-letter reason must contain)
HOSTILE: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("record-is-text", lambda r: Replace("garbage"), "not a JSON object"),
    ("record-is-null", lambda r: Replace(None), "not a JSON object"),
    ("record-is-list", lambda r: Replace([r]), "not a JSON object"),
    ("dynamodb-is-text", lambda r: r.__setitem__("dynamodb", "x"), "no 'dynamodb' object"),
    ("no-dynamodb", lambda r: r.pop("dynamodb") and None, "no 'dynamodb' object"),
    ("unknown-event", lambda r: r.__setitem__("eventName", "UPSERT"), "unknown eventName 'UPSERT'"),
    ("no-event-name", lambda r: r.pop("eventName") and None, "unknown eventName None"),
    ("no-keys", lambda r: r["dynamodb"].pop("Keys") and None, "no dynamodb.Keys"),
    ("empty-keys", set_dynamodb("Keys", {}), "no dynamodb.Keys"),
    ("key-of-wrong-type", set_dynamodb("Keys", {"pk": {"BOOL": True}}), "key attributes are S, N or B"),
    ("empty-string-key", set_dynamodb("Keys", {"pk": {"S": ""}}), "keys cannot be empty"),
    ("no-sequence-number", lambda r: r["dynamodb"].pop("SequenceNumber") and None, "SequenceNumber None"),
    ("bad-sequence-number", set_dynamodb("SequenceNumber", "12ab"), "is not a string of digits"),
    ("time-is-text", set_dynamodb("ApproximateCreationDateTime", "yesterday"), "not a time in epoch seconds"),
    ("time-negative", set_dynamodb("ApproximateCreationDateTime", -5), "not a time in epoch seconds"),
    ("insert-without-new-image", lambda r: r["dynamodb"].pop("NewImage") and None, "has no NewImage"),
    (
        "modify-without-old-image",
        lambda r: r.__setitem__("eventName", "MODIFY"),
        "MODIFY record has no OldImage",
    ),
    ("new-image-is-list", set_dynamodb("NewImage", [1]), "must be an object in DynamoDB JSON"),
    ("unknown-type-tag", set_new("v", {"X": "1"}), "unknown type tag 'X'"),
    ("string-that-is-a-number", set_new("v", {"S": 5}), "NewImage.v.S must be a string"),
    ("number-that-is-text", set_new("v", {"N": "abc"}), "must be a number written as a string"),
    ("number-too-precise", set_new("v", {"N": "1" * 39}), "more than 38 significant digits"),
    ("number-out-of-range", set_new("v", {"N": "1e400"}), "outside DynamoDB's number range"),
    ("binary-not-base64", set_new("v", {"B": "%%%"}), "is not valid base64"),
    ("empty-string-set", set_new("v", {"SS": []}), "no empty sets"),
    ("null-false", set_new("v", {"NULL": False}), "must be true"),
    ("nested-bad-value", set_new("v", {"M": {"a": {"L": [{"N": "x"}]}}}), r"NewImage.v.M.a.L[0].N"),
    ("image-key-differs", set_new("pk", {"S": "someone-else"}), "other values for key attributes ['pk']"),
    ("image-without-key", lambda r: r["dynamodb"]["NewImage"].pop("pk") and None, "lacks key attributes"),
    ("rep-ts-text", set_new("rep_ts", {"S": "yesterday"}), "rep_ts must be a non-negative whole number"),
    ("rep-ts-negative", set_new("rep_ts", {"N": "-5"}), "rep_ts must be a non-negative whole number"),
    ("rep-ts-fraction", set_new("rep_ts", {"N": "1.5"}), "rep_ts must be a non-negative whole number"),
    ("rep-region-empty", set_new("rep_region", {"S": ""}), "rep_region must be a non-empty string"),
    ("rep-region-number", set_new("rep_region", {"N": "1"}), "rep_region must be a non-empty string"),
    ("rep-deleted-text", set_new("rep_deleted", {"S": "true"}), "rep_deleted must be a boolean"),
    ("rep-seq-not-digits", set_new("rep_seq", {"S": "x"}), "rep_seq must be a string (S) of digits"),
    ("year-3000", set_new("rep_ts", {"N": "32503680000000000"}), "ahead of this region's clock"),
]


@pytest.fixture
def hostile_batch() -> tuple[dict[str, Any], list[tuple[str, Any, str]]]:
    records: list[Any] = []
    bad: list[tuple[str, Any, str]] = []
    seq = 1000
    for kind, mutate, reason in HOSTILE:
        seq += 2
        records.append(good(f"good-{seq}", seq))
        hostile = mutated(seq + 1, mutate)
        records.append(hostile)
        bad.append((kind, copy.deepcopy(hostile), reason))
    records.append(good("good-last", seq + 2))
    return {"Records": records}, bad


def dead_letters() -> list[dict[str, Any]]:
    s3 = boto3.client("s3", region_name=LOCAL)
    listing = s3.list_objects_v2(Bucket="orders-replicator", Prefix="dead-letters/").get("Contents", [])
    return [
        json.loads(s3.get_object(Bucket="orders-replicator", Key=o["Key"])["Body"].read()) for o in listing
    ]


def test_every_hostile_kind_is_dead_lettered_with_its_content_and_good_writes_replicate(
    aws: dict,
    hostile_batch: tuple[dict[str, Any], list[tuple[str, Any, str]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given one batch of good writes interleaved with every hostile record kind
    event, bad = hostile_batch
    handler = load_function("replicator.handler")
    # When the replicator runs (the event goes through JSON, as Lambda delivers it)
    response = handler.lambda_handler(json.loads(json.dumps(event)), Context())
    # Then the batch succeeds: nothing is retried, bisected or discarded
    assert response == {"batchItemFailures": []}
    # And every good write reached both targets, and nothing else did (no wrong key, no poison)
    goods = {r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"][::2]}
    for region in (EU, AP):
        assert set(table_items(region)) == goods
    # And each hostile record is in the dead-letter store, raw, with a reason naming what is wrong
    entries = dead_letters()
    assert len(entries) == len(bad)
    for kind, raw, reason in bad:
        matching = [e for e in entries if e["record"] == raw]
        assert len(matching) == 1, kind
        assert reason in matching[0]["error"], (kind, matching[0]["error"])
        assert matching[0]["target_region"] is None
    # And each is counted once: malformed, or a version from the future
    lines = emf_lines(capsys.readouterr().out)
    assert metric_total(lines, "FutureVersionsRejected", SourceRegion=LOCAL) == 1
    assert metric_total(lines, "MalformedRecords", SourceRegion=LOCAL) == len(bad) - 1
    assert metric_total(lines, "DeadLettered", SourceRegion=LOCAL) == len(bad)


def test_the_future_version_entry_says_which_way_to_fix_it(aws: dict) -> None:
    # Given a local write stamped in the year 3000
    handler = load_function("replicator.handler")
    poison = item("poison", LOCAL, 32_503_680_000_000_000, v=1)
    handler.lambda_handler({"Records": [record("INSERT", new=poison, seq=5, created=time.time())]}, Context())
    # Then it is not applied anywhere (it would beat every later write of the key for ever)
    assert table_items(EU) == {} and table_items(AP) == {}
    (entry,) = dead_letters()
    assert entry["reason"] == "future_version"
    assert "maximum clock skew of 300 s" in entry["error"] and "NTP" in entry["error"]
    # And a later honest write of the same key replicates
    honest = item("poison", LOCAL, NOW_US, v=2)
    handler.lambda_handler({"Records": [record("INSERT", new=honest, seq=6, created=time.time())]}, Context())
    assert table_items(EU)["poison"]["v"] == {"N": "2"}
