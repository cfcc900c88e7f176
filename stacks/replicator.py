"""The replicator of a source table: one function and ONE event source mapping fanning out to every target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks import defaults
from stacks.config import StreamSettings
from stacks.runtime import FunctionRuntime

# Where Lambda writes a batch it gave up on: aws/lambda/<mapping id>/<shard id>/<date>/<time>-<uuid>.
ON_FAILURE_PREFIX = defaults.ON_FAILURE_PREFIX


class ReplicatorFunction(Construct):
    """Reads the local table's stream (a shard allows two readers, so one mapping per table, not per pair)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        runtime: FunctionRuntime,
        function_name: str,
        environment: Mapping[str, str],
        memory_mb: int,
        timeout_seconds: int,
        stream_arn: str,
        stream: StreamSettings,
        event_filters: Sequence[Mapping[str, Any]],
        failure_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = runtime.function(
            self,
            "Function",
            function_name=function_name,
            handler=defaults.REPLICATOR_HANDLER,
            environment=environment,
            memory_mb=memory_mb,
            timeout_seconds=timeout_seconds,
            description="Replicates the local table's changes to every target region",
        )
        self._grant_stream_read(stream_arn)
        self.mapping = self._build_mapping(stream_arn, stream, event_filters, failure_bucket)

    def _grant_stream_read(self, stream_arn: str) -> None:
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                resources=[stream_arn],
            )
        )
        # ListStreams has no resource-level permission (acknowledged in stacks/nag.py).
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:ListStreams"], resources=["*"])
        )

    def _build_mapping(
        self,
        stream_arn: str,
        stream: StreamSettings,
        event_filters: Sequence[Mapping[str, Any]],
        failure_bucket: s3.IBucket,
    ) -> lambda_.EventSourceMapping:
        mapping = lambda_.EventSourceMapping(
            self,
            "StreamMapping",
            target=self.function,
            event_source_arn=stream_arn,
            # Replicate everything the stream still holds when the mapping is created.
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=stream.batch_size,
            max_batching_window=Duration.seconds(stream.batching_window_seconds),
            parallelization_factor=stream.parallelization_factor,
            retry_attempts=stream.retry_attempts,
            # A failing batch is halved until the poisoned record stands alone, then goes to the bucket.
            bisect_batch_on_error=True,
            report_batch_item_failures=True,
            filters=[lambda_.FilterCriteria.filter(dict(pattern)) for pattern in event_filters] or None,
        )
        cfn = mapping.node.default_child
        assert isinstance(cfn, lambda_.CfnEventSourceMapping)
        # For DynamoDB streams an S3 destination receives the whole failed batch, not just its position.
        # Set on the L1 resource: the L2 S3OnFailureDestination grants read, list and delete on the
        # whole bucket, where Lambda needs only to list it and put objects under its own prefix.
        cfn.destination_config = lambda_.CfnEventSourceMapping.DestinationConfigProperty(
            on_failure=lambda_.CfnEventSourceMapping.OnFailureProperty(destination=failure_bucket.bucket_arn)
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:ListBucket"], resources=[failure_bucket.bucket_arn])
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"], resources=[failure_bucket.arn_for_objects(f"{ON_FAILURE_PREFIX}*")]
            )
        )
        # EventCount turns on the mapping's own metrics, among them OnFailureDestinationDeliveredEventCount
        # and DroppedEventCount: the only CloudWatch signal that Lambda gave up on a batch (the
        # discarded-batch alarms in stacks/monitoring.py). Off by default.
        cfn.metrics_config = lambda_.CfnEventSourceMapping.MetricsConfigProperty(metrics=["EventCount"])
        # Written out even when it is the service default (-1: no limit), so the template states it.
        cfn.maximum_record_age_in_seconds = stream.max_record_age_seconds
        return mapping
