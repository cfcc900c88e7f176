"""Read the synthesized cloud assembly (cdk.out): what each region's stack would deploy.

Only the resources the local runtime simulates are read: DynamoDB tables, SQS queues, S3 buckets,
Lambda functions and their event source mappings, CloudWatch metric alarms (evaluated by
ddbrep/local/alarms.py) and Step Functions state machines (interpreted by ddbrep/local/states.py).
Property names and defaults follow the CloudFormation reference, so a value absent from the template
behaves as it would in AWS. CloudFormation intrinsics (Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select)
are resolved against the local names of the resources once they exist (see ``Resolver``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK_ARTIFACT = "aws:cloudformation:stack"
ASSET_PATH_METADATA = "aws:asset:path"

# CloudFormation defaults of AWS::Lambda::EventSourceMapping and AWS::Lambda::Function.
DEFAULT_STREAM_BATCH_SIZE = 100
DEFAULT_SQS_BATCH_SIZE = 10
DEFAULT_TIMEOUT_SECONDS = 3
DEFAULT_MEMORY_MB = 128
INFINITE = -1


class TemplateError(ValueError):
    """The cloud assembly holds something the local runtime cannot simulate faithfully."""


@dataclass(frozen=True)
class TableSpec:
    logical_id: str
    name: str
    key_schema: tuple[dict[str, str], ...]
    attribute_definitions: tuple[dict[str, str], ...]
    stream_view_type: str | None
    ttl_attribute: str | None
    global_secondary_indexes: tuple[dict[str, Any], ...] = ()
    local_secondary_indexes: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class QueueSpec:
    logical_id: str
    name: str
    visibility_timeout: int = 30
    retention_seconds: int = 345_600
    redrive_target: str | None = None  # logical id of the dead-letter queue
    max_receive_count: int | None = None


@dataclass(frozen=True)
class BucketSpec:
    logical_id: str
    name: str


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    handler: str
    environment: Mapping[str, Any]  # raw template values (may hold intrinsics)
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    memory_mb: int = DEFAULT_MEMORY_MB
    asset_path: str | None = None  # the code directory in the cloud assembly, when CDK recorded it
    log_format: str = "Text"  # LoggingConfig.LogFormat
    system_log_level: str = "INFO"  # LoggingConfig.SystemLogLevel (JSON format only; INFO by default)


@dataclass(frozen=True)
class Destination:
    """An on-failure destination: a queue or bucket of the same stack, or an ARN outside it."""

    kind: str  # "sqs", "s3", "sns" or "unknown"
    logical_id: str | None
    arn: str | None = None


@dataclass(frozen=True)
class StreamMappingSpec:
    """A DynamoDB stream event source mapping (AWS::Lambda::EventSourceMapping on a table stream)."""

    logical_id: str
    function: str  # logical id
    table: str  # logical id
    filters: tuple[dict[str, Any], ...] = ()
    batch_size: int = DEFAULT_STREAM_BATCH_SIZE
    batching_window_seconds: int = 0
    bisect_on_error: bool = False
    max_retry_attempts: int = INFINITE
    max_record_age_seconds: int = INFINITE
    report_batch_item_failures: bool = False
    on_failure: Destination | None = None
    starting_position: str = "TRIM_HORIZON"
    enabled: bool = True


@dataclass(frozen=True)
class QueueMappingSpec:
    """An SQS event source mapping."""

    logical_id: str
    function: str
    queue: str
    filters: tuple[dict[str, Any], ...] = ()
    batch_size: int = DEFAULT_SQS_BATCH_SIZE
    batching_window_seconds: int = 0
    report_batch_item_failures: bool = False
    enabled: bool = True


# AWS::CloudWatch::Alarm: what the local evaluator implements (ddbrep/local/alarms.py).
COMPARISON_OPERATORS = (
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
)
TREAT_MISSING_DATA = ("missing", "notBreaching", "breaching", "ignore")
STATISTICS = ("Sum", "Maximum", "Minimum", "Average", "SampleCount")
_PERCENTILE = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)")


@dataclass(frozen=True)
class MetricStatSpec:
    """The one metric an alarm watches (a ``Metrics`` entry with a ``MetricStat``), as in the template:
    dimension values may hold intrinsics (an event source mapping's UUID is a ``Ref``)."""

    id: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, Any], ...]
    stat: str
    period: int


