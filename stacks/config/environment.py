"""The Lambda environments the stacks write: what lambda/replicator/settings.py reads back.

Every value is a literal string, so the local runtime sees in the template exactly what the function
sees in AWS.
"""

from __future__ import annotations

import json
from typing import Any

from stacks import defaults
from stacks.config.model import RegionPlan, ReplicationConfig, TargetPlan


def target_entry(target: TargetPlan) -> dict[str, Any]:
    """This target's entry of REP_TARGETS (lambda/replicator/settings.py)."""
    return {
        "region": target.region,
        "table": target.table,
        "handoff_queue_url": target.handoff_queue_url,
        "role_arn": target.role_arn,
        "item_filter": target.item_filter,
    }


def event_filters(config: ReplicationConfig, plan: RegionPlan) -> list[dict[str, Any]]:
    """docs/DESIGN.md, Event filter: mesh sources skip echoes before invocation; one-way has none."""
    if config.topology != "mesh":
        return []
    attribute = f"{config.attribute_prefix}region"
    return [
        {"dynamodb": {"NewImage": {attribute: {"S": [plan.region]}}}},
        {"dynamodb": {"NewImage": {attribute: {"S": [{"exists": False}]}}}},
    ]


def replicator_environment(config: ReplicationConfig, plan: RegionPlan) -> dict[str, str]:
    """The replicator's Lambda environment: every value a literal string (see settings.py)."""
    return {
        "REP_LOCAL_REGION": plan.region,
        "REP_TOPOLOGY": config.topology,
        "REP_SOURCE_TABLE": plan.table_name,
        "REP_TARGETS": json.dumps([target_entry(t) for t in plan.targets], sort_keys=True),
        "REP_ATTRIBUTE_PREFIX": config.attribute_prefix,
        "REP_TTL_ATTRIBUTE": config.ttl_attribute,
        "REP_TOMBSTONE_RETENTION_SECONDS": str(config.tombstone_retention_seconds),
        "REP_MAX_CLOCK_SKEW_SECONDS": str(config.max_clock_skew_seconds),
        "REP_DEAD_LETTER_BUCKET": plan.dead_letter_bucket,
        "REP_MAX_WORKERS": str(config.function.max_workers),
        "REP_WRITE_ATTEMPTS": str(config.function.write_attempts),
        "REP_RETRY_BASE_DELAY_MS": str(config.function.retry_base_delay_ms),
        "REP_CONFLICT_LOG_MAX_RECORDS": str(config.function.conflict_log_max_records),
        "REP_CONFLICT_LOG_IMAGES": "true" if config.function.conflict_log_images else "false",
        "POWERTOOLS_METRICS_NAMESPACE": config.function.metrics_namespace,
        # Only when set: a deployment at the default keeps its environment (and template).
        **(
            {"REP_METRICS_FLUSH_SECONDS": str(config.function.metrics_flush_seconds)}
            if config.function.metrics_flush_seconds
            else {}
        ),
        # Only the 2nd+ tables: the first keeps a one-table deployment's environment (and template).
        **({"REP_OBJECT_KEY_TABLE": plan.object_key_table} if plan.object_key_table else {}),
    }


def drain_environment(config: ReplicationConfig, plan: RegionPlan, target: TargetPlan) -> dict[str, str]:
    return {**replicator_environment(config, plan), "REP_DRAIN_TARGET_REGION": target.region}


def backfill_environment(config: ReplicationConfig, plan: RegionPlan) -> dict[str, str]:
    """The deployed backfill job's environment (lambda/replicator/backfill_segments.py
    BackfillJobSettings): the replicator's targets, filters, roles, metadata names and write retries,
    so the job copies exactly where and how live replication writes."""
    targets = [{k: v for k, v in target_entry(t).items() if k != "handoff_queue_url"} for t in plan.targets]
    return {
        "REP_LOCAL_REGION": plan.region,
        "REP_SOURCE_TABLE": plan.table_name,
        "REP_TARGETS": json.dumps(targets, sort_keys=True),
        "REP_ATTRIBUTE_PREFIX": config.attribute_prefix,
        "REP_TTL_ATTRIBUTE": config.ttl_attribute,
        "REP_WRITE_ATTEMPTS": str(config.function.write_attempts),
        "REP_RETRY_BASE_DELAY_MS": str(config.function.retry_base_delay_ms),
        "BACKFILL_PAGE_SIZE": str(config.backfill.page_size),
        "BACKFILL_ITEMS_PER_SECOND": str(config.backfill.items_per_second_per_segment),
        "BACKFILL_STOP_MARGIN_MS": str(defaults.BACKFILL_STOP_MARGIN_SECONDS * 1000),
    }
