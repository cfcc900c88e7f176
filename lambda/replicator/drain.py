"""The drain function: replays one target's handoff queue through the same conditional write.

An SQS batch in, a partial batch response out. A message whose write still fails goes back to the
queue, hidden for a backoff that grows with its receive count (ChangeMessageVisibility, see
core/backoff.py); a write the target rejects for good goes to the dead-letter store. Order does
not matter: every write is a conditional last-writer-wins put.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from replicator.adapters import AwsPorts
from replicator.core import metrics_names as m
from replicator.core.conflicts import LostConflict
from replicator.drain_core import Drainer, DrainFailed, log_replayed_conflicts
from replicator.settings import Settings, SettingsError

settings = Settings.from_env()
if not settings.drain_target_region:
    raise SettingsError("REP_DRAIN_TARGET_REGION is required for the drain function")
target = settings.target(settings.drain_target_region)
logger = Logger(service="ddb-replicator-drain")
metrics = Metrics(namespace=settings.namespace)
metrics.set_default_dimensions(**{m.SOURCE_REGION: settings.local_region, m.TARGET_REGION: target.region})
ports = AwsPorts(settings)
drainer = Drainer(settings, target, ports)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
conflicts: list[LostConflict] = []  # this invocation's, logged in one object at its end


def replay(record: SQSRecord) -> str:
    try:
        result = drainer.replay_message(
            record.body,
            message_id=record.message_id,
            receipt_handle=record.receipt_handle,
            # Lambda always sends it; a hand-built event without it counts as a first receive
            receive_count=int(record.attributes.get("ApproximateReceiveCount") or 1),
            queue=ports,
        )
    except DrainFailed:
        metrics.add_metric(name=m.HANDOFF_REPLAY_FAILED, unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name=result.metric, unit=MetricUnit.Count, value=1)
    if result.conflict is not None:
        conflicts.append(result.conflict)
        metrics.add_metric(name=m.CONFLICTS_LOST, unit=MetricUnit.Count, value=1)
    if result.latency_ms is not None:
        metrics.add_metric(name=m.REPLICATION_LATENCY, unit=MetricUnit.Milliseconds, value=result.latency_ms)
    return result.metric


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    conflicts.clear()
    response = process_partial_response(
        event=event, record_handler=replay, processor=processor, context=context
    )
    _, not_logged = log_replayed_conflicts(ports, settings, target, conflicts)
    if not_logged:
        metrics.add_metric(name=m.CONFLICTS_NOT_LOGGED, unit=MetricUnit.Count, value=not_logged)
    return dict(response)