@dataclass(frozen=True)
class AlarmSpec:
    """An AWS::CloudWatch::Alarm whose every part the local evaluator implements."""

    logical_id: str
    name: str
    description: str
    metric: MetricStatSpec
    threshold: float
    comparison_operator: str
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str = "missing"
    actions_enabled: bool = True
    alarm_actions: tuple[Any, ...] = ()  # raw template values (may hold intrinsics)
    ok_actions: tuple[Any, ...] = ()


@dataclass(frozen=True)
class StateMachineSpec:
    """An AWS::StepFunctions::StateMachine: a Standard state machine and its definition, as in the
    template (``DefinitionString`` may hold intrinsics: a Task's function ARN is a ``Fn::GetAtt``)."""

    logical_id: str
    name: str
    definition: Any


@dataclass(frozen=True)
class StackSpec:
    """One region's stack, as the simulation needs it."""

    name: str
    region: str
    account: str
    resources: Mapping[str, Mapping[str, Any]] = field(repr=False)
    tables: tuple[TableSpec, ...] = ()
    queues: tuple[QueueSpec, ...] = ()
    buckets: tuple[BucketSpec, ...] = ()
    functions: tuple[FunctionSpec, ...] = ()
    stream_mappings: tuple[StreamMappingSpec, ...] = ()
    queue_mappings: tuple[QueueMappingSpec, ...] = ()
    alarms: tuple[AlarmSpec, ...] = ()
    state_machines: tuple[StateMachineSpec, ...] = ()

    def function(self, logical_id: str) -> FunctionSpec:
        return _by_id(self.functions, logical_id, self.name)

    def table(self, logical_id: str) -> TableSpec:
        return _by_id(self.tables, logical_id, self.name)

    def queue(self, logical_id: str) -> QueueSpec:
        return _by_id(self.queues, logical_id, self.name)


@dataclass(frozen=True)
class Assembly:
    """Every stack of a cloud assembly, in manifest order."""

    directory: Path
    stacks: tuple[StackSpec, ...]

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(stack.region for stack in self.stacks))

    def stacks_in(self, region: str) -> tuple[StackSpec, ...]:
        return tuple(stack for stack in self.stacks if stack.region == region)


def update_problems(deployed: Assembly, update: Assembly) -> list[str]:
    """What in ``update`` a running local cloud cannot apply to ``deployed`` (empty: it can).

    The runtime applies what adding a region deploys: new stacks, new resources in existing stacks,
    and changed functions (a configuration update). Removing a stack or a resource, or changing a table,
    queue, bucket or event source mapping that exists, would need CloudFormation's replacement rules.
    """
    problems = []
    stacks = {stack.name: stack for stack in update.stacks}
    for old in deployed.stacks:
        new = stacks.get(old.name)
        if new is None:
            problems.append(f"stack {old.name} is removed")
            continue
        for kind in ("tables", "queues", "buckets", "stream_mappings", "queue_mappings", "state_machines"):
            now = {spec.logical_id: spec for spec in getattr(new, kind)}
            for spec in getattr(old, kind):
                if spec.logical_id not in now:
                    problems.append(f"{old.name}: {spec.logical_id} is removed")
                elif now[spec.logical_id] != spec:
                    problems.append(f"{old.name}: {spec.logical_id} is changed")
        # a running region's TTL sweeper keeps the tables it started with
        if tables_added := {t.logical_id for t in new.tables} - {t.logical_id for t in old.tables}:
            problems.append(f"{old.name}: table(s) {', '.join(sorted(tables_added))} added")
        functions = {spec.logical_id for spec in new.functions}
        problems += [
            f"{old.name}: {spec.logical_id} is removed"
            for spec in old.functions
            if spec.logical_id not in functions
        ]
    return problems


def _by_id(items: Any, logical_id: str, stack: str) -> Any:
    for item in items:
        if item.logical_id == logical_id:
            return item
    raise TemplateError(f"stack {stack} has no resource {logical_id!r} of the expected type")


# --- reading ----------------------------------------------------------------------------------------


def load_assembly(directory: Path | str) -> Assembly:
    """Read manifest.json and every stack template it lists."""
    directory = Path(directory)
    manifest_file = directory / "manifest.json"
    if not manifest_file.exists():
        raise TemplateError(f"{manifest_file} not found: synthesize first (cdk synth -o {directory})")
    manifest = json.loads(manifest_file.read_text())
    stacks = []
    for artifact_id, artifact in manifest.get("artifacts", {}).items():
        if artifact.get("type") != STACK_ARTIFACT:
            continue
        properties = artifact.get("properties", {})
        template = json.loads((directory / properties["templateFile"]).read_text())
        account, region = _environment(artifact.get("environment", ""), artifact_id)
        name = properties.get("stackName") or artifact.get("displayName") or artifact_id
        stacks.append(parse_stack(name, region, account, template))
    if not stacks:
        raise TemplateError(f"{manifest_file} lists no CloudFormation stacks")
    return Assembly(directory=directory, stacks=tuple(stacks))


