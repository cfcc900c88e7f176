"""The shape of a created table: keys, secondary indexes, billing, table class and tags.

Every region's created table gets this one definition. DynamoDB checks most of it only at deploy time,
in one region after another; here it is checked before anything is built, each error naming its key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from replicator.core.metadata import AttributeNames
from stacks import defaults
from stacks.config import blocks as schema
from stacks.config.blocks import ATTRIBUTE_NAME, INDEX_NAME, TAG_KEY, TAG_VALUE, Block, ConfigError
from stacks.config.model import (
    AutoScaling,
    Billing,
    ConfigWarning,
    GlobalIndex,
    KeyAttribute,
    LocalIndex,
    OnDemand,
    Projection,
    Provisioned,
    TableShape,
)

GLOBAL_INDEXES = "global_secondary_indexes"
LOCAL_INDEXES = "local_secondary_indexes"
# The keys of the table block that describe a created table; an adopted table's are the user's.
SHAPE_KEYS = (GLOBAL_INDEXES, LOCAL_INDEXES, "billing", "table_class", "tags")


def key_attribute(block: Block, name: str, *, required: bool) -> KeyAttribute | None:
    """A key attribute ``{"name": ..., "type": "S" | "N" | "B"}`` under ``block.name``."""
    if block.get(name) is None:
        if required:
            raise ConfigError(f'{block.key(name)} is required. Fix: e.g. {{"name": "pk", "type": "S"}}')
        return None
    key = block.block(name, schema.KEY_KEYS)
    attribute = key.string("name", None, ATTRIBUTE_NAME)
    kind = key.get("type", "S")
    if kind not in defaults.KEY_TYPES:
        raise ConfigError(
            f"{key.key('type')} = {kind!r} is not a key type. Fix: use S (string), N (number) or B (binary)"
        )
    return KeyAttribute(attribute, kind)


def check_distinct_keys(partition_key: KeyAttribute, sort_key: KeyAttribute | None, sort_path: str) -> None:
    """DynamoDB refuses a key schema naming one attribute twice (at deploy, after other regions went)."""
    if sort_key is not None and sort_key.name == partition_key.name:
        raise ConfigError(
            f"{sort_path}.name = {sort_key.name!r} is also the partition key: a sort key must be another "
            "attribute. Fix: name a different attribute, or remove sort_key"
        )


class _AttributeDefinitions:
    """The one attribute-definition namespace of a table: its keys and every index key share it."""

    def __init__(self, names: AttributeNames) -> None:
        self.names = names
        self.declared: dict[str, tuple[str, str]] = {}  # attribute -> (type, key path)

    def declare(self, key: KeyAttribute, path: str, *, index_key: bool) -> None:
        if index_key:
            self._check_metadata(key, path)
        kind, where = self.declared.setdefault(key.name, (key.type, path))
        if kind != key.type:
            raise ConfigError(
                f"{path}.type = {key.type!r}, but {key.name!r} is declared {kind!r} at {where}: the table "
                f"and its indexes share one set of attribute definitions. Fix: give {key.name!r} one type "
                "everywhere"
            )

    def _check_metadata(self, key: KeyAttribute, path: str) -> None:
        """An index on a metadata attribute must use the type every write gives it, or writes fail."""
        if key.name == self.names.deleted:
            raise ConfigError(
                f"{path}.name = {key.name!r} is the tombstone flag, a BOOL, which cannot be a key. "
                "Fix: index another attribute"
            )
        types = {
            self.names.region: "S",
            self.names.ts: "N",
            self.names.seq: "S",
            self.names.expires: "N",
        }
        expected = types.get(key.name)
        if expected is not None and key.type != expected:
            raise ConfigError(
                f"{path}.type = {key.type!r}, but {key.name!r} is a metadata attribute that every "
                f"replicated write sets as {expected!r}: each write would be refused. "
                f"Fix: type {expected!r}"
            )


def parse_table_shape(
    table: Block,
    partition_key: KeyAttribute,
    sort_key: KeyAttribute | None,
    names: AttributeNames,
    adopted: Sequence[str],
) -> TableShape:
    """The created table's indexes, billing, class and tags (``table`` is ``replication.table``)."""
    check_distinct_keys(partition_key, sort_key, table.key("sort_key"))
    if adopted:
        for name in SHAPE_KEYS:
            if name in table.raw:
                raise ConfigError(
                    f"{table.key(name)} cannot be combined with {table.key('adopt_existing')}: an adopted "
                    "table's indexes, billing, class and tags are its owner's, and the app never changes "
                    f"them. Fix: remove {name} (and set it on the existing table itself), or let the app "
                    "create every region's table"
                )
    definitions = _AttributeDefinitions(names)
    definitions.declare(partition_key, table.key("partition_key"), index_key=False)
    if sort_key is not None:
        definitions.declare(sort_key, table.key("sort_key"), index_key=False)
    index_names: dict[str, str] = {}
    global_indexes = tuple(
        _global_index(block, partition_key, sort_key, definitions, index_names)
        for block in _index_blocks(
            table, GLOBAL_INDEXES, schema.GLOBAL_INDEX_KEYS, "global", defaults.MAX_GLOBAL_SECONDARY_INDEXES
        )
    )
    local_indexes = tuple(
        _local_index(block, partition_key, sort_key, definitions, index_names)
        for block in _index_blocks(
            table, LOCAL_INDEXES, schema.LOCAL_INDEX_KEYS, "local", defaults.MAX_LOCAL_SECONDARY_INDEXES
        )
    )
    every_index: tuple[GlobalIndex | LocalIndex, ...] = (*global_indexes, *local_indexes)
    projected = sum(len(index.projection.non_key_attributes) for index in every_index)
    if projected > defaults.MAX_PROJECTED_ATTRIBUTES:
        raise ConfigError(
            f"{table.key(GLOBAL_INDEXES)} and {LOCAL_INDEXES} project {projected} non-key attributes in "
            f"all, more than DynamoDB's {defaults.MAX_PROJECTED_ATTRIBUTES} per table (an attribute "
            'counts once per index). Fix: project fewer attributes, or "ALL"'
        )
    table_class = table.get("table_class")
    if table_class is not None and table_class not in defaults.TABLE_CLASSES:
        raise ConfigError(
            f"{table.key('table_class')} = {table_class!r} is not a table class. "
            f"Fix: use one of {', '.join(defaults.TABLE_CLASSES)}"
        )
    return TableShape(
        global_indexes=global_indexes,
        local_indexes=local_indexes,
        billing=_billing(table),
        table_class=table_class,
        tags=parse_tags(table, "tags"),
    )


