"""A local stand-in for Lambda's SQS event source mapping (the drain functions' trigger).

Receives up to BatchSize messages (gathering for up to MaximumBatchingWindowInSeconds), invokes the
function with an SQS-shaped event, and deletes what succeeded: everything on success; with
ReportBatchItemFailures, everything but the reported messageIds (an invalid identifier fails the
whole batch). Messages not deleted become visible again after the queue's visibility timeout, which
is the retry backoff, and move to the queue's dead-letter queue after maxReceiveCount receives
(the engine applies the redrive policy).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ddbrep.local.limits import MAX_SYNC_PAYLOAD_BYTES
from ddbrep.local.resilience import ErrorListener, LoopStats, run_forever
from ddbrep.local.templates import QueueMappingSpec
from ddbrep.local.worker import FunctionWorker, Invocation

POLL_INTERVAL_SECONDS = 0.25
RECEIVE_MAX = 10
# Lambda's SQS pollers long-poll (WaitTimeSeconds 20): a message sent is received at once, an idle queue
# costs a receive per 20 s, not four a second. Locally the wait is 1 s, so that stopping a mapping takes
# at most that long. Each region's engine ends a long poll as SQS does, as soon as a message is
# receivable (a send, a visibility timeout or delay ending, ChangeMessageVisibility: engine_server.py).
LONG_POLL_SECONDS = 1


@dataclass
class QueueSource:
    region: str
    queue_url: str
    queue_arn: str
    client: Any  # boto3 sqs client of the region's engine


@dataclass
class QueuePollerStats(LoopStats):
    invocations: int = 0
    function_errors: int = 0
    messages_deleted: int = 0
    messages_failed: int = 0


def _base64(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def _message_attributes(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Message attributes as Lambda spells them: camelCase, binary values as base64 text."""
    converted = {}
    for name, value in raw.items():
        attribute: dict[str, Any] = {}
        if "StringValue" in value:
            attribute["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["binaryValue"] = _base64(value["BinaryValue"])
        attribute["stringListValues"] = list(value.get("StringListValues", []))
        attribute["binaryListValues"] = [_base64(member) for member in value.get("BinaryListValues", [])]
        attribute["dataType"] = value.get("DataType")
        converted[name] = attribute
    return converted


_FIFO_ATTRIBUTES = ("MessageGroupId", "MessageDeduplicationId", "SequenceNumber")


def to_sqs_record(message: Mapping[str, Any], source: QueueSource) -> dict[str, Any]:
    """One message as Lambda's SQS event delivers it (Lambda Developer Guide, "Using Lambda with SQS")."""
    body = message.get("Body", "")
    attributes = message.get("Attributes", {})
    now_ms = str(int(time.time() * 1000))
    record_attributes = {
        "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
        "SentTimestamp": attributes.get("SentTimestamp", now_ms),
        "SenderId": attributes.get("SenderId", "local"),
        "ApproximateFirstReceiveTimestamp": attributes.get("ApproximateFirstReceiveTimestamp", now_ms),
    }
    record_attributes.update({name: attributes[name] for name in _FIFO_ATTRIBUTES if name in attributes})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": record_attributes,
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": source.region,
    }


def split_under_payload_limit(records: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive batches whose event stays under Lambda's 6 MB synchronous payload limit.

    Lambda sends an SQS batch "up to the payload limit for synchronous invocation": ten 1 MiB messages
    make two invocations, not one over the limit. A single message always fits (SQS caps it at 1 MiB).
    """
    batches: list[list[dict[str, Any]]] = []
    size = len('{"Records": []}')
    for record in records:
        record_size = len(json.dumps(record).encode("utf-8")) + len(", ")
        if batches and batches[-1] and size + record_size > MAX_SYNC_PAYLOAD_BYTES:
            batches.append([])
            size = len('{"Records": []}')
        if not batches:
            batches.append([])
        batches[-1].append(record)
        size += record_size
    return batches


def failed_message_ids(payload: Any, message_ids: Sequence[str]) -> set[str] | None:
    """The messageIds to keep, from a partial batch response; None when the whole batch failed."""
    if not payload or not isinstance(payload, Mapping) or not payload.get("batchItemFailures"):
        return set()
    failures = payload["batchItemFailures"]
    if not isinstance(failures, list):
        return None
    ids = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not identifier or identifier not in message_ids:
            return None
        ids.add(identifier)
    return ids


class QueuePoller:
    """Polls one queue and invokes one function, like one Lambda SQS event source mapping."""

    def __init__(
        self,
        spec: QueueMappingSpec,
        source: QueueSource,
        function: FunctionWorker,
        *,
        observer: Any = None,
        poll_interval: float = POLL_INTERVAL_SECONDS,
        on_error: ErrorListener | None = None,
    ) -> None:
        self.spec = spec
        self.source = source
        self.function = function
        self.observer = observer
        self.poll_interval = poll_interval
        self.on_error = on_error
        self.stats = QueuePollerStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return f"{self.source.region}/{self.spec.logical_id}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sqs-esm:{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        run_forever(
            f"SQS mapping {self.name}",
            self.poll_once,
            self._stop,
            interval=self.poll_interval,
            stats=self.stats,
            on_error=self.on_error,
            expected=(ClientError, BotoCoreError, OSError),
        )

    def _receive(self, count: int, wait_seconds: int = 0) -> list[dict[str, Any]]:
        response = self.source.client.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=min(RECEIVE_MAX, count),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=wait_seconds,
        )
        return list(response.get("Messages", []))

    def poll_once(self) -> bool:
        messages = self._receive(self.spec.batch_size, LONG_POLL_SECONDS)
        if not messages:
            return False
        deadline = time.monotonic() + self.spec.batching_window_seconds
        while len(messages) < self.spec.batch_size and not self._stop.is_set():
            more = self._receive(self.spec.batch_size - len(messages))  # the window waits, not the receive
            messages.extend(more)
            if not more and time.monotonic() >= deadline:
                break
            if not more:
                self._stop.wait(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        records = [to_sqs_record(message, self.source) for message in messages]
        for batch in split_under_payload_limit(records):
            invocation = self.function.invoke({"Records": batch})
            self.stats.invocations += 1
            if self.observer is not None:
                self.observer.on_queue_batch(self, batch, invocation)
            self._settle(batch, invocation)
        return True

    def _settle(self, records: Sequence[Mapping[str, Any]], invocation: Invocation) -> None:
        ids = [r["messageId"] for r in records]
        keep: set[str] | None = None
        if invocation.ok:
            keep = (
                failed_message_ids(invocation.payload, ids) if self.spec.report_batch_item_failures else set()
            )
        else:
            self.stats.function_errors += 1
        if keep is None or not invocation.ok:
            self.stats.messages_failed += len(records)
            return  # the whole batch becomes visible again after the visibility timeout
        done = [r for r in records if r["messageId"] not in keep]
        self.stats.messages_failed += len(records) - len(done)
        for start in range(0, len(done), RECEIVE_MAX):
            chunk = done[start : start + RECEIVE_MAX]
            self.source.client.delete_message_batch(
                QueueUrl=self.source.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
        self.stats.messages_deleted += len(done)

    def backlog(self) -> int:
        """Messages visible or in flight (ApproximateNumberOfMessages + ...NotVisible)."""
        attributes = self.source.client.get_queue_attributes(
            QueueUrl=self.source.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(
            attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        )
