"""The conditional-write expressions of the protocol (DESIGN.md section 5).

Each function returns the keyword arguments for the low-level client's PutItem / UpdateItem, so the
wire format goes to DynamoDB unchanged. The condition is what makes retries, duplicates and
out-of-order delivery harmless: a write applies only over an older version.
"""

from __future__ import annotations

from typing import Any

from replicator.core.metadata import AttributeNames, Version, WireItem

_NEWER = "#rts < :rts OR (#rts = :rts AND #rreg < :rreg)"
_SAME_WRITER_EARLIER = "(#rts = :rts AND #rreg = :rreg AND (attribute_not_exists(#rseq) OR #rseq < :rseq))"


def _version_values(version: Version) -> dict[str, Any]:
    values: dict[str, Any] = {":rts": {"N": str(version.ts)}, ":rreg": {"S": version.region}}
    if version.seq:
        values[":rseq"] = {"S": version.seq}
    return values


def guarded_put(table: str, item: WireItem, version: Version, names: AttributeNames) -> dict[str, Any]:
    """PutItem that applies only if the stored item is older than ``version`` (last writer wins).

    An item without metadata is the lowest version. An equal version is stale (a duplicate), except
    that ``rep_seq`` orders two writes of one region that carry the same timestamp.
    """
    condition = f"attribute_not_exists(#rts) OR {_NEWER}"
    attribute_names = {"#rts": names.ts, "#rreg": names.region}
    if version.seq:
        condition += f" OR {_SAME_WRITER_EARLIER}"
        attribute_names["#rseq"] = names.seq
    return {
        "TableName": table,
        "Item": dict(item),
        "ConditionExpression": condition,
        "ExpressionAttributeNames": attribute_names,
        "ExpressionAttributeValues": _version_values(version),
    }


def local_tombstone_put(
    table: str, item: WireItem, version: Version, partition_key: str, names: AttributeNames
) -> dict[str, Any]:
    """PutItem of a tombstone after a hard delete: only where the item is still gone or older.

    Unlike ``guarded_put``, an item that exists without a stamp is NOT overwritten: it is an unstamped
    re-insert made after the delete, which the replicator adopts on its own record.
    """
    return {
        "TableName": table,
        "Item": dict(item),
        "ConditionExpression": f"attribute_not_exists(#pk) OR {_NEWER}",
        "ExpressionAttributeNames": {"#pk": partition_key, "#rts": names.ts, "#rreg": names.region},
        "ExpressionAttributeValues": _version_values(version),
    }


def adoption_update(
    table: str,
    keys: WireItem,
    version: Version,
    expected: Version | None,
    partition_key: str,
    names: AttributeNames,
) -> dict[str, Any]:
    """UpdateItem that stamps a local unstamped write in place (only the stamp: content stays current).

    It applies only while the item exists and is as the record showed it (still unstamped, or still
    carrying ``expected``): UpdateItem would otherwise create an item from its keys alone.
    """
    attribute_names = {"#pk": partition_key, "#rts": names.ts, "#rreg": names.region, "#rseq": names.seq}
    values: dict[str, Any] = {":rts": {"N": str(version.ts)}, ":rreg": {"S": version.region}}
    if expected is None:
        condition = "attribute_exists(#pk) AND attribute_not_exists(#rts)"
    else:
        condition = "attribute_exists(#pk) AND #rts = :ets AND #rreg = :ereg"
        values[":ets"] = {"N": str(expected.ts)}
        values[":ereg"] = {"S": expected.region}
    return {
        "TableName": table,
        "Key": dict(keys),
        "UpdateExpression": "SET #rts = :rts, #rreg = :rreg REMOVE #rseq",
        "ConditionExpression": condition,
        "ExpressionAttributeNames": attribute_names,
        "ExpressionAttributeValues": values,
    }
