"""The replicator function: a DynamoDB stream batch in, a partial batch response out.

parse -> process -> report. The work is batch-level (coalescing per key, parallel fan-out), so it
runs once before Powertools' ``process_partial_response`` (its public API, no private hook); the
per-record handler then only reports each record's outcome, and Powertools builds
``batchItemFailures`` from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from replicator.adapters import AwsPorts
from replicator.core import metrics_names as m
from replicator.emf import print_pair_metrics
from replicator.engine import BatchOutcome, Replicator, sequence_number_of
from replicator.settings import Settings

settings = Settings.from_env()
logger = Logger(service="ddb-replicator")
metrics = Metrics(namespace=settings.namespace)
metrics.set_default_dimensions(**{m.SOURCE_REGION: settings.local_region})
replicator = Replicator(settings, AwsPorts(settings))


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


def emit_metrics(outcome: BatchOutcome) -> None:
    for name, value in outcome.source_counts.items():
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for target_region in sorted(set(outcome.pair_counts) | set(outcome.latencies_ms)):
        counts = {name: value for name, value in outcome.pair_counts[target_region].items() if value}
        latencies = outcome.latencies_ms.get(target_region, [])
        print_pair_metrics(
            settings.namespace,
            {m.SOURCE_REGION: settings.local_region, m.TARGET_REGION: target_region},
            counts,
            {m.REPLICATION_LATENCY: ("Milliseconds", latencies)},
        )


@logger.inject_lambda_context
@metrics.log_metrics
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