def _index_blocks(
    table: Block, name: str, allowed: Mapping[str, str], kind: str, maximum: int
) -> list[Block]:
    raw = table.get(name, [])
    key = table.key(name)
    if not isinstance(raw, list):
        raise ConfigError(f"{key} must be a JSON list of index objects, got {raw!r}")
    if len(raw) > maximum:
        raise ConfigError(
            f"{key} lists {len(raw)} {kind} secondary indexes, more than DynamoDB's {maximum} per table. "
            f"Fix: at most {maximum}"
        )
    return [Block(item, f"{key}[{i}]", allowed) for i, item in enumerate(raw)]


def _index_name(block: Block, index_names: dict[str, str]) -> str:
    name = block.string("name", None, INDEX_NAME)
    if name in index_names:
        raise ConfigError(
            f"{block.key('name')} = {name!r} is already the name of {index_names[name]}: global and local "
            "secondary indexes share one namespace. Fix: give each index its own name"
        )
    index_names[name] = block.path
    return name


def _global_index(
    block: Block,
    table_partition_key: KeyAttribute,
    table_sort_key: KeyAttribute | None,
    definitions: _AttributeDefinitions,
    index_names: dict[str, str],
) -> GlobalIndex:
    name = _index_name(block, index_names)
    partition_key = key_attribute(block, "partition_key", required=True)
    assert partition_key is not None  # required=True raised otherwise
    sort_key = key_attribute(block, "sort_key", required=False)
    check_distinct_keys(partition_key, sort_key, block.key("sort_key"))
    definitions.declare(partition_key, block.key("partition_key"), index_key=True)
    if sort_key is not None:
        definitions.declare(sort_key, block.key("sort_key"), index_key=True)
    keys = {k.name for k in (table_partition_key, table_sort_key, partition_key, sort_key) if k is not None}
    return GlobalIndex(name, partition_key, sort_key, _projection(block, keys))


def _local_index(
    block: Block,
    table_partition_key: KeyAttribute,
    table_sort_key: KeyAttribute | None,
    definitions: _AttributeDefinitions,
    index_names: dict[str, str],
) -> LocalIndex:
    name = _index_name(block, index_names)
    if table_sort_key is None:
        raise ConfigError(
            f"{block.path} is a local secondary index of a table without a sort key: a local index sorts "
            "the table's partitions by another attribute, so DynamoDB allows one only on a table with a "
            "sort key (and only when the table is created). Fix: make it a global secondary index"
        )
    given = key_attribute(block, "partition_key", required=False)
    if given is not None and given != table_partition_key:
        raise ConfigError(
            f"{block.key('partition_key')} = {given.name!r} ({given.type}) is not the table's partition "
            f"key {table_partition_key.name!r} ({table_partition_key.type}): a local index always keeps "
            "the table's partition key. Fix: remove partition_key, or make it a global secondary index"
        )
    sort_key = key_attribute(block, "sort_key", required=True)
    assert sort_key is not None  # required=True raised otherwise
    check_distinct_keys(table_partition_key, sort_key, block.key("sort_key"))
    definitions.declare(sort_key, block.key("sort_key"), index_key=True)
    keys = {table_partition_key.name, table_sort_key.name, sort_key.name}
    return LocalIndex(name, sort_key, _projection(block, keys))


