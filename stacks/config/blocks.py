"""The block reader of the ``replication`` context: typed getters whose errors name the key and the fix.

Also the schema (the keys each block allows, and where misplaced keys belong) and the value patterns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")
TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:(?P<region>[a-z0-9-]+):\d{12}:[\w-]{1,256}$")
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
INDEX_NAME = TABLE_NAME  # DynamoDB names indexes by the same rule as tables
# A key, not an alias: key/<uuid> or a multi-Region key/mrk-<32 hex>.
KMS_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):\d{12}:key/"
    r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
# Lowercase words joined by single hyphens: valid in stack names, S3 bucket names and every other name.
DEPLOYMENT_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
TAG_KEY = re.compile(r"^[\w\s.:/=+\-@]{1,128}$")
TAG_VALUE = re.compile(r"^[\w\s.:/=+\-@]{0,256}$")
ATTRIBUTE_NAME = re.compile(r"^.{1,255}$")
ACCOUNT = re.compile(r"^\d{12}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PAIR_SEPARATOR = "->"


class ConfigError(ValueError):
    """A context value is missing or invalid; the message names the key and how to fix it."""


class Block:
    """A JSON object under a dotted path; remembers which keys were read to reject unknown ones."""

    def __init__(self, raw: Any, path: str, allowed: Mapping[str, str]) -> None:
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must be a JSON object, got {type(raw).__name__}: {raw!r}")
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            key = unknown[0]
            hint = MOVED_KEYS.get(key)
            fix = hint if hint else f"use one of: {', '.join(sorted(allowed))} (docs/CONFIGURATION.md)"
            raise ConfigError(f"{path}.{key} is not a known key. Fix: {fix}")
        self.raw: dict[str, Any] = raw
        self.path = path

    def key(self, name: str) -> str:
        return f"{self.path}.{name}"

    def get(self, name: str, default: Any = None) -> Any:
        value = self.raw.get(name)
        return default if value is None else value

    def integer(self, name: str, default: int, low: int, high: int, why: str = "") -> int:
        value = self.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)} = {value!r} must be an integer. Fix: e.g. {default}")
        if not low <= value <= high:
            reason = f" ({why})" if why else ""
            raise ConfigError(
                f"{self.key(name)} = {value} is out of range{reason}. Fix: use a value from {low} to {high}"
            )
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)} = {value!r} must be true or false")
        return value

    def string(self, name: str, default: str | None = None, pattern: re.Pattern[str] | None = None) -> str:
        value = self.get(name, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.key(name)} = {value!r} must be a non-empty string")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(
                f"{self.key(name)} = {value!r} is malformed. Fix: it must match {pattern.pattern}"
            )
        return value

    def block(self, name: str, allowed: Mapping[str, str]) -> Block:
        return Block(self.get(name, {}), self.key(name), allowed)


# Keys that users put in the wrong place, with where they belong.
MOVED_KEYS = {
    "batch_size": "batch_size is a setting of the source's single event source mapping: "
    "put it under replication.stream or replication.sources.<region>",
    "batching_window_seconds": "put it under replication.stream or replication.sources.<region>",
    "parallelization_factor": "put it under replication.stream or replication.sources.<region>",
    "retry_attempts": "put it under replication.stream or replication.sources.<region>",
    "pairs": "per pair settings go under replication.pairs (every table), or replication.tables[i].pairs "
    "(that table only, in a list of tables)",
}

TOP_KEYS = {
    "account": "12-digit account id",
    "topology": "mesh | one-way",
    "regions": "mesh: every region",
    "source": "one-way: the source region",
    "replicas": "one-way: the replica regions",
    "table": "table settings (one table)",
    "tables": "a list of table blocks (several tables)",
    "attribute_prefix": "metadata attribute prefix",
    "tombstone_retention_days": "tombstone lifetime",
    "max_clock_skew_seconds": "how far ahead of the receiving clock a version may be",
    "dead_letter_retention_days": "how long dead letters and discarded-batch documents are kept",
    "handoff_retention_days": "how long a handed-off write waits for its target",
    "stream": "event source mapping defaults",
    "sources": "per source region mapping overrides",
    "pairs": "per source->target settings",
    "function": "replicator function settings",
    "alarms": "alarm thresholds and notifications",
    "dashboard_region": "region hosting the dashboard",
    "backfill": "the deployed backfill job",
    "deployment_name": "a name in every stack id and physical name",
    "kms_key_arns": "per region: the customer managed key of the stores holding item copies",
    "tags": "tags on every resource of every stack",
}
TABLE_KEYS = {
    "name": "",
    "partition_key": "",
    "sort_key": "",
    "ttl_attribute": "",
    "adopt_existing": "",
    "point_in_time_recovery": "",
    "deletion_protection": "",
    "global_secondary_indexes": "",
    "local_secondary_indexes": "",
    "billing": "",
    "table_class": "",
    "tags": "",
}
# An entry of replication.tables: a table block, and item filters (or roles) of its own per pair.
TABLES_ITEM_KEYS = {**TABLE_KEYS, "pairs": "per source->target settings of this table"}
KEY_KEYS = {"name": "", "type": ""}
GLOBAL_INDEX_KEYS = {"name": "", "partition_key": "", "sort_key": "", "projection": ""}
# partition_key is allowed so that a local index may restate the table's; any other is refused.
LOCAL_INDEX_KEYS = {"name": "", "partition_key": "", "sort_key": "", "projection": ""}
ON_DEMAND_KEYS = {"mode": "", "max_read_request_units": "", "max_write_request_units": ""}
PROVISIONED_KEYS = {"mode": "", "read_capacity": "", "write_capacity": "", "autoscaling": ""}
AUTOSCALING_KEYS = {"max_read_capacity": "", "max_write_capacity": "", "target_utilization": ""}
STREAM_KEYS = {
    "batch_size": "",
    "batching_window_seconds": "",
    "parallelization_factor": "",
    "retry_attempts": "",
    "max_record_age_seconds": "",
}
PAIR_KEYS = {"item_filter": "", "role_arn": ""}
FUNCTION_KEYS = {
    "memory_mb": "",
    "timeout_seconds": "",
    "max_workers": "",
    "write_attempts": "",
    "retry_base_delay_ms": "",
    "log_retention_days": "",
    "metrics_namespace": "",
    "drain_max_concurrency": "",
    "conflict_log_max_records": "",
    "conflict_log_images": "",
    "metrics_flush_seconds": "",
}
BACKFILL_KEYS = {
    "enabled": "",
    "segments": "",
    "max_concurrency": "",
    "page_size": "",
    "items_per_second_per_segment": "",
}
ALARM_KEYS = {
    "email": "",
    "topic_arns": "",
    "iterator_age_seconds": "",
    "latency_p99_ms": "",
    "handoff_age_seconds": "",
    "function_errors_max": "",
}
