"""Builders of Lambda-shaped DynamoDB stream records for tests (the envelope: ddbrep/local/streams.py)."""

from __future__ import annotations

import itertools
from typing import Any

from ddbrep.local.streams import record_of_images

_seq = itertools.count(1)
T0 = 1_700_000_000.0


def item(pk: str, region: str | None = None, ts: int | None = None, **attrs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"pk": {"S": pk}}
    for name, value in attrs.items():
        out[name] = (
            {"N": str(value)} if isinstance(value, int) and not isinstance(value, bool) else {"S": value}
        )
    if region is not None:
        out["rep_region"] = {"S": region}
    if ts is not None:
        out["rep_ts"] = {"N": str(ts)}
    return out


def tombstone_item(pk: str, region: str, ts: int) -> dict[str, Any]:
    out = item(pk, region, ts)
    out["rep_deleted"] = {"BOOL": True}
    out["rep_expires"] = {"N": str(ts // 1_000_000 + 604800)}
    return out


def record(
    event_name: str,
    new: dict[str, Any] | None = None,
    old: dict[str, Any] | None = None,
    *,
    seq: int | None = None,
    created: float = T0,
    ttl: bool = False,
    region: str = "us-east-1",
    key_names: tuple[str, ...] = ("pk",),
) -> dict[str, Any]:
    """A stream record in Lambda's wire format (images in event form: binary values as base64 text)."""
    return record_of_images(
        event_name,
        new,
        old,
        sequence_number=str(100_000_000_000_000_000_000 + (seq if seq is not None else next(_seq))),
        created=created,
        key_names=key_names,
        region=region,
        stream_arn=f"arn:aws:dynamodb:{region}:111111111111:table/orders/stream/2026-01-01",
        ttl=ttl,
    )
