"""What every function of a region shares: the code asset, the Powertools layer, role and log group."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_ssm as ssm
from constructs import Construct

from stacks import defaults

# The asset is resolved from the repository, not the working directory, so tests and the CLI agree.
ASSET_PATH = str(Path(__file__).resolve().parent.parent / defaults.LAMBDA_ASSET_DIR)
# The layer's SSM parameter names the same architecture (stacks/defaults.py): the two must agree.
_ARCHITECTURES = {"arm64": lambda_.Architecture.ARM_64, "x86_64": lambda_.Architecture.X86_64}


class FunctionRuntime(Construct):
    """Builds the region's functions: same asset, same layer, each with its own role and log group."""

    def __init__(self, scope: Construct, construct_id: str, *, log_retention_days: int) -> None:
        super().__init__(scope, construct_id)
        self._log_retention = getattr(logs.RetentionDays, defaults.LOG_RETENTION_CHOICES[log_retention_days])
        self.code = lambda_.Code.from_asset(ASSET_PATH, exclude=list(defaults.LAMBDA_ASSET_EXCLUDE))
        # Resolved by CloudFormation at deploy time (an SSM parameter AWS publishes in every region), so
        # the layer ARN is always the right one for the region and nothing is looked up at synth time.
        layer_arn = ssm.StringParameter.value_for_string_parameter(self, defaults.POWERTOOLS_LAYER_PARAMETER)
        self.powertools = lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", layer_arn)

    def function(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_name: str,
        handler: str,
        environment: Mapping[str, str],
        memory_mb: int,
        timeout_seconds: int,
        description: str,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            scope,
            f"{construct_id}Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=self._log_retention,
            # Logs are diagnostics, not user data.
            removal_policy=RemovalPolicy.DESTROY,
        )
        # An explicit role (no AWSLambdaBasicExecutionRole managed policy): write to its own log group only.
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {function_name}",
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                resources=[log_group.log_group_arn],
            )
        )
        function = lambda_.Function(
            scope,
            construct_id,
            function_name=function_name,
            description=description,
            runtime=lambda_.Runtime.PYTHON_3_13,
            architecture=_ARCHITECTURES[defaults.FUNCTION_ARCHITECTURE],
            handler=handler,
            code=self.code,
            layers=[self.powertools],
            memory_size=memory_mb,
            timeout=Duration.seconds(timeout_seconds),
            environment=dict(environment),
            role=role,
            log_group=log_group,
            # Lambda's advanced logging controls. Every log byte is billed (CloudWatch Logs ingestion),
            # and the platform's START / END / REPORT lines (about 260 bytes per invocation in the text
            # format) cost as much as the metrics at one record per invocation. The system log level
            # filters those: "By default, Lambda sets the system log level to INFO. With this setting,
            # Lambda automatically sends "start" and "report" log messages to CloudWatch"; at WARN (the
            # least detail) only the platform's warnings are sent
            # (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html).
            # Log-level filtering needs the JSON log format. What the function prints stays as printed:
            # "if your function outputs logs using Python print statements, Lambda can only send log
            # outputs to CloudWatch Logs in plain text format"
            # (https://docs.aws.amazon.com/lambda/latest/dg/python-logging.html), so the EMF documents
            # (replicator/emf.py) are neither wrapped nor lengthened, and CloudWatch still extracts them.
            # A printed JSON line without a "level" key counts as INFO for the application log level
            # (same log-level page): it must stay at INFO, or the EMF documents would be dropped.
            # Lambda's own metrics (Duration, Errors, Throttles, IteratorAge) do not come from the
            # REPORT lines and are unchanged; what is lost is the per-invocation REPORT in the log
            # stream (billed duration, max memory used): set SystemLogLevel to INFO to see it again.
            logging_format=lambda_.LoggingFormat.JSON,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
        )
        return function
