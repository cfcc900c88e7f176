"""The engine of one simulated region: moto's server, with its two write races fixed and long polls as SQS's.

moto's ``StreamShard.add`` numbers a stream record ``len(items) + starting_sequence_number`` and then
appends it, with no lock, while the server handles requests on many threads. Two writes to one table
at the same moment can take the same sequence number (measured: one duplicate in 1,200 writes from 8
threads). DynamoDB never does that, and a stream reader positioned after the first of the two is
handed the second, with the same number, on every read (an AFTER_SEQUENCE_NUMBER iterator starts at
"number + 1" by index): the local stream mapping re-read it for ever and never drained. Each region's
server therefore runs here, with the numbering and the append made one step under a lock, and with
every item write made one step too (``serialize_item_writes``: DynamoDB's conditional writes are
atomic per item, moto's are not).

Its long polls end as SQS's do, as soon as a message can be received
(``wake_long_polls_when_messages_become_visible``). It also answers one question SQS's API cannot but
its CloudWatch metrics do: a queue's ``ApproximateAgeOfOldestMessage``
(``GET /_ddbrep/sqs/age-of-oldest-message?account=A&region=R&queue=Q``), computed as SQS does for a
standard queue, so the local alarms can evaluate the handoff queues' age
alarm (ddbrep/local/cloud.py).

    python -m ddbrep.local.engine_server -H 127.0.0.1 -p PORT     (moto.server's arguments)
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qs

AGE_PATH = "/_ddbrep/sqs/age-of-oldest-message"
# SQS moves a message received this many times and not deleted to the back of a standard queue, and
# ApproximateAgeOfOldestMessage then reports the next one below it: poison pills are left out "until
# successfully processed" (docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/
# sqs-available-cloudwatch-metrics.html). The metric is reported only while such a message exists.
AGE_RECEIVE_THRESHOLD = 3


def serialize_stream_appends() -> None:
    """Make ``StreamShard.add`` (number, append, hand to moto's own Lambda mappings) atomic."""
    from moto.dynamodb.models.table import StreamShard

    original = StreamShard.add
    if getattr(original, "serialized", False):
        return
    lock = threading.Lock()

    def add(self: Any, old: Any, new: Any) -> None:
        with lock:
            original(self, old, new)

    add.serialized = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]


# moto's handlers of the writes that read an item and then replace it (a condition, ReturnValues,
# an update expression) with no lock.
ITEM_WRITES = (
    "put_item",
    "update_item",
    "delete_item",
    "batch_write_item",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
)


def serialize_item_writes() -> None:
    """Make each DynamoDB write one step, as DynamoDB makes a conditional write atomic per item.

    moto reads the stored item (for ReturnValues=ALL_OLD and for the condition), checks the condition
    and stores the new item in separate steps, on whichever request thread. Two conditional puts of one
    key at the same moment could then both pass against the same stored version and both answer it as
    the item they replaced: the later one's condition was never evaluated against the earlier one's
    write (measured in the 10,000-operation soak: a write logged as lost twice, to two winners, one of
    which had replaced the other). One lock per region's server serializes every item write (reads
    are not affected); moto spends its time in Python under the GIL anyway.
    """
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.put_item, "serialized", False):
        return
    lock = threading.RLock()
    for name in ITEM_WRITES:
        original = getattr(DynamoHandler, name)

        def write(self: Any, _original: Any = original) -> Any:
            with lock:
                return _original(self)

        write.serialized = True  # type: ignore[attr-defined]
        write.__name__ = name
        setattr(DynamoHandler, name, write)


def wake_long_polls_when_messages_become_visible() -> None:
    """A long poll (ReceiveMessage with WaitTimeSeconds) returns as soon as a message is receivable.

    SQS answers a long poll "as soon as a message is available"; moto's waits on a condition that a
    send notifies, and otherwise looks again only once a second, so a message whose visibility timeout
    (or delay) ends, or that ChangeMessageVisibility makes visible, waited up to a second more (the
    local mappings long-poll as Lambda's do: ddbrep/local/sqs_source.py). Here the wait ends when the
    next in-flight or delayed message becomes visible, and a change of visibility wakes the waiters.
    """
    from moto.sqs.models import Queue, SQSBackend

    if getattr(Queue.wait_for_messages, "wakes_at_visibility", False):
        return

    def wait_for_messages(self: Any, timeout: float) -> None:
        deadline = time.time() + timeout
        with self._messages_lock:
            while not self.messages:
                now = time.time()
                if now >= deadline:
                    return
                upcoming = (max(m.visible_at, m.delayed_until) / 1000 for m in self._messages)
                wake = min([deadline, *(at for at in upcoming if at > now)])
                self._messages_lock.wait(wake - now + 0.002)  # moto compares in whole milliseconds

    original_change = SQSBackend.change_message_visibility

    def change_message_visibility(self: Any, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        result = original_change(self, queue_name, *args, **kwargs)
        queue = self.get_queue(queue_name)
        with queue._messages_lock:
            queue._messages_lock.notify_all()
        return result

    wait_for_messages.wakes_at_visibility = True  # type: ignore[attr-defined]
    Queue.wait_for_messages = wait_for_messages  # type: ignore[method-assign]
    SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign]


def age_of_oldest_message(messages: Sequence[Any], now_ms: float) -> float | None:
    """ApproximateAgeOfOldestMessage in seconds, as SQS reports it for a standard queue (see
    AGE_RECEIVE_THRESHOLD), from moto's messages; None when SQS would report nothing."""
    sent = [
        m.sent_timestamp
        for m in messages
        if m.sent_timestamp is not None and m.approximate_receive_count < AGE_RECEIVE_THRESHOLD
    ]
    return max(0.0, (now_ms - min(sent)) / 1000) if sent else None


class WithQueueAges:
    """moto's WSGI application, answering AGE_PATH itself (JSON ``{"age_seconds": float | null}``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:  # moto.server sets and reads attributes (debug) on it
        return getattr(self.app, name)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != AGE_PATH:
            return self.app(environ, start_response)
        from moto.sqs.models import sqs_backends

        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            queue = sqs_backends[query["account"]][query["region"]].queues[query["queue"]]
        except KeyError as missing:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [json.dumps({"error": f"no such queue (or parameter): {missing}"}).encode()]
        age = age_of_oldest_message(list(queue._messages), time.time() * 1000)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"age_seconds": age}).encode()]


def main(argv: list[str]) -> None:
    serialize_stream_appends()
    serialize_item_writes()
    wake_long_polls_when_messages_become_visible()
    import moto.server

    dispatcher = moto.server.DomainDispatcherApplication
    moto.server.DomainDispatcherApplication = lambda *a, **k: WithQueueAges(dispatcher(*a, **k))  # type: ignore[assignment,misc]
    moto.server.main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
