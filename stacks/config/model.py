"""The validated deployment plan: frozen dataclasses, one RegionPlan per region, every name computed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from stacks import defaults


@dataclass(frozen=True)
class KeyAttribute:
    name: str
    type: str  # S, N or B


@dataclass(frozen=True)
class Projection:
    """What an index copies: ``ALL``, ``KEYS_ONLY``, or ``INCLUDE`` with the non-key attributes it adds."""

    type: str
    non_key_attributes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GlobalIndex:
    name: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None
    projection: Projection


@dataclass(frozen=True)
class LocalIndex:
    """Keyed by the table's partition key and its own sort key."""

    name: str
    sort_key: KeyAttribute
    projection: Projection


@dataclass(frozen=True)
class AutoScaling:
    """Target tracking from the base capacity up to these maximums (table and global indexes alike)."""

    max_read_capacity: int
    max_write_capacity: int
    target_utilization: int = defaults.AUTOSCALING_TARGET_UTILIZATION


@dataclass(frozen=True)
class OnDemand:
    """PAY_PER_REQUEST; the optional maximums cap the table's (and each global index's) throughput."""

    max_read_request_units: int | None = None
    max_write_request_units: int | None = None


@dataclass(frozen=True)
class Provisioned:
    """Capacity of the table, and of each global index (indexes follow the table's billing)."""

    read_capacity: int
    write_capacity: int
    autoscaling: AutoScaling | None = None


Billing: TypeAlias = OnDemand | Provisioned


@dataclass(frozen=True)
class TableShape:
    """A created table beyond its keys: the same definition in every region (adopted tables keep theirs)."""

    global_indexes: tuple[GlobalIndex, ...] = ()
    local_indexes: tuple[LocalIndex, ...] = ()
    billing: Billing = OnDemand()
    table_class: str | None = None  # None: not set (DynamoDB's default, STANDARD)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigWarning:
    """A configuration that synthesizes but is probably wrong: a CDK warning on each region's table."""

    id: str
    message: str


@dataclass(frozen=True)
class StreamSettings:
    """The one event source mapping of a source table (docs/DESIGN.md, The product: one mapping fans out)."""

    batch_size: int = defaults.BATCH_SIZE
    batching_window_seconds: int = defaults.BATCHING_WINDOW_SECONDS
    parallelization_factor: int = defaults.PARALLELIZATION_FACTOR
    retry_attempts: int = defaults.RETRY_ATTEMPTS
    max_record_age_seconds: int = defaults.MAX_RECORD_AGE_SECONDS


@dataclass(frozen=True)
class FunctionSettings:
    memory_mb: int = defaults.FUNCTION_MEMORY_MB
    timeout_seconds: int = defaults.FUNCTION_TIMEOUT_SECONDS
    max_workers: int = defaults.MAX_WORKERS
    write_attempts: int = defaults.WRITE_ATTEMPTS
    retry_base_delay_ms: int = defaults.RETRY_BASE_DELAY_MS
    log_retention_days: int = defaults.LOG_RETENTION_DAYS
    metrics_namespace: str = defaults.METRICS_NAMESPACE
    drain_max_concurrency: int = defaults.DRAIN_MAX_CONCURRENCY
    # The conflict log (README, Conflicts): entries per invocation, and whether they keep losing images.
    conflict_log_max_records: int = defaults.CONFLICT_LOG_MAX_RECORDS
    conflict_log_images: bool = False
    # Print a warm replicator's metrics at most this often (0: every invocation; replicator/emf.py).
    metrics_flush_seconds: int = defaults.METRICS_FLUSH_SECONDS


@dataclass(frozen=True)
class AlarmSettings:
    email: str | None = None
    topic_arns: Mapping[str, str] | None = None  # region -> existing topic in that region
    iterator_age_seconds: int = defaults.ITERATOR_AGE_ALARM_SECONDS
    latency_p99_ms: int = defaults.LATENCY_P99_ALARM_MS
    handoff_age_seconds: int = defaults.HANDOFF_AGE_ALARM_SECONDS
    function_errors_max: int = defaults.FUNCTION_ERRORS_ALARM_MAX


@dataclass(frozen=True)
class BackfillSettings:
    """The deployed backfill job (stacks/backfill_job.py): one per source region when enabled."""

    enabled: bool = defaults.BACKFILL_ENABLED
    segments: int = defaults.BACKFILL_SEGMENTS
    max_concurrency: int = defaults.BACKFILL_MAX_CONCURRENCY
    page_size: int = defaults.BACKFILL_PAGE_SIZE
    items_per_second_per_segment: int = defaults.BACKFILL_ITEMS_PER_SECOND_PER_SEGMENT  # 0: no budget


