"""The replicated table of one region: created here, or an existing table adopted in place."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from stacks.config import KeyAttribute

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
    ) -> None:
        super().__init__(scope, construct_id)
        self.table_name = table_name
        self.table = dynamodb.Table(
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
        self.table_arn: str = self.table.table_arn
        self.stream_arn: str = self.table.table_stream_arn or ""
