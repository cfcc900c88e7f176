"""One region of the deployment: its table and, for a source region, the replicator and handoffs."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Annotations, Arn, ArnComponents, Environment, Stack, Tags
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
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
from stacks.monitoring import RegionAlarms, ReplicationDashboard
from stacks.replicator import ReplicatorFunction
from stacks.runtime import FunctionRuntime
from stacks.tables import ReplicaTable


class RegionStack(Stack):
    """Wires the constructs of one region; every name, ARN and URL comes from the validated config."""

    def __init__(self, scope: Construct, *, config: ReplicationConfig, plan: RegionPlan) -> None:
        super().__init__(
            scope,
            plan.stack_id,
            env=Environment(account=plan.account, region=plan.region),
            description=f"DynamoDB replication ({config.topology}): table {plan.table_name} in {plan.region}",
        )
        self.config = config
        self.plan = plan
        for key, value in config.tags.items():
            Tags.of(self).add(key, value)
        # The customer managed key of this region's stores of item copies (imported: the user owns it).
        self.encryption_key: kms.IKey | None = (
            kms.Key.from_key_arn(self, "EncryptionKey", plan.kms_key_arn) if plan.kms_key_arn else None
        )
        self.table = ReplicaTable(
            self,
            "ReplicaTable",
            table_name=plan.table_name,
            partition_key=config.partition_key,
            sort_key=config.sort_key,
            ttl_attribute=config.ttl_attribute,
            point_in_time_recovery=config.point_in_time_recovery,
            deletion_protection=config.deletion_protection,
            shape=config.table_shape,
            encryption_key=self.encryption_key,
            adopt_existing=plan.adopt_existing,
        )
        for warning in config.warnings:
            Annotations.of(self.table).add_warning_v2(f"ddbrep:{warning.id}", warning.message)
        self.replicator: ReplicatorFunction | None = None
        self.handoffs: list[HandoffQueue] = []
        self.alarms: RegionAlarms | None = None
        self.dashboard: ReplicationDashboard | None = None
        self.backfill: BackfillJob | None = None
        if plan.is_source:
            self._build_replication()
            assert self.replicator is not None
            self.alarms = RegionAlarms(
                self,
                "Alarms",
                config=config,
                plan=plan,
                stream_mapping_id=self.replicator.mapping.event_source_mapping_id,
            )
        if plan.region == config.dashboard_region:
            self.dashboard = ReplicationDashboard(self, "Dashboard", config=config)

    def _build_replication(self) -> None:
        config, plan = self.config, self.plan
        runtime = FunctionRuntime(
            self, "FunctionRuntime", log_retention_days=config.function.log_retention_days
        )
        self.store = DeadLetterStore(
            self,
            "DeadLetterStore",
            bucket_name=plan.dead_letter_bucket,
            encryption_key=self.encryption_key,
            dead_letter_retention_days=config.dead_letter_retention_days,
            # Handoff payloads in S3 live as long as the queue messages that point at them.
            handoff_retention_days=max(
                (t.handoff_retention_days for t in plan.targets), default=defaults.HANDOFF_RETENTION_DAYS
            ),
        )
        self.handoffs = [
            HandoffQueue(
                self,
                f"Handoff-{target.region}",
                target=target,
                runtime=runtime,
                environment=drain_environment(config, plan, target),
                memory_mb=config.function.memory_mb,
                encryption_key=self.encryption_key,
                max_concurrency=config.function.drain_max_concurrency,
            )
            for target in plan.targets
        ]
        self.replicator = ReplicatorFunction(
            self,
            "Replicator",
            runtime=runtime,
            function_name=plan.replicator_function_name,
            environment=replicator_environment(config, plan),
            memory_mb=config.function.memory_mb,
            timeout_seconds=config.function.timeout_seconds,
            stream_arn=self.table.stream_arn,
            stream=plan.stream,
            event_filters=event_filters(config, plan),
            failure_bucket=self.store.bucket,
        )
        self._grant_replicator(self.replicator.function)
        for handoff in self.handoffs:
            self._grant_drain(handoff)
        if config.backfill.enabled:
            self.backfill = self._build_backfill(runtime)
            self._grant_keys(self.backfill.function, plan.targets)
            # A stable output name for the runbook (docs/OPERATIONS.md), not a hashed construct path.
            self.backfill.arn_output.override_logical_id("BackfillStateMachineArn")

    def _build_backfill(self, runtime: FunctionRuntime) -> BackfillJob:
        """The deployed backfill copies this region's table to the same targets, filters and roles."""
        config, plan, settings = self.config, self.plan, self.config.backfill
        return BackfillJob(
            self,
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

    # Grants live here, at the composition root, so the whole permission set of a region reads in one place.

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
            [defaults.DEAD_LETTER_PREFIX, defaults.HANDOFF_PREFIX, defaults.CONFLICT_PREFIX],
        )
        self._grant_keys(function, self.plan.targets)

    def _grant_drain(self, handoff: HandoffQueue) -> None:
        self._grant_target_writes(handoff.drain_function, handoff.target)
        self._grant_keys(handoff.drain_function, [handoff.target])
        self._grant_objects(handoff.drain_function, ["s3:GetObject"], [defaults.HANDOFF_PREFIX])
        self._grant_objects(
            handoff.drain_function, ["s3:PutObject"], [defaults.DEAD_LETTER_PREFIX, defaults.CONFLICT_PREFIX]
        )

    def _grant_target_writes(self, function: lambda_.Function, target: TargetPlan) -> None:
        if target.role_arn:
            # A replica in another account is written through a role that account owns.
            function.add_to_role_policy(
                iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[target.role_arn])
            )
            return
        # Every write to a target is the one conditional PutItem; nothing reads a target.
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
        return Arn.format(components, self)

    def _grant_objects(self, function: lambda_.Function, actions: list[str], prefixes: list[str]) -> None:
        bucket = self.store.bucket
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=actions, resources=[bucket.arn_for_objects(f"{p}*") for p in prefixes]
            )
        )
