"""The conditional write is last-writer-wins, on a real engine (moto) and in the test model alike."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from replicator.core.conditions import guarded_put, version_guard
from replicator.core.metadata import AttributeNames, Version, stamp
from tests.unit.memtable import applies, guard_version

NAMES = AttributeNames()
versions = st.builds(
    Version,
    ts=st.integers(1, 4),
    region=st.sampled_from(["eu-west-1", "us-east-1"]),
    seq=st.sampled_from(["", "0" * 39 + "1", "0" * 39 + "2"]),
)
stored_items = st.one_of(st.none(), st.just("unstamped"), versions)


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client(
            "dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def _stored(state: Any) -> dict[str, Any] | None:
    if state is None:
        return None
    base = {"pk": {"S": "k"}, "v": {"S": "old"}}
    return base if state == "unstamped" else stamp(base, state, NAMES)


def expected_to_apply(stored: Any, incoming: Version) -> bool:
    """The protocol's rule, stated directly: apply over a missing, unstamped or older item."""
    if stored is None or stored == "unstamped":
        return True
    if (incoming.ts, incoming.region) != (stored.ts, stored.region):
        return (incoming.ts, incoming.region) > (stored.ts, stored.region)
    # Same write time and region: only a later record of the same stream (both carry a seq) is newer;
    # a copy with a seq is the same write as the writer's own version without one.
    return bool(incoming.seq) and bool(stored.seq) and incoming.seq > stored.seq


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored=stored_items, incoming=versions)
def test_guarded_put_applies_only_over_an_older_version(
    dynamodb: Any, stored: Any, incoming: Version
) -> None:
    # Given a stored item (or none) and an incoming write
    dynamodb.delete_item(TableName="t", Key={"pk": {"S": "k"}})
    current = _stored(stored)
    if current is not None:
        dynamodb.put_item(TableName="t", Item=current)
    request = guarded_put("t", stamp({"pk": {"S": "k"}, "v": {"S": "new"}}, incoming, NAMES), incoming, NAMES)
    # When moto evaluates the condition
    try:
        dynamodb.put_item(**request)
        applied = True
    except ClientError as err:
        assert err.response["Error"]["Code"] == "ConditionalCheckFailedException"
        applied = False
    # Then it applies exactly when the incoming version is greater, and the test model's rule (the
    # Version order, on the version it reads back from the request's guard) agrees
    assert applied == expected_to_apply(stored, incoming)
    assert guard_version(request) == incoming
    assert applies(current, incoming) == applied


def _guard_built_per_write(version: Version, names: AttributeNames, tag: str) -> tuple[str, Any, Any]:
    """The guard as it was built before its text was cached: the reference for the cached one."""
    ts, region, seq = f"{tag}ts", f"{tag}reg", f"{tag}seq"
    condition = f"attribute_not_exists(#{ts}) OR #{ts} < :{ts} OR (#{ts} = :{ts} AND #{region} < :{region})"
    attribute_names = {f"#{ts}": names.ts, f"#{region}": names.region}
    values: dict[str, Any] = {f":{ts}": {"N": str(version.ts)}, f":{region}": {"S": version.region}}
    if version.seq:
        condition += f" OR (#{ts} = :{ts} AND #{region} = :{region} AND #{seq} < :{seq})"
        attribute_names[f"#{seq}"] = names.seq
        values[f":{seq}"] = {"S": version.seq}
    return condition, attribute_names, values


@given(versions, st.sampled_from(["r", "__r"]), st.sampled_from(["rep_", "x_"]))
def test_the_cached_guard_text_equals_the_guard_built_per_write(
    version: Version, tag: str, prefix: str
) -> None:
    names = AttributeNames.with_prefix(prefix)
    guard = version_guard(version, names, tag)
    assert guard == _guard_built_per_write(version, names, tag)
    # and each call's attribute names are its own: changing one request does not change the next
    guard[1]["#other"] = "x"
    assert version_guard(version, names, tag) == _guard_built_per_write(version, names, tag)
