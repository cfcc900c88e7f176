"""Per target: the durable handoff queue (in the source region) and the drain function that replays it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks import defaults
from stacks.config import TargetPlan
from stacks.runtime import FunctionRuntime


def _queue_encryption(key: kms.IKey | None) -> dict[str, Any]:
    """Messages hold full items: with the region's customer managed key, both queues use it."""
    if key is None:
        return {"encryption": sqs.QueueEncryption.SQS_MANAGED}
    return {"encryption": sqs.QueueEncryption.KMS, "encryption_master_key": key}


class HandoffQueue(Construct):
    """Writes a target could not take wait here (up to 14 days) until the drain function applies them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        target: TargetPlan,
        runtime: FunctionRuntime,
        environment: Mapping[str, str],
        memory_mb: int,
        encryption_key: kms.IKey | None,
        max_concurrency: int = defaults.DRAIN_MAX_CONCURRENCY,
    ) -> None:
        super().__init__(scope, construct_id)
        self.target = target
        self.max_concurrency = max_concurrency
        self.encryption = _queue_encryption(encryption_key)
        self.dead_letter_queue = self._build_dead_letter_queue()
        self.queue = self._build_queue()
        self.drain_function = self._build_drain(runtime, environment, memory_mb)

    def _build_dead_letter_queue(self) -> sqs.Queue:
        return sqs.Queue(
            self,
            "DeadLetterQueue",
            queue_name=self.target.handoff_dlq_name,
            retention_period=Duration.days(self.target.handoff_retention_days),
            **self.encryption,
            enforce_ssl=True,
        )

    def _build_queue(self) -> sqs.Queue:
        return sqs.Queue(
            self,
            "Queue",
            queue_name=self.target.handoff_queue_name,
            retention_period=Duration.days(self.target.handoff_retention_days),
            visibility_timeout=Duration.seconds(
                defaults.DRAIN_TIMEOUT_SECONDS * defaults.HANDOFF_VISIBILITY_FACTOR
            ),
            **self.encryption,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=defaults.HANDOFF_MAX_RECEIVE_COUNT
            ),
        )

    def _build_drain(
        self, runtime: FunctionRuntime, environment: Mapping[str, str], memory_mb: int
    ) -> lambda_.Function:
        function = runtime.function(
            self,
            "DrainFunction",
            function_name=self.target.drain_function_name,
            handler=defaults.DRAIN_HANDLER,
            environment=environment,
            memory_mb=memory_mb,
            timeout_seconds=defaults.DRAIN_TIMEOUT_SECONDS,
            description=f"Replays writes handed off for {self.target.region} once it answers again",
        )
        # Grants receive/delete/change-visibility on this queue only.
        function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=defaults.DRAIN_BATCH_SIZE,
                # Only the writes that failed again go back to the queue.
                report_batch_item_failures=True,
                # After an outage the backlog replays at this many concurrent drains, so it neither
                # throttles the recovering target nor takes the account's concurrency from the
                # replicators (whose concurrency is one per shard x parallelization factor).
                max_concurrency=self.max_concurrency,
            )
        )
        return function
