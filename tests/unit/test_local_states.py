"""The local Step Functions interpreter (ddbrep/local/states.py), with a fake Lambda invoker.

The definition below has the shape CDK synthesizes for the backfill job (stacks/backfill_job.py;
tests/infra/test_backfill_job.py loads the synthesized one): a Pass listing segments, a distributed Map
whose children loop a Task with two retriers and a Choice until done, then a summarizing Pass.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from ddbrep.local.states import (
    ABORTED,
    FAILED,
    SUCCEEDED,
    ApiError,
    DefinitionError,
    StatesError,
    StepFunctions,
    function_error,
    load_definition,
)

FUNCTION = "arn:aws:lambda:us-east-1:111111111111:function:orders-backfill"
MACHINE = "arn:aws:states:us-east-1:111111111111:stateMachine:orders-backfill"


def definition(segments: int = 3, max_concurrency: int = 2) -> dict[str, Any]:
    return {
        "StartAt": "ListSegments",
        "States": {
            "ListSegments": {
                "Type": "Pass",
                "Parameters": {"segments.$": f"States.ArrayRange(0, {segments - 1}, 1)"},
                "Next": "EachSegment",
            },
            "EachSegment": {
                "Type": "Map",
                "End": True,
                "ItemsPath": "$.segments",
                "ItemSelector": {"segment.$": "$$.Map.Item.Value", "total_segments": segments},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "CopyPages",
                    "States": {
                        "CopyPages": {
                            "Next": "SegmentDone",
                            "Retry": [
                                {
                                    "ErrorEquals": ["Lambda.ServiceException", "Lambda.SdkClientException"],
                                    "IntervalSeconds": 2,
                                    "MaxAttempts": 6,
                                    "BackoffRate": 2,
                                },
                                {
                                    "ErrorEquals": ["States.TaskFailed"],
                                    "IntervalSeconds": 30,
                                    "MaxAttempts": 6,
                                    "BackoffRate": 2,
                                },
                            ],
                            "Type": "Task",
                            "Resource": FUNCTION,
                        },
                        "SegmentDone": {
                            "Type": "Choice",
                            "Choices": [
                                {"Variable": "$.done", "BooleanEquals": True, "Next": "SegmentCopied"}
                            ],
                            "Default": "CopyPages",
                        },
                        "SegmentCopied": {
                            "Type": "Pass",
                            "Parameters": {"segment.$": "$.segment", "written.$": "$.position.written"},
                            "End": True,
                        },
                    },
                },
                "MaxConcurrency": max_concurrency,
            },
        },
    }


class FakeBackfill:
    """The backfill function's contract: pages of a segment, ``pages`` per segment, one per call.
    ``fail(segment, page)`` says whether that call fails (a function error)."""

    def __init__(self, pages: int = 2, fail: Callable[[int, int], bool] = lambda _s, _p: False) -> None:
        self.pages, self.fail = pages, fail
        self.calls: list[tuple[int, int]] = []  # (segment, page it was asked for)
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def __call__(self, resource: str, event: Any) -> Any:
        assert resource == FUNCTION
        position = event.get("position") or {"written": 0, "pages": 0}
        segment, page = event["segment"], position["pages"]
        with self._lock:
            self.calls.append((segment, page))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            time.sleep(0.01)
            if self.fail(segment, page):
                raise function_error(
                    {"errorType": "BackfillError", "errorMessage": f"segment {segment} failed"}
                )
            pages = page + 1
            return {
                "segment": segment,
                "total_segments": event["total_segments"],
                "position": {"written": position["written"] + 10, "pages": pages},
                "done": pages >= self.pages,
            }
        finally:
            with self._lock:
                self.running -= 1


class Waits:
    """A fake retry wait: records each delay, sleeps none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> bool:
        self.delays.append(seconds)
        return False


def service(invoke: Any, defn: dict[str, Any] | None = None, **kwargs: Any) -> StepFunctions:
    return StepFunctions({MACHINE: load_definition(defn or definition())}, invoke, **kwargs)