def _projection(block: Block, key_names: set[str]) -> Projection:
    raw = block.get("projection")
    key = block.key("projection")
    fix = 'Fix: "ALL", "KEYS_ONLY", or a list of the non-key attributes to copy (INCLUDE)'
    if isinstance(raw, str) and raw in defaults.PROJECTION_TYPES:
        return Projection(raw)
    if not isinstance(raw, list):
        what = "is required" if raw is None else f"= {raw!r} is not a projection"
        raise ConfigError(f"{key} {what}. {fix}")
    if not raw:
        raise ConfigError(f"{key} is an empty INCLUDE list: it would copy nothing but the keys. {fix}")
    for i, attribute in enumerate(raw):
        if not isinstance(attribute, str) or not ATTRIBUTE_NAME.match(attribute):
            raise ConfigError(f"{key}[{i}] = {attribute!r} is not an attribute name. {fix}")
    duplicates = sorted({a for a in raw if raw.count(a) > 1})
    if duplicates:
        raise ConfigError(f"{key} lists {duplicates[0]!r} more than once. Fix: name each attribute once")
    keys = sorted(key_names & set(raw))
    if keys:
        raise ConfigError(
            f"{key} lists the key attribute {keys[0]!r}: an index always holds the table's and its own "
            "keys, and an INCLUDE list names non-key attributes only. Fix: remove it from the list"
        )
    return Projection("INCLUDE", tuple(raw))


def _capacity(block: Block, name: str, what: str) -> int:
    return block.integer(name, defaults.CAPACITY_RANGE[0], *defaults.CAPACITY_RANGE, what)


def _billing(table: Block) -> Billing:
    raw = table.get("billing", {})
    key = table.key("billing")
    if not isinstance(raw, dict):
        raise ConfigError(f'{key} must be a JSON object, e.g. {{"mode": "on_demand"}}, got {raw!r}')
    mode = raw.get("mode", defaults.BILLING_ON_DEMAND)
    if mode == defaults.BILLING_ON_DEMAND:
        misplaced = schema.PROVISIONED_KEYS.keys() - schema.ON_DEMAND_KEYS.keys()
        _refuse_keys_of_the_other_mode(raw, key, misplaced, defaults.BILLING_PROVISIONED)
        block = Block(raw, key, schema.ON_DEMAND_KEYS)
        return OnDemand(
            max_read_request_units=_optional_capacity(block, "max_read_request_units"),
            max_write_request_units=_optional_capacity(block, "max_write_request_units"),
        )
    if mode == defaults.BILLING_PROVISIONED:
        misplaced = schema.ON_DEMAND_KEYS.keys() - schema.PROVISIONED_KEYS.keys()
        _refuse_keys_of_the_other_mode(raw, key, misplaced, defaults.BILLING_ON_DEMAND)
        block = Block(raw, key, schema.PROVISIONED_KEYS)
        missing = [n for n in ("read_capacity", "write_capacity") if block.get(n) is None]
        if missing:
            raise ConfigError(
                f"{key} is provisioned without {' and '.join(missing)}. Fix: set read_capacity and "
                'write_capacity (units per second), e.g. {"mode": "provisioned", "read_capacity": 10, '
                '"write_capacity": 30}'
            )
        read = _capacity(block, "read_capacity", "read capacity units")
        write = _capacity(block, "write_capacity", "write capacity units")
        autoscaling = None
        if block.get("autoscaling") is not None:
            autoscaling = _autoscaling(block.block("autoscaling", schema.AUTOSCALING_KEYS), read, write)
        return Provisioned(read_capacity=read, write_capacity=write, autoscaling=autoscaling)
    raise ConfigError(
        f"{key}.mode = {mode!r} is not a billing mode. Fix: use one of {', '.join(defaults.BILLING_MODES)}"
    )


def _refuse_keys_of_the_other_mode(raw: dict[str, Any], key: str, names: Any, mode: str) -> None:
    for name in sorted(names):
        if name in raw:
            raise ConfigError(f'{key}.{name} applies to billing mode "{mode}" only. Fix: remove it')


def _optional_capacity(block: Block, name: str) -> int | None:
    if block.get(name) is None:
        return None
    return _capacity(block, name, "request units per second")


