"""The DynamoDB ports (adapters.DynamoPorts): retried, classified, event form in and out."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from replicator.adapters import DynamoPorts
from replicator.core.errors import ErrorKind, ReadFailed
from replicator.core.metadata import AttributeNames, Version, stamp

NAMES = AttributeNames()
V = Version(1_700_000_000_000_000, "us-east-1")
BLOB = base64.b64encode(b"\x00\xff").decode()


def _error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}, "Item": {"pk": {"B": b"\x00\xff"}}}, "op")


class Client:
    """A low-level client whose calls fail with ``failures`` first, then answer ``answer``."""

    def __init__(self, failures: list[BaseException], answer: dict[str, Any]) -> None:
        self.failures, self.answer, self.requests = failures, answer, []

    def _call(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.failures:
            raise self.failures.pop(0)
        return self.answer

    put_item = get_item = _call


def ports(client: Client, attempts: int = 4) -> DynamoPorts:
    return DynamoPorts(lambda _region, _role: client, "us-east-1", NAMES, attempts, 1, sleep=lambda _: None)


def test_a_throttled_put_is_retried_and_its_replaced_item_comes_back_in_event_form() -> None:
    client = Client([_error("ThrottlingException")] * 2, {"Attributes": {"pk": {"B": b"\x00\xff"}}})
    item = stamp({"pk": {"B": BLOB}}, V, NAMES)
    result = ports(client).put_guarded(None, "t", item, V, return_replaced=True)
    assert (result.kind, result.retries, result.replaced) == (None, 2, {"pk": {"B": BLOB}})
    assert client.requests[0]["Item"]["pk"] == {"B": b"\x00\xff"}  # SDK form on the way out
    assert client.requests[0]["ReturnValues"] == "ALL_OLD"


def test_a_stale_put_is_not_retried_and_carries_the_stored_item_when_asked() -> None:
    client = Client([_error("ConditionalCheckFailedException")], {})
    result = ports(client).put_guarded(None, "t", {"pk": {"B": BLOB}}, V, return_stored=True)
    assert (result.kind, result.retries, result.stored) == (ErrorKind.STALE, 0, {"pk": {"B": BLOB}})
    assert client.requests[0]["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


@pytest.mark.parametrize(
    ("failure", "kind", "calls"),
    [
        (EndpointConnectionError(endpoint_url="http://x"), ErrorKind.RETRYABLE, 3),
        (_error("AccessDeniedException"), ErrorKind.CONFIGURATION, 1),
        (_error("ValidationException"), ErrorKind.PERMANENT, 1),
    ],
)
def test_failures_are_classified_and_only_retryable_ones_retried(
    failure: BaseException, kind: ErrorKind, calls: int
) -> None:
    client = Client([failure] * 5, {})
    result = ports(client, attempts=3).put_guarded(None, "t", {"pk": {"S": "k"}}, V)
    assert result.kind is kind and len(client.requests) == calls and result.error


def test_a_read_answers_in_event_form_and_raises_once_its_retries_are_spent() -> None:
    client = Client([], {"Item": {"pk": {"B": b"\x00\xff"}}})
    assert ports(client).get_item(None, "t", {"pk": {"B": BLOB}}, consistent=True) == {"pk": {"B": BLOB}}
    assert client.requests[0]["Key"] == {"pk": {"B": b"\x00\xff"}} and client.requests[0]["ConsistentRead"]
    failing = Client([_error("InternalServerError")] * 4, {})
    with pytest.raises(ReadFailed) as raised:
        ports(failing, attempts=4).get_item(None, "t", {"pk": {"S": "k"}}, consistent=False)
    assert raised.value.kind is ErrorKind.RETRYABLE and len(failing.requests) == 4
