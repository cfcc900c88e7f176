"""One region of the deployment: one replication unit per table, sharing the region's bucket and topic."""

from __future__ import annotations

from aws_cdk import Environment, Stack, Tags
from constructs import Construct

from stacks.config import RegionPlan, ReplicationConfig
from stacks.monitoring import ReplicationDashboard
from stacks.replication_unit import RegionShared, ReplicationUnit


class RegionStack(Stack):
    """Wires the units of one region; every name, ARN and URL comes from the validated config."""

    def __init__(self, scope: Construct, *, config: ReplicationConfig, plan: RegionPlan) -> None:
        tables = ", ".join(table.region(plan.region).table_name for table in config.tables)
        kind = "table" if len(config.tables) == 1 else "tables"
        super().__init__(
            scope,
            plan.stack_id,
            env=Environment(account=plan.account, region=plan.region),
            description=f"DynamoDB replication ({config.topology}): {kind} {tables} in {plan.region}",
        )
        self.config = config
        self.plan = plan
        for key, value in config.tags.items():
            Tags.of(self).add(key, value)
        self.shared = RegionShared(self, config, plan)
        self.units: list[ReplicationUnit] = []
        for index, table in enumerate(config.tables):
            # The first table builds at the stack's root, as the one table of a deployment always did.
            unit_scope: Construct = self if index == 0 else Construct(self, f"Table-{table.name}")
            self.units.append(ReplicationUnit(unit_scope, shared=self.shared, config=config.for_table(table)))
        self.dashboard: ReplicationDashboard | None = None
        if plan.region == config.dashboard_region:
            self.dashboard = ReplicationDashboard(self, "Dashboard", config=config)
