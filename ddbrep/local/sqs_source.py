"""A local stand-in for Lambda's SQS event source mapping (the drain functions' trigger).

Receives up to BatchSize messages (gathering for up to MaximumBatchingWindowInSeconds), invokes the
function with an SQS-shaped event, and deletes what succeeded: everything on success; with
ReportBatchItemFailures, everything but the reported messageIds (an invalid identifier fails the
whole batch). Messages not deleted become visible again after the queue's visibility timeout, which
is the retry backoff, and move to the queue's dead-letter queue after maxReceiveCount receives
(the engine applies the redrive policy).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ddbrep.local.templates import QueueMappingSpec
from ddbrep.local.worker import FunctionWorker, Invocation

POLL_INTERVAL_SECONDS = 0.25
RECEIVE_MAX = 10


@dataclass
class QueueSource:
    region: str
    queue_url: str
    queue_arn: str
    client: Any  # boto3 sqs client of the region's engine


@dataclass
class QueuePollerStats:
    invocations: int = 0
    function_errors: int = 0
    messages_deleted: int = 0
    messages_failed: int = 0


def _message_attributes(raw: Mapping[str, Any]) -> dict[str, Any]:
    converted = {}
    for name, value in raw.items():
        converted[name] = {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": value.get("StringListValues", []),
            "binaryListValues": value.get("BinaryListValues", []),
            "dataType": value.get("DataType"),
        }
    return converted


def to_sqs_record(message: Mapping[str, Any], source: QueueSource) -> dict[str, Any]:
    """One message as Lambda's SQS event delivers it."""
    body = message.get("Body", "")
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "local"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": source.queue_arn,
        "awsRegion": source.region,
    }


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
    ) -> None:
        self.spec = spec
        self.source = source
        self.function = function
        self.observer = observer
        self.poll_interval = poll_interval
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
        while not self._stop.is_set():
            try:
                busy = self.poll_once()
            except (ClientError, BotoCoreError, OSError):
                busy = False
            if not busy:
                self._stop.wait(self.poll_interval)

    def _receive(self, count: int) -> list[dict[str, Any]]:
        response = self.source.client.receive_message(
            QueueUrl=self.source.queue_url,
            MaxNumberOfMessages=min(RECEIVE_MAX, count),
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        )
        return list(response.get("Messages", []))

    def poll_once(self) -> bool:
        messages = self._receive(self.spec.batch_size)
        if not messages:
            return False
        deadline = time.monotonic() + self.spec.batching_window_seconds
        while len(messages) < self.spec.batch_size and not self._stop.is_set():
            more = self._receive(self.spec.batch_size - len(messages))
            messages.extend(more)
            if not more and time.monotonic() >= deadline:
                break
            if not more:
                self._stop.wait(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        records = [to_sqs_record(message, self.source) for message in messages]
        invocation = self.function.invoke({"Records": records})
        self.stats.invocations += 1
        if self.observer is not None:
            self.observer.on_queue_batch(self, records, invocation)
        self._settle(records, invocation)
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