def _autoscaling(block: Block, read: int, write: int) -> AutoScaling:
    maximums = {}
    bases = (("max_read_capacity", "read_capacity", read), ("max_write_capacity", "write_capacity", write))
    for name, base_name, base in bases:
        if block.get(name) is None:
            raise ConfigError(
                f"{block.key(name)} is required: auto scaling ranges from {base_name} up to its maximum. "
                f"Fix: set {name} to at least {base}"
            )
        value = _capacity(block, name, "capacity units")
        if value < base:
            raise ConfigError(
                f"{block.key(name)} = {value} is below {base_name} = {base}: auto scaling ranges from the "
                f"base capacity up to its maximum. Fix: set {name} to at least {base}"
            )
        maximums[name] = value
    target = block.integer(
        "target_utilization",
        defaults.AUTOSCALING_TARGET_UTILIZATION,
        *defaults.AUTOSCALING_TARGET_RANGE,
        "percent of the provisioned capacity that target tracking keeps in use",
    )
    return AutoScaling(
        max_read_capacity=maximums["max_read_capacity"],
        max_write_capacity=maximums["max_write_capacity"],
        target_utilization=target,
    )


def parse_tags(block: Block, name: str) -> dict[str, str]:
    """``{key: value}`` tags, within AWS's tag rules (checked here rather than by a failed deploy)."""
    raw = block.get(name, {})
    key = block.key(name)
    if not isinstance(raw, dict):
        raise ConfigError(f'{key} must be a JSON object {{"tag key": "value"}}, got {raw!r}')
    if len(raw) > defaults.MAX_TAGS:
        raise ConfigError(f"{key} has {len(raw)} tags, more than the {defaults.MAX_TAGS} a resource takes")
    for tag, value in raw.items():
        if not TAG_KEY.match(tag) or tag.lower().startswith("aws:"):
            raise ConfigError(
                f"{key}.{tag} is not a tag key. Fix: 1 to 128 letters, digits, spaces and _ . : / = + - @, "
                "not starting with aws:"
            )
        if not isinstance(value, str) or not TAG_VALUE.match(value):
            raise ConfigError(
                f"{key}.{tag} = {value!r} is not a tag value. Fix: a string of up to 256 letters, digits, "
                "spaces and _ . : / = + - @"
            )
    return dict(raw)


def shape_warnings(
    shape: TableShape,
    table_path: str,
    *,
    topology: str,
    region_count: int,
    partition_key: KeyAttribute,
    sort_key: KeyAttribute | None,
    names: AttributeNames,
) -> tuple[ConfigWarning, ...]:
    """What synthesizes but probably is not meant: printed by ``cdk synth`` as warnings."""
    warnings = []
    billing = shape.billing
    if (
        isinstance(billing, Provisioned)
        and billing.autoscaling is None
        and topology == "mesh"
        and region_count >= defaults.CAPACITY_WARNING_MIN_REGIONS
    ):
        warnings.append(
            ConfigWarning(
                "ProvisionedWriteCapacity",
                f"{table_path}.billing: provisioned write_capacity = {billing.write_capacity} without "
                f"auto scaling in a mesh of {region_count} regions. Every region's table takes the writes "
                f"of all {region_count} regions (its own, and a replicated copy of every other region's), so "
                "write_capacity must cover their sum, or replicated writes are throttled, retried and "
                "handed off. Fix: add billing.autoscaling, or size write_capacity for the whole mesh's "
                "writes (docs/CONFIGURATION.md, billing)",
            )
        )
    # A tombstone holds the table's keys and the metadata only: an index keyed on nothing else holds it too.
    tombstone_attributes = {partition_key.name, names.region, names.ts, names.seq, names.expires}
    if sort_key is not None:
        tombstone_attributes.add(sort_key.name)
    indexes: list[tuple[str, GlobalIndex | LocalIndex, set[str]]] = [
        (f"{table_path}.{GLOBAL_INDEXES}[{i}]", index, _key_names(index.partition_key, index.sort_key))
        for i, index in enumerate(shape.global_indexes)
    ]
    indexes += [
        (f"{table_path}.{LOCAL_INDEXES}[{i}]", index, _key_names(partition_key, index.sort_key))
        for i, index in enumerate(shape.local_indexes)
    ]
    for path, index, keys in indexes:
        projection = index.projection
        flagged = projection.type == "ALL" or names.deleted in projection.non_key_attributes
        if keys <= tombstone_attributes and not flagged:
            warnings.append(
                ConfigWarning(
                    f"TombstonesInIndex-{index.name}",
                    f"{path}: every key attribute of index {index.name!r} is one a tombstone (a replicated "
                    "delete: the table's keys and the metadata) carries, so deleted items appear in it, and "
                    f"its projection does not hold {names.deleted!r}: readers cannot tell them from live "
                    f'items. Fix: project "ALL" or include {names.deleted!r} in the projection list (the '
                    "client helper's query then leaves tombstones out)",
                )
            )
    return tuple(warnings)


def _key_names(partition_key: KeyAttribute, sort_key: KeyAttribute | None) -> set[str]:
    return {k.name for k in (partition_key, sort_key) if k is not None}
