"""cdk-nag AwsSolutions as a validation plugin: an unacknowledged finding fails synthesis.

Each acknowledgment sits on the narrowest construct it concerns and says why the finding does not apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from aws_cdk import Acknowledgment, App, Validations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct

from stacks import defaults
from stacks.region_stack import RegionStack
from stacks.replication_unit import ReplicationUnit

PACK = "AwsSolutions::"

RUNTIME_PINNED = (
    f"Pinned to {defaults.PYTHON_RUNTIME}: the Powertools layer ({defaults.POWERTOOLS_VERSION}) and the test "
    "suite are pinned to it; moving to a newer runtime is a deliberate, tested change."
)
PREFIX_SCOPED = (
    "Scoped to one key prefix of this region's own dead-letter bucket: object keys are generated at run time "
    "(one object per dead letter, handoff payload or failed batch), so they cannot be listed in advance."
)


def add_nag_checks(app: App, stacks: Sequence[RegionStack]) -> None:
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    for stack in stacks:
        _acknowledge_region(stack)


def _acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{PACK}{rule}", reason=reason))


def _acknowledge_region(stack: RegionStack) -> None:
    for unit in stack.units:
        _acknowledge_unit(stack, unit)


def _acknowledge_unit(stack: RegionStack, unit: ReplicationUnit) -> None:
    if unit.plan.adopt_existing:
        _acknowledge(unit.table.adopt_function, "AwsSolutions-L1", RUNTIME_PINNED)
    if unit.alarms is not None and isinstance(unit.alarms.topic, sns.Topic) and unit is stack.units[0]:
        _acknowledge(
            unit.alarms.topic,
            "AwsSolutions-SNS2",
            "The topic carries only alarm state changes, no data. CloudWatch cannot publish to a topic "
            "encrypted with the AWS-managed SNS key, and a customer key per region would cost more than the "
            "alarms it protects; publishing requires TLS (enforce_ssl).",
        )
    if unit.replicator is None:
        return  # a one-way replica region holds only its table: nothing to acknowledge
    bucket_arn = f"<{stack.resolve(unit.store.bucket.node.default_child.logical_id)}.Arn>"  # type: ignore[union-attr]
    if unit is stack.units[0]:  # the region's one bucket, shared by every table
        _acknowledge(
            unit.store.bucket,
            "AwsSolutions-S1",
            "The dead-letter store holds only objects the replicator writes and reads with its own roles; "
            "server access logs would need a second bucket per region for no added control. CloudTrail "
            "data events are the audit trail where one is required.",
        )
    functions: list[lambda_.Function] = [
        unit.replicator.function,
        *(h.drain_function for h in unit.handoffs),
    ]
    for function in functions:
        _acknowledge(function, "AwsSolutions-L1", RUNTIME_PINNED)
    replicator_role = unit.replicator.function.role
    assert replicator_role is not None
    _acknowledge(
        replicator_role,
        "AwsSolutions-IAM5[Resource::*]",
        "dynamodb:ListStreams, which Lambda's stream poller needs, has no resource-level permissions; "
        "every other stream action is scoped to this table's stream ARN.",
    )
    prefixes = {
        replicator_role: [
            defaults.ON_FAILURE_PREFIX,
            *_table_prefixes(
                unit, defaults.DEAD_LETTER_PREFIX, defaults.HANDOFF_PREFIX, defaults.CONFLICT_PREFIX
            ),
        ],
        **{
            h.drain_function.role: _table_prefixes(
                unit, defaults.DEAD_LETTER_PREFIX, defaults.HANDOFF_PREFIX, defaults.CONFLICT_PREFIX
            )
            for h in unit.handoffs
        },
    }
    for role, role_prefixes in prefixes.items():
        assert role is not None
        for rule in _prefix_rules(bucket_arn, role_prefixes):
            _acknowledge(role, rule, PREFIX_SCOPED)


def _table_prefixes(unit: ReplicationUnit, *prefixes: str) -> list[str]:
    return [defaults.object_prefix(prefix, unit.plan.object_key_table) for prefix in prefixes]


def _prefix_rules(bucket_arn: str, prefixes: Iterable[str]) -> list[str]:
    return [f"AwsSolutions-IAM5[Resource::{bucket_arn}/{prefix}*]" for prefix in prefixes]
