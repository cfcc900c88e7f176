"""The client factory's assumed-role clients outlive their first credentials (moto in-process, a moved clock).

botocore's refresh decisions and moto's STS both read the same simulated clock here, so an hour
passes without waiting for it. Each request's signing key is read from its Authorization header.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from replicator.client_factory import ClientFactory

REGION = "eu-west-1"
ROLE = "arn:aws:iam::123456789012:role/orders-replica-writer"
SESSION_SECONDS = 3600  # what AssumeRole hands out when DurationSeconds is not given
_SIGNING_KEY = re.compile(r"Credential=([^/]+)/")


class SimClock:
    def __init__(self) -> None:
        self.now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)

    def __call__(self) -> datetime.datetime:
        return self.now

    def naive_utc(self) -> datetime.datetime:
        return self.now.replace(tzinfo=None)

    def advance(self, seconds: float) -> None:
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimClock]:
    for var, value in {"AWS_ACCESS_KEY_ID": "base", "AWS_SECRET_ACCESS_KEY": "base"}.items():
        monkeypatch.setenv(var, value)
    sim = SimClock()
    monkeypatch.setattr("moto.sts.models.utcnow", sim.naive_utc)  # STS issues on the same clock
    with mock_aws():
        boto3.client("dynamodb", region_name=REGION).create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield sim


def signing_keys(client: Any) -> list[str]:
    """The access key of every request the client sends, in order."""
    keys: list[str] = []

    def record(request: Any, **_: Any) -> None:
        match = _SIGNING_KEY.search(request.headers.get("Authorization", b"").decode())
        keys.append(match.group(1) if match else "")

    client.meta.events.register("before-send.dynamodb", record)
    return keys


def put(client: Any, pk: str) -> None:
    client.put_item(TableName="orders", Item={"pk": {"S": pk}})


def test_a_role_client_signs_with_new_credentials_once_the_first_ones_expire(clock: SimClock) -> None:
    # Given a client for a cross-account role, built once (as a Lambda container keeps it)
    factory = ClientFactory(boto3.session.Session(), Config(), clock=clock)
    client = factory.client("dynamodb", REGION, ROLE)
    keys = signing_keys(client)
    # When it writes, half an hour later writes again, and writes again after the first session ended
    put(client, "a")
    clock.advance(SESSION_SECONDS / 2)
    put(client, "b")
    clock.advance(SESSION_SECONDS / 2 + 1)
    put(client, "c")
    # Then the first two writes share the first credentials (no AssumeRole per request) and the third
    # is signed with credentials issued after the first ones expired
    assert keys[0] == keys[1]
    assert keys[2] != keys[0]
    assert all(key.startswith("ASIA") for key in keys)  # assumed-role keys, not the base session's
    # And every write landed
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName="orders")["Items"]
    assert sorted(i["pk"]["S"] for i in items) == ["a", "b", "c"]


def test_clients_of_the_same_role_share_one_set_of_credentials(clock: SimClock) -> None:
    # Given a factory
    base = boto3.session.Session()
    factory = ClientFactory(base, Config(), clock=clock)
    # When two services' clients of one role, and a client without a role, are made
    dynamodb = factory.client("dynamodb", REGION, ROLE)
    same = factory.client("dynamodb", REGION, ROLE)
    s3 = factory.client("s3", REGION, ROLE)
    plain = factory.client("dynamodb", REGION)
    # Then clients are cached, one role's clients sign with one key, the roleless one with the base keys
    assert same is dynamodb
    role_key = factory.credentials(REGION, ROLE).access_key
    assert signer_key(dynamodb) == signer_key(s3) == role_key
    assert signer_key(plain) == base.get_credentials().access_key != role_key


def signer_key(client: Any) -> str:
    return str(client._request_signer._credentials.get_frozen_credentials().access_key)
