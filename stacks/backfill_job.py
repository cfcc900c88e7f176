"""The deployed backfill: a Step Functions state machine copying a table to its targets, segment by segment.

A distributed Map runs one child execution per scan segment (``segments`` of them, at most
``max_concurrency`` at a time). Each child loops: it invokes the backfill function with the segment's
position; the function copies pages until it nears its time limit and returns the new position; the
loop ends when the segment is done. The function runs the same segment worker as the CLI
(``replicator.backfill_segments``): the same conditional last-writer-wins put, safe while replication runs.

Start it with ``aws stepfunctions start-execution --state-machine-arn <output> --input '{}'``; an
execution that failed part-way is restarted with ``redrive-execution``, which reruns only the
segments that did not finish, each from its failed step, with the last position it received (a page
copied again only yields "stale" writes). ``replication.backfill`` in cdk.json deploys one per source
region (stacks/region_stack.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Acknowledgment, ArnFormat, CfnOutput, Duration, RemovalPolicy, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from stacks import defaults
from stacks.runtime import FunctionRuntime

PACK = "AwsSolutions::"


@dataclass(frozen=True)
class BackfillTarget:
    """One table the job writes to: what its role must be allowed (the job's environment, built by
    stacks/config/environment.py, tells the function the same targets)."""

    region: str
    table: str
    role_arn: str | None = None


class BackfillJob(Construct):
    """The state machine, its function and their least-privilege roles, for one source table."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        runtime: FunctionRuntime,
        function_name: str,
        source_table_name: str,
        targets: Sequence[BackfillTarget],
        environment: Mapping[str, str],
        segments: int = defaults.BACKFILL_SEGMENTS,
        max_concurrency: int = defaults.BACKFILL_MAX_CONCURRENCY,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
    ) -> None:
        super().__init__(scope, construct_id)
        for name, value, (low, high) in (
            ("segments", segments, defaults.BACKFILL_SEGMENTS_RANGE),
            ("max_concurrency", max_concurrency, defaults.BACKFILL_MAX_CONCURRENCY_RANGE),
        ):
            if not low <= value <= high:
                raise ValueError(f"{name} = {value} must be from {low} to {high} (stacks/defaults.py)")
        if not targets:
            raise ValueError("a backfill job needs at least one target")
        self.segments = segments
        self.function = self._build_function(runtime, function_name, environment)
        self._grant_tables(source_table_name, targets)
        self.state_machine = self._build_state_machine(
            function_name, segments, max_concurrency, log_retention
        )
        self._acknowledge()
        self.arn_output = CfnOutput(self, "StateMachineArn", value=self.state_machine.state_machine_arn)

    # --- the function -------------------------------------------------------------------------------

    def _build_function(
        self, runtime: FunctionRuntime, function_name: str, environment: Mapping[str, str]
    ) -> lambda_.Function:
        return runtime.function(
            self,
            "Function",
            function_name=function_name,
            handler=defaults.BACKFILL_HANDLER,
            environment=dict(environment),
            memory_mb=defaults.BACKFILL_FUNCTION_MEMORY_MB,
            timeout_seconds=defaults.BACKFILL_FUNCTION_TIMEOUT_SECONDS,
            description="Backfill: copies pages of one scan segment to every target, then hands over",
        )

    def _grant_tables(self, source_table_name: str, targets: Sequence[BackfillTarget]) -> None:
        stack = Stack.of(self)
        source_arn = stack.format_arn(service="dynamodb", resource="table", resource_name=source_table_name)
        self.function.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:DescribeTable", "dynamodb:Scan"], resources=[source_arn])
        )
        direct = [
            stack.format_arn(
                service="dynamodb",
                region=t.region,
                resource="table",
                resource_name=t.table,
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            for t in targets
            if not t.role_arn
        ]
        if direct:
            self.function.add_to_role_policy(
                iam.PolicyStatement(actions=["dynamodb:PutItem"], resources=direct)
            )
        roles = sorted({t.role_arn for t in targets if t.role_arn})
        if roles:
            # A replica in another account: its own role grants PutItem there.
            self.function.add_to_role_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=roles))

    # --- the state machine ----------------------------------------------------------------------------

    def _build_state_machine(
        self, function_name: str, segments: int, max_concurrency: int, log_retention: logs.RetentionDays
    ) -> sfn.StateMachine:
        list_segments = sfn.Pass(
            self,
            "ListSegments",
            parameters={"segments.$": f"States.ArrayRange(0, {segments - 1}, 1)"},
        )
        copy_pages = tasks.LambdaInvoke(
            self,
            "CopyPages",
            lambda_function=self.function,
            payload_response_only=True,
            retry_on_service_exceptions=True,
        )
        copy_pages.add_retry(
            errors=["States.TaskFailed"],
            interval=Duration.seconds(defaults.BACKFILL_TASK_RETRY_INTERVAL_SECONDS),
            max_attempts=defaults.BACKFILL_TASK_RETRY_ATTEMPTS,
            backoff_rate=2,
        )
        segment_copied = sfn.Pass(
            self,
            "SegmentCopied",
            parameters={
                "segment.$": "$.segment",
                "scanned.$": "$.position.scanned",
                "written.$": "$.position.written",
                "stale.$": "$.position.stale",
                "filtered.$": "$.position.filtered",
                "failed.$": "$.position.failed",
            },
        )
        segment_done = (
            sfn.Choice(self, "SegmentDone")
            .when(sfn.Condition.boolean_equals("$.done", True), segment_copied)
            .otherwise(copy_pages)
        )
        each_segment = sfn.DistributedMap(
            self,
            "EachSegment",
            items_path="$.segments",
            item_selector={
                "segment.$": "$$.Map.Item.Value",
                "total_segments": segments,  # no position yet: the segment starts at its beginning
            },
            max_concurrency=max_concurrency,
            # A segment's loop can outlast an Express execution's 5 minutes.
            map_execution_type=sfn.StateMachineType.STANDARD,
        )
        each_segment.item_processor(copy_pages.next(segment_done))
        log_group = logs.LogGroup(
            self,
            "StateMachineLogs",
            log_group_name=f"/aws/vendedlogs/states/{function_name}",
            retention=log_retention,
            removal_policy=RemovalPolicy.DESTROY,
        )
        return sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=function_name,
            definition_body=sfn.DefinitionBody.from_chainable(list_segments.next(each_segment)),
            tracing_enabled=True,
            # Execution data would copy item keys (scan positions) into the logs: states and errors only.
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=False),
        )

    # --- cdk-nag --------------------------------------------------------------------------------------

    def _acknowledge(self) -> None:
        def ack(scope: Construct, rule: str, reason: str) -> None:
            Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}{rule}", reason=reason))

        ack(
            self.function,
            "AwsSolutions-L1",
            "Pinned to the runtime the replicator functions and the test suite use; moving to a newer "
            "runtime is a deliberate, tested change.",
        )
        function_arn = f"<{Stack.of(self).resolve(self.function.node.default_child.logical_id)}.Arn>"  # type: ignore[union-attr]
        ack(
            self.state_machine,
            f"AwsSolutions-IAM5[Resource::{function_arn}:*]",
            "Invoking the backfill function's versions and aliases (CDK's grant for LambdaInvoke); the "
            "function itself is the only resource.",
        )
        ack(
            self.state_machine,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray (PutTraceSegments, PutTelemetryRecords, GetSampling*) and CloudWatch Logs delivery "
            "(CreateLogDelivery, ...) actions have no resource-level permissions.",
        )
        stack = Stack.of(self)
        # The finding spells each part as the template does: a literal where the stack has one (an explicit
        # environment; the partition under @aws-cdk/core:enablePartitionLiterals), else the pseudo parameter.
        partition = "<AWS::Partition>" if Token.is_unresolved(stack.partition) else stack.partition
        region = "<AWS::Region>" if Token.is_unresolved(stack.region) else stack.region
        account = "<AWS::AccountId>" if Token.is_unresolved(stack.account) else stack.account
        machine = stack.resolve(self.state_machine.node.default_child.logical_id)  # type: ignore[union-attr]
        name = f'{{"Fn::Select":[6,{{"Fn::Split":[":",{{"Ref":"{machine}"}}]}}]}}'
        executions = f"arn:{partition}:states:{region}:{account}:execution:{name}"
        for resource in (f"{executions}:*", f"{executions}/*:*"):
            ack(
                self.state_machine,
                f"AwsSolutions-IAM5[Resource::{resource}]",
                "The distributed Map's child executions of this state machine (Describe/StopExecution, "
                "granted by CDK): their ARNs are created at run time.",
            )
