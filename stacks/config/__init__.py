"""cdk.json context -> a validated, frozen deployment plan. Pure: no CDK, no AWS, no environment.

The ``replication`` context block (docs/CONFIGURATION.md documents every key) becomes a
:class:`ReplicationConfig`: one :class:`RegionPlan` per region with every physical name already
computed, so stacks only wire constructs and the synthesized templates carry literal names, ARNs and
URLs (the local runtime reads them back). Every bad value raises :class:`ConfigError` naming the key
and the fix.

One module per concern: ``blocks`` (the block reader, the schema, value patterns), ``model`` (the plan's
dataclasses), ``parse`` (each section of the block into the plan), ``table_shape`` (the created table's
keys, indexes, billing, class and tags), ``names`` (physical names) and ``environment`` (the Lambda
environments, what the function's settings read back).
"""

from stacks.config.blocks import ConfigError
from stacks.config.environment import (
    backfill_environment,
    drain_environment,
    event_filters,
    replicator_environment,
    target_entry,
)
from stacks.config.model import (
    AlarmSettings,
    AutoScaling,
    BackfillSettings,
    Billing,
    ConfigWarning,
    FunctionSettings,
    GlobalIndex,
    KeyAttribute,
    LocalIndex,
    OnDemand,
    Projection,
    Provisioned,
    RegionPlan,
    ReplicationConfig,
    StreamSettings,
    TableShape,
    TargetPlan,
)
from stacks.config.parse import check_handoff_schedule, load_config, parse_context

__all__ = [
    "AlarmSettings",
    "AutoScaling",
    "BackfillSettings",
    "Billing",
    "ConfigError",
    "ConfigWarning",
    "FunctionSettings",
    "GlobalIndex",
    "KeyAttribute",
    "LocalIndex",
    "OnDemand",
    "Projection",
    "Provisioned",
    "RegionPlan",
    "ReplicationConfig",
    "StreamSettings",
    "TableShape",
    "TargetPlan",
    "backfill_environment",
    "check_handoff_schedule",
    "drain_environment",
    "event_filters",
    "load_config",
    "parse_context",
    "replicator_environment",
    "target_entry",
]
