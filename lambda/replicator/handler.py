"""The replicator function: a DynamoDB stream batch in, a partial batch response out.

parse -> process -> report. The work is batch-level (coalescing per key, parallel fan-out), so it
runs once for the whole batch; the response then lists the records whose sequence numbers the batch
reported (``batch_item_failures``: what Powertools' ``BatchProcessor`` for DynamoDB streams returned
when its per-record handler only reported each record's outcome, without wrapping every record in a
data class). The invocation's metrics are printed at the end in as few EMF documents as the format
allows (replicator/emf.py): one per target region, the source's own metrics inside the first; no log
line per record.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from replicator.adapters import AwsPorts
from replicator.core import metrics_names as m
from replicator.emf import MetricsBuffer, MetricSet
from replicator.engine import BatchOutcome, Replicator
from replicator.partial_response import batch_item_failures
from replicator.settings import Settings

settings = Settings.from_env()
logger = Logger(service="ddb-replicator")
replicator = Replicator(settings, AwsPorts(settings))
metrics = MetricsBuffer(settings.namespace, settings.metrics_flush_seconds, m.FLUSH_AT_ONCE)


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
    records = event.get("Records") if isinstance(event, dict) else None
    outcome = replicator.process_batch(records if isinstance(records, list) else [])
    response = batch_item_failures(event, outcome.failed_sequence_numbers)
    emit_metrics(outcome)
    if response["batchItemFailures"]:
        logger.warning("batch partially failed", extra={"failures": response["batchItemFailures"]})
    return response
