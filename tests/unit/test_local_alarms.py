"""The local alarm evaluator (ddbrep/local/alarms.py): CloudWatch's rules, on hand-made datapoints.

The missing-data cases use 3 datapoints to alarm out of 5 evaluation periods, the setting of the
examples of CloudWatch's "Configuring how CloudWatch alarms treat missing data" page: 0 within the
threshold, X breaching, - missing, oldest first. The expected states are the rules of the module's
docstring, applied by hand.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ddbrep.local.alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    Alarm,
    AlarmEvaluator,
    Datapoint,
    MetricQuery,
    datapoints,
    decide,
    evaluate,
    matches,
    notification,
    notifies,
    read_notifications,
    read_states,
    resolve_alarm,
)
from ddbrep.local.metric_store import Sample, parse_emf
from ddbrep.local.templates import Resolver, TemplateError, parse_stack

PERIOD = 10.0
QUERY = MetricQuery(
    "us-east-1", "DynamoDBReplicator", "DeadLettered", (("SourceRegion", "us-east-1"),), "Sum", PERIOD
)


def alarm(**changes: Any) -> Alarm:
    base = Alarm(
        name="orders-replication-us-east-1-dead-letters",
        region="us-east-1",
        account="111111111111",
        description="Records parked",
        query=QUERY,
        metric_id="m1",
        threshold=0.0,
        comparison_operator="GreaterThanThreshold",
        evaluation_periods=5,
        datapoints_to_alarm=3,
        treat_missing_data="missing",
    )
    return replace(base, **changes)


def periods(pattern: str) -> list[Datapoint | None]:
    """'0-X-X' -> datapoints: 0 within the threshold (value 0), X breaching (value 1), - missing."""
    return [
        None if c == "-" else Datapoint(i * PERIOD, 1.0 if c == "X" else 0.0) for i, c in enumerate(pattern)
    ]


# pattern -> state per TreatMissingData (None: the current state is kept)
CASES = [
    ("0-X-X", {"missing": OK, "ignore": OK, "breaching": ALARM, "notBreaching": OK}),
    ("----0", {"missing": OK, "ignore": OK, "breaching": ALARM, "notBreaching": OK}),
    ("-----", {"missing": INSUFFICIENT_DATA, "ignore": None, "breaching": ALARM, "notBreaching": OK}),
    ("0XX-X", {"missing": ALARM, "ignore": ALARM, "breaching": ALARM, "notBreaching": ALARM}),
    ("--X--", {"missing": ALARM, "ignore": None, "breaching": ALARM, "notBreaching": OK}),
]


@pytest.mark.parametrize("treat", ["missing", "ignore", "breaching", "notBreaching"])
@pytest.mark.parametrize(("pattern", "expected"), CASES)
@pytest.mark.parametrize("current", [OK, ALARM, INSUFFICIENT_DATA])
def test_missing_data_is_treated_as_configured(
    pattern: str, expected: dict[str, Any], treat: str, current: str
):
    result = decide(alarm(treat_missing_data=treat), periods(pattern), current)
    assert result.state == (expected[treat] or current)


@pytest.mark.parametrize(
    ("pattern", "m", "expected"),
    [
        ("XX0", 2, ALARM),  # two of three, not consecutive needed
        ("X0X", 2, ALARM),
        ("0X0", 2, OK),
        ("XXX", 3, ALARM),
        ("XX0", 3, OK),
        ("00X", 1, ALARM),
        ("000", 1, OK),
    ],
)
def test_m_out_of_n(pattern: str, m: int, expected: str):
    spec = alarm(evaluation_periods=len(pattern), datapoints_to_alarm=m)
    assert decide(spec, periods(pattern), OK).state == expected


@pytest.mark.parametrize(
    ("operator", "value", "breaching"),
    [
        ("GreaterThanThreshold", 5.0, False),
        ("GreaterThanThreshold", 5.1, True),
        ("GreaterThanOrEqualToThreshold", 5.0, True),
        ("GreaterThanOrEqualToThreshold", 4.9, False),
        ("LessThanThreshold", 5.0, False),
        ("LessThanThreshold", 4.9, True),
        ("LessThanOrEqualToThreshold", 5.0, True),
        ("LessThanOrEqualToThreshold", 5.1, False),
    ],
)
def test_each_comparison_operator(operator: str, value: float, breaching: bool):
    spec = alarm(comparison_operator=operator, threshold=5.0, evaluation_periods=1, datapoints_to_alarm=1)
    state = decide(spec, [Datapoint(0.0, value)], OK).state
    assert state == (ALARM if breaching else OK)


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        ("Sum", 10.0),
        ("Maximum", 4.0),
        ("Minimum", 1.0),
        ("Average", 2.5),
        ("SampleCount", 4.0),
        ("p50", 2.0),
        ("p99", 4.0),
    ],
)
def test_datapoints_aggregate_each_period_with_the_statistic(stat: str, expected: float):
    samples = [(100.0, 1.0), (101.0, 2.0), (105.0, 3.0), (109.9, 4.0), (110.0, 7.0), (99.9, 9.0)]
    found = datapoints(samples, stat, PERIOD, 100.0, 110.0)  # one period: [100, 110)
    assert found == [Datapoint(100.0, expected)]


def test_evaluate_looks_at_the_last_complete_periods_only():
    spec = alarm(evaluation_periods=1, datapoints_to_alarm=1, treat_missing_data="notBreaching")
    samples = [(1_000.0, 1.0)]  # a dead letter in the period [1000, 1010)

    def fetch(query: MetricQuery, start: float, end: float) -> Sequence[Datapoint]:
        assert query == QUERY
        return datapoints(samples, query.stat, query.period, start, end)

    assert evaluate(spec, fetch, now=1_005.0).state == OK  # its period is not complete yet
    assert evaluate(spec, fetch, now=1_010.0).state == ALARM
    assert "1 out of the last 1 datapoints [1 (" in evaluate(spec, fetch, now=1_019.0).reason
    assert evaluate(spec, fetch, now=1_020.0, current=ALARM).state == OK  # the next period has none


def test_a_sample_matches_only_its_exact_dimensions_namespace_and_region():
    pair = Sample(
        1.0,
        "DeadLettered",
        (("SourceRegion", "us-east-1"), ("TargetRegion", "eu-west-1")),
        1.0,
        "DynamoDBReplicator",
        "us-east-1",
    )
    source = replace(pair, dimensions=(("SourceRegion", "us-east-1"),))
    assert matches(source, QUERY) and not matches(pair, QUERY)
    assert not matches(replace(source, region="eu-west-1"), QUERY)
    assert not matches(replace(source, namespace="Other"), QUERY)
    # the runtime's own Region dimension on Lambda samples is not a CloudWatch dimension
    local = replace(source, dimensions=(("Region", "us-east-1"), ("SourceRegion", "us-east-1")))
    assert matches(local, QUERY, {"Region": "us-east-1"}) and not matches(local, QUERY)


def test_emf_samples_carry_their_namespace_and_the_functions_region():
    doc = {
        "_aws": {
            "Timestamp": 1_000_000,
            "CloudWatchMetrics": [
                {
                    "Namespace": "DynamoDBReplicator",
                    "Dimensions": [["SourceRegion"]],
                    "Metrics": [{"Name": "DeadLettered"}],
                }
            ],
        },
        "SourceRegion": "us-east-1",
        "DeadLettered": 2,
    }
    (sample,) = parse_emf(json.dumps(doc), "us-east-1")
    assert matches(sample, QUERY) and sample.value == 2.0


@pytest.mark.parametrize(
    ("old", "new", "written"),
    [
        (OK, ALARM, True),
        (INSUFFICIENT_DATA, ALARM, True),
        (ALARM, OK, True),
        (INSUFFICIENT_DATA, OK, False),
        (OK, OK, False),
        (ALARM, ALARM, False),
        (OK, INSUFFICIENT_DATA, False),
    ],
)
def test_notifications_on_alarm_and_back_to_ok(old: str, new: str, written: bool):
    assert notifies(old, new) is written


def test_the_notification_has_cloudwatchs_sns_message_shape():
    spec = alarm(
        evaluation_periods=1, datapoints_to_alarm=1, alarm_actions=("arn:aws:sns:us-east-1:111111111111:t",)
    )
    evaluation = decide(spec, [Datapoint(1_000.0, 3.0)], OK)
    document = notification(spec, OK, evaluation, 1_010.5)
    assert document["AlarmName"] == spec.name and document["NewStateValue"] == ALARM
    assert document["OldStateValue"] == OK and document["Region"] == "US East (N. Virginia)"
    assert document["StateChangeTime"] == "1970-01-01T00:16:50.500+0000"
    assert document["NewStateReason"].startswith("Threshold Crossed: 1 out of the last 1 datapoints [3 (")
    assert document["AlarmArn"] == f"arn:aws:cloudwatch:us-east-1:111111111111:alarm:{spec.name}"
    assert document["AlarmActions"] == ["arn:aws:sns:us-east-1:111111111111:t"]
    trigger = document["Trigger"]
    assert (trigger["EvaluationPeriods"], trigger["DatapointsToAlarm"], trigger["Threshold"]) == (1, 1, 0.0)
    metric = trigger["Metrics"][0]["MetricStat"]
    assert metric["Metric"]["MetricName"] == "DeadLettered" and metric["Stat"] == "Sum"


def test_the_evaluator_records_transitions_and_writes_them(tmp_path: Path):
    spec = alarm(evaluation_periods=1, datapoints_to_alarm=1, treat_missing_data="notBreaching")
    samples: list[tuple[float, float]] = []
    now = [1_000.0]
    published: list[str] = []
    evaluator = AlarmEvaluator(
        [spec],
        lambda q, start, end: datapoints(samples, q.stat, q.period, start, end),
        interval=1.0,
        log_dir=tmp_path,
        publish=lambda a, doc: published.append(doc["NewStateValue"]),
        clock=lambda: now[0],
    )
    assert evaluator.evaluate_all() == []  # INSUFFICIENT_DATA -> OK is not notified
    assert read_states(tmp_path)[spec.arn]["StateValue"] == OK
    samples.append((1_001.0, 1.0))
    now[0] = 1_010.0
    (alarmed,) = evaluator.evaluate_all()
    assert alarmed["NewStateValue"] == ALARM and evaluator.states()[spec.arn].state == ALARM
    now[0] = 1_020.0
    (back,) = evaluator.evaluate_all()
    assert (back["OldStateValue"], back["NewStateValue"]) == (ALARM, OK)
    assert [d["NewStateValue"] for d in read_notifications(tmp_path)] == [ALARM, OK]
    assert published == [ALARM, OK]


# --- reading the templates ----------------------------------------------------------------------------


def alarm_resource(**props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "AlarmName": "a1",
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "Threshold": 0,
        "TreatMissingData": "notBreaching",
        "Metrics": [
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": "OnFailureDestinationDeliveredEventCount",
                        "Dimensions": [{"Name": "EventSourceMappingUUID", "Value": {"Ref": "Mapping"}}],
                    },
                    "Period": 300,
                    "Stat": "Sum",
                },
                "ReturnData": True,
            }
        ],
    }
    base.update(props)
    return {"Resources": {"Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": base}}}


def test_an_alarm_is_read_and_resolved_with_a_compressed_period():
    stack = parse_stack("S", "us-east-1", "111111111111", alarm_resource())
    (spec,) = stack.alarms
    assert (spec.evaluation_periods, spec.datapoints_to_alarm, spec.metric.period) == (3, 2, 300)
    resolver = Resolver(stack, refs={"Mapping": "uuid-1"})
    resolved = resolve_alarm(spec, "us-east-1", "111111111111", resolver, period_seconds=2)
    assert resolved.query.dimensions == (("EventSourceMappingUUID", "uuid-1"),)
    assert resolved.query.period == 2.0 and resolved.name == "a1"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            {"Metrics": [{"Id": "e1", "Expression": "FILL(m1, 0)", "ReturnData": True}]},
            'expression "FILL(m1, 0)" of e1',
        ),
        (
            {"Metrics": [{"Id": "m1", "MetricStat": {}}, {"Id": "e1", "Expression": "m1 + m1"}]},
            "2 Metrics entries (m1, e1)",
        ),
        ({"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, "ComparisonOperator"),
        ({"TreatMissingData": "sometimes"}, "TreatMissingData"),
        ({"DatapointsToAlarm": 4}, "DatapointsToAlarm 4"),
        ({"MetricName": "Errors"}, "single-metric"),
        ({"ThresholdMetricId": "ad1"}, "ThresholdMetricId"),
    ],
)
def test_an_alarm_the_evaluator_does_not_implement_fails_at_load_naming_it(
    props: dict[str, Any], message: str
):
    with pytest.raises(TemplateError, match="alarm a1 \\(S/Alarm\\)") as error:
        parse_stack("S", "us-east-1", "111111111111", alarm_resource(**props))
    assert message in str(error.value)


def test_an_unknown_statistic_fails_at_load():
    template = alarm_resource()
    template["Resources"]["Alarm"]["Properties"]["Metrics"][0]["MetricStat"]["Stat"] = "tm99"
    with pytest.raises(TemplateError, match="statistic 'tm99'"):
        parse_stack("S", "us-east-1", "111111111111", template)


def test_the_reason_counts_what_decided_the_state():
    spec = alarm(evaluation_periods=3, datapoints_to_alarm=2, treat_missing_data="notBreaching")
    # one breaching datapoint of the three periods: fewer than 2, so OK; the two missing are not breaching
    evaluation = decide(spec, [None, Datapoint(10.0, 1.0), None], ALARM)
    assert evaluation.state == OK
    assert evaluation.reason.startswith("Threshold Crossed: 2 out of the last 3 datapoints [1 (")
    assert "were not greater than the threshold (0)" in evaluation.reason
    assert evaluation.reason.endswith("2 missing datapoint(s) treated as notBreaching.")
    alarmed = decide(spec, [Datapoint(0.0, 2.0), Datapoint(10.0, 1.0), Datapoint(20.0, 0.0)], OK)
    assert alarmed.state == ALARM and "2 out of the last 3 datapoints [0 (" in alarmed.reason


def test_a_deploy_keeps_the_state_of_known_alarms_and_adds_the_new_ones(tmp_path: Path):
    first = alarm(evaluation_periods=1, datapoints_to_alarm=1, treat_missing_data="breaching")
    evaluator = AlarmEvaluator([first], lambda q, start, end: [], interval=1.0, clock=lambda: 1_000.0)
    evaluator.evaluate_all()
    assert evaluator.states()[first.arn].state == ALARM
    added = replace(first, name="another", region="eu-west-1")
    evaluator.set_alarms([first, added])
    states = evaluator.states()
    assert states[first.arn].state == ALARM and states[first.arn].changed_at == 1_000.0
    assert states[added.arn].state == INSUFFICIENT_DATA


def test_the_store_returns_the_window_without_reading_the_whole_run() -> None:
    from ddbrep.local.metric_store import MetricsStore

    store = MetricsStore()
    for at in range(1000):
        store.add("Hits", 1.0, float(at), namespace="NS", region="us-east-1")
    store.add("Hits", 2.0, 990.5, namespace="NS", region="us-east-1")  # a little out of order
    store.add("Hits", 3.0, 700.0, namespace="NS", region="us-east-1")  # a late flush, long before the cut
    assert [s.at for s in store.since(995.0)] == [995.0, 996.0, 997.0, 998.0, 999.0]
    assert sorted(s.at for s in store.since(990.0)) == [990.0, 990.5, *map(float, range(991, 1000))]
    # the scan stops after a run of samples too old to be in the window: those before it are not read
    store.add("Hits", 4.0, 999.5, namespace="NS", region="us-east-1")
    assert [s.at for s in store.since(999.0, slack=1.0, run=3)] == [999.0, 999.5]
    store.samples.insert(0, dataclasses.replace(store.samples[0], at=999.9))  # far back in the list
    assert 999.9 not in [s.at for s in store.since(999.0, slack=1.0, run=3)]
    assert 999.9 in [s.at for s in store.since(999.0, slack=1.0, run=5000)]
    assert len(store.since(0.0, slack=5000.0)) == 1004