_SERVICES: list[StepFunctions] = []


def run(sfn: StepFunctions, input_text: str = "{}") -> tuple[str, dict[str, Any]]:
    _SERVICES.append(sfn)
    arn = sfn.start_execution(MACHINE, input_text)["executionArn"]
    return arn, sfn.wait(arn, timeout=10)


def children(arn: str) -> list[Any]:
    """The Map Run's child runs of the last execution ``run`` started."""
    return _SERVICES[-1].child_runs(arn, "EachSegment")


# --- executions ------------------------------------------------------------------------------------


def test_an_execution_copies_every_segment_and_outputs_their_summaries_in_order() -> None:
    backfill = FakeBackfill(pages=3)
    arn, described = run(service(backfill), '{"ignored": true}')
    assert described["status"] == SUCCEEDED
    assert json.loads(described["output"]) == [{"segment": s, "written": 30} for s in range(3)]
    assert sorted(backfill.calls) == [(s, p) for s in range(3) for p in range(3)]  # loops until done
    assert arn == MACHINE.replace(":stateMachine:", ":execution:") + ":" + described["name"]
    assert described["input"] == '{"ignored": true}' and described["redriveCount"] == 0
    assert described["redriveStatus"] == "NOT_REDRIVABLE"
    assert described["redriveStatusReason"] == "Execution is SUCCEEDED and cannot be redriven."
    assert "stopDate" in described and "error" not in described


def test_max_concurrency_bounds_the_children_running_at_once() -> None:
    backfill = FakeBackfill(pages=3)
    _arn, described = run(service(backfill, definition(segments=6, max_concurrency=2)))
    assert described["status"] == SUCCEEDED
    assert backfill.most_running == 2


def test_a_failed_invocation_is_retried_with_the_retriers_backoff() -> None:
    failures = {(1, 1): 2}  # segment 1's second page fails twice, then succeeds

    def fail(segment: int, page: int) -> bool:
        left = failures.get((segment, page), 0)
        failures[(segment, page)] = left - 1
        return left > 0

    waits = Waits()
    backfill = FakeBackfill(pages=2, fail=fail)
    _arn, described = run(service(backfill, wait=waits))
    assert described["status"] == SUCCEEDED
    assert waits.delays == [30.0, 60.0]  # States.TaskFailed matched the function's error: 30 s, doubling
    assert backfill.calls.count((1, 1)) == 3


def test_after_max_attempts_the_segment_fails_the_map_run_and_the_execution() -> None:
    waits = Waits()
    backfill = FakeBackfill(pages=2, fail=lambda segment, page: segment == 2 and page == 1)
    arn, described = run(service(backfill, definition(max_concurrency=1), wait=waits))
    assert described["status"] == FAILED
    assert described["error"] == "States.ExceedToleratedFailureThreshold"
    assert described["redriveStatus"] == "REDRIVABLE" and "output" not in described
    assert waits.delays == [30.0 * 2**i for i in range(6)]
    assert backfill.calls.count((2, 1)) == 7  # the first call and 6 retries
    child = {c.input["segment"]: c for c in children(arn)}
    assert child[2].status == FAILED and child[2].error == "BackfillError"
    assert json.loads(child[2].cause or "{}")["errorMessage"] == "segment 2 failed"
    assert child[2].at == "CopyPages" and child[2].at_input["position"]["pages"] == 1


def test_an_error_no_retrier_matches_is_not_retried() -> None:
    defn = definition()
    copy_pages = defn["States"]["EachSegment"]["ItemProcessor"]["States"]["CopyPages"]
    copy_pages["Retry"] = [{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 6}]
    waits = Waits()
    backfill = FakeBackfill(fail=lambda segment, _page: segment == 0)
    _arn, described = run(service(backfill, defn, wait=waits))
    assert described["status"] == FAILED and waits.delays == []
    assert backfill.calls.count((0, 0)) == 1


