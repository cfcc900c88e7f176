"""One table's replication unit in one region: its table and, in a source region, its replicator function
and event source mapping, one handoff queue and drain per target, its grants, backfill job and alarms.

A region's stack builds one unit per table of the deployment (docs/DESIGN.md, Several tables). The unit is
a builder, not a construct: the first table's unit builds straight into the stack, so a one-table
deployment keeps every construct path, logical id and template byte of the single-table stack it was
before ``tables`` existed; the other tables build under a ``Table-<name>`` construct of their own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aws_cdk import Annotations, Arn, ArnComponents, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from constructs import Construct

from stacks import defaults
from stacks.backfill_job import BackfillJob, BackfillTarget
from stacks.config import (
    RegionPlan,
    ReplicationConfig,
    TargetPlan,
    backfill_environment,
    drain_environment,
    event_filters,
    replicator_environment,
)
from stacks.dead_letters import DeadLetterStore
from stacks.handoff import HandoffQueue
from stacks.monitoring import RegionAlarms
from stacks.replicator import ReplicatorFunction
from stacks.runtime import FunctionRuntime
from stacks.tables import ReplicaTable


class RegionShared:
    """What every unit of a region shares: the key, the function runtime, the dead-letter bucket and the
    alarm topic. The runtime and the bucket are built by the first source unit, the topic by its alarms."""

    def __init__(self, stack: Stack, config: ReplicationConfig, plan: RegionPlan) -> None:
        self.stack = stack
        self.config = config
        self.plan = plan
        # The customer managed key of this region's stores of item copies (imported: the user owns it).
        self.encryption_key: kms.IKey | None = (
            kms.Key.from_key_arn(stack, "EncryptionKey", plan.kms_key_arn) if plan.kms_key_arn else None
        )
        self._runtime: FunctionRuntime | None = None
        self._store: DeadLetterStore | None = None
        self.topic: sns.ITopic | None = None
        # Every unit's alarm name prefix in this region: the topic lets each of them publish.
        self.alarm_prefixes = [table.region(plan.region).alarm_prefix for table in config.tables]

    def runtime(self) -> FunctionRuntime:
        if self._runtime is None:
            self._runtime = FunctionRuntime(
                self.stack, "FunctionRuntime", log_retention_days=self.config.function.log_retention_days
            )
        return self._runtime

    def store(self) -> DeadLetterStore:
        if self._store is None:
            self._store = DeadLetterStore(
                self.stack,
                "DeadLetterStore",
                bucket_name=self.plan.dead_letter_bucket,
                encryption_key=self.encryption_key,
                dead_letter_retention_days=self.config.dead_letter_retention_days,
                # Handoff payloads in S3 live as long as the queue messages that point at them.
                handoff_retention_days=max(
                    (t.handoff_retention_days for t in self.plan.targets),
                    default=defaults.HANDOFF_RETENTION_DAYS,
                ),
            )
        return self._store


class ReplicationUnit:
    """Wires one table's constructs; ``config`` is the one-table view of it (ReplicationConfig.for_table)."""

    def __init__(self, scope: Construct, *, shared: RegionShared, config: ReplicationConfig) -> None:
        self.scope = scope
        self.shared = shared
        self.config = config
        self.plan = config.region(shared.plan.region)
        self.table = ReplicaTable(
            scope,
            "ReplicaTable",
            table_name=self.plan.table_name,
            partition_key=config.partition_key,
            sort_key=config.sort_key,
            ttl_attribute=config.ttl_attribute,
            point_in_time_recovery=config.point_in_time_recovery,
            deletion_protection=config.deletion_protection,
            shape=config.table_shape,
            encryption_key=shared.encryption_key,
            adopt_existing=self.plan.adopt_existing,
        )
        for warning in config.warnings:
            Annotations.of(self.table).add_warning_v2(f"ddbrep:{warning.id}", warning.message)
        self.replicator: ReplicatorFunction | None = None
        self.handoffs: list[HandoffQueue] = []
        self.alarms: RegionAlarms | None = None
        self.backfill: BackfillJob | None = None
        if self.plan.is_source:
            self._build_replication()
            assert self.replicator is not None
            self.alarms = RegionAlarms(
                scope,
                "Alarms",
                config=config,
                plan=self.plan,
                stream_mapping_id=self.replicator.mapping.event_source_mapping_id,
                topic=shared.topic,
                publishing_prefixes=shared.alarm_prefixes,
            )
            shared.topic = self.alarms.topic

    @property
    def store(self) -> DeadLetterStore:
        return self.shared.store()

    def _object_prefixes(self, *prefixes: str) -> list[str]:
        """This table's key prefixes in the shared bucket (core/defaults.object_prefix)."""
        return [defaults.object_prefix(prefix, self.plan.object_key_table) for prefix in prefixes]

    def _build_replication(self) -> None:
        config, plan, scope = self.config, self.plan, self.scope
        runtime = self.shared.runtime()
        store = self.shared.store()
        self.handoffs = [
            HandoffQueue(
                scope,
                f"Handoff-{target.region}",
                target=target,
                runtime=runtime,
                environment=drain_environment(config, plan, target),
                memory_mb=config.function.memory_mb,
                encryption_key=self.shared.encryption_key,
                max_concurrency=config.function.drain_max_concurrency,
            )
            for target in plan.targets
        ]
        self.replicator = ReplicatorFunction(
            scope,
            "Replicator",
            runtime=runtime,
            function_name=plan.replicator_function_name,
            environment=replicator_environment(config, plan),
            memory_mb=config.function.memory_mb,
            timeout_seconds=config.function.timeout_seconds,
            stream_arn=self.table.stream_arn,
            stream=plan.stream,
            event_filters=event_filters(config, plan),
            failure_bucket=store.bucket,
        )
        self._grant_replicator(self.replicator.function)
        for handoff in self.handoffs:
            self._grant_drain(handoff)
        if config.backfill.enabled:
            self.backfill = self._build_backfill(runtime)
            self._grant_keys(self.backfill.function, plan.targets)
            # A stable output name for the runbook (docs/OPERATIONS.md), not a hashed construct path; the
            # 2nd+ tables' carry their table's name.
            suffix = re.sub(r"[^A-Za-z0-9]", "", plan.object_key_table or "")
            self.backfill.arn_output.override_logical_id(f"BackfillStateMachineArn{suffix}")

    def _build_backfill(self, runtime: FunctionRuntime) -> BackfillJob:
        """The deployed backfill copies this region's table to the same targets, filters and roles."""
        config, plan, settings = self.config, self.plan, self.config.backfill
        return BackfillJob(
            self.scope,
            "Backfill",
            runtime=runtime,
            function_name=plan.backfill_function_name,
            source_table_name=plan.table_name,
            targets=[BackfillTarget(t.region, t.table, t.role_arn) for t in plan.targets],
            environment=backfill_environment(config, plan),
            segments=settings.segments,
            max_concurrency=settings.max_concurrency,
            log_retention=getattr(
                logs.RetentionDays, defaults.LOG_RETENTION_CHOICES[config.function.log_retention_days]
            ),
        )

    # Grants live here, at the composition root, so the whole permission set of a unit reads in one place.

    def _grant_replicator(self, function: lambda_.Function) -> None:
        if self.config.topology == "mesh":
            # Mesh only: adopting unstamped writes and writing local tombstones put to the local table;
            # the adoption floor reads the stored item first (GetItem). Nothing updates in place.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["dynamodb:GetItem", "dynamodb:PutItem"],
                    resources=[self.table.table_arn],
                )
            )
        for target in self.plan.targets:
            self._grant_target_writes(function, target)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["sqs:SendMessage"], resources=[handoff.queue.queue_arn for handoff in self.handoffs]
            )
        )
        self._grant_objects(
            function,
            ["s3:PutObject"],
            self._object_prefixes(
                defaults.DEAD_LETTER_PREFIX, defaults.HANDOFF_PREFIX, defaults.CONFLICT_PREFIX
            ),
        )
        self._grant_keys(function, self.plan.targets)

    def _grant_drain(self, handoff: HandoffQueue) -> None:
        self._grant_target_writes(handoff.drain_function, handoff.target)
        self._grant_keys(handoff.drain_function, [handoff.target])
        self._grant_objects(
            handoff.drain_function, ["s3:GetObject"], self._object_prefixes(defaults.HANDOFF_PREFIX)
        )
        self._grant_objects(
            handoff.drain_function,
            ["s3:PutObject"],
            self._object_prefixes(defaults.DEAD_LETTER_PREFIX, defaults.CONFLICT_PREFIX),
        )

    def _grant_target_writes(self, function: lambda_.Function, target: TargetPlan) -> None:
        if target.role_arn:
            # A replica in another account is written through a role that account owns.
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[target.role_arn])
            )
            return
        # Every write to a target is the one conditional PutItem, to this table's copy only; nothing
        # reads a target.
        function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=[self.target_table_arn(target)])
        )

    def _grant_keys(self, function: lambda_.Function, targets: Sequence[TargetPlan]) -> None:
        """kms:Decrypt and kms:GenerateDataKey on the customer managed keys of the stores the function
        uses: this region's (its table and stream, handoff queues, bucket) and each target table's it
        writes directly (a replica written through a role of another account is that role's to allow).

        Each service uses the key on behalf of the caller, so the caller's role needs these actions:
        DynamoDB decrypts the table key for each principal that reads or writes the table or its stream
        (https://docs.aws.amazon.com/kms/latest/developerguide/services-dynamodb.html, and CDK's table
        grants give readers kms:Decrypt); SQS needs kms:GenerateDataKey and kms:Decrypt from a producer and
        kms:Decrypt from a consumer (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-key-management.html);
        S3 needs kms:GenerateDataKey to put and kms:Decrypt to get an SSE-KMS object
        (https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html). kms:Encrypt is
        never called: every service encrypts with a data key. IAM is global: the key of another region
        is granted here like this region's."""
        keys = [self.plan.kms_key_arn] if self.plan.kms_key_arn else []
        for target in targets:
            key = self.config.region(target.region).kms_key_arn
            if key and not target.role_arn:
                keys.append(key)
        if keys:
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=keys)
            )

    def target_table_arn(self, target: TargetPlan) -> str:
        """Built by convention in the target's region: no cross-region reference, no deploy-order coupling."""
        components = ArnComponents(
            service="dynamodb",
            resource="table",
            resource_name=target.table,
            region=target.region,
            account=target.table_account,
        )
        return Arn.format(components, Stack.of(self.scope))

    def _grant_objects(self, function: lambda_.Function, actions: list[str], prefixes: list[str]) -> None:
        bucket = self.store.bucket
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=actions, resources=[bucket.arn_for_objects(f"{p}*") for p in prefixes]
            )
        )