def _environment(environment: str, artifact_id: str) -> tuple[str, str]:
    match = re.fullmatch(r"aws://([^/]+)/([^/]+)", environment)
    if not match or match.group(2).startswith("unknown"):
        raise TemplateError(
            f"stack {artifact_id} has no explicit region ({environment!r}); the local runtime needs "
            "one region per stack (set env=Environment(account=..., region=...))"
        )
    return match.group(1), match.group(2)


def parse_stack(name: str, region: str, account: str, template: Mapping[str, Any]) -> StackSpec:
    resources: Mapping[str, Mapping[str, Any]] = template.get("Resources", {})
    readers: dict[str, Callable[[str, str, Mapping[str, Any], Mapping[str, Any]], Any]] = {
        "AWS::DynamoDB::Table": _table,
        "AWS::SQS::Queue": _queue,
        "AWS::S3::Bucket": _bucket,
        "AWS::Lambda::Function": _function,
    }
    parsed: dict[str, list[Any]] = {kind: [] for kind in readers}
    stream_mappings: list[StreamMappingSpec] = []
    queue_mappings: list[QueueMappingSpec] = []
    alarms: list[AlarmSpec] = []
    machines: list[StateMachineSpec] = []
    for logical_id, resource in resources.items():
        kind = resource.get("Type", "")
        props = resource.get("Properties", {}) or {}
        if kind in readers:
            parsed[kind].append(readers[kind](name, logical_id, props, resource))
        elif kind == "AWS::Lambda::EventSourceMapping":
            mapping = _event_source_mapping(logical_id, props, resources)
            if isinstance(mapping, StreamMappingSpec):
                stream_mappings.append(mapping)
            elif isinstance(mapping, QueueMappingSpec):
                queue_mappings.append(mapping)
        elif kind == "AWS::CloudWatch::Alarm":
            alarms.append(_alarm(name, logical_id, props))
        elif kind == "AWS::StepFunctions::StateMachine":
            machines.append(_state_machine(name, logical_id, props))
    return StackSpec(
        name=name,
        region=region,
        account=account,
        resources=resources,
        tables=tuple(parsed["AWS::DynamoDB::Table"]),
        queues=tuple(parsed["AWS::SQS::Queue"]),
        buckets=tuple(parsed["AWS::S3::Bucket"]),
        functions=tuple(parsed["AWS::Lambda::Function"]),
        stream_mappings=tuple(stream_mappings),
        queue_mappings=tuple(queue_mappings),
        alarms=tuple(alarms),
        state_machines=tuple(machines),
    )


def generated_name(stack: str, logical_id: str, limit: int, lower: bool = False) -> str:
    """A stable stand-in for the name CloudFormation generates when a template names nothing."""
    name = f"{stack}-{logical_id}"[:limit]
    return name.lower() if lower else name


def _literal(value: Any, what: str) -> Any:
    if isinstance(value, dict):
        raise TemplateError(f"{what} is {json.dumps(value)}; the local runtime needs a literal value")
    return value


def _table(stack: str, logical_id: str, props: Mapping[str, Any], _resource: Mapping[str, Any]) -> TableSpec:
    stream = props.get("StreamSpecification") or {}
    ttl = props.get("TimeToLiveSpecification") or {}
    name = props.get("TableName") or generated_name(stack, logical_id, 255)
    return TableSpec(
        logical_id=logical_id,
        name=_literal(name, f"{logical_id}.TableName"),
        key_schema=tuple(props.get("KeySchema", ())),
        attribute_definitions=tuple(props.get("AttributeDefinitions", ())),
        stream_view_type=stream.get("StreamViewType"),
        ttl_attribute=ttl.get("AttributeName") if ttl.get("Enabled", False) else None,
        global_secondary_indexes=tuple(props.get("GlobalSecondaryIndexes", ())),
        local_secondary_indexes=tuple(props.get("LocalSecondaryIndexes", ())),
    )


