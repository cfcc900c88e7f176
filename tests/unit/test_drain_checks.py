"""The drain trusts a handoff message no more than a stream record: a queue is a boundary.

It writes only to its own target's table, follows only pointers into its own bucket under its own
``handoff/<target>/`` prefix, replays only well-formed writes, and dead-letters anything else with the
raw message and the reason (never retried for ever, never written elsewhere).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import pytest

from replicator.core import metrics_names as m
from replicator.core.errors import WriteResult
from replicator.core.metadata import AttributeNames, Version, stamp
from replicator.core.plan import TargetWrite
from replicator.drain_core import Drainer
from tests.unit.memtable import MemTable
from tests.unit.sim import settings_for

NAMES = AttributeNames()
REGIONS = ["us-east-1", "eu-west-1"]
VERSION = Version(1_700_000_000_000_000, "us-east-1", "0" * 39 + "1")


class Ports:
    """The drain's I/O: its target table, the bucket it may read, what it dead-letters."""

    def __init__(self) -> None:
        self.table = MemTable(region="eu-west-1")
        self.other_table = MemTable(region="eu-west-1")
        self.objects: dict[tuple[str, str], str] = {}
        self.fetched: list[tuple[str, str]] = []
        self.dead_letters: list[Mapping[str, Any]] = []

    def put_guarded(
        self, target: Any, table: str, item: Any, version: Version, *, return_replaced: bool = False
    ) -> WriteResult:
        return self.table.put_guarded(item, version, return_replaced)

    def load_handoff(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        doc = message
        if "s3" in doc:
            where = (doc["s3"]["bucket"], doc["s3"]["key"])
            self.fetched.append(where)
            return dict(json.loads(self.objects[where]))
        return dict(doc)

    def dead_letter(self, entry: Mapping[str, Any]) -> str:
        self.dead_letters.append(entry)
        return "dl"


def good_write(**changes: Any) -> dict[str, Any]:
    item = stamp({"pk": {"S": "k"}, "v": {"N": "1"}}, VERSION, NAMES)
    doc = TargetWrite(region="eu-west-1", table="orders", item=item, version=VERSION, keys={"pk": {"S": "k"}})
    return {**doc.to_json(), **changes}


def drainer(ports: Ports) -> Drainer:
    settings = settings_for("us-east-1", REGIONS, dead_letter_bucket="orders-replicator")
    return Drainer(settings, settings.target("eu-west-1"), ports)


def message(write: Any) -> str:
    return json.dumps({"v": 1, "reason": "test", "write": write})


def test_a_well_formed_message_is_replayed() -> None:
    ports = Ports()
    result = drainer(ports).replay(message(good_write()))
    assert result.metric == m.HANDOFF_REPLAYED
    assert len(ports.table.items) == 1 and not ports.dead_letters


def test_a_pointer_into_its_own_prefix_is_followed() -> None:
    ports = Ports()
    key = ("orders-replicator", "handoff/eu-west-1/abc.json")
    ports.objects[key] = message(good_write())
    body = json.dumps({"v": 1, "s3": {"bucket": key[0], "key": key[1]}})
    assert drainer(ports).replay(body).metric == m.HANDOFF_REPLAYED
    assert ports.fetched == [key]


HOSTILE = [
    ("not-json", "{{{", "not JSON"),
    ("not-an-object", json.dumps([1, 2]), "not a JSON object"),
    ("no-write", json.dumps({"v": 1}), "no well-formed write"),
    (
        "write-without-version",
        message({k: v for k, v in good_write().items() if k != "version"}),
        "well-formed",
    ),
    (
        "other-region",
        message(good_write(region="ap-southeast-2")),
        "this drain writes only 'orders' in eu-west-1",
    ),
    ("other-table", message(good_write(table="payroll")), "for table 'payroll'"),
    (
        "bad-value",
        message(good_write(item={"pk": {"S": "k"}, "v": {"S": 5}})),
        "write.item.v.S must be a string",
    ),
    (
        "keys-not-in-item",
        message(good_write(keys={"pk": {"S": "someone-else"}})),
        "does not carry write.keys",
    ),
    (
        "guard-above-item",
        message(good_write(version={"ts": VERSION.ts + 10**12, "region": "us-east-1", "seq": VERSION.seq})),
        "is not the version its item carries",
    ),
    (
        "pointer-to-other-bucket",
        json.dumps({"s3": {"bucket": "someone-elses", "key": "handoff/eu-west-1/x.json"}}),
        "follows only pointers into s3://orders-replicator/handoff/eu-west-1/",
    ),
    (
        "pointer-to-other-prefix",
        json.dumps({"s3": {"bucket": "orders-replicator", "key": "dead-letters/us-east-1/x.json"}}),
        "follows only pointers",
    ),
    (
        "pointer-to-other-target",
        json.dumps({"s3": {"bucket": "orders-replicator", "key": "handoff/ap-southeast-2/x.json"}}),
        "follows only pointers",
    ),
    (
        "pointer-climbing-out",
        json.dumps({"s3": {"bucket": "orders-replicator", "key": "handoff/eu-west-1/../../secret"}}),
        "climbs out",
    ),
]


@pytest.mark.parametrize(("kind", "body", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_message_the_drain_must_not_act_on_is_dead_lettered_with_its_content(
    kind: str, body: str, reason: str
) -> None:
    # Given a handoff message this drain must not act on
    ports = Ports()
    # When it is replayed
    result = drainer(ports).replay(body, message_id="m-1")
    # Then nothing is written, nothing outside its own prefix is read, and the raw message is parked
    assert result.metric == m.DEAD_LETTERED
    assert ports.table.items == {}
    assert all(key.startswith("handoff/eu-west-1/") for _, key in ports.fetched)
    (entry,) = ports.dead_letters
    assert entry["reason"] == "handoff_rejected" and entry["body"] == body and entry["message_id"] == "m-1"
    assert reason in entry["error"], entry["error"]


def test_a_second_tables_drain_follows_pointers_into_its_own_tables_prefix_only() -> None:
    # The 2nd+ tables of a deployment share the region's bucket; their payloads lie under
    # handoff/tables/<table>/<target>/ (REP_OBJECT_KEY_TABLE).
    settings = dataclasses.replace(
        settings_for("us-east-1", REGIONS, dead_letter_bucket="orders-replicator"), object_key_table="orders"
    )
    own = ("orders-replicator", "handoff/tables/orders/eu-west-1/abc.json")
    first_tables = ("orders-replicator", "handoff/eu-west-1/abc.json")
    ports = Ports()
    ports.objects[own] = ports.objects[first_tables] = message(good_write())
    drain = Drainer(settings, settings.target("eu-west-1"), ports)
    assert (
        drain.replay(json.dumps({"v": 1, "s3": {"bucket": own[0], "key": own[1]}})).metric
        == m.HANDOFF_REPLAYED
    )
    refused = drain.replay(json.dumps({"v": 1, "s3": {"bucket": first_tables[0], "key": first_tables[1]}}))
    assert refused.metric != m.HANDOFF_REPLAYED
    assert ports.fetched == [own]
    assert "s3://orders-replicator/handoff/tables/orders/eu-west-1/" in json.dumps(ports.dead_letters[-1])
