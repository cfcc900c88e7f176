"""Bad input: each kind of malformed record gets a clear reason (parse_record)."""

from __future__ import annotations

import copy

import pytest

from replicator.core.records import MalformedRecord, parse_record
from tests.unit.factories import item, record

GOOD = record("MODIFY", new=item("a", "us-east-1", 5, v=1), old=item("a", "us-east-1", 4, v=0))


def broken(mutate) -> dict:
    raw = copy.deepcopy(GOOD)
    mutate(raw)
    return raw


def test_a_well_formed_record_is_parsed() -> None:
    parsed = parse_record(GOOD)
    assert parsed.event_name == "MODIFY"
    assert parsed.keys == {"pk": {"S": "a"}}
    assert parsed.creation_time_us == 1_700_000_000_000_000


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r["dynamodb"].pop("Keys"), "no dynamodb.Keys"),
        (lambda r: r.update(eventName="UPSERT"), "unknown eventName 'UPSERT'"),
        (lambda r: r["dynamodb"].pop("NewImage"), "no NewImage; the stream view type must be"),
        (lambda r: r["dynamodb"].pop("OldImage"), "no OldImage; the stream view type must be"),
        (lambda r: r["dynamodb"].update(SequenceNumber="12ab"), "is not a string of digits"),
        (
            lambda r: r["dynamodb"].update(ApproximateCreationDateTime="yesterday"),
            "is not a time in epoch seconds",
        ),
        (lambda r: r.pop("dynamodb"), "no 'dynamodb' object"),
        (lambda r: r["dynamodb"]["NewImage"].pop("pk"), "lacks key attributes"),
    ],
    ids=[
        "no-keys",
        "unknown-event",
        "no-new-image",
        "no-old-image",
        "bad-seq",
        "bad-time",
        "no-dynamodb",
        "image-without-key",
    ],
)
def test_each_malformed_record_names_what_is_wrong(mutate, reason: str) -> None:
    with pytest.raises(MalformedRecord, match=reason):
        parse_record(broken(mutate))