def _ref_target(value: Any) -> str | None:
    """The logical id a Ref or Fn::GetAtt points at, if the value is one."""
    if isinstance(value, dict):
        if "Ref" in value:
            return str(value["Ref"])
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return str(target[0] if isinstance(target, list) else str(target).split(".")[0])
    return None


def _queue(stack: str, logical_id: str, props: Mapping[str, Any], _resource: Mapping[str, Any]) -> QueueSpec:
    fifo = bool(props.get("FifoQueue"))
    name = props.get("QueueName") or generated_name(stack, logical_id, 75 if fifo else 80)
    if fifo and not str(name).endswith(".fifo"):
        name = f"{name}.fifo"
    redrive = props.get("RedrivePolicy") or {}
    return QueueSpec(
        logical_id=logical_id,
        name=_literal(name, f"{logical_id}.QueueName"),
        visibility_timeout=int(props.get("VisibilityTimeout", 30)),
        retention_seconds=int(props.get("MessageRetentionPeriod", 345_600)),
        redrive_target=_ref_target(redrive.get("deadLetterTargetArn")),
        max_receive_count=int(redrive["maxReceiveCount"]) if "maxReceiveCount" in redrive else None,
    )


def _bucket(
    stack: str, logical_id: str, props: Mapping[str, Any], _resource: Mapping[str, Any]
) -> BucketSpec:
    name = props.get("BucketName") or generated_name(stack, logical_id, 63, lower=True)
    return BucketSpec(logical_id=logical_id, name=_literal(name, f"{logical_id}.BucketName"))


def _function(
    stack: str, logical_id: str, props: Mapping[str, Any], resource: Mapping[str, Any]
) -> FunctionSpec:
    handler = props.get("Handler")
    if not handler:
        raise TemplateError(f"function {logical_id} has no Handler (container images are not simulated)")
    name = props.get("FunctionName") or generated_name(stack, logical_id, 64)
    logging_config = props.get("LoggingConfig") or {}
    return FunctionSpec(
        logical_id=logical_id,
        name=_literal(name, f"{logical_id}.FunctionName"),
        handler=str(handler),
        environment=dict((props.get("Environment") or {}).get("Variables") or {}),
        timeout_seconds=int(props.get("Timeout", DEFAULT_TIMEOUT_SECONDS)),
        memory_mb=int(props.get("MemorySize", DEFAULT_MEMORY_MB)),
        asset_path=(resource.get("Metadata") or {}).get(ASSET_PATH_METADATA),
        log_format=str(logging_config.get("LogFormat", "Text")),
        system_log_level=str(logging_config.get("SystemLogLevel", "INFO")),
    )


_STATE_MACHINE_PROPERTIES = {
    "DefinitionString",
    "RoleArn",
    "StateMachineName",
    "StateMachineType",
    "LoggingConfiguration",  # logs are not kept locally (docs/LOCAL.md)
    "TracingConfiguration",
    "Tags",
}


def _state_machine(stack: str, logical_id: str, props: Mapping[str, Any]) -> StateMachineSpec:
    """A Standard state machine given by ``DefinitionString``; TemplateError for any other form (an
    Express machine, a definition object, one in S3, substitutions) the runtime does not implement."""
    what = f"state machine {stack}/{logical_id}"
    for key in props:
        if key not in _STATE_MACHINE_PROPERTIES:
            raise TemplateError(f"{what}: {key} is not implemented locally")
    if "DefinitionString" not in props:
        raise TemplateError(f"{what}: no DefinitionString")
    kind = props.get("StateMachineType", "STANDARD")
    if kind != "STANDARD":
        raise TemplateError(f"{what}: StateMachineType {kind} is not implemented locally (STANDARD is)")
    name = props.get("StateMachineName") or generated_name(stack, logical_id, 80)
    return StateMachineSpec(
        logical_id=logical_id,
        name=str(_literal(name, f"{logical_id}.StateMachineName")),
        definition=props["DefinitionString"],
    )


