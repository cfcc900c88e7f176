"""A local Step Functions: the Amazon States Language the shipped state machines use, interpreted.

The deployed backfill job (stacks/backfill_job.py) is a Standard state machine. ``load_definition``
reads its definition (the template's ``DefinitionString``, intrinsics resolved) and accepts exactly
the states, fields and intrinsics it holds; anything else raises ``DefinitionError`` naming the state
and the field, so a definition the interpreter does not implement fails ``local up`` instead of running
differently (as ddbrep/local/alarms.py refuses alarms it cannot evaluate):

- ``Pass`` with ``Parameters`` (a payload template: ``.$`` fields hold a path or
  ``States.ArrayRange(start, end, step)`` with integer literals), ``Next`` or ``End``;
- ``Task`` whose ``Resource`` is a Lambda function ARN (what CDK synthesizes for LambdaInvoke with
  ``payload_response_only``): the state's input is the event, the function's result the output; a
  function error is the error named by its ``errorType``, the cause its error document; ``Retry`` with
  ``ErrorEquals``, ``IntervalSeconds``, ``MaxAttempts``, ``BackoffRate``;
- ``Choice`` with ``BooleanEquals`` rules on a ``Variable`` path, ``Default``;
- ``Map`` in ``DISTRIBUTED`` mode with ``STANDARD`` child executions: ``ItemsPath``, ``ItemSelector``
  (``$$.Map.Item.Value``/``Index``), ``MaxConcurrency``, ``ItemProcessor``;
- paths ``$`` and ``$.a.b`` (no brackets, filters or wildcards).

What AWS does, and this does (docs/LOCAL.md lists the sources):

- A retrier matches an error named in its ``ErrorEquals``; ``States.ALL`` any error, ``States.TaskFailed``
  any error of a Task but ``States.Timeout``; neither matches ``States.DataLimitExceeded`` or
  ``States.Runtime``. The n-th retry of a retrier waits ``IntervalSeconds x BackoffRate^(n-1)``; after
  ``MaxAttempts`` retries the error stands. Counts are per retrier, per entry into the state.
- Choice: a ``Variable`` path the input does not hold is ``States.Runtime``; a value of another type
  does not match; no match and no ``Default`` is ``States.NoChoiceMatched``.
- A payload template whose path is not in the input is ``States.Runtime``; a state's output over
  256 KiB is ``States.DataLimitExceeded``; ``States.ArrayRange`` builds at most 1000 items.
- A distributed Map runs one child execution per item, at most ``MaxConcurrency`` at a time (0: no
  limit), in item order; its output is the children's outputs in item order. Without a tolerated
  failure threshold (the definition sets none), the first failed child fails the Map Run: no further
  child starts, the running ones are aborted (an invocation in flight finishes, its result is dropped),
  and the Map state fails with ``States.ExceedToleratedFailureThreshold``.
- ``redrive_execution`` (a FAILED or ABORTED execution, within 14 days) continues from the state that
  failed, with the input it had; a Map redrives its Map Run: succeeded children keep their output and
  are not rerun, failed and aborted (Standard) children continue from their own failed state with its
  input, children never started start. Retry counts start afresh. The execution keeps its ARN and
  ``redriveCount`` grows.

Deviations, by choice: ``max_retry_interval`` caps every retry wait (time compression, as
``RuntimeOptions.max_visibility_timeout`` caps the queues' timeout); executions live as long as the
process; no history events, no child-execution ARNs.

Pure apart from the invocations (``invoke``) and the clock: threads run the executions.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ddbrep.local.templates import TemplateError

PAYLOAD_LIMIT_BYTES = 262_144  # 256 KiB: a state's input or output, an execution's input
ARRAY_RANGE_LIMIT = 1000
REDRIVE_WINDOW_SECONDS = 14 * 24 * 3600
DEFAULT_INTERVAL_SECONDS = 1
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BACKOFF_RATE = 2.0

RUNNING, SUCCEEDED, FAILED, ABORTED = "RUNNING", "SUCCEEDED", "FAILED", "ABORTED"
TASK_FAILED, ALL, TIMEOUT = "States.TaskFailed", "States.ALL", "States.Timeout"
RUNTIME, DATA_LIMIT = "States.Runtime", "States.DataLimitExceeded"
NO_CHOICE, THRESHOLD = "States.NoChoiceMatched", "States.ExceedToleratedFailureThreshold"
INTRINSIC_FAILURE = "States.IntrinsicFailure"

_LAMBDA_ARN = re.compile(r"arn:aws:lambda:([a-z0-9-]+):(\d{12}):function:([A-Za-z0-9_-]+)")
_PATH = re.compile(r"\$(\.[A-Za-z_][A-Za-z0-9_-]*)*")
_CONTEXT_PATHS = ("$$.Map.Item.Value", "$$.Map.Item.Index")
# Names (StartExecution): 1-80 characters, no white space, brackets, wildcards, special or control characters
_NAME = r"[^\s<>{}\[\]?*\"#%\\^|~`$&,;:/\x00-\x1f\x7f-\x9f]{1,80}"
_MACHINE_ARN = re.compile(rf"arn:aws:states:[a-z0-9-]+:\d{{12}}:stateMachine:{_NAME}")
_EXECUTION_ARN = re.compile(rf"arn:aws:states:[a-z0-9-]+:\d{{12}}:execution:{_NAME}:{_NAME}")
_ARRAY_RANGE = re.compile(r"States\.ArrayRange\(\s*(-?\d+)\s*,\s*(-?\d+)\s*,\s*(-?\d+)\s*\)")


class DefinitionError(TemplateError):
    """A definition holds a state, field or intrinsic the local interpreter does not implement."""


class StatesError(Exception):
    """An error raised in a state: its name (``States.Runtime``, a function's ``errorType``) and cause."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


class ApiError(Exception):
    """An API call Step Functions refuses (``code``: its exception name, e.g. ExecutionNotRedrivable)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


# --- the definition ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retrier:
    errors: tuple[str, ...]
    interval_seconds: float = DEFAULT_INTERVAL_SECONDS
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_rate: float = DEFAULT_BACKOFF_RATE

    def matches(self, error: str) -> bool:
        if error in self.errors:
            return True
        if error in (DATA_LIMIT, RUNTIME):
            return False  # terminal: no wildcard matches them
        return ALL in self.errors or (TASK_FAILED in self.errors and error != TIMEOUT)

    def delay(self, retry: int) -> float:
        """The wait before the ``retry``-th retry (1-based)."""
        return float(self.interval_seconds * self.backoff_rate ** (retry - 1))


@dataclass(frozen=True)
class State:
    name: str
    type: str
    next: str | None = None  # None: End (Choice: see rules/default)
    parameters: Any = None  # Pass: the payload template
    resource: str = ""  # Task: the function ARN
    retry: tuple[Retrier, ...] = ()
    rules: tuple[tuple[str, bool, str], ...] = ()  # Choice: (variable, BooleanEquals, Next)
    default: str | None = None
    items_path: str = "$"  # Map
    item_selector: Any = None
    max_concurrency: int = 0
    processor: Workflow | None = None


@dataclass(frozen=True)
class Workflow:
    """One scope of states (the state machine, or a Map's ItemProcessor)."""

    start_at: str
    states: Mapping[str, State]

    def resources(self) -> list[str]:
        """Every Task resource of this scope and the scopes it holds."""
        found = []
        for state in self.states.values():
            if state.type == "Task":
                found.append(state.resource)
            if state.processor is not None:
                found += state.processor.resources()
        return found


_ALLOWED = {
    "Pass": {"Type", "Comment", "Parameters", "Next", "End"},
    "Task": {"Type", "Comment", "Resource", "Retry", "Next", "End"},
    "Choice": {"Type", "Comment", "Choices", "Default"},
    "Map": {"Type", "Comment", "ItemsPath", "ItemSelector", "ItemProcessor", "MaxConcurrency", "Next", "End"},
}
_RETRIER_FIELDS = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate"}


def load_definition(definition: str | Mapping[str, Any], machine: str = "state machine") -> Workflow:
    """The definition (JSON text or parsed), checked: DefinitionError names what is not implemented."""
    if isinstance(definition, str):
        try:
            definition = json.loads(definition)
        except ValueError as err:
            raise DefinitionError(f"{machine}: the definition is not JSON ({err})") from None
    if not isinstance(definition, Mapping):
        raise DefinitionError(f"{machine}: the definition is not a JSON object")
    return _workflow(definition, machine, {"StartAt", "States", "Comment"})


def _workflow(scope: Mapping[str, Any], where: str, allowed: set[str]) -> Workflow:
    for key in scope:
        if key not in allowed:
            raise DefinitionError(f"{where}: field {key} is not implemented by the local interpreter")
    states = scope.get("States")
    start = scope.get("StartAt")
    if not isinstance(states, Mapping) or not states:
        raise DefinitionError(f"{where}: States must be a non-empty object")
    if start not in states:
        raise DefinitionError(f"{where}: StartAt {start!r} is not one of its States")
    parsed = {name: _state(str(name), body, where) for name, body in states.items()}
    for state in parsed.values():
        targets = [state.next, state.default, *(rule[2] for rule in state.rules)]
        for target in targets:
            if target is not None and target not in parsed:
                raise DefinitionError(f"{where}: state {state.name}: Next {target!r} is not a state here")
    return Workflow(start_at=str(start), states=parsed)


def _state(name: str, body: Any, where: str) -> State:
    what = f"{where}: state {name}"
    if not isinstance(body, Mapping):
        raise DefinitionError(f"{what} is not an object")
    kind = str(body.get("Type"))
    if kind not in _ALLOWED:
        raise DefinitionError(
            f"{what}: Type {kind} is not implemented by the local interpreter ({', '.join(_ALLOWED)} are)"
        )
    for key in body:
        if key not in _ALLOWED[kind]:
            raise DefinitionError(f"{what}: field {key} of a {kind} state is not implemented locally")
    if kind == "Choice":
        return _choice(name, body, what)
    if ("Next" in body) == bool(body.get("End")):
        raise DefinitionError(f"{what}: needs exactly one of Next and End: true")
    following = str(body["Next"]) if "Next" in body else None
    if kind == "Pass":
        return State(
            name, kind, following, parameters=_template(body.get("Parameters"), f"{what} Parameters")
        )
    if kind == "Task":
        resource = str(body.get("Resource"))
        if not _LAMBDA_ARN.fullmatch(resource):
            raise DefinitionError(
                f"{what}: Resource {resource} is not implemented locally (only a Lambda function ARN: "
                "LambdaInvoke with payload_response_only)"
            )
        return State(name, kind, following, resource=resource, retry=_retriers(body.get("Retry", ()), what))
    return _map(name, body, following, what)


def _choice(name: str, body: Mapping[str, Any], what: str) -> State:
    rules = []
    choices = body.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise DefinitionError(f"{what}: Choices must be a non-empty list")
    for i, rule in enumerate(choices):
        if not isinstance(rule, Mapping) or set(rule) != {"Variable", "BooleanEquals", "Next"}:
            fields = ", ".join(sorted(rule)) if isinstance(rule, Mapping) else repr(rule)
            raise DefinitionError(
                f"{what}: Choices[{i}] ({fields}) is not implemented locally (only Variable, BooleanEquals, "
                "Next)"
            )
        if not isinstance(rule["BooleanEquals"], bool):
            raise DefinitionError(f"{what}: Choices[{i}].BooleanEquals must be true or false")
        rules.append(
            (
                _path(rule["Variable"], f"{what} Choices[{i}].Variable"),
                rule["BooleanEquals"],
                str(rule["Next"]),
            )
        )
    default = body.get("Default")
    return State(name, "Choice", rules=tuple(rules), default=str(default) if default is not None else None)


def _map(name: str, body: Mapping[str, Any], following: str | None, what: str) -> State:
    processor = body.get("ItemProcessor")
    if not isinstance(processor, Mapping):
        raise DefinitionError(f"{what}: ItemProcessor is required")
    config = processor.get("ProcessorConfig") or {}
    if dict(config) != {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}:
        raise DefinitionError(
            f"{what}: ItemProcessor.ProcessorConfig {json.dumps(config)} is not implemented locally (only "
            "Mode DISTRIBUTED with ExecutionType STANDARD)"
        )
    concurrency = body.get("MaxConcurrency", 0)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 0:
        raise DefinitionError(f"{what}: MaxConcurrency must be a non-negative integer")
    return State(
        name,
        "Map",
        following,
        items_path=_path(body.get("ItemsPath", "$"), f"{what} ItemsPath"),
        item_selector=_template(body.get("ItemSelector"), f"{what} ItemSelector", context=True),
        max_concurrency=concurrency,
        processor=_workflow(processor, f"{what} ItemProcessor", {"ProcessorConfig", "StartAt", "States"}),
    )


def _retriers(raw: Any, what: str) -> tuple[Retrier, ...]:
    if not isinstance(raw, list):
        raise DefinitionError(f"{what}: Retry must be a list")
    retriers = []
    for i, item in enumerate(raw):
        where = f"{what} Retry[{i}]"
        if not isinstance(item, Mapping):
            raise DefinitionError(f"{where} is not an object")
        for key in item:
            if key not in _RETRIER_FIELDS:
                raise DefinitionError(f"{where}: field {key} is not implemented locally")
        errors = item.get("ErrorEquals")
        if not isinstance(errors, list) or not errors or not all(isinstance(e, str) for e in errors):
            raise DefinitionError(f"{where}: ErrorEquals must be a non-empty list of error names")
        interval = item.get("IntervalSeconds", DEFAULT_INTERVAL_SECONDS)
        attempts = item.get("MaxAttempts", DEFAULT_MAX_ATTEMPTS)
        rate = item.get("BackoffRate", DEFAULT_BACKOFF_RATE)
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise DefinitionError(f"{where}: IntervalSeconds must be a positive integer")
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
            raise DefinitionError(f"{where}: MaxAttempts must be a non-negative integer")
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 1.0:
            raise DefinitionError(f"{where}: BackoffRate must be a number of at least 1.0")
        retriers.append(Retrier(tuple(errors), interval, attempts, float(rate)))
    return tuple(retriers)


def _path(value: Any, what: str, *, context: bool = False) -> str:
    text = str(value)
    if context and text in _CONTEXT_PATHS:
        return text
    if not isinstance(value, str) or not _PATH.fullmatch(text):
        raise DefinitionError(
            f"{what}: path {text!r} is not implemented locally (only $ and $.field.field"
            + (", $$.Map.Item.Value and $$.Map.Item.Index)" if context else ")")
        )
    return text


def _template(value: Any, what: str, *, context: bool = False) -> Any:
    """A payload template, checked (its ``.$`` fields: a path or States.ArrayRange)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DefinitionError(f"{what}: a payload template must be an object")
    checked: dict[str, Any] = {}
    for key, item in value.items():
        if key.endswith(".$"):
            if isinstance(item, str) and item.startswith("States."):
                if not _ARRAY_RANGE.fullmatch(item):
                    raise DefinitionError(
                        f"{what}: {key}: intrinsic {item} is not implemented locally (only "
                        "States.ArrayRange with integer literals)"
                    )
            else:
                _path(item, f"{what}: {key}", context=context)
            checked[key] = item
        elif isinstance(item, Mapping):
            checked[key] = _template(item, f"{what}.{key}", context=context)
        else:
            checked[key] = item
    return checked


# --- evaluating ---------------------------------------------------------------------------------------------


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


def resolve_path(path: str, data: Any, context: Mapping[str, Any] | None = None) -> Any:
    """The value at ``path``; KeyError when the data does not hold it."""
    if path.startswith("$$."):
        value: Any = context or {}
        parts = path[3:].split(".")
    else:
        value = data
        parts = path[2:].split(".") if path != "$" else []
    for part in parts:
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(path)
        value = value[part]
    return value


def array_range(expression: str) -> list[int]:
    match = _ARRAY_RANGE.fullmatch(expression)
    assert match is not None  # checked at load
    start, end, step = (int(g) for g in match.groups())
    if step == 0:
        raise StatesError(INTRINSIC_FAILURE, f"{expression}: the step must not be 0")
    items = list(range(start, end + (1 if step > 0 else -1), step))
    if len(items) > ARRAY_RANGE_LIMIT:
        raise StatesError(
            INTRINSIC_FAILURE, f"{expression}: {len(items)} items, more than the {ARRAY_RANGE_LIMIT} allowed"
        )
    return items


def apply_template(
    template: Any, data: Any, state: str, field_name: str, context: Mapping[str, Any] | None = None
) -> Any:
    """Evaluate a payload template against ``data`` (and the context object)."""
    if template is None:
        return data
    result: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            if value.startswith("States."):
                result[key[:-2]] = array_range(value)
                continue
            try:
                result[key[:-2]] = resolve_path(value, data, context)
            except KeyError:
                raise StatesError(
                    RUNTIME,
                    f"An error occurred while executing the state '{state}'. The JSONPath '{value}' "
                    f"specified for the field '{key}' could not be found in the input '{json.dumps(data)}'",
                ) from None
        elif isinstance(value, Mapping):
            result[key] = apply_template(value, data, state, field_name, context)
        else:
            result[key] = value
    return result


def choose(state: State, data: Any) -> str:
    """The next state of a Choice state."""
    for variable, expected, target in state.rules:
        try:
            value = resolve_path(variable, data)
        except KeyError:
            raise StatesError(
                RUNTIME,
                f"An error occurred while executing the state '{state.name}'. Invalid path '{variable}': The "
                "choice state's condition path references an invalid value.",
            ) from None
        if isinstance(value, bool) and value is expected:
            return target
    if state.default is None:
        raise StatesError(NO_CHOICE, f"No Choice matched in state '{state.name}'")
    return state.default


# --- running ------------------------------------------------------------------------------------------------


@dataclass
class Run:
    """One workflow run (an execution, or a Map's child execution), resumable where it stopped."""

    input: Any
    status: str = "PENDING"  # PENDING (never started), RUNNING, SUCCEEDED, FAILED, ABORTED
    at: str | None = None  # the state it is in, or failed or was aborted in
    at_input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    map_runs: dict[str, MapRun] = field(default_factory=dict)
    attempts: int = 0  # how many times it was started or redriven


@dataclass
class MapRun:
    """A distributed Map's children, by item index."""

    children: list[Run]
    status: str = RUNNING
    redrive_count: int = 0


class Interpreter:
    """Runs workflows: states in order, retries, Map Runs, aborts.

    A retry wait ends early when its run is aborted (its Map Run failed, or ``stop``); ``wait(seconds)``
    replaces it (tests: a fake that records the delays and returns at once, False: not aborted).
    """

    def __init__(
        self,
        invoke: Callable[[str, Any], Any],
        *,
        wait: Callable[[float], bool] | None = None,
        max_retry_interval: float | None = None,
    ) -> None:
        self.invoke = invoke
        self.stopping = threading.Event()
        self.wait = wait
        self.max_retry_interval = max_retry_interval
        self._aborts: set[threading.Event] = set()  # of the Map Runs in progress
        self._lock = threading.Lock()

    def stop(self) -> None:
        """Abort every run in progress."""
        self.stopping.set()
        with self._lock:
            for event in self._aborts:
                event.set()

    def _pause(self, seconds: float, abort: threading.Event | None) -> bool:
        """Sleep a retry interval; True when the run was aborted meanwhile."""
        if self.wait is not None:
            return self.wait(seconds) or self.stopping.is_set() or (abort is not None and abort.is_set())
        return (abort or self.stopping).wait(seconds) or self.stopping.is_set()

    def run(self, workflow: Workflow, run: Run, abort: threading.Event | None = None) -> Run:
        """Run (or continue) ``run`` to its end: SUCCEEDED, FAILED or ABORTED."""
        if run.status in ("PENDING", SUCCEEDED) or run.at is None:
            run.at, run.at_input = workflow.start_at, run.input
        run.status, run.error, run.cause = RUNNING, None, None
        run.attempts += 1
        while True:
            if self.stopping.is_set() or (abort is not None and abort.is_set()):
                run.status = ABORTED
                return run
            assert run.at is not None
            state = workflow.states[run.at]
            try:
                output, following = self._execute(state, run.at_input, run, abort)
                if _size(output) > PAYLOAD_LIMIT_BYTES:
                    raise StatesError(
                        DATA_LIMIT,
                        f"The state/task '{state.name}' returned a result with a size exceeding the maximum "
                        f"number of bytes service limit ({PAYLOAD_LIMIT_BYTES}).",
                    )
            except _Aborted:
                run.status = ABORTED
                return run
            except StatesError as err:
                run.status, run.error, run.cause = FAILED, err.error, err.cause
                return run
            if following is None:
                run.status, run.output = SUCCEEDED, output
                return run
            run.at, run.at_input = following, output

    def _execute(
        self, state: State, data: Any, run: Run, abort: threading.Event | None
    ) -> tuple[Any, str | None]:
        if state.type == "Pass":
            return apply_template(state.parameters, data, state.name, "Parameters"), state.next
        if state.type == "Choice":
            return data, choose(state, data)
        if state.type == "Task":
            return self._task(state, data, abort), state.next
        return self._map(state, data, run), state.next

    def _task(self, state: State, data: Any, abort: threading.Event | None) -> Any:
        retries = [0] * len(state.retry)  # per retrier, for this entry into the state
        while True:
            try:
                result = self.invoke(state.resource, data)
            except StatesError as err:
                index = next((i for i, r in enumerate(state.retry) if r.matches(err.error)), None)
                if index is None or retries[index] >= state.retry[index].max_attempts:
                    raise
                retries[index] += 1
                delay = state.retry[index].delay(retries[index])
                if self.max_retry_interval is not None:
                    delay = min(delay, self.max_retry_interval)
                if self._pause(delay, abort):
                    raise _Aborted() from None
                continue
            if abort is not None and abort.is_set():
                raise _Aborted()  # the invocation finished; the child was aborted meanwhile
            return result

    def _map(self, state: State, data: Any, run: Run) -> Any:
        assert state.processor is not None
        try:
            items = resolve_path(state.items_path, data)
        except KeyError:
            raise StatesError(
                RUNTIME,
                f"An error occurred while executing the state '{state.name}'. Invalid path "
                f"'{state.items_path}': The ItemsPath references an invalid value.",
            ) from None
        if not isinstance(items, list):
            raise StatesError(
                RUNTIME,
                f"An error occurred while executing the state '{state.name}'. The ItemsPath "
                f"'{state.items_path}' must point to a JSON array.",
            )
        map_run = run.map_runs.get(state.name)
        if map_run is None or map_run.status == SUCCEEDED:
            children = [
                Run(
                    apply_template(
                        state.item_selector,
                        data,
                        state.name,
                        "ItemSelector",
                        {"Map": {"Item": {"Index": i, "Value": item}}},
                    )
                )
                for i, item in enumerate(items)
            ]
            map_run = run.map_runs[state.name] = MapRun(children)
        else:  # a redrive: the Map Run's unsuccessful children only
            map_run.redrive_count += 1
        map_run.status = RUNNING
        self._run_children(state, map_run)
        failed = [c for c in map_run.children if c.status == FAILED]
        if failed or any(c.status != SUCCEEDED for c in map_run.children):
            map_run.status = FAILED
            if not failed and self.stopping.is_set():
                raise _Aborted()
            raise StatesError(THRESHOLD, "The specified tolerated failure threshold was exceeded")
        map_run.status = SUCCEEDED
        return [child.output for child in map_run.children]

    def _run_children(self, state: State, map_run: MapRun) -> None:
        assert state.processor is not None
        processor = state.processor
        todo = [c for c in map_run.children if c.status != SUCCEEDED]
        if not todo:
            return
        abort = threading.Event()  # the Map Run failed (or the runtime stops): stop the others
        with self._lock:
            self._aborts.add(abort)
            if self.stopping.is_set():
                abort.set()
        workers = state.max_concurrency or len(todo)

        def child(run: Run) -> None:
            if abort.is_set() or self.stopping.is_set():
                return  # never started: stays as it was (PENDING, or its earlier failure)
            self.run(processor, run, abort)
            if run.status == FAILED:
                abort.set()

        try:
            with ThreadPoolExecutor(
                max_workers=min(workers, len(todo)), thread_name_prefix=f"map-{state.name}"
            ) as pool:
                for future in [pool.submit(child, c) for c in todo]:
                    future.result()
        finally:
            with self._lock:
                self._aborts.discard(abort)


class _Aborted(Exception):
    """The run was aborted (its Map Run failed, or the runtime stops)."""


# --- state machines and executions --------------------------------------------------------------------------


@dataclass
class Execution:
    arn: str
    name: str
    machine_arn: str
    input_text: str
    run: Run
    started: float
    stopped: float | None = None
    redrive_count: int = 0
    redriven: float | None = None
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def status(self) -> str:
        return self.run.status if self.run.status != "PENDING" else RUNNING


def _iso(moment: float) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="milliseconds")


class StepFunctions:
    """The state machines of a local cloud and their executions (the API the runbook's CLI calls)."""

    def __init__(
        self,
        machines: Mapping[str, Workflow],
        invoke: Callable[[str, Any], Any],
        *,
        max_retry_interval: float | None = None,
        wait: Callable[[float], bool] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``invoke(function ARN, payload)`` returns the function's result or raises StatesError (the
        function's error: ``function_error``); ``wait`` sleeps a retry interval (tests pass a fake)."""
        self.machines = dict(machines)
        self.interpreter = Interpreter(invoke, wait=wait, max_retry_interval=max_retry_interval)
        self.clock = clock
        self.executions: dict[str, Execution] = {}
        self._lock = threading.Lock()

    def add(self, arn: str, workflow: Workflow) -> None:
        self.machines[arn] = workflow

    def start_execution(
        self, state_machine_arn: str, input_text: str = "{}", name: str | None = None
    ) -> dict[str, Any]:
        if not _MACHINE_ARN.fullmatch(state_machine_arn):
            raise ApiError(
                "InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {state_machine_arn}'"
            )
        workflow = self.machines.get(state_machine_arn)
        if workflow is None:
            raise ApiError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{state_machine_arn}'")
        try:
            data = json.loads(input_text)
        except ValueError as err:
            raise ApiError(
                "InvalidExecutionInput", f"Invalid State Machine Execution Input: '{err}'"
            ) from None
        if len(input_text.encode("utf-8")) > PAYLOAD_LIMIT_BYTES:
            raise ApiError("InvalidExecutionInput", f"the input is over {PAYLOAD_LIMIT_BYTES} bytes")
        if name is not None and not re.fullmatch(_NAME, name):
            raise ApiError("InvalidName", f"Invalid Name: '{name}'")
        name = name or str(uuid.uuid4())
        arn = state_machine_arn.replace(":stateMachine:", ":execution:", 1) + f":{name}"
        with self._lock:
            existing = self.executions.get(arn)
            if existing is not None:
                if existing.status == RUNNING and existing.input_text == input_text:
                    return {"executionArn": arn, "startDate": _iso(existing.started)}  # idempotent
                raise ApiError("ExecutionAlreadyExists", f"Execution Already Exists: '{arn}'")
            execution = Execution(arn, name, state_machine_arn, input_text, Run(data), self.clock())
            execution.run.status = RUNNING
            self.executions[arn] = execution
        self._launch(execution, workflow)
        return {"executionArn": arn, "startDate": _iso(execution.started)}

    def redrive_execution(self, execution_arn: str) -> dict[str, Any]:
        with self._lock:
            execution = self._execution(execution_arn)
            reason = self._not_redrivable(execution)
            if reason is not None:
                raise ApiError(
                    "ExecutionNotRedrivable", f"Execution {execution_arn} cannot be redriven: {reason}"
                )
            execution.redrive_count += 1
            execution.redriven = self.clock()
            execution.stopped = None
            execution.run.status = RUNNING
        self._launch(execution, self.machines[execution.machine_arn])
        return {"redriveDate": _iso(execution.redriven)}

    def describe_execution(self, execution_arn: str) -> dict[str, Any]:
        """DescribeExecution's answer (dates as ISO 8601 text)."""
        with self._lock:
            e = self._execution(execution_arn)
            status = e.status
            answer: dict[str, Any] = {
                "executionArn": e.arn,
                "stateMachineArn": e.machine_arn,
                "name": e.name,
                "status": status,
                "startDate": _iso(e.started),
                "input": e.input_text,
                "inputDetails": {"included": True},
                "redriveCount": e.redrive_count,
            }
            if e.stopped is not None:
                answer["stopDate"] = _iso(e.stopped)
            if status == SUCCEEDED:
                answer["output"] = json.dumps(e.run.output, separators=(",", ":"))
                answer["outputDetails"] = {"included": True}
            if status == FAILED:
                answer["error"], answer["cause"] = e.run.error, e.run.cause
            if e.redriven is not None:
                answer["redriveDate"] = _iso(e.redriven)
            reason = self._not_redrivable(e)
            answer["redriveStatus"] = "NOT_REDRIVABLE" if reason else "REDRIVABLE"
            if reason:
                answer["redriveStatusReason"] = reason
            return answer

    def map_run_counts(self, execution_arn: str) -> dict[str, dict[str, int]]:
        """Per Map state of the execution: its children by status (DescribeMapRun's executionCounts)."""
        with self._lock:
            e = self._execution(execution_arn)
            counts = {}
            for state, map_run in e.run.map_runs.items():
                statuses = [c.status for c in map_run.children]
                counts[state] = {
                    "total": len(statuses),
                    "succeeded": statuses.count(SUCCEEDED),
                    "failed": statuses.count(FAILED),
                    "aborted": statuses.count(ABORTED),
                    "running": statuses.count(RUNNING),
                    "pending": statuses.count("PENDING"),
                }
            return counts

    def child_runs(self, execution_arn: str, state: str) -> list[Run]:
        with self._lock:
            return list(self._execution(execution_arn).run.map_runs[state].children)

    def wait(self, execution_arn: str, timeout: float) -> dict[str, Any]:
        """Wait up to ``timeout`` for the execution to stop running; its description."""
        execution = self._execution(execution_arn)
        thread = execution.thread
        if thread is not None:
            thread.join(timeout)
        return self.describe_execution(execution_arn)

    def stop(self) -> None:
        """Abort every running execution (the runtime stops) and wait briefly for their threads."""
        self.interpreter.stop()
        for execution in list(self.executions.values()):
            if execution.thread is not None:
                execution.thread.join(5)

    def _execution(self, arn: str) -> Execution:
        if not _EXECUTION_ARN.fullmatch(arn):
            raise ApiError("InvalidArn", f"Invalid Arn: 'Resource type not valid in this context: {arn}'")
        execution = self.executions.get(arn)
        if execution is None:
            raise ApiError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{arn}'")
        return execution

    def _not_redrivable(self, e: Execution) -> str | None:
        status = e.status
        if status in (RUNNING, SUCCEEDED):
            return f"Execution is {status} and cannot be redriven."
        if e.stopped is not None and self.clock() - e.stopped > REDRIVE_WINDOW_SECONDS:
            return "Execution redrivable period exceeded."
        return None

    def _launch(self, execution: Execution, workflow: Workflow) -> None:
        def target() -> None:
            try:
                self.interpreter.run(workflow, execution.run)
            except Exception as err:  # a bug of the interpreter: the execution fails, saying so
                execution.run.status, execution.run.error = FAILED, RUNTIME
                execution.run.cause = f"local interpreter error: {type(err).__name__}: {err}"
            with self._lock:
                execution.stopped = self.clock()

        execution.thread = threading.Thread(target=target, name=f"execution-{execution.name}", daemon=True)
        execution.thread.start()


def function_of(resource: str) -> tuple[str, str, str]:
    """(region, account, function name) of a Task's Lambda function ARN."""
    match = _LAMBDA_ARN.fullmatch(resource)
    if match is None:
        raise ValueError(f"{resource} is not a Lambda function ARN")
    return match.group(1), match.group(2), match.group(3)


def function_error(payload: Any) -> StatesError:
    """A failed invocation as a Task sees it: the error named by ``errorType``, its document the cause."""
    document = payload if isinstance(payload, Mapping) else {"errorMessage": str(payload)}
    error = str(document.get("errorType") or "Lambda.Unknown")
    return StatesError(error, json.dumps(dict(document)))
