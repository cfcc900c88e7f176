"""Typed settings of the replicator and drain functions, parsed once from the environment.

This is the only module of the function that reads ``os.environ``. The CDK stack writes these
variables (stacks/ -> Lambda environment); the local runtime reads them back from the synthesized
template, so what runs locally is what would be deployed.

| variable | meaning | default |
|---|---|---|
| REP_LOCAL_REGION | region of the source table this function reads | required |
| REP_TOPOLOGY | ``mesh`` or ``one-way`` | required |
| REP_SOURCE_TABLE | the local (source) table; mesh adoption and local tombstones write it | required |
| REP_TARGETS | JSON list of targets, see :class:`Target` | required |
| REP_ATTRIBUTE_PREFIX | prefix of the metadata attributes | ``rep_`` |
| REP_TTL_ATTRIBUTE | the table's TTL attribute, set on tombstones | ``<prefix>expires`` |
| REP_TOMBSTONE_RETENTION_SECONDS | how long a tombstone lives | 1382400 (16 days, core/defaults) |
| REP_MAX_CLOCK_SKEW_SECONDS | a local version further ahead of this clock is dead-lettered | 300 |
| REP_DEAD_LETTER_BUCKET | S3 bucket (local region) of the dead-letter store and handoff overflow | required |
| REP_MAX_WORKERS | bounded thread pool of the fan-out | 16 |
| REP_WRITE_ATTEMPTS | attempts per target write before handing off | 4 (core/defaults) |
| REP_RETRY_BASE_DELAY_MS | first backoff delay, doubled each retry, full jitter | 50 (core/defaults) |
| REP_CONFLICT_LOG_MAX_RECORDS | lost conflicts logged per invocation (the rest counted) | 10 |
| REP_CONFLICT_LOG_IMAGES | ``true``: the log keeps each losing item's full image (user data) | ``false`` |
| REP_METRICS_FLUSH_SECONDS | replicator: print a warm environment's metrics this often (emf) | 0 (always) |
| REP_ENDPOINT_URLS | JSON ``{region: url}``; local runs only (AWS: unset) | ``{}`` |
| REP_DRAIN_TARGET_REGION | drain function only: the target whose handoff queue it replays | unset |
| REP_OBJECT_KEY_TABLE | 2nd+ table of a deployment: its objects go under ``<kind>/tables/<table>/`` | unset |
| POWERTOOLS_METRICS_NAMESPACE | CloudWatch namespace of the metrics | ``DynamoDBReplicator`` |

Each entry of ``REP_TARGETS``: ``{"region": str, "table": str, "handoff_queue_url": str,
"role_arn": str | null, "item_filter": event pattern | null}``. ``item_filter`` is an
EventBridge-style pattern matched against the item in DynamoDB JSON, exactly like a Lambda event
filter on ``dynamodb.NewImage`` (for example ``{"tenant": {"S": [{"prefix": "eu-"}]}}``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from replicator.core import defaults
from replicator.core.metadata import AttributeNames

TOPOLOGIES = ("mesh", "one-way")
DEFAULT_NAMESPACE = "DynamoDBReplicator"


class SettingsError(ValueError):
    """The function's environment is incomplete or malformed (a deployment fault)."""