def _filters(props: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    criteria = props.get("FilterCriteria") or {}
    patterns = []
    for item in criteria.get("Filters", ()):
        pattern = item.get("Pattern")
        patterns.append(json.loads(pattern) if isinstance(pattern, str) else dict(pattern))
    return tuple(patterns)


def _destination(props: Mapping[str, Any], resources: Mapping[str, Mapping[str, Any]]) -> Destination | None:
    on_failure = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
    if on_failure is None:
        return None
    logical_id = _ref_target(on_failure)
    if logical_id is not None:
        kind = {"AWS::SQS::Queue": "sqs", "AWS::S3::Bucket": "s3", "AWS::SNS::Topic": "sns"}.get(
            resources.get(logical_id, {}).get("Type", ""), "unknown"
        )
        return Destination(kind=kind, logical_id=logical_id)
    arn = str(on_failure)
    service = arn.split(":")[2] if arn.count(":") >= 2 else "unknown"
    return Destination(
        kind=service if service in ("sqs", "s3", "sns") else "unknown", logical_id=None, arn=arn
    )


def _event_source_mapping(
    logical_id: str, props: Mapping[str, Any], resources: Mapping[str, Mapping[str, Any]]
) -> StreamMappingSpec | QueueMappingSpec | None:
    function = _ref_target(props.get("FunctionName"))
    source = _ref_target(props.get("EventSourceArn"))
    if function is None or source is None:
        raise TemplateError(
            f"event source mapping {logical_id}: FunctionName and EventSourceArn must reference resources "
            "of the same stack (a literal ARN points at something the local runtime does not create)"
        )
    source_type = resources.get(source, {}).get("Type")
    enabled = bool(props.get("Enabled", True))
    batching_window = int(props.get("MaximumBatchingWindowInSeconds", 0))
    report = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or ())
    if source_type == "AWS::DynamoDB::Table":
        return StreamMappingSpec(
            logical_id=logical_id,
            function=function,
            table=source,
            filters=_filters(props),
            batch_size=int(props.get("BatchSize", DEFAULT_STREAM_BATCH_SIZE)),
            batching_window_seconds=batching_window,
            bisect_on_error=bool(props.get("BisectBatchOnFunctionError", False)),
            max_retry_attempts=int(props.get("MaximumRetryAttempts", INFINITE)),
            max_record_age_seconds=int(props.get("MaximumRecordAgeInSeconds", INFINITE)),
            report_batch_item_failures=report,
            on_failure=_destination(props, resources),
            starting_position=str(props.get("StartingPosition", "TRIM_HORIZON")),
            enabled=enabled,
        )
    if source_type == "AWS::SQS::Queue":
        return QueueMappingSpec(
            logical_id=logical_id,
            function=function,
            queue=source,
            filters=_filters(props),
            batch_size=int(props.get("BatchSize", DEFAULT_SQS_BATCH_SIZE)),
            batching_window_seconds=batching_window,
            report_batch_item_failures=report,
            enabled=enabled,
        )
    raise TemplateError(
        f"event source mapping {logical_id}: source {source} ({source_type}) is not simulated"
    )


