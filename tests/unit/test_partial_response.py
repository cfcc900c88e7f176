"""The replicator's partial batch response equals Powertools' BatchProcessor's, which it replaces."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from hypothesis import given
from hypothesis import strategies as st

from replicator.engine import sequence_number_of
from replicator.partial_response import batch_item_failures

SEQUENCES = ["100000000000000000001", "100000000000000000002", "100000000000000000003", "x", ""]

_records = st.one_of(
    st.sampled_from(SEQUENCES).map(lambda seq: {"eventName": "INSERT", "dynamodb": {"SequenceNumber": seq}}),
    st.sampled_from([None, 5, "text", [], {}, {"dynamodb": None}, {"dynamodb": {"SequenceNumber": 7}}]),
)
_events = st.one_of(
    st.lists(_records, max_size=6).map(lambda records: {"Records": records}),
    st.sampled_from([{}, {"Records": None}, {"Records": "abc"}, {"Records": {}}, [], None, "event"]),
)


def powertools_response(event: Any, failed: set[str]) -> Any:
    """What the handler returned through Powertools: its record handler raised for the failed records."""

    def report_record(record: Any) -> None:
        sequence_number = sequence_number_of(record.raw_event)
        if sequence_number is not None and sequence_number in failed:
            raise RuntimeError(f"sequence number {sequence_number} not replicated")

    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    return dict(process_partial_response(event=event, record_handler=report_record, processor=processor))


def outcome(call: Any) -> tuple[str, Any]:
    try:
        return "returned", call()
    except Exception as err:  # the same kind of failure, whatever its text
        return "raised", type(err)


@given(_events, st.sets(st.sampled_from(SEQUENCES)))
def test_the_response_and_its_errors_are_powertools_own(event: Any, failed: set[str]) -> None:
    assert outcome(lambda: batch_item_failures(event, failed)) == outcome(
        lambda: powertools_response(event, failed)
    )


def test_each_failed_record_is_reported_in_batch_order() -> None:
    records = [{"dynamodb": {"SequenceNumber": seq}} for seq in ("3", "1", "2", "1")]
    response = batch_item_failures({"Records": records}, {"1", "2"})
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in ("1", "2", "1")]}
