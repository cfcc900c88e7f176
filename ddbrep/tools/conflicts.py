"""List the conflict log: the writes that lost to a concurrent write of another region.

Each replicator (and drain) writes one object per invocation that settled conflicts to its own
region's dead-letter bucket, under ``conflicts/<region>/YYYY/MM/DD/HH/<epoch ms>-<id>.json``
(lambda/replicator/adapters.py). This tool lists one region's objects in a time range (by hour
prefix, then by the key's timestamp), filters by key prefix, and prints a table or JSON.

Wiring (the command line owns ``ddbrep/cli.py``): ``register(subparsers)`` adds the ``conflicts``
command; ``run(args)`` executes it and returns the exit code.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ddbrep.tools.aws import Connection, explain
from replicator.core.defaults import CONFLICT_PREFIX, object_prefix


@dataclass(frozen=True)
class ConflictRecord:
    """One lost conflict as logged: where it was lost, the loser and the winner."""

    at: float
    keys: dict[str, Any]
    lost_in: str  # the losing write's region (where it was overwritten)
    losing: dict[str, Any]
    winning: dict[str, Any]
    logged_by: str
    losing_image: dict[str, Any] | None = None

    def key_text(self) -> str:
        return ",".join(f"{name}={next(iter(value.values()))}" for name, value in sorted(self.keys.items()))

    def to_json(self) -> dict[str, Any]:
        doc = {
            "at": self.at,
            "keys": self.keys,
            "lost_in": self.lost_in,
            "losing": self.losing,
            "winning": self.winning,
            "logged_by": self.logged_by,
        }
        if self.losing_image is not None:
            doc["losing_image"] = self.losing_image
        return doc


def _hours(start: float, end: float) -> Iterator[str]:
    hour = dt.datetime.fromtimestamp(start, dt.UTC).replace(minute=0, second=0, microsecond=0)
    last = dt.datetime.fromtimestamp(end, dt.UTC)
    while hour <= last:
        yield hour.strftime("%Y/%m/%d/%H")
        hour += dt.timedelta(hours=1)


def list_conflicts(
    conn: Connection,
    region: str,
    bucket: str,
    start: float,
    end: float,
    key_prefix: str = "",
    max_hours: int = 24 * 31,
    table: str | None = None,
) -> list[ConflictRecord]:
    """Every conflict logged in ``region``'s bucket between ``start`` and ``end`` (epoch seconds), oldest
    first, whose first key value starts with ``key_prefix`` (``table``: a deployment's 2nd+ table, whose
    log lies under conflicts/tables/<table>/)."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start}): swap --since and --until")
    hours = list(_hours(start, end))
    if len(hours) > max_hours:
        raise ValueError(f"{len(hours)} hours to list; narrow --since/--until to at most {max_hours} hours")
    s3 = conn.client("s3", region)
    found: list[ConflictRecord] = []
    try:
        for hour in hours:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=f"{object_prefix(CONFLICT_PREFIX, table)}{region}/{hour}/"
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    stamp_ms = int(obj["Key"].rsplit("/", 1)[-1].split("-", 1)[0])
                    if not start * 1000 <= stamp_ms <= end * 1000:
                        continue
                    doc = json.loads(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                    found.extend(_records(doc, start, end, key_prefix))
    except Exception as err:
        if isinstance(err, ValueError):
            raise
        raise explain(err, "list the conflict log", region, bucket) from err
    return sorted(found, key=lambda r: (r.at, r.key_text()))


def _records(doc: dict[str, Any], start: float, end: float, key_prefix: str) -> Iterator[ConflictRecord]:
    for entry in doc.get("entries", []):
        record = ConflictRecord(
            at=float(entry["at"]),
            keys=entry["keys"],
            lost_in=entry["target_region"],
            losing=entry["losing"],
            winning=entry["winning"],
            logged_by=entry["source_region"],
            losing_image=entry.get("losing_image"),
        )
        first_value = str(next(iter(next(iter(entry["keys"].values())).values())))
        if start <= record.at <= end and first_value.startswith(key_prefix):
            yield record


def render_table(records: Sequence[ConflictRecord]) -> Any:
    from rich.table import Table

    table = Table(title=f"{len(records)} lost conflicts")
    for column in ("time (UTC)", "key", "lost in", "losing version", "winning version"):
        table.add_column(column)
    for r in records:
        when = dt.datetime.fromtimestamp(r.at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        table.add_row(
            when,
            r.key_text(),
            r.lost_in,
            f"{r.losing['ts']} {r.losing['region']}",
            f"{r.winning['ts']} {r.winning['region']}",
        )
    return table