def _alarm(stack: str, logical_id: str, props: Mapping[str, Any]) -> AlarmSpec:
    """An alarm the local evaluator implements, or TemplateError naming the alarm and what it is not.

    Only the form the shipped app synthesizes (cdk-monitoring-constructs): a ``Metrics`` list holding
    one ``MetricStat`` entry that returns data, a static threshold, one of the four threshold comparison
    operators. A math ``Expression``, a single-metric alarm (``MetricName`` at the top), an anomaly
    detection band or a metric of another account fail here, so that an alarm the runtime cannot
    evaluate is never loaded to stay silent.
    """
    name = str(
        _literal(props.get("AlarmName") or generated_name(stack, logical_id, 255), f"{logical_id}.AlarmName")
    )
    what = f"alarm {name} ({stack}/{logical_id})"
    if "MetricName" in props or "Metrics" not in props:
        raise TemplateError(
            f"{what}: only alarms with a Metrics list are evaluated locally (a single-metric alarm is not)"
        )
    for key in ("ThresholdMetricId", "EvaluateLowSampleCountPercentile", "ExtendedStatistic"):
        if key in props:
            raise TemplateError(f"{what}: {key} is not evaluated locally")
    metrics = list(props["Metrics"])
    if len(metrics) != 1:
        ids = ", ".join(str(m.get("Id")) for m in metrics)
        raise TemplateError(
            f"{what}: {len(metrics)} Metrics entries ({ids}); the local evaluator implements one MetricStat "
            "and no math expression (the shipped templates use none)"
        )
    entry = metrics[0]
    if "Expression" in entry or "MetricStat" not in entry:
        raise TemplateError(
            f"{what}: expression {json.dumps(entry.get('Expression'))} of {entry.get('Id')} is not "
            "implemented by the local evaluator (ddbrep/local/alarms.py)"
        )
    if entry.get("ReturnData") is False:
        raise TemplateError(f"{what}: its only metric {entry.get('Id')} returns no data")
    if "AccountId" in entry:
        raise TemplateError(f"{what}: a metric of another account ({entry['AccountId']}) is not simulated")
    stat_spec = entry["MetricStat"]
    metric = stat_spec.get("Metric") or {}
    stat = str(stat_spec.get("Stat"))
    if stat not in STATISTICS and not _PERCENTILE.fullmatch(stat):
        raise TemplateError(f"{what}: statistic {stat!r} is not evaluated locally")
    comparison = str(props.get("ComparisonOperator"))
    if comparison not in COMPARISON_OPERATORS:
        raise TemplateError(f"{what}: ComparisonOperator {comparison} is not evaluated locally")
    treat = str(props.get("TreatMissingData", "missing"))
    if treat not in TREAT_MISSING_DATA:
        raise TemplateError(
            f"{what}: TreatMissingData {treat!r} is not one of {', '.join(TREAT_MISSING_DATA)}"
        )
    if "Threshold" not in props:
        raise TemplateError(f"{what}: no static Threshold")
    evaluation_periods = int(props["EvaluationPeriods"])
    datapoints = int(props.get("DatapointsToAlarm", evaluation_periods))
    if not 1 <= datapoints <= evaluation_periods:
        raise TemplateError(
            f"{what}: DatapointsToAlarm {datapoints} is not between 1 and EvaluationPeriods "
            f"{evaluation_periods}"
        )
    return AlarmSpec(
        logical_id=logical_id,
        name=name,
        description=str(props.get("AlarmDescription") or ""),
        metric=MetricStatSpec(
            id=str(entry.get("Id")),
            namespace=str(_literal(metric.get("Namespace"), f"{logical_id} Namespace")),
            metric_name=str(_literal(metric.get("MetricName"), f"{logical_id} MetricName")),
            dimensions=tuple((str(d["Name"]), d["Value"]) for d in metric.get("Dimensions") or ()),
            stat=stat,
            period=int(stat_spec["Period"]),
        ),
        threshold=float(props["Threshold"]),
        comparison_operator=comparison,
        evaluation_periods=evaluation_periods,
        datapoints_to_alarm=datapoints,
        treat_missing_data=treat,
        actions_enabled=bool(props.get("ActionsEnabled", True)),
        alarm_actions=tuple(props.get("AlarmActions") or ()),
        ok_actions=tuple(props.get("OKActions") or ()),
    )


# --- resolving intrinsics -------------------------------------------------------------------------------


@dataclass
class Resolver:
    """Resolves CloudFormation intrinsics of one stack to local values.

    ``refs`` maps logical ids to what ``Ref`` returns; ``attributes`` maps (logical id, attribute) to
    what ``Fn::GetAtt`` returns. The runtime fills both once the local resources exist.
    """

    stack: StackSpec
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def pseudo(self, name: str) -> str | None:
        return {
            "AWS::Region": self.stack.region,
            "AWS::AccountId": self.stack.account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": self.stack.name,
            "AWS::NoValue": "",
        }.get(name)

    def ref(self, name: str) -> str:
        value = self.pseudo(name)
        if value is not None:
            return value
        if name in self.refs:
            return self.refs[name]
        raise TemplateError(f"stack {self.stack.name}: cannot resolve Ref {name} locally")

    def get_att(self, logical_id: str, attribute: str) -> str:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        raise TemplateError(
            f"stack {self.stack.name}: cannot resolve Fn::GetAtt {logical_id}.{attribute} locally"
        )

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(str(arg))
        if key == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(str(logical_id), str(attribute))
        if key == "Fn::Join":
            separator, parts = arg
            return str(separator).join(str(self.resolve(p)) for p in self.resolve(parts))
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Sub":
            template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            return self._sub(str(template), {k: self.resolve(v) for k, v in variables.items()})
        if key.startswith("Fn::") or key == "Condition":
            raise TemplateError(f"stack {self.stack.name}: intrinsic {key} is not resolved locally")
        return {key: self.resolve(arg)}

    def _sub(self, template: str, variables: Mapping[str, Any]) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self.get_att(logical_id, attribute)
            return self.ref(name)

        return re.sub(r"\$\{([^}]+)\}", replace, template)

    def environment(self, function: FunctionSpec) -> dict[str, str]:
        """The function's environment variables as plain strings."""
        resolved = {}
        for name, value in function.environment.items():
            value = self.resolve(value)
            resolved[name] = value if isinstance(value, str) else json.dumps(value)
        return resolved
