"""The replicated table of one region: created here, or an existing table adopted in place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import ArnFormat, CustomResource, Duration, RemovalPolicy, Stack, Tags
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from stacks import defaults
from stacks.config import KeyAttribute, OnDemand, Projection, Provisioned, TableShape

ADOPT_HANDLER_PATH = str(Path(__file__).resolve().parent / "adopt_table")
ADOPTED_TABLE_TYPE = "Custom::AdoptedTable"

_ATTRIBUTE_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attribute(key: KeyAttribute) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTRIBUTE_TYPES[key.type])


def _projection(projection: Projection) -> dict[str, Any]:
    return {
        "projection_type": dynamodb.ProjectionType(projection.type),
        "non_key_attributes": list(projection.non_key_attributes) or None,
    }


class ReplicaTable(Construct):
    """A table with a NEW_AND_OLD_IMAGES stream, TTL, encryption and PITR, retained on stack deletion,
    shaped by ``shape`` (indexes, billing, class, tags): the same definition in every region."""

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
        shape: TableShape,
        encryption_key: kms.IKey | None,
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
            billing_mode=(
                dynamodb.BillingMode.PAY_PER_REQUEST
                if isinstance(shape.billing, OnDemand)
                else dynamodb.BillingMode.PROVISIONED
            ),
            **self._capacity(shape),
            # Both images: the replicator needs the new image to copy and the old one to version deletes.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            time_to_live_attribute=ttl_attribute,
            # A customer managed key also encrypts the stream and the indexes (DynamoDB uses the table's).
            encryption=(
                dynamodb.TableEncryption.CUSTOMER_MANAGED
                if encryption_key
                else dynamodb.TableEncryption.AWS_MANAGED
            ),
            encryption_key=encryption_key,
            # Not set: the template says nothing and DynamoDB keeps STANDARD, as before the key existed.
            table_class=dynamodb.TableClass(shape.table_class) if shape.table_class else None,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=point_in_time_recovery
            ),
            deletion_protection=deletion_protection,
            # Never delete user data: `cdk destroy` leaves the table (and its data) in place.
            removal_policy=RemovalPolicy.RETAIN,
        )
        self._add_indexes(table, shape)
        if isinstance(shape.billing, Provisioned):
            self._autoscale(table, shape.billing, shape)
        for key, value in shape.tags.items():
            Tags.of(table).add(key, value)
        self.table_arn: str = table.table_arn
        self.stream_arn: str = table.table_stream_arn or ""

    @staticmethod
    def _capacity(shape: TableShape) -> dict[str, Any]:
        """The table's capacity, which every global index gets too (indexes follow the table's billing)."""
        billing = shape.billing
        if isinstance(billing, OnDemand):
            return {
                "max_read_request_units": billing.max_read_request_units,
                "max_write_request_units": billing.max_write_request_units,
            }
        return {"read_capacity": billing.read_capacity, "write_capacity": billing.write_capacity}

    def _add_indexes(self, table: dynamodb.Table, shape: TableShape) -> None:
        # A tombstone carries only the table's keys and the metadata: an index keyed on another attribute
        # never holds one (it is sparse), so deleted items never appear there.
        for index in shape.global_indexes:
            table.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attribute(index.partition_key),
                sort_key=_attribute(index.sort_key) if index.sort_key else None,
                **_projection(index.projection),
                **self._capacity(shape),
            )
        for local in shape.local_indexes:
            table.add_local_secondary_index(
                index_name=local.name, sort_key=_attribute(local.sort_key), **_projection(local.projection)
            )

    @staticmethod
    def _autoscale(table: dynamodb.Table, billing: Provisioned, shape: TableShape) -> None:
        """Target tracking between the base capacity and the maximums, for the table and each global index
        (a local index uses the table's capacity)."""
        scaling = billing.autoscaling
        if scaling is None:
            return
        read = {"min_capacity": billing.read_capacity, "max_capacity": scaling.max_read_capacity}
        write = {"min_capacity": billing.write_capacity, "max_capacity": scaling.max_write_capacity}
        scalables = [table.auto_scale_read_capacity(**read), table.auto_scale_write_capacity(**write)]
        for index in shape.global_indexes:
            scalables.append(table.auto_scale_global_secondary_index_read_capacity(index.name, **read))
            scalables.append(table.auto_scale_global_secondary_index_write_capacity(index.name, **write))
        for scalable in scalables:
            scalable.scale_on_utilization(target_utilization_percent=scaling.target_utilization)

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