@dataclass(frozen=True)
class Target:
    """One region this function replicates to."""

    region: str
    table: str
    handoff_queue_url: str = ""
    role_arn: str | None = None
    item_filter: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Settings:
    """Everything the replicator and drain functions need to know about their deployment."""

    local_region: str
    topology: str
    source_table: str
    targets: tuple[Target, ...]
    names: AttributeNames
    tombstone_retention_seconds: int = defaults.TOMBSTONE_RETENTION_SECONDS
    max_clock_skew_seconds: int = defaults.MAX_CLOCK_SKEW_SECONDS
    dead_letter_bucket: str = ""
    max_workers: int = 16
    write_attempts: int = defaults.WRITE_ATTEMPTS
    retry_base_delay_ms: int = defaults.RETRY_BASE_DELAY_MS
    endpoint_urls: Mapping[str, str] = field(default_factory=dict)
    drain_target_region: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    conflict_log_max_records: int = defaults.CONFLICT_LOG_MAX_RECORDS
    conflict_log_images: bool = False
    metrics_flush_seconds: int = 0
    # Set for the 2nd+ tables of a deployment, which share the bucket (core/defaults.object_prefix).
    object_key_table: str | None = None

    def dead_letter_prefix(self) -> str:
        return defaults.object_prefix(defaults.DEAD_LETTER_PREFIX, self.object_key_table)

    def handoff_prefix(self) -> str:
        return defaults.object_prefix(defaults.HANDOFF_PREFIX, self.object_key_table)

    def conflict_prefix(self) -> str:
        return defaults.object_prefix(defaults.CONFLICT_PREFIX, self.object_key_table)

    def target(self, region: str) -> Target:
        for target in self.targets:
            if target.region == region:
                return target
        raise SettingsError(
            f"no target for region {region!r}; targets are {[t.region for t in self.targets]}"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return parse_settings(env)


def _required(env: Mapping[str, str], key: str) -> str:
    value = env.get(key, "").strip()
    if not value:
        raise SettingsError(f"environment variable {key} is required (set by the CDK stack)")
    return value


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{key}={value} must be at least {minimum}")
    return value


def _bool(env: Mapping[str, str], key: str) -> bool:
    raw = env.get(key, "").strip().lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise SettingsError(f"{key}={raw!r}; expected true or false")


def _json(env: Mapping[str, str], key: str, default: Any) -> Any:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise SettingsError(f"{key} is not valid JSON: {err}") from None


def _target(raw: Any, index: int) -> Target:
    if not isinstance(raw, dict):
        raise SettingsError(f"REP_TARGETS[{index}] must be an object, got {type(raw).__name__}")
    unknown = set(raw) - {"region", "table", "handoff_queue_url", "role_arn", "item_filter"}
    if unknown:
        raise SettingsError(f"REP_TARGETS[{index}] has unknown keys {sorted(unknown)}")
    for key in ("region", "table"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise SettingsError(f"REP_TARGETS[{index}].{key} must be a non-empty string")
    item_filter = raw.get("item_filter")
    if item_filter is not None and not isinstance(item_filter, dict):
        raise SettingsError(f"REP_TARGETS[{index}].item_filter must be an event pattern object")
    return Target(
        region=raw["region"],
        table=raw["table"],
        handoff_queue_url=raw.get("handoff_queue_url") or "",
        role_arn=raw.get("role_arn") or None,
        item_filter=item_filter,
    )


def parse_settings(env: Mapping[str, str]) -> Settings:
    topology = _required(env, "REP_TOPOLOGY")
    if topology not in TOPOLOGIES:
        raise SettingsError(f"REP_TOPOLOGY={topology!r}; expected one of {TOPOLOGIES}")
    raw_targets = _json(env, "REP_TARGETS", None)
    if not isinstance(raw_targets, list) or not raw_targets:
        raise SettingsError("REP_TARGETS must be a non-empty JSON list of targets")
    targets = tuple(_target(raw, i) for i, raw in enumerate(raw_targets))
    local_region = _required(env, "REP_LOCAL_REGION")
    if any(t.region == local_region for t in targets):
        raise SettingsError(f"REP_TARGETS names the local region {local_region!r} as a target")
    prefix = env.get("REP_ATTRIBUTE_PREFIX", defaults.ATTRIBUTE_PREFIX)
    names = AttributeNames.with_prefix(prefix, ttl=env.get("REP_TTL_ATTRIBUTE") or None)
    endpoints = _json(env, "REP_ENDPOINT_URLS", {})
    if not isinstance(endpoints, dict):
        raise SettingsError("REP_ENDPOINT_URLS must be a JSON object {region: url}")
    return Settings(
        local_region=local_region,
        topology=topology,
        source_table=_required(env, "REP_SOURCE_TABLE"),
        targets=targets,
        names=names,
        tombstone_retention_seconds=_int(
            env, "REP_TOMBSTONE_RETENTION_SECONDS", defaults.TOMBSTONE_RETENTION_SECONDS, minimum=1
        ),
        max_clock_skew_seconds=_int(
            env, "REP_MAX_CLOCK_SKEW_SECONDS", defaults.MAX_CLOCK_SKEW_SECONDS, minimum=1
        ),
        dead_letter_bucket=_required(env, "REP_DEAD_LETTER_BUCKET"),
        max_workers=_int(env, "REP_MAX_WORKERS", 16, minimum=1),
        write_attempts=_int(env, "REP_WRITE_ATTEMPTS", defaults.WRITE_ATTEMPTS, minimum=1),
        retry_base_delay_ms=_int(env, "REP_RETRY_BASE_DELAY_MS", defaults.RETRY_BASE_DELAY_MS),
        endpoint_urls={str(k): str(v) for k, v in endpoints.items()},
        drain_target_region=env.get("REP_DRAIN_TARGET_REGION") or None,
        namespace=env.get("POWERTOOLS_METRICS_NAMESPACE") or DEFAULT_NAMESPACE,
        conflict_log_max_records=_int(
            env, "REP_CONFLICT_LOG_MAX_RECORDS", defaults.CONFLICT_LOG_MAX_RECORDS, minimum=0
        ),
        conflict_log_images=_bool(env, "REP_CONFLICT_LOG_IMAGES"),
        metrics_flush_seconds=_int(env, "REP_METRICS_FLUSH_SECONDS", 0, minimum=0),
        object_key_table=env.get("REP_OBJECT_KEY_TABLE") or None,
    )
