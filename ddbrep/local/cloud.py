"""The local cloud: simulated regions running what the synthesized templates would deploy.

``LocalCloud(assembly, options)`` starts one moto server per region, a gateway per region and a
latency/fault proxy per region pair, creates every bucket, queue and table of every stack, starts a
sandbox per function, and runs the event source mappings (stream and SQS stand-ins) and a TTL sweeper
per region, evaluates the stacks' CloudWatch alarms (ddbrep/local/alarms.py) and runs their state
machines (``cloud.states``, ddbrep/local/states.py: the deployed backfill job). Used as a context
manager, it stops everything it started, by PID, on exit, Ctrl-C or a failing test.
``deploy(assembly)`` applies a newer synthesis of the app to the running cloud, as ``cdk deploy --all``
updates the stacks (a region added to cdk.json).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ddbrep.local import alarms as local_alarms
from ddbrep.local import metric_store
from ddbrep.local import state as local_state
from ddbrep.local import states as local_states
from ddbrep.local.control import ControlWatcher
from ddbrep.local.faults import DEFAULT_LATENCY_MS, CredentialLedger, FaultPlan, Proxy
from ddbrep.local.limits import SQS_MESSAGE_BYTES_STRICT
from ddbrep.local.mapping import (
    FailureDestination,
    S3Destination,
    SqsDestination,
    StreamPoller,
    StreamSource,
    mapping_uuid,
)
from ddbrep.local.regions import DUMMY_CREDENTIALS, Region, start_region, stop_regions
from ddbrep.local.resilience import ErrorListener, LoopStats
from ddbrep.local.sqs_source import QueuePoller, QueueSource
from ddbrep.local.streams import Record
from ddbrep.local.templates import (
    Assembly,
    FunctionSpec,
    QueueSpec,
    Resolver,
    StackSpec,
    TableSpec,
    TemplateError,
    generated_name,
    update_problems,
)
from ddbrep.local.ttl import DEFAULT_SWEEP_INTERVAL_SECONDS, TtlSweeper, TtlTable
from ddbrep.local.worker import FunctionConfig, FunctionPool, FunctionWorker, Invocation

REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDA_ROOT = REPO_ROOT / "lambda"
_AWS_QUEUE_URL = re.compile(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com/(\d{12})/([A-Za-z0-9_.-]+)")

Step = Callable[[str], None]


@dataclass
class RuntimeOptions:
    """Knobs of the simulation (not of the deployment: those come from the templates)."""

    latency_ms: float = DEFAULT_LATENCY_MS  # added to every cross-region request
    poll_interval: float = 0.25  # stream poll interval when a shard has nothing new (Lambda: ~4/s)
    ttl_sweep_interval: float = DEFAULT_SWEEP_INTERVAL_SECONDS
    whole_second_timestamps: bool = True  # ApproximateCreationDateTime as AWS reports it
    # False: deliver every record as if the mappings had no FilterCriteria (to measure what filters save)
    apply_filters: bool = True
    # Local time compression: the template's handoff visibility timeout (6 min) and the drain's own
    # backoff (ChangeMessageVisibility, up to 30 min) delay a replay. Tests and the demo cap both, at
    # the queue and in each region's gateway, so that a recovery is seen in seconds. None: as deployed.
    max_visibility_timeout: int | None = None
    # Local time compression: assumed-role credentials expire this many seconds after AssumeRole
    # hands them out (AWS: 1 h by default), and every region refuses them afterwards. None: 1 h.
    sts_session_seconds: float | None = None
    log_dir: Path | None = None
    seed: int | None = None
    warm_functions: bool = (
        True  # start the stream functions' sandboxes up front (no cold start on first write)
    )
    # SQS message size the gateways accept: 256 KiB, the strictest tooling (and AWS until 2025);
    # limits.SQS_MESSAGE_BYTES_AWS (1 MiB) for what AWS accepts since 2025.
    sqs_max_message_bytes: int = SQS_MESSAGE_BYTES_STRICT
    # Local time compression: every alarm's metric period (AWS: the template's, 300 s) becomes this many
    # seconds, so that "2 of 3 periods" is seconds long. None: as deployed.
    alarm_period_seconds: float | None = None
    # How often every alarm is evaluated (CloudWatch: every minute). None: every minute, or every alarm
    # period when alarm_period_seconds is shorter.
    alarm_interval_seconds: float | None = None
    # Local time compression: every Retry wait of the state machines (the backfill job: 30 s, doubling,
    # 6 times) is at most this many seconds, so that a segment exhausts its retries in seconds. None: as
    # deployed.
    max_retry_interval: float | None = None
    # Local time compression: a stream mapping waits at most this many seconds between retries of a
    # failing batch (mapping.RETRY_BACKOFF_SECONDS: 0.25 s doubling to 4 s; 10 retries take 28 s). None:
    # that series.
    max_stream_retry_backoff: float | None = None


@dataclass
class LocalFunction:
    """A function of a stack, as it runs locally."""

    stack: StackSpec
    spec: FunctionSpec
    worker: FunctionWorker


@dataclass
class RegionState:
    region: Region
    stacks: list[StackSpec] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)  # table name -> stream ARN
    buckets: set[str] = field(default_factory=set)
    queue_urls: dict[str, str] = field(default_factory=dict)  # queue name -> URL


def _all_at_once(stop: Callable[[Any], None], things: Iterable[Any]) -> None:
    """``stop(thing)`` for each of ``things`` in threads of its own; returns when all have returned."""
    things = list(things)
    if things:
        with ThreadPoolExecutor(max_workers=len(things)) as pool:
            list(pool.map(stop, things))


def _stop_quietly(proxy: Proxy) -> None:
    with contextlib.suppress(Exception):
        proxy.stop()


class LocalCloud:
    """Several simulated regions on loopback, running the deployment the assembly describes."""

    def __init__(
        self,
        assembly: Assembly,
        options: RuntimeOptions | None = None,
        *,
        on_error: ErrorListener | None = None,
    ) -> None:
        """``on_error(thread name, its stats)`` is called whenever a stand-in thread fails (it then
        backs off and carries on); ``local up`` prints a line."""
        self.assembly = assembly
        self.options = options or RuntimeOptions()
        self.on_error = on_error
        self.region_names = list(assembly.regions)
        self.faults = FaultPlan(self.region_names, self.options.latency_ms, seed=self.options.seed)
        self.metrics = metric_store.MetricsStore(self.options.log_dir)
        self.regions: dict[str, RegionState] = {}
        self.gateways: dict[str, Proxy] = {}
        # Per region: the assumed-role credentials it issued; every proxy in front of it enforces them.
        self.credentials = {r: CredentialLedger(self.options.sts_session_seconds) for r in self.region_names}
        self.links: dict[tuple[str, str], Proxy] = {}
        self.functions: dict[tuple[str, str], LocalFunction] = {}
        self.stream_pollers: list[StreamPoller] = []
        self.queue_pollers: list[QueuePoller] = []
        self.sweepers: dict[str, TtlSweeper] = {}
        self._mappings: set[tuple[str, str]] = set()  # (stack, logical id) of the running mappings
        self._resolvers: dict[str, Resolver] = {}
        self.alarm_evaluator: local_alarms.AlarmEvaluator | None = None
        self._alarm_index: dict[tuple[str, str, str], list[metric_store.Sample]] = {}
        self._alarm_clients: dict[tuple[str, str], Any] = {}  # (region, "sqs" | "sns") -> the evaluator's
        self._started = False
        self._lock = threading.Lock()
        self._deploy_lock = threading.Lock()
        self.control: ControlWatcher | None = None
        # The stacks' state machines (their definitions are loaded once the functions run)
        self.states: local_states.StepFunctions = local_states.StepFunctions(
            {}, self._invoke_task, max_retry_interval=self.options.max_retry_interval
        )
        self._pools: dict[tuple[str, str], FunctionPool] = {}  # (region, function name): Task invocations
        self._pools_lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self, step: Step | None = None) -> LocalCloud:
        report = step or (lambda _message: None)
        atexit.register(self.stop)
        try:
            report(f"starting {len(self.region_names)} regions")
            self._start_regions(self.region_names)
            self._apply(report)
            if self.options.log_dir is not None:  # `local fault` (ddbrep/local/control.py)
                self.control = ControlWatcher(self, self.options.log_dir).start()
            self._started = True
        except BaseException:
            self.stop()
            raise
        return self

    def deploy(self, assembly: Assembly, step: Step | None = None) -> list[str]:
        """Apply ``assembly`` (a newer synthesis of the same app) to the running cloud, as
        ``cdk deploy --all`` updates the stacks; what changed, one line each.

        New stacks start as at ``start`` (their region's server, gateway and links to and from every
        region at the run's latency, resources, functions, mappings); existing stacks get their added
        resources, functions and mappings, and every function whose configuration changed (REP_TARGETS,
        the new region's endpoint in REP_ENDPOINT_URLS, ...) is updated as Lambda updates one: the
        invocation in flight ends with the old environment, the next starts a sandbox with the new.
        TemplateError, before anything changes, for what the runtime cannot apply (removals, changes).
        """
        report = step or (lambda _message: None)
        with self._deploy_lock:
            if not self._started:
                raise RuntimeError("deploy() applies an assembly to a running cloud: start() it first")
            problems = update_problems(self.assembly, assembly)
            if problems:
                raise TemplateError(
                    "the local runtime applies new regions, new resources and changed functions only; "
                    f"restart it (local up) to deploy this assembly: {'; '.join(problems)}"
                )
            added = [name for name in assembly.regions if name not in self.regions]
            self.assembly = assembly
            if added:
                report(f"starting {len(added)} new region(s): {', '.join(added)}")
                for name in added:
                    self.faults.add_region(name, self.options.latency_ms)
                    self.credentials[name] = CredentialLedger(self.options.sts_session_seconds)
                self._start_regions(added)
                self.region_names = [*self.region_names, *added]
            updated = self._apply(report)
        return [f"region {name} deployed (endpoint {self.region(name).endpoint_url})" for name in added] + [
            f"function {name} updated" for name in updated
        ]

    def _apply(self, report: Step) -> list[str]:
        """Bring every region up to ``self.assembly``, creating only what does not run yet; the names
        of the existing functions whose configuration changed."""
        for name, state in self.regions.items():
            state.stacks = list(self.assembly.stacks_in(name))
        report("starting gateways and cross-region links")
        self._start_network()
        report("creating tables, queues and buckets from the templates")
        for state in self.regions.values():
            for stack in state.stacks:
                self._create_resources(state, stack)
        report("starting functions")
        updated = self._start_functions()
        report("loading state machines")
        self._start_state_machines()
        report("starting event source mappings and TTL sweepers")
        self._start_mappings()
        report("starting the alarm evaluator")
        self._start_alarms()
        if self.options.log_dir is not None:
            local_state.write_endpoints(
                self.options.log_dir, {name: self.region(name).endpoint_url for name in self.region_names}
            )
        return updated

    def stop(self) -> None:
        """Stop everything this runtime started (idempotent)."""
        with self._lock:
            if self.control is not None:
                self.control.stop()
                self.control = None
            if self.alarm_evaluator is not None:
                self.alarm_evaluator.stop()
                self.alarm_evaluator = None
            self.states.interpreter.stop()  # running executions are aborted...
            for pool in self._pools.values():
                pool.terminate()  # ...their invocations in flight end now...
            self.states.stop()  # ...and their threads finish
            for pool in self._pools.values():
                pool.stop()
            self._pools = {}
            pollers: list[Any] = [*self.stream_pollers, *self.queue_pollers]
            self.stream_pollers, self.queue_pollers = [], []
            self._mappings = set()
            for poller in pollers:
                poller._stop.set()
            for poller in pollers:
                poller.stop()
            for sweeper in self.sweepers.values():
                sweeper.stop()
            self.sweepers = {}
            # A sandbox takes up to half a second to exit and a proxy up to its poll interval: all at once
            _all_at_once(lambda function: function.worker.stop(), self.functions.values())
            self.functions = {}
            _all_at_once(_stop_quietly, [*self.links.values(), *self.gateways.values()])
            self.links, self.gateways = {}, {}
            stop_regions([state.region for state in self.regions.values()])
            self.regions = {}
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def _start_regions(self, names: Sequence[str]) -> None:
        log_dir = self.options.log_dir
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        accounts = {stack.region: stack.account for stack in self.assembly.stacks}
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            futures = {
                name: pool.submit(start_region, name, log_dir, account_id=accounts[name]) for name in names
            }
            errors = []
            for name, future in futures.items():
                try:
                    self.regions[name] = RegionState(region=future.result())
                except Exception as err:
                    errors.append(err)
            if errors:
                raise errors[0]

    def _start_network(self) -> None:
        """A gateway per region and a link per region pair, for those that do not run yet."""
        for name, state in self.regions.items():
            if name in self.gateways:
                continue
            gateway = Proxy(
                state.region.engine_url,
                plan=self.faults,  # its STS refuses the roles the plan denies
                sqs_max_message_bytes=self.options.sqs_max_message_bytes,
                credentials=self.credentials[name],
                max_visibility_timeout=self.options.max_visibility_timeout,
            ).start()
            self.gateways[name] = gateway
            state.region.endpoint_url = gateway.url
        for source in self.region_names:
            for target in self.region_names:
                if source == target or (source, target) in self.links:
                    continue
                link = self.faults.link(source, target)
                self.links[(source, target)] = Proxy(
                    self.regions[target].region.engine_url,
                    link,
                    self.faults,
                    sqs_max_message_bytes=self.options.sqs_max_message_bytes,
                    credentials=self.credentials[target],
                ).start()

    def endpoint_urls_from(self, source: str) -> dict[str, str]:
        """REP_ENDPOINT_URLS of a function in ``source``: its own gateway, a link proxy per other region."""
        return {
            target: (self.gateways[target].url if target == source else self.links[(source, target)].url)
            for target in self.region_names
        }

    # --- resources ----------------------------------------------------------------------------------

    def _create_resources(self, state: RegionState, stack: StackSpec) -> None:
        """Create the stack's buckets, queues and tables that do not exist yet; resolve all of them."""
        region = state.region
        resolver = Resolver(stack)
        self._resolvers[stack.name] = resolver
        s3 = region.client("s3")
        for bucket in stack.buckets:
            if bucket.name not in state.buckets:
                kwargs: dict[str, Any] = {"Bucket": bucket.name}
                if stack.region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": stack.region}
                s3.create_bucket(**kwargs)
                state.buckets.add(bucket.name)
            resolver.refs[bucket.logical_id] = bucket.name
            resolver.attributes[(bucket.logical_id, "Arn")] = f"arn:aws:s3:::{bucket.name}"
            resolver.attributes[(bucket.logical_id, "DomainName")] = f"{bucket.name}.s3.amazonaws.com"
        for queue in _dead_letter_queues_first(stack.queues):
            url = state.queue_urls.get(queue.name) or self._create_queue(state, stack, queue, resolver)
            resolver.refs[queue.logical_id] = url
            resolver.attributes[(queue.logical_id, "QueueUrl")] = url
            resolver.attributes[(queue.logical_id, "QueueName")] = queue.name
            resolver.attributes[(queue.logical_id, "Arn")] = self._queue_arn(stack, queue.name)
        for table in stack.tables:
            if table.name not in state.tables:
                state.tables[table.name] = self._create_table(region, table)
            stream_arn = state.tables[table.name]
            resolver.refs[table.logical_id] = table.name
            resolver.attributes[(table.logical_id, "Arn")] = (
                f"arn:aws:dynamodb:{stack.region}:{stack.account}:table/{table.name}"
            )
            resolver.attributes[(table.logical_id, "StreamArn")] = stream_arn
        mapping_ids = [m.logical_id for m in stack.stream_mappings] + [
            m.logical_id for m in stack.queue_mappings
        ]
        for mapping_id in mapping_ids:  # Ref: the mapping's UUID
            resolver.refs[mapping_id] = mapping_uuid(stack.region, stack.account, mapping_id)
        for logical_id, resource in stack.resources.items():  # Ref: the topic's ARN (not created locally)
            if resource.get("Type") == "AWS::SNS::Topic":
                topic = (resource.get("Properties") or {}).get("TopicName") or generated_name(
                    stack.name, logical_id, 256
                )
                resolver.refs[logical_id] = f"arn:aws:sns:{stack.region}:{stack.account}:{topic}"
        for machine in stack.state_machines:  # Ref: the state machine's ARN
            arn = self.state_machine_arn(stack, machine.name)
            resolver.refs[machine.logical_id] = arn
            resolver.attributes[(machine.logical_id, "Arn")] = arn
            resolver.attributes[(machine.logical_id, "Name")] = machine.name
        for function in stack.functions:
            resolver.refs[function.logical_id] = function.name
            resolver.attributes[(function.logical_id, "Arn")] = (
                f"arn:aws:lambda:{stack.region}:{stack.account}:function:{function.name}"
            )
        for logical_id, resource in stack.resources.items():  # anything else an environment may name
            resolver.refs.setdefault(logical_id, logical_id)
            kind = (
                str(resource.get("Type", "")).split("::")[1].lower()
                if "::" in str(resource.get("Type"))
                else "x"
            )
            resolver.attributes.setdefault(
                (logical_id, "Arn"), f"arn:aws:{kind}:{stack.region}:{stack.account}:{logical_id}"
            )

    @staticmethod
    def state_machine_arn(stack: StackSpec, name: str) -> str:
        return f"arn:aws:states:{stack.region}:{stack.account}:stateMachine:{name}"

    @staticmethod
    def _queue_arn(stack: StackSpec, name: str) -> str:
        return f"arn:aws:sqs:{stack.region}:{stack.account}:{name}"

    def _create_queue(
        self, state: RegionState, stack: StackSpec, queue: QueueSpec, resolver: Resolver
    ) -> str:
        visibility = queue.visibility_timeout
        if self.options.max_visibility_timeout is not None:
            visibility = min(visibility, self.options.max_visibility_timeout)
        attributes = {
            "VisibilityTimeout": str(visibility),
            "MessageRetentionPeriod": str(queue.retention_seconds),
        }
        if queue.name.endswith(".fifo"):
            attributes["FifoQueue"] = "true"
        if queue.redrive_target is not None and queue.max_receive_count is not None:
            target = stack.queue(queue.redrive_target)
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": self._queue_arn(stack, target.name),
                    "maxReceiveCount": queue.max_receive_count,
                }
            )
        url = str(
            state.region.client("sqs").create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
        )
        state.queue_urls[queue.name] = url
        return url

    @staticmethod
    def _create_table(region: Region, table: TableSpec) -> str:
        client = region.client("dynamodb")
        kwargs: dict[str, Any] = {
            "TableName": table.name,
            "KeySchema": list(table.key_schema),
            "AttributeDefinitions": list(table.attribute_definitions),
            "BillingMode": "PAY_PER_REQUEST",
        }
        if table.stream_view_type:
            kwargs["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream_view_type}
        if table.global_secondary_indexes:
            kwargs["GlobalSecondaryIndexes"] = [
                {k: v for k, v in index.items() if k in ("IndexName", "KeySchema", "Projection")}
                for index in table.global_secondary_indexes
            ]
        if table.local_secondary_indexes:
            kwargs["LocalSecondaryIndexes"] = list(table.local_secondary_indexes)
        description = client.create_table(**kwargs)["TableDescription"]
        if table.ttl_attribute:
            client.update_time_to_live(
                TableName=table.name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
            )
        return str(description.get("LatestStreamArn", ""))

    # --- functions and mappings ------------------------------------------------------------------------

    def _function_config(self, stack: StackSpec, spec: FunctionSpec) -> FunctionConfig:
        resolver = self._resolvers[stack.name]
        env = {name: self._localize(value) for name, value in resolver.environment(spec).items()}
        env["REP_ENDPOINT_URLS"] = json.dumps(self.endpoint_urls_from(stack.region))
        env.update(DUMMY_CREDENTIALS)
        code = LAMBDA_ROOT
        if spec.asset_path:
            asset = self.assembly.directory / spec.asset_path
            if asset.is_dir():
                code = asset
        return FunctionConfig(
            name=spec.name,
            region=stack.region,
            handler=spec.handler,
            environment=env,
            code_paths=[str(code)],
            timeout_seconds=float(spec.timeout_seconds),
            memory_mb=spec.memory_mb,
            account=stack.account,
            log_format=spec.log_format,
            system_log_level=spec.system_log_level,
        )

    def _localize(self, value: str) -> str:
        """Rewrite AWS SQS queue URLs in a value to the local queue URLs of the same region."""

        def replace(match: re.Match[str]) -> str:
            region, _account, name = match.groups()
            state = self.regions.get(region)
            if state is None or name not in state.queue_urls:
                return match.group(0)
            return state.queue_urls[name]

        return _AWS_QUEUE_URL.sub(replace, value)

    def _start_functions(self) -> list[str]:
        """A worker per new function; existing ones whose configuration changed are updated (their
        names are returned). Warms the stream functions' sandboxes that do not run."""
        updated = []
        for state in self.regions.values():
            for stack in state.stacks:
                for spec in stack.functions:
                    config = self._function_config(stack, spec)
                    if self.options.log_dir is not None:  # for redrive --local-state (ddbrep/local/state)
                        local_state.write_function_config(
                            self.options.log_dir, stack.region, spec.name, config.environment
                        )
                    key = (stack.region, spec.logical_id)
                    existing = self.functions.get(key)
                    if existing is None:
                        worker = FunctionWorker(config, on_output=self.metrics.on_output)
                    else:
                        worker = existing.worker
                        if worker.config != config:
                            worker.reconfigure(config)
                            updated.append(f"{spec.name} ({stack.region})")
                    self.functions[key] = LocalFunction(stack, spec, worker)
        if self.options.warm_functions:
            stream_functions = {
                (stack.region, mapping.function)
                for stack in self.assembly.stacks
                for mapping in stack.stream_mappings
                if mapping.enabled
            }
            workers = [self.functions[key].worker for key in stream_functions]
            with ThreadPoolExecutor(max_workers=max(1, len(workers))) as pool:
                list(pool.map(lambda w: w.start(), workers))
        return updated

    # --- state machines ------------------------------------------------------------------------------

    def _start_state_machines(self) -> None:
        """Load every state machine that is not loaded yet: its definition resolved like any template
        value, then checked by the interpreter (DefinitionError, a TemplateError, for what it does not
        implement); each Task's function must be one the runtime runs in the machine's region."""
        for stack in self.assembly.stacks:
            for spec in stack.state_machines:
                arn = self.state_machine_arn(stack, spec.name)
                if arn in self.states.machines:
                    continue
                text = self._resolvers[stack.name].resolve(spec.definition)
                workflow = local_states.load_definition(text, f"state machine {spec.name} ({stack.name})")
                running = {(f.stack.region, f.spec.name) for f in self.functions.values()}
                for resource in workflow.resources():
                    region, account, name = local_states.function_of(resource)
                    if account != stack.account or (region, name) not in running:
                        raise TemplateError(
                            f"state machine {spec.name} ({stack.name}): its Task invokes {resource}, "
                            "which is not a function of the local cloud"
                        )
                self.states.add(arn, workflow)

    def state_machines_in(self, region: str) -> list[str]:
        """The ARNs of the state machines of ``region``."""
        return sorted(arn for arn in self.states.machines if arn.split(":")[3] == region)

    def task_sandboxes(self, region: str, function: str) -> int:
        """How many sandboxes the state machines' Tasks have used for ``function`` (one per concurrent
        invocation, as Lambda runs them; 0: never invoked by a Task)."""
        with self._pools_lock:
            pool = self._pools.get((region, function))
            return 0 if pool is None else pool.size

    def _invoke_task(self, resource: str, payload: Any) -> Any:
        """A Task's invocation of a function (Lambda's synchronous Invoke): its result, or StatesError
        for a function error. Concurrent invocations (a Map's children) run in sandboxes of their own."""
        region, _account, name = local_states.function_of(resource)
        with self._pools_lock:
            pool = self._pools.get((region, name))
            if pool is None:
                function = next(
                    f for (r, _), f in self.functions.items() if r == region and f.spec.name == name
                )
                pool = self._pools[(region, name)] = FunctionPool(function.worker, self.metrics.on_output)
        invocation = pool.invoke(payload)
        self._add_invocation(name, region, invocation, time.time())
        if not invocation.ok:
            raise local_states.function_error(invocation.payload)
        return invocation.payload

    def _destination(self, stack: StackSpec, spec: Any) -> FailureDestination | None:
        destination = spec.on_failure
        if destination is None or destination.logical_id is None:
            return None
        region = self.regions[stack.region].region
        resolver = self._resolvers[stack.name]
        if destination.kind == "sqs":
            return SqsDestination(region.new_client("sqs"), resolver.refs[destination.logical_id])
        if destination.kind == "s3":
            return S3Destination(
                region.new_client("s3"), resolver.refs[destination.logical_id], resolver.refs[spec.logical_id]
            )
        return None

    def _start_mappings(self) -> None:
        """Start the mappings and TTL sweepers that do not run yet."""
        started_stream, started_queue = len(self.stream_pollers), len(self.queue_pollers)
        new_sweepers = []
        for name, state in self.regions.items():
            if name in self.sweepers:
                sweeper = self.sweepers[name]
            else:
                sweeper = self._sweeper(name, state)
                new_sweepers.append(sweeper)
            for stack in state.stacks:
                self._add_pollers(name, state, stack, sweeper)
        for stream_poller in self.stream_pollers[started_stream:]:
            stream_poller.start()
        for queue_poller in self.queue_pollers[started_queue:]:
            queue_poller.start()
        for sweeper in new_sweepers:
            if sweeper.tables:
                sweeper.start()

    def _sweeper(self, name: str, state: RegionState) -> TtlSweeper:
        ttl_tables = [
            TtlTable(table.name, table.ttl_attribute, tuple(k["AttributeName"] for k in table.key_schema))
            for stack in state.stacks
            for table in stack.tables
            if table.ttl_attribute
        ]
        sweeper = TtlSweeper(
            state.region.new_client("dynamodb"),
            ttl_tables,
            self.options.ttl_sweep_interval,
            name=f"TTL sweeper {name}",
            on_error=self.on_error,
        )
        self.sweepers[name] = sweeper
        return sweeper

    def _add_pollers(self, name: str, state: RegionState, stack: StackSpec, sweeper: TtlSweeper) -> None:
        """A poller (not started) for each enabled mapping of ``stack`` that has none yet."""
        for mapping in stack.stream_mappings:
            if not mapping.enabled or (stack.name, mapping.logical_id) in self._mappings:
                continue
            self._mappings.add((stack.name, mapping.logical_id))
            table = stack.table(mapping.table)
            function = self.functions[(stack.region, mapping.function)]
            self.stream_pollers.append(
                StreamPoller(
                    mapping if self.options.apply_filters else dataclasses.replace(mapping, filters=()),
                    StreamSource(
                        name,
                        table.name,
                        state.tables[table.name],
                        state.region.new_client("dynamodbstreams"),
                    ),
                    function.worker,
                    destination=self._destination(stack, mapping),
                    observer=self,
                    ttl=sweeper,
                    poll_interval=self.options.poll_interval,
                    max_retry_backoff=self.options.max_stream_retry_backoff,
                    whole_second_timestamps=self.options.whole_second_timestamps,
                    on_error=self.on_error,
                    mapping_id=self._resolvers[stack.name].refs[mapping.logical_id],
                )
            )
        for queue_mapping in stack.queue_mappings:
            if not queue_mapping.enabled or (stack.name, queue_mapping.logical_id) in self._mappings:
                continue
            self._mappings.add((stack.name, queue_mapping.logical_id))
            queue = stack.queue(queue_mapping.queue)
            function = self.functions[(stack.region, queue_mapping.function)]
            self.queue_pollers.append(
                QueuePoller(
                    queue_mapping,
                    QueueSource(
                        name,
                        state.queue_urls[queue.name],
                        self._queue_arn(stack, queue.name),
                        state.region.new_client("sqs"),
                    ),
                    function.worker,
                    observer=self,
                    poll_interval=self.options.poll_interval,
                    on_error=self.on_error,
                )
            )

    # --- observer hooks (called by the pollers) --------------------------------------------------------

    def on_batch(self, poller: StreamPoller, batch: Sequence[Record], invocation: Invocation) -> None:
        now = time.time()
        function = poller.function.config.name
        region = poller.source.region
        self.metrics.add(
            metric_store.ITERATOR_AGE,
            (now - batch[-1].created_at) * 1000,
            now,
            namespace=metric_store.LAMBDA_NAMESPACE,
            region=region,
            FunctionName=function,
            Region=region,
        )
        self._add_invocation(function, region, invocation, now)
        echoes = sum(
            sample.value
            for line in invocation.output
            for sample in metric_store.parse_emf(line)
            if sample.name == "EchoSkipped"
        )
        if echoes:
            self.metrics.add(metric_store.ECHO_INVOCATIONS, 1, now, FunctionName=function, Region=region)

    def on_queue_batch(
        self, poller: QueuePoller, records: Sequence[Mapping[str, Any]], invocation: Invocation
    ) -> None:
        self._add_invocation(poller.function.config.name, poller.source.region, invocation, time.time())

    def _add_invocation(self, function: str, region: str, invocation: Invocation, now: float) -> None:
        """Lambda's Invocations and Errors (1 for a function error, else 0) of one invocation."""
        for name, value in ((metric_store.INVOCATIONS, 1), (metric_store.ERRORS, 0 if invocation.ok else 1)):
            self.metrics.add(
                name,
                value,
                now,
                namespace=metric_store.LAMBDA_NAMESPACE,
                region=region,
                FunctionName=function,
                Region=region,
            )

    def on_discard(self, poller: StreamPoller, records: int, *, delivered: bool) -> None:
        """A stream batch given up on: its records described to the on-failure destination, or dropped."""
        name = local_alarms.DISCARDED_TO_DESTINATION if delivered else local_alarms.DISCARDED_AND_LOST
        self.metrics.add(
            name,
            records,
            namespace=metric_store.LAMBDA_NAMESPACE,
            region=poller.source.region,
            EventSourceMappingUUID=poller.mapping_id or poller.name,
        )

    # --- alarms ------------------------------------------------------------------------------------------

    def _start_alarms(self) -> None:
        """Resolve every stack's alarms; start the evaluator, or hand it the alarms of a deploy."""
        period = self.options.alarm_period_seconds
        alarms = [
            local_alarms.resolve_alarm(spec, stack.region, stack.account, self._resolvers[stack.name], period)
            for stack in self.assembly.stacks
            for spec in stack.alarms
        ]
        for name, state in self.regions.items():  # the evaluator's own clients (a deploy adds regions)
            for service in ("sqs", "sns"):
                if (name, service) not in self._alarm_clients:
                    self._alarm_clients[(name, service)] = state.region.new_client(service)
        if self.alarm_evaluator is not None:
            self.alarm_evaluator.set_alarms(alarms)
            return
        interval = self.options.alarm_interval_seconds
        if interval is None:
            interval = min(local_alarms.DEFAULT_EVALUATION_INTERVAL_SECONDS, period or math.inf)
        self.alarm_evaluator = local_alarms.AlarmEvaluator(
            alarms,
            self._alarm_datapoints,
            interval=interval,
            log_dir=self.options.log_dir,
            publish=self._publish_alarm,
            before=self._sample_for_alarms,
            on_error=self.on_error,
        )
        self.alarm_evaluator.start()  # once assigned: its first round reads it (_sample_for_alarms)

    def _sample_for_alarms(self) -> None:
        """Before each round: the AWS/SQS metrics the alarms watch (from the queue's attributes:
        ApproximateNumberOfMessages, which CloudWatch reports as ApproximateNumberOfMessagesVisible, and
        ApproximateNumberOfMessagesNotVisible; ApproximateAgeOfOldestMessage as the region's engine
        computes it, none while SQS would report none), and an index of every sample by (region,
        namespace, metric) for the round's queries."""
        evaluator = self.alarm_evaluator
        if evaluator is None:  # stopping
            return
        now = time.time()
        states = evaluator.states()
        queues = {
            (alarm.region, alarm.query.metric_name, dict(alarm.query.dimensions).get("QueueName", ""))
            for state in states.values()
            if (alarm := state.alarm).query.namespace == metric_store.SQS_NAMESPACE
            and alarm.query.metric_name in (*local_alarms.SQS_ATTRIBUTES, local_alarms.SQS_AGE)
        }
        for region, metric, queue in sorted(queues):
            state = self.regions.get(region)
            client = self._alarm_clients.get((region, "sqs"))
            if state is None or queue not in state.queue_urls or client is None:
                continue  # a queue the runtime does not run: no datapoint (INSUFFICIENT_DATA or as treated)
            url = state.queue_urls[queue]
            value: float | None
            if metric == local_alarms.SQS_AGE:
                account = urllib.parse.urlparse(url).path.split("/")[1]  # moto's URLs: /<account>/<name>
                value = state.region.queue_age_of_oldest_message(account, queue)
            else:
                attribute = local_alarms.SQS_ATTRIBUTES[metric]
                attributes = client.get_queue_attributes(QueueUrl=url, AttributeNames=[attribute])
                value = float(attributes["Attributes"].get(attribute, 0))
            if value is not None:
                self.metrics.add(
                    metric, value, now, namespace=metric_store.SQS_NAMESPACE, region=region, QueueName=queue
                )
        # what the longest alarm looks at (its N periods, and the one in progress): evaluated every round
        # over a long run, indexing every sample of the run would cost more each round
        window = max(
            ((s.alarm.evaluation_periods + 1) * s.alarm.query.period for s in states.values()), default=0.0
        )
        index: dict[tuple[str, str, str], list[metric_store.Sample]] = {}
        for sample in self.metrics.since(now - window):
            if sample.namespace:
                index.setdefault((sample.region, sample.namespace, sample.name), []).append(sample)
        self._alarm_index = index

    def _alarm_datapoints(
        self, query: local_alarms.MetricQuery, start: float, end: float
    ) -> list[local_alarms.Datapoint]:
        samples = self._alarm_index.get((query.region, query.namespace, query.metric_name), [])
        local = {metric_store.REGION_DIMENSION: query.region}
        return local_alarms.datapoints(
            ((s.at, s.value) for s in samples if local_alarms.matches(s, query, local)),
            query.stat,
            query.period,
            start,
            end,
        )

    def _publish_alarm(self, alarm: local_alarms.Alarm, document: dict[str, Any]) -> None:
        """Publish to the alarm's SNS topics for its new state, those that exist in its region's engine
        (the runtime creates no topic: one created there by hand receives the notifications)."""
        client = self._alarm_clients.get((alarm.region, "sns"))
        actions = alarm.alarm_actions if document["NewStateValue"] == local_alarms.ALARM else alarm.ok_actions
        for arn in actions:
            if client is None or not arn.startswith("arn:aws:sns:"):
                continue
            try:
                client.get_topic_attributes(TopicArn=arn)
            except Exception:
                continue  # no such topic locally: the notification is in alarms.jsonl only
            subject = f'{document["NewStateValue"]}: "{alarm.name}" in {document["Region"]}'
            client.publish(TopicArn=arn, Subject=subject[:100], Message=json.dumps(document))

    def alarm_states(self) -> dict[str, local_alarms.AlarmState]:
        """Every alarm's current state, by alarm name."""
        if self.alarm_evaluator is None:
            return {}
        return {s.alarm.name: s for s in self.alarm_evaluator.states().values()}

    def alarm_notifications(self) -> list[dict[str, Any]]:
        """The notifications written so far (oldest first)."""
        return [] if self.alarm_evaluator is None else list(self.alarm_evaluator.notifications)

    # --- using the cloud ----------------------------------------------------------------------------------

    def region(self, name: str) -> Region:
        return self.regions[name].region

    def client(self, region: str, service: str = "dynamodb") -> Any:
        """A client of ``region`` through its gateway, as an application in that region would use."""
        return self.regions[region].region.client(service, engine=False)

    def health(self) -> dict[str, LoopStats]:
        """The failure counts of every stand-in thread (stream and SQS mappings, TTL sweepers), by name."""
        threads: dict[str, LoopStats] = {}
        for poller in self.stream_pollers:
            threads[f"stream mapping {poller.name}"] = poller.stats
        for queue_poller in self.queue_pollers:
            threads[f"SQS mapping {queue_poller.name}"] = queue_poller.stats
        for region, sweeper in self.sweepers.items():
            threads[f"TTL sweeper {region}"] = sweeper.stats
        if self.alarm_evaluator is not None:
            threads["alarm evaluator"] = self.alarm_evaluator.stats
        return threads

    def invocations(self) -> int:
        return sum(p.stats.invocations for p in self.stream_pollers) + sum(
            p.stats.invocations for p in self.queue_pollers
        )

    def backlog(self) -> int:
        """Messages waiting in (or in flight from) every queue a function drains."""
        return sum(poller.backlog() for poller in self.queue_pollers)

    def wait_drained(self, timeout: float = 60.0) -> Drain:
        """Wait until every mapping has read its stream to the end with nothing pending, no queue holds a
        message, and a further round of polls invokes nothing. False (a Drain that names what was still
        busy) if that takes longer than ``timeout``."""
        started = time.monotonic()
        deadline = started + timeout
        while time.monotonic() < deadline:
            mark = time.time()
            invocations = self.invocations()
            if not self._wait_quiet_since(mark, deadline):
                break
            if self.backlog() or self.invocations() != invocations:
                continue
            # one more full round of polls: a write applied by the last batch shows up in another stream
            if self._wait_quiet_since(time.time(), deadline) and self.invocations() == invocations:
                return Drain(True, time.monotonic() - started)
            time.sleep(0.05)
        return Drain(False, time.monotonic() - started, tuple(self.busy()))

    def busy(self) -> list[str]:
        """What is not drained right now: one line per busy mapping or non-empty queue."""
        lines = []
        for poller in self.stream_pollers:
            reason = poller.busy_reason()
            if reason is not None:
                lines.append(f"stream mapping {poller.name}: {reason}")
        for queue_poller in self.queue_pollers:
            waiting = queue_poller.backlog()
            if waiting:
                lines.append(f"SQS mapping {queue_poller.name}: {waiting} messages waiting or in flight")
        return lines

    def _wait_quiet_since(self, mark: float, deadline: float) -> bool:
        while time.monotonic() < deadline:
            quiet = [poller.quiet_since() for poller in self.stream_pollers]
            if all(q is not None and q >= mark for q in quiet):
                return True
            time.sleep(0.05)
        return False

    def pause_stream_mappings(self, region: str, *, paused: bool) -> list[str]:
        """Disable (or enable again) the stream mappings of ``region``; their names. Disabling returns
        once no batch of theirs is in flight."""
        names = []
        for poller in self.stream_pollers:
            if poller.source.region == region:
                (poller.pause if paused else poller.resume)()
                names.append(poller.name)
        return names

    def functions_in(self, region: str) -> list[LocalFunction]:
        return [f for (r, _), f in self.functions.items() if r == region]


@dataclass(frozen=True)
class Drain:
    """The outcome of ``LocalCloud.wait_drained``: true when drained; otherwise what was still busy."""

    drained: bool
    waited_seconds: float
    busy: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.drained

    def __str__(self) -> str:
        if self.drained:
            return f"drained after {self.waited_seconds:.1f} s"
        busy = " | ".join(self.busy) or "nothing busy now"
        return f"not drained after {self.waited_seconds:.1f} s: {busy}"


def _dead_letter_queues_first(queues: Sequence[QueueSpec]) -> list[QueueSpec]:
    targets = {q.redrive_target for q in queues if q.redrive_target}
    return sorted(queues, key=lambda q: 0 if q.logical_id in targets else 1)