@dataclass(frozen=True)
class TargetPlan:
    """One source -> target pair, seen from the source region (which hosts its handoff queue)."""

    source_region: str
    region: str
    table: str
    table_account: str
    role_arn: str | None
    item_filter: Mapping[str, Any] | None
    handoff_queue_name: str
    handoff_dlq_name: str
    handoff_queue_url: str
    drain_function_name: str
    handoff_retention_days: int = defaults.HANDOFF_RETENTION_DAYS


@dataclass(frozen=True)
class RegionPlan:
    """Everything one region's stack deploys."""

    region: str
    account: str
    stack_id: str
    table_name: str
    adopt_existing: bool
    # The customer managed key of every store in this region holding item copies (table, handoff queues,
    # dead-letter bucket); None: AWS-managed encryption.
    kms_key_arn: str | None
    targets: tuple[TargetPlan, ...]  # empty: this region only receives (one-way replica)
    stream: StreamSettings
    dead_letter_bucket: str
    replicator_function_name: str
    backfill_function_name: str  # also the backfill state machine's name
    alarm_topic_arn: str | None
    alarm_topic_name: str
    alarm_prefix: str
    # The 2nd+ tables of a deployment share the region's bucket: their objects go under
    # <kind>/tables/<table>/ (REP_OBJECT_KEY_TABLE). None: the first table's, the keys of a one-table
    # deployment.
    object_key_table: str | None = None

    @property
    def is_source(self) -> bool:
        return bool(self.targets)


@dataclass(frozen=True)
class TableConfig:
    """One replicated table of the deployment: its definition (the same in every region) and its
    replication unit in each region (the table's RegionPlans: replicator, mapping, handoffs, drains).

    The first table keeps every physical name, construct id, metrics namespace and object key of a
    one-table deployment, so adding tables to a deployment replaces nothing of the first."""

    path: str  # replication.table, or replication.tables[i]
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None
    ttl_attribute: str
    point_in_time_recovery: bool
    deletion_protection: bool
    table_shape: TableShape
    warnings: tuple[ConfigWarning, ...]
    regions: tuple[RegionPlan, ...]
    # The function's metrics namespace: function.metrics_namespace for the first table,
    # <namespace>/<table> for the others (the metrics carry no table dimension).
    metrics_namespace: str

    def region(self, name: str) -> RegionPlan:
        return region_plan(self.regions, name)

    @property
    def names(self) -> tuple[str, ...]:
        """The table's name in each region (once each)."""
        return tuple(dict.fromkeys(plan.table_name for plan in self.regions))

    @property
    def name(self) -> str:
        """The table's name in the first region: what tools and the dashboard call it."""
        return self.regions[0].table_name


@dataclass(frozen=True)
class ReplicationConfig:
    """The deployment. The table fields (keys, TTL attribute, shape, regions, ...) are the FIRST table's,
    which is the whole deployment when it has one table; :meth:`for_table` gives the same view of any
    table, and every construct of a replication unit is built from such a one-table view."""

    account: str
    topology: str
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None
    regions: tuple[RegionPlan, ...]
    attribute_prefix: str
    ttl_attribute: str
    tombstone_retention_seconds: int
    max_clock_skew_seconds: int
    dead_letter_retention_days: int
    point_in_time_recovery: bool
    deletion_protection: bool
    table_shape: TableShape
    deployment_name: str | None
    tags: Mapping[str, str]  # on every resource of every stack
    warnings: tuple[ConfigWarning, ...]
    function: FunctionSettings
    alarms: AlarmSettings
    backfill: BackfillSettings
    dashboard_region: str
    dashboard_name: str
    tables: tuple[TableConfig, ...] = ()

    def for_table(self, table: TableConfig) -> ReplicationConfig:
        """This deployment seen as if ``table`` were its only table (its keys, shape, region plans and
        metrics namespace); region-wide settings (bucket, topic, stack ids, keys) stay shared."""
        return replace(
            self,
            partition_key=table.partition_key,
            sort_key=table.sort_key,
            regions=table.regions,
            ttl_attribute=table.ttl_attribute,
            point_in_time_recovery=table.point_in_time_recovery,
            deletion_protection=table.deletion_protection,
            table_shape=table.table_shape,
            warnings=table.warnings,
            function=replace(self.function, metrics_namespace=table.metrics_namespace),
            tables=(table,),
        )

    def table(self, name: str) -> TableConfig:
        """The table called ``name`` in any region; KeyError when the deployment has none."""
        for table in self.tables:
            if name in table.names:
                return table
        raise KeyError(name)

    def region(self, name: str) -> RegionPlan:
        return region_plan(self.regions, name)

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(plan.region for plan in self.regions)


def region_plan(regions: tuple[RegionPlan, ...], name: str) -> RegionPlan:
    """The plan of region ``name``; KeyError when the deployment has none."""
    for plan in regions:
        if plan.region == name:
            return plan
    raise KeyError(name)