def test_a_failed_segment_aborts_the_running_ones_and_starts_no_more() -> None:
    release = threading.Event()

    def invoke(resource: str, event: Any) -> Any:
        if event["segment"] == 0:
            time.sleep(0.05)  # segment 1 has started meanwhile
            raise function_error({"errorType": "BackfillError", "errorMessage": "no"})
        release.wait(2)  # segment 1 is in flight when segment 0 fails
        return {**event, "position": {"written": 1, "pages": 1}, "done": True}

    sfn = service(invoke, definition(segments=4, max_concurrency=2), wait=lambda _s: False)
    arn = sfn.start_execution(MACHINE)["executionArn"]
    deadline = time.monotonic() + 5
    while (
        sfn.map_run_counts(arn).get("EachSegment", {}).get("failed", 0) == 0 and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    release.set()
    assert sfn.wait(arn, 10)["status"] == FAILED
    statuses = [c.status for c in sfn.child_runs(arn, "EachSegment")]
    assert statuses == [FAILED, ABORTED, "PENDING", "PENDING"]
    assert sfn.map_run_counts(arn)["EachSegment"] == {
        "total": 4, "succeeded": 0, "failed": 1, "aborted": 1, "running": 0, "pending": 2
    }  # fmt: skip


def _transient_definition() -> dict[str, Any]:
    defn = definition(segments=2, max_concurrency=2)
    copy_pages = defn["States"]["EachSegment"]["ItemProcessor"]["States"]["CopyPages"]
    copy_pages["Retry"] = [{"ErrorEquals": ["Transient"], "IntervalSeconds": 30, "MaxAttempts": 6}]
    return defn


def _segment_1_waits_segment_0_fails(resource: str, event: Any) -> Any:
    if event["segment"] == 1:
        raise StatesError("Transient", "{}")  # retried in 30 s
    time.sleep(0.2)
    raise StatesError("Fatal", "{}")  # no retrier: the Map Run fails


def test_a_child_waiting_to_retry_is_aborted_at_once_when_the_map_run_fails() -> None:
    sfn = service(_segment_1_waits_segment_0_fails, _transient_definition())
    arn = sfn.start_execution(MACHINE)["executionArn"]
    described = sfn.wait(arn, 5)
    assert described["status"] == FAILED  # not 30 s later
    assert [c.status for c in sfn.child_runs(arn, "EachSegment")] == [FAILED, ABORTED]


def test_stopping_the_service_aborts_the_executions_in_their_retry_waits() -> None:
    def always_transient(_resource: str, _event: Any) -> Any:
        raise StatesError("Transient", "{}")

    sfn = service(always_transient, _transient_definition())
    arn = sfn.start_execution(MACHINE)["executionArn"]
    time.sleep(0.2)
    began = time.monotonic()
    sfn.stop()
    assert time.monotonic() - began < 2
    assert sfn.describe_execution(arn)["status"] == ABORTED


# --- redrive ---------------------------------------------------------------------------------------------


def test_redrive_reruns_only_the_unsuccessful_segments_from_their_failed_step() -> None:
    broken = {"on": True}
    backfill = FakeBackfill(pages=3, fail=lambda segment, page: broken["on"] and segment == 1 and page == 2)
    sfn = service(backfill, definition(segments=3, max_concurrency=1), wait=lambda _s: False)
    arn, described = run(sfn)
    assert described["status"] == FAILED
    calls_before = list(backfill.calls)
    assert (2, 0) not in calls_before  # never started: the Map Run failed first

    broken["on"] = False
    assert sfn.redrive_execution(arn)["redriveDate"]
    described = sfn.wait(arn, 10)
    assert described["status"] == SUCCEEDED and described["redriveCount"] == 1
    redriven = backfill.calls[len(calls_before) :]
    # segment 0 (succeeded) is not rerun; segment 1 resumes at its third page with the position it had;
    # segment 2 starts
    assert redriven[0] == (1, 2)
    assert sorted(redriven) == [(1, 2), (2, 0), (2, 1), (2, 2)]
    assert json.loads(described["output"]) == [{"segment": s, "written": 30} for s in range(3)]
    assert described["executionArn"] == arn and "redriveDate" in described


def test_a_redrive_starts_the_retry_counts_afresh() -> None:
    attempts = {"left": 7}  # more failures than one entry's retries allow

    def fail(_segment: int, _page: int) -> bool:
        attempts["left"] -= 1
        return attempts["left"] >= 0

    waits = Waits()
    sfn = service(FakeBackfill(pages=1, fail=fail), definition(segments=1), wait=waits)
    arn, described = run(sfn)
    assert described["status"] == FAILED and len(waits.delays) == 6
    sfn.redrive_execution(arn)
    assert sfn.wait(arn, 10)["status"] == SUCCEEDED
    assert waits.delays[6:] == []  # the 8th call succeeded without a wait: a fresh entry into the state


def test_only_failed_executions_can_be_redriven() -> None:
    sfn = service(FakeBackfill(pages=1))
    arn, _described = run(sfn)
    with pytest.raises(ApiError) as refused:
        sfn.redrive_execution(arn)
    assert refused.value.code == "ExecutionNotRedrivable"
    assert "Execution is SUCCEEDED and cannot be redriven." in refused.value.message


def test_a_failure_older_than_14_days_cannot_be_redriven() -> None:
    now = {"t": 1_000_000.0}
    sfn = service(FakeBackfill(fail=lambda *_: True), wait=lambda _s: False, clock=lambda: now["t"])
    arn, _described = run(sfn)
    now["t"] += 14 * 24 * 3600 + 1
    assert sfn.describe_execution(arn)["redriveStatusReason"] == "Execution redrivable period exceeded."
    with pytest.raises(ApiError):
        sfn.redrive_execution(arn)


# --- the API ----------------------------------------------------------------------------------------------


def test_start_execution_refuses_what_step_functions_refuses() -> None:
    sfn = service(FakeBackfill())
    with pytest.raises(ApiError) as no_machine:
        sfn.start_execution(MACHINE + "-x")
    assert no_machine.value.code == "StateMachineDoesNotExist"
    with pytest.raises(ApiError) as bad_input:
        sfn.start_execution(MACHINE, "{not json")
    assert bad_input.value.code == "InvalidExecutionInput"
    with pytest.raises(ApiError) as no_execution:
        sfn.describe_execution(MACHINE.replace("stateMachine", "execution") + ":nope")
    assert no_execution.value.code == "ExecutionDoesNotExist"
    arn, _ = run(sfn)
    name = arn.rsplit(":", 1)[1]
    with pytest.raises(ApiError) as again:
        sfn.start_execution(MACHINE, "{}", name=name)
    assert again.value.code == "ExecutionAlreadyExists"
    for call, code in (
        (lambda: sfn.start_execution("orders-backfill"), "InvalidArn"),
        (lambda: sfn.describe_execution(MACHINE), "InvalidArn"),  # a state machine's, not an execution's
        (lambda: sfn.start_execution(MACHINE, "{}", name="a b"), "InvalidName"),
    ):
        with pytest.raises(ApiError) as refused:
            call()
        assert refused.value.code == code


def test_a_named_execution_is_idempotent_while_it_runs_with_the_same_input() -> None:
    release = threading.Event()

    def invoke(_resource: str, event: Any) -> Any:
        release.wait(5)
        return {**event, "done": True, "position": {"written": 0}}

    sfn = service(invoke, definition(segments=1))
    first = sfn.start_execution(MACHINE, "{}", name="run-1")
    assert sfn.start_execution(MACHINE, "{}", name="run-1") == first
    with pytest.raises(ApiError):
        sfn.start_execution(MACHINE, '{"other": 1}', name="run-1")
    release.set()
    assert sfn.wait(first["executionArn"], 10)["status"] == SUCCEEDED


def test_the_control_channel_answers_with_the_api_json_or_its_error() -> None:
    from types import SimpleNamespace

    from ddbrep.local.control import ControlError, apply

    cloud: Any = SimpleNamespace(states=service(FakeBackfill(pages=1)), region_names=["us-east-1"])
    started = json.loads(
        apply(cloud, {"fault": "start-execution", "state_machine_arn": MACHINE, "input": "{}"})
    )
    cloud.states.wait(started["executionArn"], 10)
    described = json.loads(
        apply(cloud, {"fault": "describe-execution", "execution_arn": started["executionArn"]})
    )
    assert described["status"] == SUCCEEDED
    with pytest.raises(ControlError) as refused:
        apply(cloud, {"fault": "redrive-execution", "execution_arn": started["executionArn"]})
    assert str(refused.value).startswith("An error occurred (ExecutionNotRedrivable): ")


def test_retry_waits_are_capped_by_the_time_compression() -> None:
    waits = Waits()
    sfn = service(FakeBackfill(fail=lambda *_: True), wait=waits, max_retry_interval=0.5)
    run(sfn)
    assert waits.delays and set(waits.delays) == {0.5}


# --- semantics of single states -------------------------------------------------------------------------


def test_a_choice_on_a_path_the_input_lacks_fails_with_states_runtime() -> None:
    def invoke(_resource: str, event: Any) -> Any:
        return {"segment": event["segment"]}  # no "done"

    arn, described = run(service(invoke, definition(segments=1)))
    assert described["status"] == FAILED
    [child] = children(arn)
    assert child.error == "States.Runtime" and "Invalid path '$.done'" in str(child.cause)


def test_a_choice_on_a_value_of_another_type_takes_the_default() -> None:
    calls = []

    def invoke(_resource: str, event: Any) -> Any:
        calls.append(event)
        if len(calls) == 1:
            return {**event, "done": "true"}  # a string: BooleanEquals does not match, Default loops
        return {**event, "done": True, "position": {"written": 0}}

    _arn, described = run(service(invoke, definition(segments=1)))
    assert described["status"] == SUCCEEDED and len(calls) == 2


def test_a_parameters_path_missing_from_the_input_fails_with_states_runtime() -> None:
    def invoke(_resource: str, event: Any) -> Any:
        return {**event, "done": True}  # no position: SegmentCopied cannot read $.position.written

    arn, _described = run(service(invoke, definition(segments=1)))
    [child] = children(arn)
    assert child.error == "States.Runtime" and "'$.position.written'" in str(child.cause)
    assert child.at == "SegmentCopied"


def test_an_output_over_256_kib_fails_with_data_limit_exceeded_and_is_not_retried() -> None:
    calls = []

    def invoke(_resource: str, event: Any) -> Any:
        calls.append(1)
        return {**event, "done": True, "blob": "x" * 262_144}

    waits = Waits()
    arn, _described = run(service(invoke, definition(segments=1), wait=waits))
    [child] = children(arn)
    assert child.error == "States.DataLimitExceeded" and waits.delays == [] and len(calls) == 1


def test_array_range_is_inclusive_and_bounded_to_1000_items() -> None:
    seen: list[int] = []

    def invoke(_resource: str, event: Any) -> Any:
        seen.append(event["segment"])
        return {**event, "done": True, "position": {"written": 0}}

    defn = definition(segments=3, max_concurrency=0)
    defn["States"]["ListSegments"]["Parameters"] = {"segments.$": "States.ArrayRange(1, 9, 4)"}
    assert run(service(invoke, defn))[1]["status"] == SUCCEEDED
    assert sorted(seen) == [1, 5, 9]
    defn["States"]["ListSegments"]["Parameters"] = {"segments.$": "States.ArrayRange(0, 1000, 1)"}
    _arn, described = run(service(invoke, defn))
    assert described["error"] == "States.IntrinsicFailure"


def test_function_errors_are_named_by_their_error_type() -> None:
    error = function_error(
        {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 900.00 seconds"}
    )
    assert isinstance(error, StatesError) and error.error == "Sandbox.Timedout"
    assert json.loads(error.cause)["errorMessage"].startswith("Task timed out")
    assert function_error({"errorMessage": "?"}).error == "Lambda.Unknown"


# --- what the loader refuses -----------------------------------------------------------------------------


def _edited(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    defn = copy.deepcopy(definition())
    edit(defn)
    return defn


def _child(defn: dict[str, Any], name: str) -> dict[str, Any]:
    state: dict[str, Any] = defn["States"]["EachSegment"]["ItemProcessor"]["States"][name]
    return state


REFUSED: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    (
        "a Wait state",
        lambda d: d["States"].update(W={"Type": "Wait", "Seconds": 1, "End": True}),
        "state W: Type Wait",
    ),
    ("a Catch", lambda d: _child(d, "CopyPages").update(Catch=[]), "state CopyPages: field Catch of a Task"),
    (
        "ResultPath",
        lambda d: d["States"]["ListSegments"].update(ResultPath="$.x"),
        "field ResultPath of a Pass",
    ),
    (
        "an optimized integration",
        lambda d: _child(d, "CopyPages").update(Resource="arn:aws:states:::lambda:invoke"),
        "Resource arn:aws:states:::lambda:invoke is not implemented",
    ),
    (
        "another intrinsic",
        lambda d: d["States"]["ListSegments"].update(Parameters={"x.$": "States.Format('{}', $.a)"}),
        "intrinsic States.Format",
    ),
    (
        "a bracket path",
        lambda d: _child(d, "SegmentCopied").update(Parameters={"x.$": "$.a[0]"}),
        "path '$.a[0]'",
    ),
    (
        "a numeric choice",
        lambda d: _child(d, "SegmentDone").update(
            Choices=[{"Variable": "$.n", "NumericEquals": 1, "Next": "CopyPages"}]
        ),
        "Choices[0] (Next, NumericEquals, Variable) is not implemented",
    ),
    (
        "an inline map",
        lambda d: d["States"]["EachSegment"]["ItemProcessor"].update(ProcessorConfig={"Mode": "INLINE"}),
        'ProcessorConfig {"Mode": "INLINE"}',
    ),
    (
        "a tolerated failure threshold",
        lambda d: d["States"]["EachSegment"].update(ToleratedFailurePercentage=5),
        "field ToleratedFailurePercentage of a Map",
    ),
    (
        "a jittered retrier",
        lambda d: _child(d, "CopyPages")["Retry"][0].update(JitterStrategy="FULL"),
        "CopyPages Retry[0]: field JitterStrategy",
    ),
    (
        "a context path outside a Map",
        lambda d: d["States"]["ListSegments"].update(Parameters={"x.$": "$$.Map.Item.Value"}),
        "path '$$.Map.Item.Value'",
    ),
    ("a dangling Next", lambda d: _child(d, "SegmentDone").update(Default="Nowhere"), "Next 'Nowhere'"),
    ("JSONata", lambda d: d.update(QueryLanguage="JSONata"), "field QueryLanguage"),
]


@pytest.mark.parametrize(("case", "edit", "message"), REFUSED, ids=[case for case, _e, _m in REFUSED])
def test_the_loader_refuses_what_it_does_not_implement_naming_the_state_and_field(
    case: str, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(DefinitionError) as refused:
        load_definition(_edited(edit), "orders-backfill")
    assert message in str(refused.value), case
    assert str(refused.value).startswith("orders-backfill")


def test_the_backfill_shape_loads() -> None:
    workflow = load_definition(json.dumps(definition()))
    assert workflow.resources() == [FUNCTION]


# --- the template's resource ----------------------------------------------------------------------------


def test_the_template_reader_keeps_a_standard_machine_and_refuses_other_forms() -> None:
    from ddbrep.local.templates import TemplateError, parse_stack

    def stack(**props: Any) -> Any:
        resource = {"Type": "AWS::StepFunctions::StateMachine", "Properties": props}
        return parse_stack("S", "us-east-1", "111111111111", {"Resources": {"M": resource}})

    definition_string = {"Fn::Join": ["", ['{"StartAt": ...', {"Fn::GetAtt": ["F", "Arn"]}, "}"]]}
    [machine] = stack(DefinitionString=definition_string, StateMachineName="orders-backfill").state_machines
    assert machine.name == "orders-backfill" and machine.definition == definition_string
    for props, message in (
        ({"DefinitionString": "{}", "StateMachineType": "EXPRESS"}, "StateMachineType EXPRESS"),
        ({"Definition": {}}, "Definition is not implemented"),
        ({"DefinitionString": "{}", "DefinitionSubstitutions": {}}, "DefinitionSubstitutions"),
    ):
        with pytest.raises(TemplateError) as refused:
            stack(**props)
        assert message in str(refused.value) and "S/M" in str(refused.value)


def test_the_cloud_loads_a_stacks_machine_only_when_its_tasks_invoke_functions_it_runs() -> None:
    from pathlib import Path

    from ddbrep.local.cloud import LocalCloud, LocalFunction
    from ddbrep.local.templates import (
        Assembly,
        FunctionSpec,
        Resolver,
        StackSpec,
        StateMachineSpec,
        TemplateError,
    )

    def cloud_with(defn: dict[str, Any], function: str) -> LocalCloud:
        # as CDK synthesizes it: the definition's text joined around the function's Fn::GetAtt
        before, after = json.dumps(defn).split(FUNCTION)
        text = {"Fn::Join": ["", [before, {"Fn::GetAtt": ["Fn", "Arn"]}, after]]}
        spec = StateMachineSpec(logical_id="M", name="orders-backfill", definition=text)
        stack = StackSpec("S", "us-east-1", "111111111111", resources={}, state_machines=(spec,))
        cloud = LocalCloud(Assembly(Path("."), (stack,)))
        resolver = Resolver(stack)
        resolver.attributes[("Fn", "Arn")] = f"arn:aws:lambda:us-east-1:111111111111:function:{function}"
        cloud._resolvers["S"] = resolver
        fspec = FunctionSpec(logical_id="Fn", name=function, handler="h.h", environment={})
        cloud.functions[("us-east-1", "Fn")] = LocalFunction(stack, fspec, worker=None)  # type: ignore[arg-type]
        return cloud

    running = cloud_with(definition(), "orders-backfill")
    running._start_state_machines()
    assert (
        running.state_machines_in("us-east-1") == [MACHINE] and running.state_machines_in("eu-west-1") == []
    )
    # a Task naming a function the cloud does not run, or a definition the interpreter does not implement
    elsewhere = cloud_with(definition(), "orders-backfill")
    elsewhere.functions.clear()
    with pytest.raises(
        TemplateError, match=r"its Task invokes .* which is not a function of the local cloud"
    ):
        elsewhere._start_state_machines()
    unimplemented = definition()
    unimplemented["States"]["ListSegments"]["ResultPath"] = "$.x"
    with pytest.raises(DefinitionError, match=r"state machine orders-backfill \(S\): state ListSegments"):
        cloud_with(unimplemented, "orders-backfill")._start_state_machines()


def test_a_running_cloud_refuses_a_deploy_that_changes_or_removes_a_state_machine() -> None:
    from pathlib import Path

    from ddbrep.local.templates import Assembly, StackSpec, StateMachineSpec, update_problems

    def assembly(*machines: StateMachineSpec) -> Assembly:
        stack = StackSpec("S", "us-east-1", "111111111111", resources={}, state_machines=machines)
        return Assembly(Path("."), (stack,))

    machine = StateMachineSpec("M", "orders-backfill", json.dumps(definition(segments=3)))
    assert update_problems(assembly(machine), assembly(machine)) == []
    changed = StateMachineSpec("M", "orders-backfill", json.dumps(definition(segments=4)))
    assert update_problems(assembly(machine), assembly(changed)) == ["S: M is changed"]
    assert update_problems(assembly(machine), assembly()) == ["S: M is removed"]
