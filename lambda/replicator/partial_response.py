"""The partial batch response of a DynamoDB stream invocation (docs/DESIGN.md, Batch item failures)."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from aws_lambda_powertools.utilities.batch.exceptions import UnexpectedBatchTypeError

from replicator.engine import sequence_number_of


def batch_item_failures(event: Any, failed_sequence_numbers: Set[str]) -> dict[str, Any]:
    """``{"batchItemFailures": [...]}``: each record whose sequence number the batch failed, in order.

    Exactly the response (and the errors) of Powertools' ``process_partial_response`` with a
    ``BatchProcessor(EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)`` whose record
    handler raised for those records, which the handler used before (tests/unit/test_partial_response.py
    holds the two equal), without its data class per record. Lambda resumes from the lowest reported
    sequence number. A record is read raw: a hostile one (not an object, no ``dynamodb``) was
    dead-lettered by the engine and has no sequence number to report.
    """
    try:
        records = event.get("Records", [])
    except AttributeError:
        raise ValueError(
            "Invalid event format. Please ensure batch event is a valid DynamoDBStreams event."
        ) from None
    if not records or not isinstance(records, list):
        raise UnexpectedBatchTypeError(
            "Unexpected batch event type. Possible values are: "
            "SQS, KinesisDataStreams, DynamoDBStreams, Kafka",
        )
    failures = []
    if failed_sequence_numbers:
        for record in records:
            sequence_number = sequence_number_of(record)
            if sequence_number is not None and sequence_number in failed_sequence_numbers:
                failures.append({"itemIdentifier": sequence_number})
    return {"batchItemFailures": failures}
