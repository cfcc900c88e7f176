"""The region gateway's time compression of the drain's backoff (ChangeMessageVisibility), as a pure step."""

from __future__ import annotations

import json

from ddbrep.local.faults import capped_visibility


def request(operation: str, document: dict) -> tuple[dict[str, str], bytes]:
    return {"X-Amz-Target": f"AmazonSQS.{operation}"}, json.dumps(document).encode()


def test_a_drain_backoff_is_capped_to_the_runtime_limit() -> None:
    # Given the drain postponing one message by 30 minutes and a batch by 16 and 1 minutes
    single = request(
        "ChangeMessageVisibility", {"QueueUrl": "q", "ReceiptHandle": "h", "VisibilityTimeout": 1800}
    )
    batch = request(
        "ChangeMessageVisibilityBatch",
        {
            "QueueUrl": "q",
            "Entries": [{"Id": "a", "VisibilityTimeout": 960}, {"Id": "b", "VisibilityTimeout": 1}],
        },
    )
    # When the gateway forwards them with a 2-second limit
    capped_single = json.loads(capped_visibility(*single, cap=2))
    capped_batch = json.loads(capped_visibility(*batch, cap=2))
    # Then each timeout is at most the limit and everything else is unchanged
    assert capped_single == {"QueueUrl": "q", "ReceiptHandle": "h", "VisibilityTimeout": 2}
    assert [e["VisibilityTimeout"] for e in capped_batch["Entries"]] == [2, 1]


def test_other_requests_pass_through_untouched() -> None:
    # Given a SendMessage whose body mentions a visibility timeout
    headers, body = request("SendMessage", {"QueueUrl": "q", "MessageBody": "x", "VisibilityTimeout": 1800})
    # When the gateway forwards it; Then it is byte for byte the same
    assert capped_visibility(headers, body, cap=2) == body
