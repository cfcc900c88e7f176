"""Parsing the ``replication`` context into the plan: each section validated, each error naming its key."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from replicator.core.backoff import Backoff
from replicator.core.metadata import AttributeNames
from replicator.core.pattern import PatternError, validate_pattern
from stacks import defaults
from stacks.config import blocks as schema
from stacks.config.blocks import (
    ACCOUNT,
    ATTRIBUTE_NAME,
    DEPLOYMENT_NAME,
    EMAIL,
    KMS_KEY_ARN,
    PAIR_SEPARATOR,
    ROLE_ARN,
    TABLE_NAME,
    TOPIC_ARN,
    Block,
    ConfigError,
)
from stacks.config.environment import drain_environment
from stacks.config.model import (
    AlarmSettings,
    BackfillSettings,
    ConfigWarning,
    FunctionSettings,
    KeyAttribute,
    RegionPlan,
    ReplicationConfig,
    StreamSettings,
    TableConfig,
    TableShape,
    TargetPlan,
)
from stacks.config.names import bounded, bucket_name, name_stem, slug, stack_id
from stacks.config.table_shape import key_attribute, parse_table_shape, parse_tags, shape_warnings


def check_handoff_schedule(
    key: str,
    retention_days: int,
    backoff: Backoff = defaults.HANDOFF_BACKOFF,
    max_receive_count: int = defaults.HANDOFF_MAX_RECEIVE_COUNT,
    margin: float = defaults.HANDOFF_BACKOFF_MARGIN,
) -> None:
    """The drain's backoff must keep a message replaying for its whole retention within maxReceiveCount
    receives (with margin), or it moves to the dead-letter queue while its target may come back."""
    span = backoff.least_total(max_receive_count)
    needed = retention_days * 86400 * margin
    if span < needed:
        raise ConfigError(
            f"{key} = {retention_days} days: {max_receive_count} receives with the drain's backoff "
            f"(capped at {backoff.cap_seconds} s) span only {span / 86400:.1f} days, less than the retention "
            f"times {margin}; a handed-off write would reach the handoff dead-letter queue while its target "
            "can still return. Fix: raise the backoff cap or maxReceiveCount (stacks/defaults.py), or lower "
            "handoff_retention_days"
        )


def parse_context(value: Any) -> Any:
    """Context given with ``-c key=value`` arrives as a string: JSON objects are decoded."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("{", "[")):
            try:
                return json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"context value {text[:40]!r}... is not valid JSON: {err}") from None
    return value


def load_config(replication: Any, account: Any = None) -> ReplicationConfig:
    """Validate the ``replication`` context block (a dict or its JSON text) into a deployment plan."""
    if replication is None:
        raise ConfigError(
            f"context key {defaults.CONTEXT_KEY!r} is missing. Fix: add a {defaults.CONTEXT_KEY!r} block "
            "to cdk.json (docs/CONFIGURATION.md) or pass -c replication='{...}'"
        )
    root = Block(parse_context(replication), defaults.CONTEXT_KEY, schema.TOP_KEYS)
    account = _account(root, parse_context(account))
    topology = root.get("topology", "mesh")
    if topology not in defaults.TOPOLOGIES:
        raise ConfigError(
            f"{root.key('topology')} = {topology!r} is not a topology. "
            f"Fix: use one of {', '.join(defaults.TOPOLOGIES)}"
        )
    sources, receivers = _regions(root, topology)
    all_regions = tuple(dict.fromkeys([*sources, *receivers]))

    deployment = _deployment_name(root)
    prefix = root.string("attribute_prefix", defaults.ATTRIBUTE_PREFIX, re.compile(r"^[A-Za-z0-9_.-]{1,64}$"))
    tags = parse_tags(root, "tags")
    drafts = [
        _table_draft(block, all_regions, prefix, root, tags, topology, sources, receivers)
        for block in _table_blocks(root)
    ]
    _check_distinct_tables(drafts, all_regions)
    kms_key_arns = _kms_key_arns(root, all_regions)
    handoff_days = root.integer(
        "handoff_retention_days", defaults.HANDOFF_RETENTION_DAYS, 1, 14, "SQS keeps messages 1 to 14 days"
    )
    check_handoff_schedule(root.key("handoff_retention_days"), handoff_days)
    retention_days = root.integer(
        "tombstone_retention_days",
        defaults.TOMBSTONE_RETENTION_DAYS,
        2,
        3650,
        "longer than the stream's 24 h",
    )
    if retention_days <= handoff_days + defaults.STREAM_RETENTION_DAYS:
        raise ConfigError(
            f"{root.key('tombstone_retention_days')} = {retention_days} days is not longer than a write can "
            f"wait to be applied ({handoff_days} days in a handoff queue + {defaults.STREAM_RETENTION_DAYS} "
            "day in the stream): a delete could be undone by an older write replayed after its tombstone "
            f"expired. Fix: set tombstone_retention_days to at least "
            f"{handoff_days + defaults.STREAM_RETENTION_DAYS + 1}, or lower handoff_retention_days"
        )

    max_skew = root.integer(
        "max_clock_skew_seconds",
        defaults.MAX_CLOCK_SKEW_SECONDS,
        *defaults.MAX_CLOCK_SKEW_RANGE,
        "a version further ahead of the receiving clock is dead-lettered; keep it small (minutes)",
    )

    dead_letter_days = root.integer(
        "dead_letter_retention_days",
        max(defaults.DEAD_LETTER_RETENTION_DAYS, retention_days + 1),
        retention_days,
        defaults.DEAD_LETTER_RETENTION_MAX_DAYS,
        f"at least tombstone_retention_days ({retention_days}): a dead letter must stay while it can "
        "still be redriven safely; each one holds a full item, so not for ever",
    )

    stream_defaults = _stream(root.block("stream", schema.STREAM_KEYS), StreamSettings())
    source_blocks = _source_overrides(root, sources, stream_defaults)
    pairs = _pairs(root.get("pairs", {}), root.key("pairs"), sources, receivers, topology)
    function = _function(root.block("function", schema.FUNCTION_KEYS))
    backfill = _backfill(root.block("backfill", schema.BACKFILL_KEYS))
    alarms = _alarms(root.block("alarms", schema.ALARM_KEYS), all_regions)
    dashboard_region = root.string("dashboard_region", all_regions[0])
    if dashboard_region not in all_regions:
        raise ConfigError(
            f"{root.key('dashboard_region')} = {dashboard_region!r} is not one of the deployment's regions. "
            f"Fix: use one of {', '.join(all_regions)}"
        )

    first = drafts[0]  # names the region's shared bucket and alarm topic, as in a one-table deployment
    tables = []
    for index, draft in enumerate(drafts):
        table_pairs = {**pairs, **draft.pairs}  # a table's own entry replaces the deployment's
        plans = []
        for region in all_regions:
            table_name = draft.names[region]
            stem = name_stem(deployment, table_name)
            first_stem = name_stem(deployment, first.names[region])
            targets = tuple(
                _target_plan(
                    region,
                    target,
                    draft.names[target],
                    account,
                    stem,
                    table_pairs.get((region, target)),
                    handoff_days,
                    topology,
                )
                for target in (receivers if topology == "one-way" else all_regions)
                if target != region and region in sources
            )
            plans.append(
                RegionPlan(
                    region=region,
                    account=account,
                    stack_id=stack_id(deployment, region),
                    table_name=table_name,
                    adopt_existing=region in draft.adopt,
                    kms_key_arn=kms_key_arns.get(region),
                    targets=targets,
                    stream=source_blocks.get(region, stream_defaults),
                    dead_letter_bucket=bucket_name(deployment, first.names[region], account, region),
                    replicator_function_name=bounded(f"{stem}-replicator", 64),
                    backfill_function_name=bounded(f"{stem}-backfill", 64),
                    alarm_topic_arn=(alarms.topic_arns or {}).get(region),
                    alarm_topic_name=bounded(f"{first_stem}-replication-alarms", 256),
                    alarm_prefix=bounded(f"{stem}-replication-{region}", 128),
                    object_key_table=table_name if index else None,
                )
            )
        namespace = function.metrics_namespace
        tables.append(
            TableConfig(
                path=draft.block.path,
                partition_key=draft.partition_key,
                sort_key=draft.sort_key,
                ttl_attribute=draft.ttl_attribute,
                point_in_time_recovery=draft.block.boolean(
                    "point_in_time_recovery", defaults.POINT_IN_TIME_RECOVERY
                ),
                deletion_protection=draft.block.boolean("deletion_protection", defaults.DELETION_PROTECTION),
                table_shape=draft.shape,
                warnings=draft.warnings,
                regions=tuple(plans),
                metrics_namespace=bounded(f"{namespace}/{plans[0].table_name}", 255) if index else namespace,
            )
        )
    dashboard_stem = name_stem(deployment, first.names[dashboard_region])
    head = tables[0]
    config = ReplicationConfig(
        account=account,
        topology=topology,
        partition_key=head.partition_key,
        sort_key=head.sort_key,
        regions=head.regions,
        attribute_prefix=prefix,
        ttl_attribute=head.ttl_attribute,
        tombstone_retention_seconds=retention_days * 24 * 3600,
        max_clock_skew_seconds=max_skew,
        dead_letter_retention_days=dead_letter_days,
        point_in_time_recovery=head.point_in_time_recovery,
        deletion_protection=head.deletion_protection,
        table_shape=head.table_shape,
        deployment_name=deployment,
        tags=tags,
        warnings=head.warnings,
        function=function,
        alarms=alarms,
        backfill=backfill,
        dashboard_region=dashboard_region,
        dashboard_name=bounded(f"{dashboard_stem}-replication", 255),
        tables=tuple(tables),
    )
    _check_environment_sizes(config)
    return config


def _check_environment_sizes(config: ReplicationConfig) -> None:
    """Lambda refuses a function whose environment (names and values) exceeds 4 KB, at deploy time, in
    one region after another: each table's functions carry that table's targets, filters and roles."""
    for table in config.tables:
        view = config.for_table(table)
        for plan in view.regions:
            for target in plan.targets:  # the drain's is the largest: the replicator's and one more
                environment = drain_environment(view, plan, target)
                size = sum(len(k.encode()) + len(v.encode()) for k, v in environment.items())
                limit = defaults.LAMBDA_ENVIRONMENT_LIMIT_BYTES
                if size > limit:
                    raise ConfigError(
                        f"{table.path}: the environment of {target.drain_function_name} in {plan.region} "
                        f"would be {size} bytes, more than Lambda's {limit}: "
                        "it carries every target of the table with its item_filter and role_arn. Fix: "
                        f"shorten the item filters of this table's pairs ({table.path}.pairs or "
                        "replication.pairs)"
                    )


@dataclass(frozen=True)
class _TableDraft:
    """One table block, parsed; its region plans are built once every table is known."""

    block: Block
    names: dict[str, str]  # region -> table name
    partition_key: KeyAttribute
    sort_key: KeyAttribute | None
    adopt: tuple[str, ...]
    ttl_attribute: str
    shape: TableShape
    warnings: tuple[ConfigWarning, ...]
    pairs: dict[tuple[str, str], Block]


def _table_blocks(root: Block) -> list[Block]:
    """``table`` (one table, the shorthand) or ``tables`` (a list of the same blocks), never both."""
    if root.get("table") is not None and root.get("tables") is not None:
        raise ConfigError(
            f"{root.key('table')} and {root.key('tables')} are both given: table is the shorthand for a "
            "deployment of one table, tables lists several. Fix: move the table block into the tables list "
            "(as its first entry, which keeps its resources' names), or remove tables"
        )
    if root.get("tables") is None:
        return [root.block("table", schema.TABLE_KEYS)]
    raw = root.get("tables")
    key = root.key("tables")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(
            f"{key} must be a non-empty JSON list of table blocks, got {raw!r}. Fix: e.g. "
            '[{"name": "orders", "partition_key": {"name": "pk", "type": "S"}}], or use replication.table '
            "for one table"
        )
    if len(raw) > defaults.MAX_TABLES:
        raise ConfigError(
            f"{key} lists {len(raw)} tables, more than the {defaults.MAX_TABLES} a deployment takes: every "
            "table adds its replicator, handoff queues, drains and alarms to each region's stack, which "
            f"CloudFormation limits to {defaults.STACK_RESOURCE_LIMIT} resources. Fix: split the tables "
            "into several deployments (each with its own deployment_name)"
        )
    return [Block(item, f"{key}[{i}]", schema.TABLES_ITEM_KEYS) for i, item in enumerate(raw)]


def _table_draft(
    table: Block,
    all_regions: tuple[str, ...],
    prefix: str,
    root: Block,
    tags: dict[str, str],
    topology: str,
    sources: tuple[str, ...],
    receivers: tuple[str, ...],
) -> _TableDraft:
    names = _table_names(table, all_regions)
    partition_key = key_attribute(table, "partition_key", required=True)
    assert partition_key is not None  # required=True raised otherwise
    sort_key = key_attribute(table, "sort_key", required=False)
    adopt = _region_list(table, "adopt_existing", all_regions, minimum=0)
    ttl_attribute = table.string("ttl_attribute", f"{prefix}expires", ATTRIBUTE_NAME)
    attribute_names = AttributeNames.with_prefix(prefix, ttl=ttl_attribute)
    shape = parse_table_shape(table, partition_key, sort_key, attribute_names, adopt)
    tagged = len(tags.keys() | shape.tags.keys())
    if tagged > defaults.MAX_TAGS:
        raise ConfigError(
            f"{root.key('tags')} and {table.key('tags')} give the table {tagged} tags together, more than "
            f"the {defaults.MAX_TAGS} a resource takes. Fix: fewer tags"
        )
    pairs = {}
    if "pairs" in table.raw:
        pairs = _pairs(table.get("pairs", {}), table.key("pairs"), sources, receivers, topology)
    return _TableDraft(
        block=table,
        names=names,
        partition_key=partition_key,
        sort_key=sort_key,
        adopt=adopt,
        ttl_attribute=ttl_attribute,
        shape=shape,
        warnings=shape_warnings(
            shape,
            table.path,
            topology=topology,
            region_count=len(all_regions),
            partition_key=partition_key,
            sort_key=sort_key,
            names=attribute_names,
        ),
        pairs=pairs,
    )


def _check_distinct_tables(drafts: list[_TableDraft], regions: tuple[str, ...]) -> None:
    """Two tables of one name would be one table; two whose names differ only by '.' and '-' would give
    their functions, queues and alarms one name (physical names write '.' as '-')."""
    seen: dict[tuple[str, str], tuple[str, str]] = {}  # (region, slug) -> (name, table path)
    for draft in drafts:
        for region in regions:
            name = draft.names[region]
            other = seen.setdefault((region, slug(name)), (name, draft.block.path))
            if other[1] == draft.block.path:
                continue
            same = (
                "is also the name of"
                if other[0] == name
                else f"gives the same resource names as {other[0]!r},"
            )
            raise ConfigError(
                f"{draft.block.key('name')} = {name!r} {same} {other[1]} in {region}: each table of a "
                "deployment has its own name, which names its replicator, handoff queues and alarms. "
                "Fix: give each table its own name (or remove the duplicate entry)"
            )


def _account(root: Block, override: Any) -> str:
    value = override if override not in (None, "") else root.get("account", defaults.PLACEHOLDER_ACCOUNT)
    value = str(value)
    if not ACCOUNT.match(value):
        raise ConfigError(
            f"{root.key('account')} = {value!r} is not a 12-digit AWS account id. "
            "Fix: set it in cdk.json or pass -c account=123456789012"
        )
    return value


def _check_region(key: str, region: Any) -> str:
    if not isinstance(region, str) or region not in defaults.KNOWN_REGIONS:
        raise ConfigError(
            f"{key} names an unknown region {region!r}. Fix: use an AWS region code such as us-east-1 "
            "(a region launched after this release is added to stacks/defaults.py KNOWN_REGIONS)"
        )
    return region


def _region_list(block: Block, name: str, allowed: tuple[str, ...] | None, minimum: int) -> tuple[str, ...]:
    raw = block.get(name, [])
    key = block.key(name)
    if not isinstance(raw, list):
        raise ConfigError(f"{key} must be a JSON list of region codes, got {raw!r}")
    regions = tuple(_check_region(f"{key}[{i}]", region) for i, region in enumerate(raw))
    duplicates = sorted({r for r in regions if regions.count(r) > 1})
    if duplicates:
        raise ConfigError(f"{key} lists {duplicates[0]!r} more than once. Fix: name each region once")
    if allowed is not None:
        for region in regions:
            if region not in allowed:
                raise ConfigError(
                    f"{key} names {region!r}, which is not in the deployment. "
                    f"Fix: use one of {', '.join(allowed)}"
                )
    if len(regions) < minimum:
        raise ConfigError(
            f"{key} must list at least {minimum} regions (got {len(regions)}). Fix: add regions"
        )
    return regions


def _regions(root: Block, topology: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(source regions, receiving regions) of the topology."""
    if topology == "mesh":
        for misplaced in ("source", "replicas"):
            if misplaced in root.raw:
                raise ConfigError(
                    f"{root.key(misplaced)} applies to topology one-way only. "
                    "Fix: a mesh lists every region under replication.regions"
                )
        regions = _region_list(root, "regions", None, minimum=0)
        if len(regions) < 2:
            raise ConfigError(
                f"{root.key('regions')} must list at least two regions (got {len(regions)}). "
                "Fix: replication needs a second region"
            )
        return regions, regions
    if "regions" in root.raw:
        raise ConfigError(
            f"{root.key('regions')} applies to topology mesh only. "
            "Fix: a one-way deployment names replication.source and replication.replicas"
        )
    source = _check_region(root.key("source"), root.get("source"))
    replicas = _region_list(root, "replicas", None, minimum=0)
    if source in replicas:
        raise ConfigError(
            f"{root.key('replicas')} includes the source region {source!r}: "
            "a region cannot replicate to itself. "
            "Fix: remove it from replicas"
        )
    if not replicas:
        raise ConfigError(
            f"{root.key('replicas')} must list at least one region, so that at least two regions take part. "
            "Fix: add a replica region"
        )
    return (source,), replicas


def _table_names(table: Block, regions: tuple[str, ...]) -> dict[str, str]:
    raw = table.get("name")
    key = table.key("name")
    if isinstance(raw, str):
        names = dict.fromkeys(regions, raw)
    elif isinstance(raw, dict):
        missing = [r for r in regions if r not in raw]
        extra = sorted(set(raw) - set(regions))
        if missing or extra:
            raise ConfigError(
                f"{key} must name the table of every region and no other "
                f"(missing {missing}, unknown {extra}). Fix: one entry per region"
            )
        names = {r: raw[r] for r in regions}
    else:
        raise ConfigError(
            f'{key} is required: a table name, or an object {{region: name}}. Fix: e.g. "orders"'
        )
    for region, name in names.items():
        if not isinstance(name, str) or not TABLE_NAME.match(name):
            raise ConfigError(
                f"{key} ({region}) = {name!r} is not a DynamoDB table name. "
                "Fix: 3 to 255 characters from A-Z a-z 0-9 _ . -"
            )
    return names


def _deployment_name(root: Block) -> str | None:
    """None keeps the stack ids and physical names of a deployment made before the key existed."""
    if root.get("deployment_name") is None:
        return None
    name = root.string("deployment_name")
    limit = defaults.DEPLOYMENT_NAME_MAX_LENGTH
    if len(name) > limit or not DEPLOYMENT_NAME.match(name):
        raise ConfigError(
            f"{root.key('deployment_name')} = {name!r} is not a deployment name. Fix: up to {limit} "
            "lowercase letters and digits, words joined by single hyphens, starting with a letter "
            "(it goes into stack ids, bucket and function names), e.g. orders-blue"
        )
    return name


def _kms_key_arns(root: Block, regions: tuple[str, ...]) -> dict[str, str]:
    raw = root.get("kms_key_arns", {})
    key = root.key("kms_key_arns")
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{key} must be an object {{region: KMS key ARN}}: a region's stores are encrypted with a key "
            "of that region"
        )
    arns = {}
    for region, arn in raw.items():
        if region not in regions:
            raise ConfigError(
                f"{key}.{region} names a region outside the deployment. Fix: use one of {', '.join(regions)}"
            )
        match = KMS_KEY_ARN.match(arn) if isinstance(arn, str) else None
        if match is None:
            raise ConfigError(
                f"{key}.{region} = {arn!r} is not a KMS key ARN. Fix: the ARN of a symmetric customer "
                f"managed key, arn:aws:kms:{region}:<account>:key/<key id> (not an alias)"
            )
        if match.group("region") != region:
            raise ConfigError(
                f"{key}.{region} = {arn!r} is a key in {match.group('region')}. Fix: a table, queue or "
                f"bucket in {region} can only be encrypted with a key in {region}"
            )
        arns[region] = arn
    return arns


def _stream(block: Block, base: StreamSettings) -> StreamSettings:
    age = block.get("max_record_age_seconds", base.max_record_age_seconds)
    if age != -1:
        age = block.integer(
            "max_record_age_seconds", base.max_record_age_seconds, *defaults.MAX_RECORD_AGE_RANGE
        )
    return StreamSettings(
        batch_size=block.integer(
            "batch_size", base.batch_size, *defaults.BATCH_SIZE_RANGE, "Lambda's limits for DynamoDB Streams"
        ),
        batching_window_seconds=block.integer(
            "batching_window_seconds", base.batching_window_seconds, *defaults.BATCHING_WINDOW_RANGE
        ),
        parallelization_factor=block.integer(
            "parallelization_factor", base.parallelization_factor, *defaults.PARALLELIZATION_RANGE
        ),
        retry_attempts=block.integer(
            "retry_attempts", base.retry_attempts, *defaults.RETRY_ATTEMPTS_RANGE, "retries must be bounded"
        ),
        max_record_age_seconds=age,
    )


def _source_overrides(
    root: Block, sources: tuple[str, ...], base: StreamSettings
) -> dict[str, StreamSettings]:
    raw = root.get("sources", {})
    block = Block(raw, root.key("sources"), dict.fromkeys(sources, ""))
    return {region: _stream(block.block(region, schema.STREAM_KEYS), base) for region in block.raw}


def _pairs(
    raw: Any, key: str, sources: tuple[str, ...], receivers: tuple[str, ...], topology: str
) -> dict[tuple[str, str], Block]:
    """``replication.pairs``, or a table's own ``tables[i].pairs`` (its entries replace the deployment's)."""
    if not isinstance(raw, dict):
        raise ConfigError(f'{key} must be a JSON object {{"<source>{PAIR_SEPARATOR}<target>": {{...}}}}')
    pairs: dict[tuple[str, str], Block] = {}
    for name, value in raw.items():
        pair_key = f"{key}.{name}"
        source, sep, target = str(name).partition(PAIR_SEPARATOR)
        if not sep:
            raise ConfigError(
                f'{pair_key} is not a pair. Fix: write it as "<source>{PAIR_SEPARATOR}<target>"'
            )
        _check_region(pair_key, source.strip())
        _check_region(pair_key, target.strip())
        source, target = source.strip(), target.strip()
        if source == target:
            raise ConfigError(
                f"{pair_key} goes from a region to itself. Fix: a pair joins two different regions"
            )
        if source not in sources or target not in receivers:
            raise ConfigError(
                f"{pair_key} is not a replication path of this {topology} deployment. "
                f"Fix: sources are {', '.join(sources)}; targets are {', '.join(receivers)}"
            )
        pairs[(source, target)] = Block(value, pair_key, schema.PAIR_KEYS)
    return pairs


def _target_plan(
    source: str,
    target: str,
    target_table: str,
    account: str,
    stem: str,
    pair: Block | None,
    handoff_retention_days: int,
    topology: str,
) -> TargetPlan:
    role_arn = None
    item_filter = None
    if pair is not None:
        if pair.get("role_arn") is not None:
            role_arn = pair.string("role_arn", None, ROLE_ARN)
        item_filter = pair.get("item_filter")
        if item_filter is not None and (not isinstance(item_filter, dict) or not item_filter):
            raise ConfigError(
                f"{pair.key('item_filter')} must be an event pattern object over the item in DynamoDB JSON. "
                'Fix: e.g. {"tenant": {"S": [{"prefix": "eu-"}]}}'
            )
        if item_filter is not None:
            try:
                validate_pattern(item_filter)
            except PatternError as err:
                raise ConfigError(
                    f"{pair.key('item_filter')} is not a valid event pattern: {err}. "
                    "Fix: see the filter rule syntax in docs/CONFIGURATION.md"
                ) from None
    # A cross-account replica lives in the account of the role that writes it.
    table_account = role_arn.split(":")[4] if role_arn else account
    if topology == "mesh" and pair is not None and table_account != account:
        # Every stack of this deployment is deployed to `account`: the target region's replicator would
        # read its stream there and write back here, while this pair writes another account's table.
        raise ConfigError(
            f"{pair.key('role_arn')} is a role in account {table_account}, but in a mesh every region's "
            f"stack (its table, stream and replicator) is deployed to account {account}: this direction "
            f"would write {table_account}'s table while {target} replicates {account}'s, and the copies "
            "would diverge. Fix: use a role in the deployment's account, or a one-way topology for a "
            "replica in another account"
        )
    queue_name = bounded(f"{stem}-handoff-{target}", 76)  # room for the "-dlq" suffix under SQS's 80
    return TargetPlan(
        source_region=source,
        region=target,
        table=target_table,
        table_account=table_account,
        role_arn=role_arn,
        item_filter=item_filter,
        handoff_queue_name=queue_name,
        handoff_dlq_name=f"{queue_name}-dlq",
        # Literal (not a token) so the local runtime and the environment see the same string.
        handoff_queue_url=f"https://sqs.{source}.amazonaws.com/{account}/{queue_name}",
        drain_function_name=bounded(f"{stem}-drain-{target}", 64),
        handoff_retention_days=handoff_retention_days,
    )


def _function(block: Block) -> FunctionSettings:
    return FunctionSettings(
        memory_mb=block.integer("memory_mb", defaults.FUNCTION_MEMORY_MB, 128, 10_240, "Lambda's limits"),
        timeout_seconds=block.integer("timeout_seconds", defaults.FUNCTION_TIMEOUT_SECONDS, 3, 900),
        max_workers=block.integer("max_workers", defaults.MAX_WORKERS, 1, 256),
        write_attempts=block.integer("write_attempts", defaults.WRITE_ATTEMPTS, 1, 20),
        retry_base_delay_ms=block.integer("retry_base_delay_ms", defaults.RETRY_BASE_DELAY_MS, 0, 10_000),
        log_retention_days=_log_retention(block),
        metrics_namespace=block.string(
            "metrics_namespace", defaults.METRICS_NAMESPACE, re.compile(r"^[A-Za-z0-9_./#:-]{1,255}$")
        ),
        drain_max_concurrency=block.integer(
            "drain_max_concurrency",
            defaults.DRAIN_MAX_CONCURRENCY,
            *defaults.DRAIN_MAX_CONCURRENCY_RANGE,
            "Lambda's MaximumConcurrency for an SQS event source",
        ),
        conflict_log_max_records=block.integer(
            "conflict_log_max_records", defaults.CONFLICT_LOG_MAX_RECORDS, 0, 1000
        ),
        conflict_log_images=block.boolean("conflict_log_images", False),
        metrics_flush_seconds=block.integer(
            "metrics_flush_seconds", defaults.METRICS_FLUSH_SECONDS, 0, defaults.METRICS_FLUSH_SECONDS_MAX
        ),
    )


def _log_retention(block: Block) -> int:
    days = block.integer("log_retention_days", defaults.LOG_RETENTION_DAYS, 1, 3653)
    if days not in defaults.LOG_RETENTION_CHOICES:
        choices = ", ".join(str(d) for d in defaults.LOG_RETENTION_CHOICES)
        raise ConfigError(
            f"{block.key('log_retention_days')} = {days} is not a CloudWatch Logs retention. "
            f"Fix: one of {choices}"
        )
    return days


def _backfill(block: Block) -> BackfillSettings:
    settings = BackfillSettings(
        enabled=block.boolean("enabled", defaults.BACKFILL_ENABLED),
        segments=block.integer(
            "segments",
            defaults.BACKFILL_SEGMENTS,
            *defaults.BACKFILL_SEGMENTS_RANGE,
            "the state machine lists segments with States.ArrayRange, at most 1000 items",
        ),
        max_concurrency=block.integer(
            "max_concurrency",
            defaults.BACKFILL_MAX_CONCURRENCY,
            *defaults.BACKFILL_MAX_CONCURRENCY_RANGE,
            "a distributed Map runs at most 10000 child executions at once",
        ),
        page_size=block.integer("page_size", defaults.BACKFILL_PAGE_SIZE, *defaults.BACKFILL_PAGE_SIZE_RANGE),
        items_per_second_per_segment=block.integer(
            "items_per_second_per_segment",
            defaults.BACKFILL_ITEMS_PER_SECOND_PER_SEGMENT,
            0,
            1_000_000,
            "0 means no budget",
        ),
    )
    rate = settings.items_per_second_per_segment
    margin = defaults.BACKFILL_STOP_MARGIN_SECONDS
    if rate and settings.page_size > rate * margin:
        # The function stops taking pages this long before its time limit: a slower page could be cut off.
        raise ConfigError(
            f"{block.key('page_size')} = {settings.page_size} takes longer than {margin} s to write at "
            f"{block.key('items_per_second_per_segment')} = {rate}. Fix: set page_size to at most "
            f"{rate * margin}, or raise items_per_second_per_segment"
        )
    return settings


def _alarms(block: Block, regions: tuple[str, ...]) -> AlarmSettings:
    email = block.string("email", None, EMAIL) if block.get("email") is not None else None
    raw_topics = block.get("topic_arns", {})
    if not isinstance(raw_topics, dict):
        raise ConfigError(
            f"{block.key('topic_arns')} must be an object {{region: topic ARN}}: "
            "alarms can only notify a topic in their own region"
        )
    topics = Block(raw_topics, block.key("topic_arns"), dict.fromkeys(regions, ""))
    topic_arns = {}
    for region in topics.raw:
        arn = topics.string(region, None, TOPIC_ARN)
        match = TOPIC_ARN.match(arn)
        if match is None or match.group("region") != region:
            raise ConfigError(
                f"{topics.key(region)} = {arn!r} is a topic in another region. "
                f"Fix: alarms in {region} can only notify a topic in {region}"
            )
        topic_arns[region] = arn
    return AlarmSettings(
        email=email,
        topic_arns=topic_arns or None,
        iterator_age_seconds=block.integer(
            "iterator_age_seconds", defaults.ITERATOR_AGE_ALARM_SECONDS, 1, 7 * 24 * 3600
        ),
        latency_p99_ms=block.integer(
            "latency_p99_ms", defaults.LATENCY_P99_ALARM_MS, 1, 14 * 24 * 3600 * 1000
        ),
        handoff_age_seconds=block.integer(
            "handoff_age_seconds", defaults.HANDOFF_AGE_ALARM_SECONDS, 60, 14 * 24 * 3600
        ),
        function_errors_max=block.integer(
            "function_errors_max", defaults.FUNCTION_ERRORS_ALARM_MAX, 0, 1_000_000
        ),
    )
