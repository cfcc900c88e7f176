"""The replicator function: a DynamoDB stream batch in, a partial batch response out.

parse -> process -> report. The work is batch-level (coalescing per key, parallel fan-out), so it
runs once before Powertools' ``process_partial_response`` (its public API, no private hook); the
per-record handler then only reports each record's outcome, and Powertools builds
``batchItemFailures`` from it. The invocation's metrics are printed at the end in as few EMF documents
as the format allows (replicator/emf.py): one per target region, the source's own metrics inside the
first; no log line per record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from replicator.adapters import AwsPorts
from replicator.core import metrics_names as m
from replicator.emf import MetricsBuffer, MetricSet
from replicator.engine import BatchOutcome, Replicator, sequence_number_of
from replicator.settings import Settings

settings = Settings.from_env()
logger = Logger(service="ddb-replicator")
replicator = Replicator(settings, AwsPorts(settings))
metrics = MetricsBuffer(settings.namespace, settings.metrics_flush_seconds, m.FLUSH_AT_ONCE)


class RecordNotReplicated(Exception):
    """This record's key could not be applied or handed off: Lambda retries from its sequence number."""


processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


def record_reporter(outcome: BatchOutcome) -> Callable[[DynamoDBRecord], None]:
    """Powertools' per-record handler: it only reports what the batch-level replication decided."""

    def report_record(record: DynamoDBRecord) -> None:
        # Read from the raw record: a hostile one (not an object, no dynamodb) was dead-lettered by
        # the engine, and must not make Powertools' typed view raise here.
        sequence_number = sequence_number_of(record.raw_event)
        if sequence_number is not None and sequence_number in outcome.failed_sequence_numbers:
            raise RecordNotReplicated(f"sequence number {sequence_number} not replicated; Lambda will retry")

    return report_record


def metric_sets(outcome: BatchOutcome, source_region: str) -> list[MetricSet]:
    """Per region pair first, then the source's own: the source's ride in the first pair's document."""
    sets = [
        MetricSet(
            {m.SOURCE_REGION: source_region, m.TARGET_REGION: target_region},
            m.emitted_pair_counts(outcome.pair_counts.get(target_region, {})),
            {m.REPLICATION_LATENCY: ("Milliseconds", outcome.latencies_ms.get(target_region, []))},
        )
        for target_region in sorted(set(outcome.pair_counts) | set(outcome.latencies_ms))
    ]
    sets.append(MetricSet({m.SOURCE_REGION: source_region}, dict(outcome.source_counts)))
    return sets


def emit_metrics(outcome: BatchOutcome) -> None:
    metrics.publish(metric_sets(outcome, settings.local_region))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The work is batch-level (coalescing per key, parallel fan-out): it runs first, then Powertools'
    # public partial-response API builds batchItemFailures from each record's reported outcome.
    records = event.get("Records") if isinstance(event, dict) else None
    outcome = replicator.process_batch(records if isinstance(records, list) else [])
    response = process_partial_response(
        event=event, record_handler=record_reporter(outcome), processor=processor, context=context
    )
    emit_metrics(outcome)
    if response.get("batchItemFailures"):
        logger.warning("batch partially failed", extra={"failures": response["batchItemFailures"]})
    return dict(response)
