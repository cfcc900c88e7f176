"""The replicated table of one region: created here, or an existing table adopted in place."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import ArnFormat, CustomResource, Duration, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import defaults
from stacks.config import KeyAttribute

ADOPT_HANDLER_PATH = str(Path(__file__).resolve().parent / "adopt_table")
ADOPTED_TABLE_TYPE = "Custom::AdoptedTable"

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


class ReplicaTable(Construct):
    """A table with a NEW_AND_OLD_IMAGES stream, TTL, encryption and PITR, retained on stack deletion."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table_name: str,
        partition_key: KeyAttribute,
        sort_key: KeyAttribute | None,
        ttl_attribute: str,
        point_in_time_recovery: bool,
        deletion_protection: bool,
        adopt_existing: bool = False,
    ) -> None:
        super().__init__(scope, construct_id)
        self.table_name = table_name
        if adopt_existing:
            self._adopt(table_name, partition_key, sort_key, ttl_attribute, point_in_time_recovery)
            return
        table = dynamodb.Table(
            self,
            "Table",
            table_name=table_name,
            partition_key=_attribute(partition_key),
            sort_key=_attribute(sort_key) if sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            # Both images: the replicator needs the new image to copy and the old one to version deletes.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            time_to_live_attribute=ttl_attribute,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=point_in_time_recovery
            ),
            deletion_protection=deletion_protection,
            # Never delete user data: `cdk destroy` leaves the table (and its data) in place.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.table_arn: str = table.table_arn
        self.stream_arn: str = table.table_stream_arn or ""

    def _adopt(
        self,
        table_name: str,
        partition_key: KeyAttribute,
        sort_key: KeyAttribute | None,
        ttl_attribute: str,
        point_in_time_recovery: bool,
    ) -> None:
        """An existing table (with its data) is not managed by CloudFormation: a custom resource turns on
        its stream, TTL and PITR in place, and never turns anything off (Delete does nothing)."""
        self.table_arn = Stack.of(self).format_arn(
            service="dynamodb",
            resource="table",
            resource_name=table_name,
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )
        log_group = logs.LogGroup(
            self,
            "AdoptLogs",
            retention=getattr(
                logs.RetentionDays, defaults.LOG_RETENTION_CHOICES[defaults.LOG_RETENTION_DAYS]
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        role = iam.Role(self, "AdoptRole", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[log_group.log_group_arn]
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "dynamodb:DescribeTable",
                    "dynamodb:UpdateTable",
                    "dynamodb:DescribeTimeToLive",
                    "dynamodb:UpdateTimeToLive",
                    "dynamodb:UpdateContinuousBackups",
                ],
                resources=[self.table_arn],
            )
        )
        self.adopt_function = lambda_.Function(
            self,
            "AdoptFunction",
            description=f"Enables the stream, TTL and PITR of the existing table {table_name}",
            runtime=lambda_.Runtime.PYTHON_3_13,
            handler="index.handler",
            code=lambda_.Code.from_asset(ADOPT_HANDLER_PATH),
            timeout=Duration.minutes(5),
            role=role,
            log_group=log_group,
        )
        keys = [{"AttributeName": partition_key.name, "KeyType": "HASH"}]
        if sort_key:
            keys.append({"AttributeName": sort_key.name, "KeyType": "RANGE"})
        self.adoption = CustomResource(
            self,
            "AdoptedTable",
            service_token=self.adopt_function.function_arn,
            resource_type=ADOPTED_TABLE_TYPE,
            properties={
                "TableName": table_name,
                "KeySchema": json.dumps(keys),
                "TtlAttribute": ttl_attribute,
                "PointInTimeRecovery": "true" if point_in_time_recovery else "false",
            },
            # Deleting the stack never deletes or changes the user's table.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.stream_arn = self.adoption.get_att_string("StreamArn")
